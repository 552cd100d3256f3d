// Weight matmuls over a batch of activation rows, shared by the decoder Forward and the bert
// encoder: activations quantized once per row into each weight's vec_dot_type, then the
// weights' rows split across the thread pool in chunks by weight bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/model_weights.h"
#include "engine/profiler.h"
#include "kernel/thread_pool.h"

namespace hpl {

// Multiply-adds below which a matmul or attention call runs on the calling thread alone: a
// pool dispatch costs microseconds (far more when the machine is oversubscribed), as much as
// this much work.
constexpr int64_t kInlineWork = int64_t{1} << 17;

struct MatJob {
  const Matrix* w;
  float* y;                    // (ntok, w->rows)
  ProfOp op = ProfOp::kOther;  // the tensor's role, for the profiler
};

// f(t) for t in [0, n), in parallel when there are enough rows of `width` floats to pay for a
// dispatch.
template <class F>
void for_rows(kernel::ThreadPool& pool, int64_t n, int64_t width, F&& f) {
  if (n < 4 || pool.size() == 1 || n * width < kInlineWork / 8) {
    for (int64_t t = 0; t < n; ++t) f(t);
    return;
  }
  pool.parallel_for(n, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) f(t);
  });
}

// Bytes of quantized-activation scratch for ntok rows of up to n floats: {Q8_0, Q8_K}.
size_t act_q8_0_bytes(int64_t ntok, int64_t n);
size_t act_q8_k_bytes(int64_t ntok, int64_t n);

class MatmulRunner {
 public:
  // Scratch for up to max_tok rows of up to max_n floats.
  MatmulRunner(kernel::ThreadPool& pool, int64_t max_tok, int64_t max_n);
  // y_j = W_j @ x for each job: x (ntok, n) f32 rows, quantized once per vec_dot_type.
  // width_hint: the row width for_rows uses to decide on parallel quantization.
  void run(const float* x, int64_t ntok, int64_t n, const MatJob* jobs, int n_jobs,
           int64_t width_hint, Profiler* prof);
  size_t scratch_bytes() const { return xq8_0_.size() + xq8_k_.size(); }

 private:
  kernel::ThreadPool& pool_;
  std::vector<uint8_t> xq8_0_, xq8_k_;  // quantized activations, (max_tok, max_n)
};

}  // namespace hpl
