// LayerNorm, AVX2 body: two passes (mean, then the variance of x - mean, which does not lose
// digits the way E[x^2] - mean^2 does), 8-float accumulators.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {

// x (n,) -> y (n,) = (x - mean) / sqrt(var + eps) * w + b
void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  check::layernorm(n);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
  if (i < n) s1 = _mm256_add_ps(s1, simd::load_partial(x + i, n - i, 0.0f));
  const float mean = simd::hsum(_mm256_add_ps(s0, s1)) / static_cast<float>(n);
  const __m256 m = _mm256_set1_ps(mean);
  __m256 v0 = _mm256_setzero_ps(), v1 = v0;
  for (i = 0; i + 16 <= n; i += 16) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
    __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
    v0 = _mm256_fmadd_ps(d0, d0, v0);
    v1 = _mm256_fmadd_ps(d1, d1, v1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
    v0 = _mm256_fmadd_ps(d, d, v0);
  }
  if (i < n) {
    __m256 d = _mm256_sub_ps(simd::load_partial(x + i, n - i, mean), m);  // fill: d = 0
    v1 = _mm256_fmadd_ps(d, d, v1);
  }
  const double var = simd::hsum(_mm256_add_ps(v0, v1)) / static_cast<double>(n);
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / std::sqrt(var + eps)));
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), inv);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
  }
  if (i < n) {
    __m256 d = _mm256_mul_ps(_mm256_sub_ps(simd::load_partial(x + i, n - i, 0.0f), m), inv);
    __m256 r = _mm256_fmadd_ps(d, simd::load_partial(w + i, n - i, 0.0f),
                               simd::load_partial(b + i, n - i, 0.0f));
    simd::store_partial(y + i, n - i, r);
  }
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
