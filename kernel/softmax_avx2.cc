// Softmax over a range of a row, AVX2 body: max pass, exp + sum pass (exp written in place),
// normalize pass.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include <cmath>
#include <cstring>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {
namespace {

// x[0, n) * scale for n < 8, -inf in the other lanes (whatever the sign of scale).
inline __m256 scaled_tail(const float* x, int64_t n, __m256 scale) {
  __m256i m = simd::tail_mask(n);
  __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x, m), scale);
  return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v, _mm256_castsi256_ps(m));
}

}  // namespace

// x (n,) in place: softmax(x * scale) on [begin, end), 0 elsewhere.
void softmax(float* x, int64_t n, float scale, int64_t begin, int64_t end) {
  check::softmax(n, begin, end);
  std::memset(x, 0, sizeof(float) * begin);
  std::memset(x + end, 0, sizeof(float) * (n - end));
  float* r = x + begin;
  const int64_t len = end - begin;
  const __m256 sv = _mm256_set1_ps(scale);
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) mv = _mm256_max_ps(mv, _mm256_mul_ps(_mm256_loadu_ps(r + i), sv));
  if (i < len) mv = _mm256_max_ps(mv, scaled_tail(r + i, len - i, sv));
  const float m = simd::hmax(mv);
  if (m == -INFINITY) {  // every entry masked
    std::memset(r, 0, sizeof(float) * len);
    return;
  }
  const __m256 neg_m = _mm256_set1_ps(-m);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  for (i = 0; i + 16 <= len; i += 16) {
    __m256 e0 = simd::exp(_mm256_fmadd_ps(_mm256_loadu_ps(r + i), sv, neg_m));
    __m256 e1 = simd::exp(_mm256_fmadd_ps(_mm256_loadu_ps(r + i + 8), sv, neg_m));
    _mm256_storeu_ps(r + i, e0);
    _mm256_storeu_ps(r + i + 8, e1);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
  }
  for (; i + 8 <= len; i += 8) {
    __m256 e = simd::exp(_mm256_fmadd_ps(_mm256_loadu_ps(r + i), sv, neg_m));
    _mm256_storeu_ps(r + i, e);
    s0 = _mm256_add_ps(s0, e);
  }
  if (i < len) {
    __m256 e = simd::exp(_mm256_add_ps(scaled_tail(r + i, len - i, sv), neg_m));  // pads: 0
    simd::store_partial(r + i, len - i, e);
    s1 = _mm256_add_ps(s1, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / simd::hsum(_mm256_add_ps(s0, s1)));
  for (i = 0; i + 8 <= len; i += 8)
    _mm256_storeu_ps(r + i, _mm256_mul_ps(_mm256_loadu_ps(r + i), inv));
  if (i < len)
    simd::store_partial(r + i, len - i,
                        _mm256_mul_ps(simd::load_partial(r + i, len - i, 0.0f), inv));
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
