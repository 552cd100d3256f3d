// The measurement loop behind `hpl profile`: a cold first pass (reported as what it is, then
// discarded as the warm-up), then `reps` warm repetitions of a prefill of n_prompt tokens and
// of n_gen decode tokens at each context depth, every one timed op by op (engine/profiler.h).
// Also the modelled bytes and ops of each phase (engine/op_cost.h) and the roofline they are
// compared with.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/model.h"
#include "engine/op_cost.h"
#include "engine/profiler.h"

namespace hpl {

struct ProfileOptions {
  int64_t n_prompt = 128;
  int64_t n_gen = 32;
  int reps = 5;
  std::vector<int64_t> ctx_depths;  // decode depths (positions already in the cache)
  bool trace = false;               // keep the slices of the last repetition of each phase
};

// median, min and max of xs (not empty)
struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread spread_of(std::vector<double> xs);

struct PhaseRun {
  std::string name;            // "prefill", "decode"
  int64_t depth = 0;           // positions in the cache when the phase starts
  int64_t n_tokens = 0;        // tokens evaluated per repetition
  double per = 1;              // divisor for per-token figures (1 for prefill, n_tokens for decode)
  std::vector<double> wall_s;  // per repetition, whole phase
  // Per repetition and op kind, seconds of the whole phase; "other" = wall - what hooks saw.
  std::vector<std::array<double, kProfOpCount>> op_s;
  std::vector<double> hooked_s;  // per repetition: time seen by hooks (before "other")
  // Per repetition, per layer, per op kind.
  std::vector<std::vector<ProfLayerSeconds>> layer_s;
  OpCosts cost{};                 // modelled, whole phase
  std::vector<ProfSlice> slices;  // last repetition, when tracing
  int64_t t0_ns = 0, t1_ns = 0;   // last repetition's span
  int thread = 0;                 // the thread that ran it
};

struct ProfileRun {
  double setup_s = 0;        // Forward construction (KV cache, scratch, thread pool)
  double first_token_s = 0;  // cold prefill of n_prompt + sampling, right after setup
  PhaseRun prefill;
  std::vector<PhaseRun> decode;  // one per depth
};

// bos: first prompt token (-1: none). fo.n_ctx must hold max(n_prompt, depth + n_gen).
ProfileRun profile_forward(const Model& m, const ForwardOptions& fo, const ProfileOptions& po,
                           int32_t bos);

// The roofline of this machine: min(compute peak, arithmetic intensity * read bandwidth).
struct Roofline {
  double read_bytes_per_s = 0;
  double int8_ops_per_s = 0;
  double f32_ops_per_s = 0;
  // Ops per second attainable by an op with this cost (bandwidth only when it has no ops).
  double attainable_ops(const OpCost& c) const;
};

}  // namespace hpl
