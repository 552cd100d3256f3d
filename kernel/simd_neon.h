// NEON helpers shared by the neon op bodies: partial loads/stores for row tails, f16 loads and a
// polynomial exp (same algorithm and constants as simd_avx2.h). Only included by *_neon.cc
// under HPL_HAVE_NEON.
#pragma once

#include "kernel/isa.h"

#if HPL_HAVE_NEON
#include <arm_neon.h>

#include <cstdint>

namespace hpl::kernel::neon::simd {

// The first n (< 4) floats of p; other lanes are `fill`.
inline float32x4_t load_partial(const float* p, int64_t n, float fill) {
  float b[4] = {fill, fill, fill, fill};
  for (int64_t i = 0; i < n; ++i) b[i] = p[i];
  return vld1q_f32(b);
}
inline void store_partial(float* p, int64_t n, float32x4_t v) {
  float b[4];
  vst1q_f32(b, v);
  for (int64_t i = 0; i < n; ++i) p[i] = b[i];
}

// 4 / 8 f16 -> f32 (exact, sNaN quieted).
inline float32x4_t load_f16x4(const uint16_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

// exp(x) to ~2 ulp: x = n ln2 + r with |r| <= ln2/2, e^r by the degree-7 Taylor polynomial, 2^n
// in the exponent bits. x < -87.33 gives 0, x > 88.37 is clamped (~2.4e38), NaN stays NaN.
inline float32x4_t exp(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(-87.33654f), hi = vdupq_n_f32(88.37626f);
  float32x4_t xc = vminq_f32(hi, vmaxq_f32(lo, x));  // FMAX/FMIN propagate NaN
  float32x4_t n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.0f / 5040);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0f), y);
}

}  // namespace hpl::kernel::neon::simd

#endif  // HPL_HAVE_NEON
