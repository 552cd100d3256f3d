// Attention over the F16 K/V cache, scalar specification: two passes per (token, head) with
// the scores in scratch, dot products / exp / weighted sums in double.
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel::ref {

// For token t (position pos = pos0 + t) and head h in [h0, h1), with kv head g = h / group:
//   s_j = scale * q[t,h] . k[j,g]   for j in [first_key(pos), pos]
//   out[t,h] = sum_j softmax(s)_j * v[j,g]
void attention(const AttnParams& p, const float* q, const f16_t* k, const f16_t* v, float* out,
               int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1, float* scratch) {
  check::attention(p, n_tok, pos0, h0, h1);
  const int64_t hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = pos0 + t, lo = check::attn_first_key(pos, p.window);
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + t * p.q_stride + h * hd;
      const int64_t kv_off = (h / group) * hd;
      double m = -INFINITY;
      for (int64_t j = lo; j <= pos; ++j) {
        const f16_t* kj = k + j * p.kv_stride + kv_off;
        double dot = 0.0;
        for (int64_t d = 0; d < hd; ++d) dot += static_cast<double>(qh[d]) * fp16_to_fp32(kj[d]);
        scratch[j] = static_cast<float>(dot * p.scale);
        if (scratch[j] > m) m = scratch[j];
      }
      double sum = 0.0;
      for (int64_t j = lo; j <= pos; ++j) {
        double e = std::exp(scratch[j] - m);
        scratch[j] = static_cast<float>(e);
        sum += e;
      }
      float* oh = out + t * p.out_stride + h * hd;
      for (int64_t d = 0; d < hd; ++d) {
        double acc = 0.0;
        for (int64_t j = lo; j <= pos; ++j) {
          acc += static_cast<double>(scratch[j]) * fp16_to_fp32(v[j * p.kv_stride + kv_off + d]);
        }
        oh[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace hpl::kernel::ref
