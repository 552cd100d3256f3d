// Attention over the K/V cache (F32, F16, Q8_0 or Q4_0 rows), scalar specification: two passes
// per (token, head) with the scores in scratch, dot products / exp / weighted sums in double.
#include <cmath>

#include "kernel/attention_common.h"
#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel {

bool attn_kv_supported(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::Q8_0 || t == DType::Q4_0;
}

namespace ref {
namespace {

// For token t (position pos = pos0 + t) and head h in [h0, h1), with kv head g = h / group:
//   s_j = scale * q[t,h] . k[j,g]   for j in [first_key(pos), pos]
//   out[t,h] = sum_j softmax(s)_j * v[j,g]
template <DType T>
void attention_rows(const AttnParams& p, const float* q, const uint8_t* k, const uint8_t* v,
                    float* out, int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1,
                    float* scratch) {
  using attn_detail::kv_bytes;
  using attn_detail::kv_elem;
  const int64_t hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  const int64_t row = kv_bytes<T>(p.kv_stride);
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = pos0 + t, lo = check::attn_first_key(pos, p.window);
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + t * p.q_stride + h * hd;
      const int64_t kv_off = kv_bytes<T>((h / group) * hd);
      double m = -INFINITY;
      for (int64_t j = lo; j <= pos; ++j) {
        const uint8_t* kj = k + j * row + kv_off;
        double dot = 0.0;
        for (int64_t d = 0; d < hd; ++d) dot += static_cast<double>(qh[d]) * kv_elem<T>(kj, d);
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
          acc += static_cast<double>(scratch[j]) * kv_elem<T>(v + j * row + kv_off, d);
        }
        oh[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace

void attention(const AttnParams& p, const float* q, const void* k, const void* v, float* out,
               int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1, float* scratch) {
  check::attention(p, n_tok, pos0, h0, h1);
  attn_detail::with_kv_type(p.kv_type, [&](auto kt) {
    attention_rows<decltype(kt)::value>(p, q, static_cast<const uint8_t*>(k),
                                        static_cast<const uint8_t*>(v), out, n_tok, pos0, h0, h1,
                                        scratch);
  });
}

}  // namespace ref
}  // namespace hpl::kernel
