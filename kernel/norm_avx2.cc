// RMSNorm, AVX2 body: 4 x 8 float accumulators for the sum of squares.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {

// x (n,) -> y (n,) = x / sqrt(mean(x^2) + eps) * (w + w_offset)
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps, float w_offset) {
  check::rmsnorm(n);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
    a0 = _mm256_fmadd_ps(x0, x0, a0);
    a1 = _mm256_fmadd_ps(x1, x1, a1);
    a2 = _mm256_fmadd_ps(x2, x2, a2);
    a3 = _mm256_fmadd_ps(x3, x3, a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 x0 = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(x0, x0, a0);
  }
  if (i < n) {
    __m256 x0 = simd::load_partial(x + i, n - i, 0.0f);
    a1 = _mm256_fmadd_ps(x0, x0, a1);
  }
  double ss = simd::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  const __m256 inv = _mm256_set1_ps(
      static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps))));
  const __m256 off = _mm256_set1_ps(w_offset);
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 wi = _mm256_add_ps(_mm256_loadu_ps(w + i), off);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv), wi));
  }
  if (i < n) {
    __m256 wi = _mm256_add_ps(simd::load_partial(w + i, n - i, 0.0f), off);
    __m256 xi = simd::load_partial(x + i, n - i, 0.0f);
    simd::store_partial(y + i, n - i, _mm256_mul_ps(_mm256_mul_ps(xi, inv), wi));
  }
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
