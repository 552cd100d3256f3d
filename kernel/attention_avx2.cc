// Attention over the K/V cache (F32, F16, Q8_0 or Q4_0 rows), AVX2 body.
//
// Query heads that share a kv head (grouped-query attention) are processed together, up to 8
// at a time: every k_j / v_j chunk is converted to f32 once and used by all of them, instead
// of once per query head. Keys are walked in blocks of 64 with an online softmax; the scores of
// a block live in a (64 keys, 8 heads) tile so the max / exp / sum run across heads on the 8
// lanes. The output rows themselves are the accumulators (rescaled when a head's max grows).
#include "kernel/isa.h"
#if HPL_HAVE_AVX2
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernel/attention_common.h"
#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_avx2.h"

namespace hpl::kernel::avx2 {
namespace {

using attn_detail::Group;
using attn_detail::kB;
using attn_detail::kG;
using attn_detail::kv_bytes;

// Elements [d, d + 8) of a K/V row of type T as f32 (d a multiple of 8; for the 32-element
// blocks the 8 stay inside one block).
template <DType T>
inline __m256 load8(const uint8_t* row, int64_t d) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (T == DType::F16) {
    return simd::load_f16(reinterpret_cast<const f16_t*>(row) + d);
  } else if constexpr (T == DType::Q8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + d / kQK8_0;
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + d % kQK8_0));
    return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b->d)),
                         _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
  } else {
    static_assert(T == DType::Q4_0);
    // bytes [i, i + 8) of qs: low nibbles are elements i.., high nibbles elements 16 + i..
    const auto* b = reinterpret_cast<const BlockQ4_0*>(row) + d / kQK4_0;
    const int64_t e = d % kQK4_0;
    __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + e % (kQK4_0 / 2)));
    if (e >= kQK4_0 / 2) q = _mm_srli_epi16(q, 4);
    q = _mm_sub_epi8(_mm_and_si128(q, _mm_set1_epi8(0x0F)), _mm_set1_epi8(8));
    return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b->d)),
                         _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
  }
}

// The 8 horizontal sums of a[0..8) as one vector.
inline __m256 reduce8(const __m256* a) {
  __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// tile[jj * kG + g] = scale * q_g . k_jj for keys jj in [j0, j1), KJ keys per step so that
// KJ * G independent accumulators hide the FMA latency; k_jj = k + jj * stride bytes.
template <int G, int KJ, DType T>
void qk_keys(const Group& grp, const uint8_t* k, int64_t stride, int64_t j0, int64_t j1, int64_t hd,
             float scale, float* tile) {
  static_assert(G * KJ <= 8);
  const int64_t hd8 = hd & ~int64_t{7};
  for (int64_t jj = j0; jj + KJ <= j1; jj += KJ) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd8; d += 8) {
#pragma GCC unroll 8
      for (int kj = 0; kj < KJ; ++kj) {
        const __m256 kv = load8<T>(k + (jj + kj) * stride, d);
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g)
          a[kj * G + g] = _mm256_fmadd_ps(_mm256_loadu_ps(grp.q[g] + d), kv, a[kj * G + g]);
      }
    }
    if constexpr (KJ == 1) {  // lanes g < G are this key's tile row (the others sum zeros)
      _mm256_store_ps(tile + jj * kG, _mm256_mul_ps(reduce8(a), _mm256_set1_ps(scale)));
      attn_detail::add_tail_scores<G, T>(grp, k, stride, jj, hd8, hd, scale, tile);
      continue;
    }
    alignas(32) float r[8];
    _mm256_store_ps(r, reduce8(a));
    attn_detail::store_scores<G, KJ, T>(grp, k, stride, jj, hd8, hd, scale, r, tile);
  }
}

