// LayerNorm, NEON body: two passes (mean, then the variance of x - mean), 4-float accumulators.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {

// x (n,) -> y (n,) = (x - mean) / sqrt(var + eps) * w + b
void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  check::layernorm(n);
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = vaddq_f32(s0, vld1q_f32(x + i));
    s1 = vaddq_f32(s1, vld1q_f32(x + i + 4));
  }
  for (; i + 4 <= n; i += 4) s0 = vaddq_f32(s0, vld1q_f32(x + i));
  if (i < n) s1 = vaddq_f32(s1, simd::load_partial(x + i, n - i, 0.0f));
  const float mean = vaddvq_f32(vaddq_f32(s0, s1)) / static_cast<float>(n);
  const float32x4_t m = vdupq_n_f32(mean);
  float32x4_t v0 = vdupq_n_f32(0.0f), v1 = v0;
  for (i = 0; i + 8 <= n; i += 8) {
    float32x4_t d0 = vsubq_f32(vld1q_f32(x + i), m);
    float32x4_t d1 = vsubq_f32(vld1q_f32(x + i + 4), m);
    v0 = vfmaq_f32(v0, d0, d0);
    v1 = vfmaq_f32(v1, d1, d1);
  }
  for (; i + 4 <= n; i += 4) {
    float32x4_t d = vsubq_f32(vld1q_f32(x + i), m);
    v0 = vfmaq_f32(v0, d, d);
  }
  if (i < n) {
    float32x4_t d = vsubq_f32(simd::load_partial(x + i, n - i, mean), m);  // fill: d = 0
    v1 = vfmaq_f32(v1, d, d);
  }
  const double var = vaddvq_f32(vaddq_f32(v0, v1)) / static_cast<double>(n);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  for (i = 0; i + 4 <= n; i += 4) {
    float32x4_t d = vmulq_n_f32(vsubq_f32(vld1q_f32(x + i), m), inv);
    vst1q_f32(y + i, vfmaq_f32(vld1q_f32(b + i), d, vld1q_f32(w + i)));
  }
  if (i < n) {
    float32x4_t d = vmulq_n_f32(vsubq_f32(simd::load_partial(x + i, n - i, 0.0f), m), inv);
    float32x4_t r = vfmaq_f32(simd::load_partial(b + i, n - i, 0.0f), d,
                              simd::load_partial(w + i, n - i, 0.0f));
    simd::store_partial(y + i, n - i, r);
  }
}

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
