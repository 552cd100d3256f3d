// Rotary position embedding, AVX2 body: cos/sin tables per block of pairs (shared by all
// heads), then y0 = x0 c - x1 s, y1 = x0 s + x1 c on 8 lanes.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/rope_common.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {
namespace {

struct RopeAvx2 {
  static constexpr int64_t kLanes = 8;
  // 8 pairs (x0[j], x1[j]).
  static void neox(float* x0, float* x1, const float* c, const float* s) {
    __m256 a = _mm256_loadu_ps(x0), b = _mm256_loadu_ps(x1);
    __m256 cv = _mm256_loadu_ps(c), sv = _mm256_loadu_ps(s);
    _mm256_storeu_ps(x0, _mm256_fmsub_ps(a, cv, _mm256_mul_ps(b, sv)));
    _mm256_storeu_ps(x1, _mm256_fmadd_ps(a, sv, _mm256_mul_ps(b, cv)));
  }
  // 4 adjacent pairs: x c + swap(x) (-s, +s).
  static void adjacent(float* xp, const float* cd, const float* sa) {
    __m256 v = _mm256_loadu_ps(xp);
    __m256 sw = _mm256_permute_ps(v, 0xB1);  // (x1, x0) in each pair
    __m256 r = _mm256_fmadd_ps(sw, _mm256_loadu_ps(sa), _mm256_mul_ps(v, _mm256_loadu_ps(cd)));
    _mm256_storeu_ps(xp, r);
  }
};

}  // namespace

// x (n_heads, head_dim) in place, first rot_dim dims of each head.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeLayout layout, const float* freq_factors) {
  check::rope(n_heads, head_dim, rot_dim);
  rope_detail::rope_blocks<RopeAvx2>(x, n_heads, head_dim, rot_dim, pos, freq_base, freq_scale,
                                     layout, freq_factors);
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