// o_g[0, hd) += sum_jj tile[jj * kG + g] * v_jj for jj in [0, nb); DC 8-dim chunks per pass so
// that G * DC accumulators stay in registers; v_jj = v + jj * stride bytes.
template <int G, int DC, DType T>
void pv_dims(const Group& grp, const uint8_t* v, int64_t stride, int64_t nb, int64_t d0, int64_t d1,
             const float* tile) {
  static_assert(G * DC <= 8);
  for (int64_t d = d0; d + 8 * DC <= d1; d += 8 * DC) {
    __m256 acc[G * DC];  // every loop over it fully unrolled, so it lives in registers
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 8
      for (int c = 0; c < DC; ++c) acc[g * DC + c] = _mm256_loadu_ps(grp.o[g] + d + 8 * c);
    for (int64_t jj = 0; jj < nb; ++jj) {
      const uint8_t* vj = v + jj * stride;
#pragma GCC unroll 8
      for (int c = 0; c < DC; ++c) {
        const __m256 vv = load8<T>(vj, d + 8 * c);
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g)
          acc[g * DC + c] =
              _mm256_fmadd_ps(_mm256_broadcast_ss(tile + jj * kG + g), vv, acc[g * DC + c]);
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 8
      for (int c = 0; c < DC; ++c) _mm256_storeu_ps(grp.o[g] + d + 8 * c, acc[g * DC + c]);
  }
}

template <int G, DType T>
void pv_tile(const Group& grp, const uint8_t* v, int64_t stride, int64_t nb, int64_t hd,
             const float* tile) {
  constexpr int DC = 8 / G;
  const int64_t wide = hd / (8 * DC) * (8 * DC), hd8 = hd & ~int64_t{7};
  pv_dims<G, DC, T>(grp, v, stride, nb, 0, wide, tile);
  if constexpr (DC > 1) pv_dims<G, 1, T>(grp, v, stride, nb, wide, hd8, tile);
  attn_detail::pv_tail<G, T>(grp, v, stride, nb, hd8, hd, tile);  // head_dim % 8 dims
}

// out_g = softmax_j(scale q_g . k_j) v_j over keys j in [lo, hi) for the heads of grp; rows
// of k and v are stride bytes apart.
template <int G, DType T>
void attend_group(const Group& grp, const uint8_t* k, const uint8_t* v, int64_t stride, int64_t lo,
                  int64_t hi, int64_t hd, float scale) {
  constexpr int KJ = G == 1 ? 4 : G == 2 ? 2 : 1;
  alignas(32) float tile[kB * kG] = {};  // lanes g >= G stay 0 (finite) for the vector softmax
  for (int g = 0; g < G; ++g) std::memset(grp.o[g], 0, sizeof(float) * hd);
  __m256 m_run = _mm256_set1_ps(-INFINITY), l_run = _mm256_setzero_ps();
  for (int64_t j0 = lo; j0 < hi; j0 += kB) {
    const int64_t nb = std::min(kB, hi - j0);
    const uint8_t* kb = k + j0 * stride;
    const int64_t nbk = nb / KJ * KJ;
    qk_keys<G, KJ, T>(grp, kb, stride, 0, nbk, hd, scale, tile);
    if constexpr (KJ > 1) qk_keys<G, 1, T>(grp, kb, stride, nbk, nb, hd, scale, tile);
    // online softmax across the G lanes
    __m256 mb = _mm256_set1_ps(-INFINITY);
    for (int64_t jj = 0; jj < nb; ++jj) mb = _mm256_max_ps(mb, _mm256_load_ps(tile + jj * kG));
    const __m256 m_new = _mm256_max_ps(m_run, mb);
    const __m256 corr = simd::exp(_mm256_sub_ps(m_run, m_new));  // 0 on the first block
    if (j0 != lo) {
      alignas(32) float cf[8];
      _mm256_store_ps(cf, corr);
      for (int g = 0; g < G; ++g) {
        if (cf[g] == 1.0f) continue;
        const __m256 cv = _mm256_set1_ps(cf[g]);
        int64_t d = 0;
        for (; d + 8 <= hd; d += 8)
          _mm256_storeu_ps(grp.o[g] + d, _mm256_mul_ps(_mm256_loadu_ps(grp.o[g] + d), cv));
        for (; d < hd; ++d) grp.o[g][d] *= cf[g];
      }
    }
    __m256 lsum = _mm256_setzero_ps();
    for (int64_t jj = 0; jj < nb; ++jj) {
      __m256 e = simd::exp(_mm256_sub_ps(_mm256_load_ps(tile + jj * kG), m_new));
      _mm256_store_ps(tile + jj * kG, e);
      lsum = _mm256_add_ps(lsum, e);
    }
    l_run = _mm256_fmadd_ps(l_run, corr, lsum);
    m_run = m_new;
    pv_tile<G, T>(grp, v + j0 * stride, stride, nb, hd, tile);
  }
  alignas(32) float l[8];
  _mm256_store_ps(l, l_run);
  for (int g = 0; g < G; ++g) {
    const __m256 inv = _mm256_set1_ps(1.0f / l[g]);
    int64_t d = 0;
    for (; d + 8 <= hd; d += 8)
      _mm256_storeu_ps(grp.o[g] + d, _mm256_mul_ps(_mm256_loadu_ps(grp.o[g] + d), inv));
    for (; d < hd; ++d) grp.o[g][d] /= l[g];
  }
}

}  // namespace

// scratch is not needed by this body (score tiles live on the stack).
void attention(const AttnParams& p, const float* q, const void* k, const void* v, float* out,
               int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1, float* scratch) {
  check::attention(p, n_tok, pos0, h0, h1);
  attn_detail::with_kv_type(p.kv_type, [&](auto kt) {
    constexpr DType T = decltype(kt)::value;
    const int64_t stride = kv_bytes<T>(p.kv_stride);
    attn_detail::for_each_group<T>(p, q, k, v, out, n_tok, pos0, h0, h1,
                                   [&](auto g, const Group& grp, const uint8_t* kh,
                                       const uint8_t* vh, int64_t lo, int64_t hi) {
                                     attend_group<decltype(g)::value, T>(grp, kh, vh, stride, lo,
                                                                         hi, p.head_dim, p.scale);
                                   });
  });
}

}  // namespace hpl::kernel::avx2
#endif  // HPL_HAVE_AVX2
