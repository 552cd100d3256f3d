// Wall time per op kind of the forward pass, for `hpl profile`. The forward pass takes an
// optional Profiler* (Forward::set_profiler); when it is null every hook is one branch.
//
// Serial sections (run on the calling thread, or one pool dispatch of a single op kind) are
// timed with ProfScope. Parallel sections that mix op kinds (a pool run over the rows of the
// fused q/k/v matmul, a per-token loop doing bias + QK-norm + rope + KV store) are timed with
// ProfSection: each part is timed on the thread that runs it, and the section's wall time is
// split among the op kinds in proportion to their summed thread time. So the totals add up to
// wall time, and nothing runs differently when profiling.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace hpl {

enum class ProfOp : int {
  // matmuls by tensor role
  kAttnQ,
  kAttnK,
  kAttnV,
  kAttnOutput,
  kFfnGate,
  kFfnUp,
  kFfnDown,
  kOutput,
  // the rest of the forward pass
  kAttention,    // softmax(q K^T) V over the cache
  kNorm,         // RMSNorms (input, QK, post, output)
  kRope,         // rotary position embedding of q and k
  kActivation,   // SwiGLU / GeGLU
  kQuantizeAct,  // activations -> Q8_0 / Q8_K rows before a matmul
  kKvStore,      // k, v -> F16 cache rows
  kAdd,          // residual adds, qwen2 biases
  kEmbedding,    // token embedding lookup (dequantize + scale)
  kSampling,     // sampler (timed by the caller)
  kOther,        // wall time no hook covered (the caller fills it in)
  kCount
};
constexpr int kProfOpCount = static_cast<int>(ProfOp::kCount);

// "attn_q", "matmul" groups are named by role; the rest: "attention", "norm", "rope", ...
const char* prof_op_name(ProfOp op);
bool prof_op_is_matmul(ProfOp op);

class Profiler {
 public:
  using clock = std::chrono::steady_clock;

  void add(ProfOp op, double seconds) { s_[static_cast<size_t>(op)] += seconds; }
  double seconds(ProfOp op) const { return s_[static_cast<size_t>(op)]; }
  double total() const;  // sum over all kinds
  void clear() { s_.fill(0.0); }

 private:
  std::array<double, kProfOpCount> s_{};
};

// Adds the wall time of its lifetime to op. Nothing when p is null.
class ProfScope {
 public:
  ProfScope(Profiler* p, ProfOp op) : p_(p), op_(op) {
    if (p_) t0_ = Profiler::clock::now();
  }
  ~ProfScope() {
    if (p_) p_->add(op_, std::chrono::duration<double>(Profiler::clock::now() - t0_).count());
  }
  ProfScope(const ProfScope&) = delete;
  ProfScope& operator=(const ProfScope&) = delete;

 private:
  Profiler* p_;
  ProfOp op_;
  Profiler::clock::time_point t0_;
};

// A parallel section: part(op, f) runs f (on any thread) and, when profiling, adds its thread
// time to op; the destructor splits the section's wall time by those shares.
class ProfSection {
 public:
  explicit ProfSection(Profiler* p) : p_(p) {
    if (p_) {
      for (auto& n : ns_) n.store(0, std::memory_order_relaxed);
      t0_ = Profiler::clock::now();
    }
  }
  ~ProfSection();
  ProfSection(const ProfSection&) = delete;
  ProfSection& operator=(const ProfSection&) = delete;

  template <class F>
  void part(ProfOp op, F&& f) {
    if (!p_) {
      f();
      return;
    }
    const auto t = Profiler::clock::now();
    f();
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Profiler::clock::now() - t).count();
    ns_[static_cast<size_t>(op)].fetch_add(static_cast<int64_t>(ns), std::memory_order_relaxed);
  }

 private:
  Profiler* p_;
  Profiler::clock::time_point t0_;
  std::array<std::atomic<int64_t>, kProfOpCount> ns_;
};

}  // namespace hpl
