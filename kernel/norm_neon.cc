// RMSNorm, NEON body: 4 x 4 float accumulators for the sum of squares.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {

// x (n,) -> y (n,) = x / sqrt(mean(x^2) + eps) * (w + w_offset)
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps, float w_offset) {
  check::rmsnorm(n);
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
    float32x4_t x2 = vld1q_f32(x + i + 8), x3 = vld1q_f32(x + i + 12);
    a0 = vfmaq_f32(a0, x0, x0);
    a1 = vfmaq_f32(a1, x1, x1);
    a2 = vfmaq_f32(a2, x2, x2);
    a3 = vfmaq_f32(a3, x3, x3);
  }
  for (; i + 4 <= n; i += 4) {
    float32x4_t x0 = vld1q_f32(x + i);
    a0 = vfmaq_f32(a0, x0, x0);
  }
  if (i < n) {
    float32x4_t x0 = simd::load_partial(x + i, n - i, 0.0f);
    a1 = vfmaq_f32(a1, x0, x0);
  }
  double ss = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  const float inv =
      static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps)));
  const float32x4_t off = vdupq_n_f32(w_offset);
  for (i = 0; i + 4 <= n; i += 4) {
    float32x4_t wi = vaddq_f32(vld1q_f32(w + i), off);
    vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), inv), wi));
  }
  if (i < n) {
    float32x4_t wi = vaddq_f32(simd::load_partial(w + i, n - i, 0.0f), off);
    float32x4_t xi = simd::load_partial(x + i, n - i, 0.0f);
    simd::store_partial(y + i, n - i, vmulq_f32(vmulq_n_f32(xi, inv), wi));
  }
}

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
