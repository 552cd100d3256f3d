// Wall time per op kind of the forward pass, for `hpl profile`. The forward pass takes an
// optional Profiler* (Forward::set_profiler); when it is null every hook is one branch.
//
// Serial sections (run on the calling thread, or one pool dispatch of a single op kind) are
// timed with ProfScope. Parallel sections that mix op kinds (a pool run over the rows of the
// fused q/k/v matmul, a per-token loop doing bias + QK-norm + rope + KV store) are timed with
// ProfSection: each part is timed on the thread that runs it, and the section's wall time is
// split among the op kinds in proportion to their summed thread time. So the totals add up to
// wall time, and nothing runs differently when profiling.
//
// Time is also kept per layer (ProfLayer marks the layer the forward pass is in), and, when
// tracing is on, every scope and part is recorded as a slice on the thread that ran it (a
// mutex per slice: tracing perturbs timings slightly; the op totals are kept the same way).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

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

// What a traced slice did, beyond its op kind: a matmul's weight type and shape and the
// weight rows this thread computed.
struct ProfShape {
  const char* type = nullptr;  // "q4_K"; null for non-matmul slices
  int64_t rows = 0, cols = 0;  // W (rows, cols)
  int64_t ntok = 0;            // tokens in the micro-batch
  int64_t r0 = 0, r1 = 0;      // rows [r0, r1) computed by this slice
};

struct ProfSlice {
  ProfOp op;
  int layer;      // -1 outside the layers (embedding, output); the layer slice itself: kOther
  bool is_layer;  // a ProfLayer slice enclosing the layer's op slices
  int thread;     // prof_thread_id() of the thread that ran it
  int64_t t0_ns, t1_ns;  // steady_clock
  ProfShape shape;
};

// Small dense id of the calling thread (0, 1, ... in order of first use in this process).
int prof_thread_id();

using ProfLayerSeconds = std::array<double, kProfOpCount>;

class Profiler {
 public:
  using clock = std::chrono::steady_clock;

  void add(ProfOp op, double seconds);
  double seconds(ProfOp op) const { return s_[static_cast<size_t>(op)]; }
  double total() const;  // sum over all kinds
  void clear();

  // The layer later add()s are charged to (-1: none). Set by ProfLayer.
  void set_layer(int il) { layer_ = il; }
  int layer() const { return layer_; }
  // Seconds per op kind of layer il (all zeros for a layer never run).
  const std::vector<ProfLayerSeconds>& layers() const { return by_layer_; }

  void set_tracing(bool on) { tracing_ = on; }
  bool tracing() const { return tracing_; }
  void record(const ProfSlice& s);  // thread-safe
  const std::vector<ProfSlice>& slices() const { return slices_; }

 private:
  std::array<double, kProfOpCount> s_{};
  int layer_ = -1;
  std::vector<ProfLayerSeconds> by_layer_;
  bool tracing_ = false;
  std::mutex mu_;
  std::vector<ProfSlice> slices_;
};

int64_t prof_now_ns();

// Marks the forward pass as inside layer il for its lifetime (a slice when tracing).
class ProfLayer {
 public:
  ProfLayer(Profiler* p, int il) : p_(p), il_(il) {
    if (p_) {
      p_->set_layer(il);
      if (p_->tracing()) t0_ = prof_now_ns();
    }
  }
  ~ProfLayer();
  ProfLayer(const ProfLayer&) = delete;
  ProfLayer& operator=(const ProfLayer&) = delete;

 private:
  Profiler* p_;
  int il_;
  int64_t t0_ = 0;
};

// Adds the wall time of its lifetime to op. Nothing when p is null.
class ProfScope {
 public:
  ProfScope(Profiler* p, ProfOp op) : p_(p), op_(op) {
    if (p_) t0_ = Profiler::clock::now();
  }
  ~ProfScope();
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
  void part(ProfOp op, F&& f, const ProfShape& shape = {}) {
    if (!p_) {
      f();
      return;
    }
    const int64_t t0 = prof_now_ns();
    f();
    const int64_t t1 = prof_now_ns();
    ns_[static_cast<size_t>(op)].fetch_add(t1 - t0, std::memory_order_relaxed);
    if (p_->tracing()) p_->record({op, p_->layer(), false, prof_thread_id(), t0, t1, shape});
  }

 private:
  Profiler* p_;
  Profiler::clock::time_point t0_;
  std::array<std::atomic<int64_t>, kProfOpCount> ns_;
};

}  // namespace hpl
