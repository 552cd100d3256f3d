// Softmax over a range of a row, NEON body: max pass, exp + sum pass (exp written in place),
// normalize pass.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include <cmath>
#include <cstring>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {
namespace {

// x[0, n) * scale for n < 4, -inf in the other lanes (whatever the sign of scale).
inline float32x4_t scaled_tail(const float* x, int64_t n, float scale) {
  float b[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  for (int64_t i = 0; i < n; ++i) b[i] = x[i] * scale;
  return vld1q_f32(b);
}

}  // namespace

// x (n,) in place: softmax(x * scale) on [begin, end), 0 elsewhere.
void softmax(float* x, int64_t n, float scale, int64_t begin, int64_t end) {
  check::softmax(n, begin, end);
  std::memset(x, 0, sizeof(float) * begin);
  std::memset(x + end, 0, sizeof(float) * (n - end));
  float* r = x + begin;
  const int64_t len = end - begin;
  float32x4_t mv = vdupq_n_f32(-INFINITY);
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) mv = vmaxq_f32(mv, vmulq_n_f32(vld1q_f32(r + i), scale));
  if (i < len) mv = vmaxq_f32(mv, scaled_tail(r + i, len - i, scale));
  const float m = vmaxvq_f32(mv);
  if (m == -INFINITY) {  // every entry masked
    std::memset(r, 0, sizeof(float) * len);
    return;
  }
  const float32x4_t neg_m = vdupq_n_f32(-m), sv = vdupq_n_f32(scale);
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
  for (i = 0; i + 8 <= len; i += 8) {
    float32x4_t e0 = simd::exp(vfmaq_f32(neg_m, vld1q_f32(r + i), sv));
    float32x4_t e1 = simd::exp(vfmaq_f32(neg_m, vld1q_f32(r + i + 4), sv));
    vst1q_f32(r + i, e0);
    vst1q_f32(r + i + 4, e1);
    s0 = vaddq_f32(s0, e0);
    s1 = vaddq_f32(s1, e1);
  }
  for (; i + 4 <= len; i += 4) {
    float32x4_t e = simd::exp(vfmaq_f32(neg_m, vld1q_f32(r + i), sv));
    vst1q_f32(r + i, e);
    s0 = vaddq_f32(s0, e);
  }
  if (i < len) {
    float32x4_t e = simd::exp(vaddq_f32(scaled_tail(r + i, len - i, scale), neg_m));  // pads: 0
    simd::store_partial(r + i, len - i, e);
    s1 = vaddq_f32(s1, e);
  }
  const float inv = 1.0f / vaddvq_f32(vaddq_f32(s0, s1));
  for (i = 0; i + 4 <= len; i += 4) vst1q_f32(r + i, vmulq_n_f32(vld1q_f32(r + i), inv));
  for (; i < len; ++i) r[i] *= inv;
}

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
