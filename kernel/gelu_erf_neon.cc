// Exact GELU, NEON body: erf by the polynomial of gelu_erf_common.h with simd::exp.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include "kernel/gelu_erf_common.h"
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {
namespace {

// 0.5 x (1 + erf(x / sqrt(2))) for 4 lanes.
inline float32x4_t gelu_erf4(float32x4_t x) {
  using namespace gelu_erf_poly;
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t u = vmulq_n_f32(x, kInvSqrt2);
  const float32x4_t a = vabsq_f32(u);
  const float32x4_t t = vdivq_f32(one, vfmaq_n_f32(one, a, kP));
  float32x4_t p = vfmaq_n_f32(vdupq_n_f32(kP4), t, kP5);
  p = vfmaq_f32(vdupq_n_f32(kP3), p, t);
  p = vfmaq_f32(vdupq_n_f32(kP2), p, t);
  p = vfmaq_f32(vdupq_n_f32(kP1), p, t);
  p = vmulq_f32(p, t);
  const float32x4_t e = simd::exp(vnegq_f32(vmulq_f32(a, a)));
  const float32x4_t erf_a = vfmsq_f32(one, p, e);  // erf(|u|)
  // sign of u onto erf(|u|)
  const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(u), vdupq_n_u32(0x80000000u));
  const float32x4_t erf_u = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(erf_a), sign));
  return vmulq_f32(vmulq_n_f32(x, 0.5f), vaddq_f32(one, erf_u));
}

}  // namespace

void gelu_erf(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, gelu_erf4(vld1q_f32(x + i)));
  if (i < n) simd::store_partial(y + i, n - i, gelu_erf4(simd::load_partial(x + i, n - i, 0.0f)));
}

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
