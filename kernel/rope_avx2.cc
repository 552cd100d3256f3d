// Rotary position embedding, AVX2 body: cos/sin tables per block of pairs (shared by all
// heads), then y0 = x0 c - x1 s, y1 = x0 s + x1 c on 8 lanes.
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/rope_common.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {

// x (n_heads, head_dim) in place, first rot_dim dims of each head.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeLayout layout) {
  check::rope(n_heads, head_dim, rot_dim);
  using rope_detail::kPairsPerBlock;
  const int64_t half = rot_dim / 2;
  float cbuf[kPairsPerBlock], sbuf[kPairsPerBlock];
  const rope_detail::RopeCache* tab = rope_detail::rope_cached(rot_dim, pos, freq_base, freq_scale);
  for (int64_t i0 = 0; i0 < half; i0 += kPairsPerBlock) {
    const int64_t cnt = half - i0 < kPairsPerBlock ? half - i0 : kPairsPerBlock;
    const float* c = cbuf;
    const float* s = sbuf;
    if (tab) {
      c = tab->c + i0;
      s = tab->s + i0;
    } else {
      rope_detail::rope_table(i0, cnt, rot_dim, pos, freq_base, freq_scale, cbuf, sbuf);
    }
    if (layout == RopeLayout::kNeox) {  // pairs (i, i + half)
      for (int64_t h = 0; h < n_heads; ++h) {
        float* x0 = x + h * head_dim + i0;
        float* x1 = x0 + half;
        int64_t k = 0;
        for (; k + 8 <= cnt; k += 8) {
          __m256 a = _mm256_loadu_ps(x0 + k), b = _mm256_loadu_ps(x1 + k);
          __m256 cv = _mm256_loadu_ps(c + k), sv = _mm256_loadu_ps(s + k);
          _mm256_storeu_ps(x0 + k, _mm256_fmsub_ps(a, cv, _mm256_mul_ps(b, sv)));
          _mm256_storeu_ps(x1 + k, _mm256_fmadd_ps(a, sv, _mm256_mul_ps(b, cv)));
        }
        for (; k < cnt; ++k) {
          float a = x0[k], b = x1[k];
          x0[k] = a * c[k] - b * s[k];
          x1[k] = a * s[k] + b * c[k];
        }
      }
    } else {  // adjacent pairs (2i, 2i+1): 4 pairs per vector
      float cd[2 * kPairsPerBlock], sa[2 * kPairsPerBlock];  // c duplicated, s as (-s, +s)
      for (int64_t k = 0; k < cnt; ++k) {
        cd[2 * k] = cd[2 * k + 1] = c[k];
        sa[2 * k] = -s[k];
        sa[2 * k + 1] = s[k];
      }
      const int64_t len = 2 * cnt;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* xp = x + h * head_dim + 2 * i0;
        int64_t k = 0;
        for (; k + 8 <= len; k += 8) {
          __m256 v = _mm256_loadu_ps(xp + k);
          __m256 sw = _mm256_permute_ps(v, 0xB1);  // (x1, x0) in each pair
          __m256 r = _mm256_fmadd_ps(sw, _mm256_loadu_ps(sa + k),
                                     _mm256_mul_ps(v, _mm256_loadu_ps(cd + k)));
          _mm256_storeu_ps(xp + k, r);
        }
        for (; k < len; k += 2) {
          float a = xp[k], b = xp[k + 1];
          xp[k] = a * cd[k] + b * sa[k];
          xp[k + 1] = b * cd[k] + a * sa[k + 1];
        }
      }
    }
  }
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
