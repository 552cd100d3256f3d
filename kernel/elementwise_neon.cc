// Elementwise ops, NEON bodies: 4 lanes per step, the row tail through a padded register (so
// the tail is computed exactly like the body). y may alias an input.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {
namespace {

// x * sigmoid(x) = x / (1 + e^-x)
inline float32x4_t silu4(float32x4_t x) {
  return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), simd::exp(vnegq_f32(x))));
}

// 0.5 x (1 + tanh(u)) == x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
inline float32x4_t gelu4(float32x4_t x) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  float32x4_t inner = vfmaq_f32(one, vdupq_n_f32(0.044715f), vmulq_f32(x, x));
  float32x4_t m2u = vmulq_n_f32(vmulq_f32(x, inner), -2.0f * 0.7978845608028654f);
  return vdivq_f32(x, vaddq_f32(one, simd::exp(m2u)));
}

template <class F>
inline void map1(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, f(vld1q_f32(x + i)));
  if (i < n) simd::store_partial(y + i, n - i, f(simd::load_partial(x + i, n - i, 0.0f)));
}
template <class F>
inline void map2(const float* a, const float* b, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, f(vld1q_f32(a + i), vld1q_f32(b + i)));
  if (i < n) {
    float32x4_t av = simd::load_partial(a + i, n - i, 0.0f);
    float32x4_t bv = simd::load_partial(b + i, n - i, 0.0f);
    simd::store_partial(y + i, n - i, f(av, bv));
  }
}

}  // namespace

void silu(const float* x, float* y, int64_t n) {
  map1(x, y, n, silu4);
}

void gelu_tanh(const float* x, float* y, int64_t n) {
  map1(x, y, n, gelu4);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  map2(gate, up, y, n, [](float32x4_t g, float32x4_t u) { return vmulq_f32(silu4(g), u); });
}

void geglu(const float* gate, const float* up, float* y, int64_t n) {
  map2(gate, up, y, n, [](float32x4_t g, float32x4_t u) { return vmulq_f32(gelu4(g), u); });
}

void add(const float* a, const float* b, float* y, int64_t n) {
  map2(a, b, y, n, [](float32x4_t u, float32x4_t v) { return vaddq_f32(u, v); });
}

void mul(const float* a, const float* b, float* y, int64_t n) {
  map2(a, b, y, n, [](float32x4_t u, float32x4_t v) { return vmulq_f32(u, v); });
}

void scale(const float* x, float s, float* y, int64_t n) {
  map1(x, y, n, [s](float32x4_t v) { return vmulq_n_f32(v, s); });
}

// fcvtn rounds to nearest even (FPCR default), as hpl::fp32_to_fp16 does; tails use the scalar.
void fp32_to_fp16_row(const float* x, f16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void fp16_to_fp32_row(const f16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, simd::load_f16x4(x + i));
  for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
