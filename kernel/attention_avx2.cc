// Attention over the F16 K/V cache, AVX2 body. Per (token, head), three passes over the key
// range [lo, pos]: scores q.k_j (4 keys at a time, so every q load feeds 4 FMAs) into
// scratch, exp(s - max) in place, then out = sum_j p_j v_j with up to 64 output dims held in
// 8 accumulators while walking the values.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {
namespace {

// q (hd,) . k (hd,) over dims [d0, hd) in scalar, for head_dim % 8 != 0.
inline float dot_tail(const float* q, const f16_t* k, int64_t d0, int64_t hd) {
  float acc = 0.0f;
  for (int64_t d = d0; d < hd; ++d) acc += q[d] * fp16_to_fp32(k[d]);
  return acc;
}

// s[j] = scale * q . k_j for j in [lo, hi); k_j = k + j * stride.
void qk_scores(const float* q, const f16_t* k, int64_t stride, int64_t lo, int64_t hi, int64_t hd,
               float scale, float* s) {
  const int64_t hd8 = hd & ~int64_t{7};
  const __m128 sv = _mm_set1_ps(scale);
  int64_t j = lo;
  for (; j + 4 <= hi; j += 4) {
    const f16_t* k0 = k + j * stride;
    const f16_t* k1 = k0 + stride;
    const f16_t* k2 = k1 + stride;
    const f16_t* k3 = k2 + stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd8; d += 8) {
      __m256 qv = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qv, simd::load_f16(k0 + d), a0);
      a1 = _mm256_fmadd_ps(qv, simd::load_f16(k1 + d), a1);
      a2 = _mm256_fmadd_ps(qv, simd::load_f16(k2 + d), a2);
      a3 = _mm256_fmadd_ps(qv, simd::load_f16(k3 + d), a3);
    }
    // (a0, a1, a2, a3) -> their 4 horizontal sums in one vector
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    if (hd8 < hd) {
      r = _mm_add_ps(r, _mm_setr_ps(dot_tail(q, k0, hd8, hd), dot_tail(q, k1, hd8, hd),
                                    dot_tail(q, k2, hd8, hd), dot_tail(q, k3, hd8, hd)));
    }
    _mm_storeu_ps(s + j, _mm_mul_ps(r, sv));
  }
  for (; j < hi; ++j) {
    const f16_t* kj = k + j * stride;
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd8; d += 8)
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), simd::load_f16(kj + d), a);
    s[j] = (simd::hsum(a) + dot_tail(q, kj, hd8, hd)) * scale;
  }
}

// s[lo, hi) <- exp(s - max s); returns the sum.
float exp_in_place(float* s, int64_t lo, int64_t hi) {
  float* r = s + lo;
  const int64_t len = hi - lo;
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(r + i));
  if (i < len) mv = _mm256_max_ps(mv, simd::load_partial(r + i, len - i, -INFINITY));
  const __m256 m = _mm256_set1_ps(simd::hmax(mv));
  __m256 sum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= len; i += 8) {
    __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(r + i), m));
    _mm256_storeu_ps(r + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < len) {
    __m256 e = simd::exp(_mm256_sub_ps(simd::load_partial(r + i, len - i, -INFINITY), m));
    simd::store_partial(r + i, len - i, e);
    sum = _mm256_add_ps(sum, e);
  }
  return simd::hsum(sum);
}

// o[0, 8 NV) = inv * sum_j p[j] v_j[0, 8 NV) for j in [lo, hi); v_j = v + j * stride.
template <int NV>
void pv_block(const float* p, const f16_t* v, int64_t stride, int64_t lo, int64_t hi, float inv,
              float* o) {
  __m256 acc[NV];
  for (int c = 0; c < NV; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t j = lo; j < hi; ++j) {
    const __m256 pj = _mm256_set1_ps(p[j]);
    const f16_t* vj = v + j * stride;
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc[c] = _mm256_fmadd_ps(pj, simd::load_f16(vj + 8 * c), acc[c]);
  }
  const __m256 iv = _mm256_set1_ps(inv);
  for (int c = 0; c < NV; ++c) _mm256_storeu_ps(o + 8 * c, _mm256_mul_ps(acc[c], iv));
}

void pv(const float* p, const f16_t* v, int64_t stride, int64_t lo, int64_t hi, int64_t hd,
        float inv, float* o) {
  int64_t d = 0;
  for (; d + 64 <= hd; d += 64) pv_block<8>(p, v + d, stride, lo, hi, inv, o + d);
  if (d + 32 <= hd) pv_block<4>(p, v + d, stride, lo, hi, inv, o + d), d += 32;
  if (d + 16 <= hd) pv_block<2>(p, v + d, stride, lo, hi, inv, o + d), d += 16;
  if (d + 8 <= hd) pv_block<1>(p, v + d, stride, lo, hi, inv, o + d), d += 8;
  for (; d < hd; ++d) {
    float acc = 0.0f;
    for (int64_t j = lo; j < hi; ++j) acc += p[j] * fp16_to_fp32(v[j * stride + d]);
    o[d] = acc * inv;
  }
}

}  // namespace

void attention(const AttnParams& p, const float* q, const f16_t* k, const f16_t* v, float* out,
               int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1, float* scratch) {
  check::attention(p, n_tok, pos0, h0, h1);
  const int64_t hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = pos0 + t, lo = check::attn_first_key(pos, p.window);
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kv_off = (h / group) * hd;
      qk_scores(q + t * p.q_stride + h * hd, k + kv_off, p.kv_stride, lo, pos + 1, hd, p.scale,
                scratch);
      const float sum = exp_in_place(scratch, lo, pos + 1);
      pv(scratch, v + kv_off, p.kv_stride, lo, pos + 1, hd, 1.0f / sum,
         out + t * p.out_stride + h * hd);
    }
  }
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
