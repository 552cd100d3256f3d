// Attention over the F16 K/V cache, NEON body. Per (token, head), three passes over the key
// range [lo, pos]: scores q.k_j (4 keys at a time, so every q load feeds 4 FMAs) into
// scratch, exp(s - max) in place, then out = sum_j p_j v_j with up to 64 output dims held in
// 16 accumulators while walking the values.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {
namespace {

// q (hd,) . k (hd,) over dims [d0, hd) in scalar, for head_dim % 4 != 0.
inline float dot_tail(const float* q, const f16_t* k, int64_t d0, int64_t hd) {
  float acc = 0.0f;
  for (int64_t d = d0; d < hd; ++d) acc += q[d] * fp16_to_fp32(k[d]);
  return acc;
}

// s[j] = scale * q . k_j for j in [lo, hi); k_j = k + j * stride.
void qk_scores(const float* q, const f16_t* k, int64_t stride, int64_t lo, int64_t hi, int64_t hd,
               float scale, float* s) {
  const int64_t hd4 = hd & ~int64_t{3};
  int64_t j = lo;
  for (; j + 4 <= hi; j += 4) {
    const f16_t* k0 = k + j * stride;
    const f16_t* k1 = k0 + stride;
    const f16_t* k2 = k1 + stride;
    const f16_t* k3 = k2 + stride;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    float32x4_t b0 = a0, b1 = a0, b2 = a0, b3 = a0;  // second set: 8 independent FMA chains
    int64_t d = 0;
    for (; d + 8 <= hd4; d += 8) {
      float32x4_t qa = vld1q_f32(q + d), qb = vld1q_f32(q + d + 4);
      a0 = vfmaq_f32(a0, qa, simd::load_f16x4(k0 + d));
      a1 = vfmaq_f32(a1, qa, simd::load_f16x4(k1 + d));
      a2 = vfmaq_f32(a2, qa, simd::load_f16x4(k2 + d));
      a3 = vfmaq_f32(a3, qa, simd::load_f16x4(k3 + d));
      b0 = vfmaq_f32(b0, qb, simd::load_f16x4(k0 + d + 4));
      b1 = vfmaq_f32(b1, qb, simd::load_f16x4(k1 + d + 4));
      b2 = vfmaq_f32(b2, qb, simd::load_f16x4(k2 + d + 4));
      b3 = vfmaq_f32(b3, qb, simd::load_f16x4(k3 + d + 4));
    }
    if (d < hd4) {
      float32x4_t qa = vld1q_f32(q + d);
      a0 = vfmaq_f32(a0, qa, simd::load_f16x4(k0 + d));
      a1 = vfmaq_f32(a1, qa, simd::load_f16x4(k1 + d));
      a2 = vfmaq_f32(a2, qa, simd::load_f16x4(k2 + d));
      a3 = vfmaq_f32(a3, qa, simd::load_f16x4(k3 + d));
    }
    a0 = vaddq_f32(a0, b0);
    a1 = vaddq_f32(a1, b1);
    a2 = vaddq_f32(a2, b2);
    a3 = vaddq_f32(a3, b3);
    // (a0, a1, a2, a3) -> their 4 horizontal sums in one vector
    float32x4_t r = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
    if (hd4 < hd) {
      float t[4] = {dot_tail(q, k0, hd4, hd), dot_tail(q, k1, hd4, hd), dot_tail(q, k2, hd4, hd),
                    dot_tail(q, k3, hd4, hd)};
      r = vaddq_f32(r, vld1q_f32(t));
    }
    vst1q_f32(s + j, vmulq_n_f32(r, scale));
  }
  for (; j < hi; ++j) {
    const f16_t* kj = k + j * stride;
    float32x4_t a = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd4; d += 4)
      a = vfmaq_f32(a, vld1q_f32(q + d), simd::load_f16x4(kj + d));
    s[j] = (vaddvq_f32(a) + dot_tail(q, kj, hd4, hd)) * scale;
  }
}

// s[lo, hi) <- exp(s - max s); returns the sum.
float exp_in_place(float* s, int64_t lo, int64_t hi) {
  float* r = s + lo;
  const int64_t len = hi - lo;
  float32x4_t mv = vdupq_n_f32(-INFINITY);
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) mv = vmaxq_f32(mv, vld1q_f32(r + i));
  if (i < len) mv = vmaxq_f32(mv, simd::load_partial(r + i, len - i, -INFINITY));
  const float32x4_t m = vdupq_n_f32(vmaxvq_f32(mv));
  float32x4_t sum = vdupq_n_f32(0.0f);
  for (i = 0; i + 4 <= len; i += 4) {
    float32x4_t e = simd::exp(vsubq_f32(vld1q_f32(r + i), m));
    vst1q_f32(r + i, e);
    sum = vaddq_f32(sum, e);
  }
  if (i < len) {
    float32x4_t e = simd::exp(vsubq_f32(simd::load_partial(r + i, len - i, -INFINITY), m));
    simd::store_partial(r + i, len - i, e);
    sum = vaddq_f32(sum, e);
  }
  return vaddvq_f32(sum);
}

// o[0, 4 NV) = inv * sum_j p[j] v_j[0, 4 NV) for j in [lo, hi); v_j = v + j * stride.
template <int NV>
void pv_block(const float* p, const f16_t* v, int64_t stride, int64_t lo, int64_t hi, float inv,
              float* o) {
  float32x4_t acc[NV];
  for (int c = 0; c < NV; ++c) acc[c] = vdupq_n_f32(0.0f);
  for (int64_t j = lo; j < hi; ++j) {
    const float pj = p[j];
    const f16_t* vj = v + j * stride;
#pragma GCC unroll 16
    for (int c = 0; c < NV; ++c) acc[c] = vfmaq_n_f32(acc[c], simd::load_f16x4(vj + 4 * c), pj);
  }
  for (int c = 0; c < NV; ++c) vst1q_f32(o + 4 * c, vmulq_n_f32(acc[c], inv));
}

void pv(const float* p, const f16_t* v, int64_t stride, int64_t lo, int64_t hi, int64_t hd,
        float inv, float* o) {
  int64_t d = 0;
  for (; d + 64 <= hd; d += 64) pv_block<16>(p, v + d, stride, lo, hi, inv, o + d);
  if (d + 32 <= hd) pv_block<8>(p, v + d, stride, lo, hi, inv, o + d), d += 32;
  if (d + 16 <= hd) pv_block<4>(p, v + d, stride, lo, hi, inv, o + d), d += 16;
  if (d + 8 <= hd) pv_block<2>(p, v + d, stride, lo, hi, inv, o + d), d += 8;
  if (d + 4 <= hd) pv_block<1>(p, v + d, stride, lo, hi, inv, o + d), d += 4;
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

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
