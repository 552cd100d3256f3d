// Session options from the plain values a C caller passes (bindings), and what a model file
// with one such session takes in memory before loading anything (engine/memory_estimate.h).
// The bindings reach the engine only through the runtime: these are their only way to it.
#pragma once

#include <cstdint>
#include <string>

#include "engine/memory_estimate.h"
#include "runtime/session.h"

namespace hpl {

// cpus: "4-7" / "0,2-3" ("" = no pinning); cache_type: "f16", "f32", "q8_0", "q4_0" ("" =
// f16). Throws RuntimeError kInvalidArgument naming the bad field and value.
SessionOptions session_options_from_text(int64_t n_ctx, int64_t n_ubatch, int n_threads,
                                         const std::string& cpus, const std::string& cache_type);

// With a draft model (opt.spec.draft_path) its weights (unless it is the model itself), KV
// cache and scratch are added, as a session allocates them. Throws RuntimeError kModel for a
// bad or unsupported file, or options the model cannot take (e.g. a quantized KV cache with a
// head_dim that is not a multiple of 32).
MemoryEstimate estimate_session_memory(const std::string& path, const SessionOptions& opt);

}  // namespace hpl
