// Exact GELU, AVX2 body: erf by the polynomial of gelu_erf_common.h with simd::exp.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include "kernel/gelu_erf_common.h"
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {
namespace {

// 0.5 x (1 + erf(x / sqrt(2))) for 8 lanes.
inline __m256 gelu_erf8(__m256 x) {
  using namespace gelu_erf_poly;
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(kInvSqrt2));
  const __m256 a = _mm256_andnot_ps(sign, u);  // |u|
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(kP), a, one));
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kP5), t, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kP1));
  p = _mm256_mul_ps(p, t);
  const __m256 e = simd::exp(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
  const __m256 erf_a = _mm256_fnmadd_ps(p, e, one);                  // erf(|u|)
  const __m256 erf_u = _mm256_or_ps(erf_a, _mm256_and_ps(sign, u));  // sign of u
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, erf_u));
}

}  // namespace

void gelu_erf(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu_erf8(_mm256_loadu_ps(x + i)));
  if (i < n) simd::store_partial(y + i, n - i, gelu_erf8(simd::load_partial(x + i, n - i, 0.0f)));
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
