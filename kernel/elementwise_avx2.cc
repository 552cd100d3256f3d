// Elementwise ops, AVX2 bodies: 8 lanes per step, the row tail through masked loads/stores
// (so the tail is computed exactly like the body). y may alias an input.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {
namespace {

// x * sigmoid(x) = x / (1 + e^-x)
inline __m256 silu8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 e = simd::exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(one, e));
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u) = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3);
// the sigmoid form avoids tanh's cancellation near 0.
inline __m256 gelu8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 inner = _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x2, one);
  __m256 m2u = _mm256_mul_ps(_mm256_mul_ps(x, inner), _mm256_set1_ps(-2.0f * 0.7978845608028654f));
  return _mm256_div_ps(x, _mm256_add_ps(one, simd::exp(m2u)));
}

// Applies f (one or two input vectors) over n elements.
template <class F>
inline void map1(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) simd::store_partial(y + i, n - i, f(simd::load_partial(x + i, n - i, 0.0f)));
}
template <class F>
inline void map2(const float* a, const float* b, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < n) {
    __m256 av = simd::load_partial(a + i, n - i, 0.0f), bv = simd::load_partial(b + i, n - i, 0.0f);
    simd::store_partial(y + i, n - i, f(av, bv));
  }
}

}  // namespace

void silu(const float* x, float* y, int64_t n) {
  map1(x, y, n, silu8);
}

void gelu_tanh(const float* x, float* y, int64_t n) {
  map1(x, y, n, gelu8);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  map2(gate, up, y, n, [](__m256 g, __m256 u) { return _mm256_mul_ps(silu8(g), u); });
}

void geglu(const float* gate, const float* up, float* y, int64_t n) {
  map2(gate, up, y, n, [](__m256 g, __m256 u) { return _mm256_mul_ps(gelu8(g), u); });
}

void add(const float* a, const float* b, float* y, int64_t n) {
  map2(a, b, y, n, [](__m256 u, __m256 v) { return _mm256_add_ps(u, v); });
}

void mul(const float* a, const float* b, float* y, int64_t n) {
  map2(a, b, y, n, [](__m256 u, __m256 v) { return _mm256_mul_ps(u, v); });
}

void scale(const float* x, float s, float* y, int64_t n) {
  const __m256 sv = _mm256_set1_ps(s);
  map1(x, y, n, [sv](__m256 v) { return _mm256_mul_ps(v, sv); });
}

// F16C conversions round to nearest even, as hpl::fp32_to_fp16 does; tails use the scalar one.
void fp32_to_fp16_row(const float* x, f16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void fp16_to_fp32_row(const f16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, simd::load_f16(x + i));
  for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
