// Attention over the K/V cache (F32, F16, Q8_0 or Q4_0 rows), NEON body (same scheme as
// attention_avx2.cc).
//
// Query heads that share a kv head (grouped-query attention) are processed together, up to 8
// at a time: every k_j / v_j chunk is converted to f32 once and used by all of them. Keys
// are walked in blocks of 64 with an online softmax; the scores of a block live in a
// (64 keys, 8 heads) tile so max / exp / sum run across heads on the lanes. The output rows
// are the accumulators (rescaled when a head's max grows).
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernel/attention_common.h"
#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {
namespace {

using attn_detail::Group;
using attn_detail::kB;
using attn_detail::kG;
using attn_detail::kv_bytes;

// 4 int8 at p -> f32 * d.
inline float32x4_t scaled_i8x4(const int8_t* p, float d) {
  int32_t w;
  std::memcpy(&w, p, 4);
  const int16x8_t s = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w)));
  return vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(s))), d);
}

// Elements [d, d + 4) of a K/V row of type T as f32 (d a multiple of 4; for the 32-element
// blocks the 4 stay inside one block).
template <DType T>
inline float32x4_t load4(const uint8_t* row, int64_t d) {
  if constexpr (T == DType::F32) {
    return vld1q_f32(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (T == DType::F16) {
    return simd::load_f16x4(reinterpret_cast<const f16_t*>(row) + d);
  } else if constexpr (T == DType::Q8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + d / kQK8_0;
    return scaled_i8x4(b->qs + d % kQK8_0, fp16_to_fp32(b->d));
  } else {
    static_assert(T == DType::Q4_0);
    // bytes [i, i + 4) of qs: low nibbles are elements i.., high nibbles elements 16 + i..
    const auto* b = reinterpret_cast<const BlockQ4_0*>(row) + d / kQK4_0;
    const int64_t e = d % kQK4_0;
    uint32_t w;
    std::memcpy(&w, b->qs + e % (kQK4_0 / 2), 4);
    if (e >= kQK4_0 / 2) w >>= 4;
    uint8x8_t q = vand_u8(vreinterpret_u8_u32(vdup_n_u32(w)), vdup_n_u8(0x0F));
    int8x8_t s = vsub_s8(vreinterpret_s8_u8(q), vdup_n_s8(8));
    return vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(s)))), fp16_to_fp32(b->d));
  }
}

// tile[jj * kG + g] = scale * q_g . k_jj for keys jj in [j0, j1), KJ keys per step so that
// KJ * G independent accumulators hide the FMA latency; k_jj = k + jj * stride bytes.
template <int G, int KJ, DType T>
void qk_keys(const Group& grp, const uint8_t* k, int64_t stride, int64_t j0, int64_t j1, int64_t hd,
             float scale, float* tile) {
  static_assert(G * KJ <= 8);
  const int64_t hd4 = hd & ~int64_t{3};
  for (int64_t jj = j0; jj + KJ <= j1; jj += KJ) {
    float32x4_t a[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) a[i] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd4; d += 4) {
#pragma GCC unroll 8
      for (int kj = 0; kj < KJ; ++kj) {
        const float32x4_t kv = load4<T>(k + (jj + kj) * stride, d);
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g)
          a[kj * G + g] = vfmaq_f32(a[kj * G + g], vld1q_f32(grp.q[g] + d), kv);
      }
    }
    // the 8 horizontal sums, lanes in accumulator order
    float32x4_t r0 = vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
    float32x4_t r1 = vpaddq_f32(vpaddq_f32(a[4], a[5]), vpaddq_f32(a[6], a[7]));
    if constexpr (KJ == 1) {  // lanes g < G are this key's tile row (the others sum zeros)
      vst1q_f32(tile + jj * kG, vmulq_n_f32(r0, scale));
      vst1q_f32(tile + jj * kG + 4, vmulq_n_f32(r1, scale));
      attn_detail::add_tail_scores<G, T>(grp, k, stride, jj, hd4, hd, scale, tile);
      continue;
    }
    float r[8];
    vst1q_f32(r, r0);
    vst1q_f32(r + 4, r1);
    attn_detail::store_scores<G, KJ, T>(grp, k, stride, jj, hd4, hd, scale, r, tile);
  }
}

// o_g[d0, d1) += sum_jj tile[jj * kG + g] * v_jj for jj in [0, nb); DC 4-dim chunks per pass
// so that G * DC <= 16 accumulators stay in registers; v_jj = v + jj * stride bytes.
template <int G, int DC, DType T>
void pv_dims(const Group& grp, const uint8_t* v, int64_t stride, int64_t nb, int64_t d0, int64_t d1,
             const float* tile) {
  static_assert(G * DC <= 16);
  for (int64_t d = d0; d + 4 * DC <= d1; d += 4 * DC) {
    float32x4_t acc[G * DC];  // every loop over it fully unrolled, so it lives in registers
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
      for (int c = 0; c < DC; ++c) acc[g * DC + c] = vld1q_f32(grp.o[g] + d + 4 * c);
    for (int64_t jj = 0; jj < nb; ++jj) {
      const uint8_t* vj = v + jj * stride;
      const float* pj = tile + jj * kG;
#pragma GCC unroll 16
      for (int c = 0; c < DC; ++c) {
        const float32x4_t vv = load4<T>(vj, d + 4 * c);
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) acc[g * DC + c] = vfmaq_n_f32(acc[g * DC + c], vv, pj[g]);
      }
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
      for (int c = 0; c < DC; ++c) vst1q_f32(grp.o[g] + d + 4 * c, acc[g * DC + c]);
  }
}

template <int G, DType T>
void pv_tile(const Group& grp, const uint8_t* v, int64_t stride, int64_t nb, int64_t hd,
             const float* tile) {
  constexpr int DC = 16 / G < 8 ? 16 / G : 8;
  const int64_t wide = hd / (4 * DC) * (4 * DC), hd4 = hd & ~int64_t{3};
  pv_dims<G, DC, T>(grp, v, stride, nb, 0, wide, tile);
  if constexpr (DC > 1) pv_dims<G, 1, T>(grp, v, stride, nb, wide, hd4, tile);
  attn_detail::pv_tail<G, T>(grp, v, stride, nb, hd4, hd, tile);  // head_dim % 4 dims
}

inline void scale_row(float* o, int64_t hd, float c) {
  int64_t d = 0;
  for (; d + 4 <= hd; d += 4) vst1q_f32(o + d, vmulq_n_f32(vld1q_f32(o + d), c));
  for (; d < hd; ++d) o[d] *= c;
}

// out_g = softmax_j(scale q_g . k_j) v_j over keys j in [lo, hi) for the heads of grp; rows
// of k and v are stride bytes apart.
template <int G, DType T>
void attend_group(const Group& grp, const uint8_t* k, const uint8_t* v, int64_t stride, int64_t lo,
                  int64_t hi, int64_t hd, float scale) {
  constexpr int KJ = G == 1 ? 4 : G == 2 ? 2 : 1;
  alignas(16) float tile[kB * kG] = {};  // lanes g >= G stay 0 (finite) for the vector softmax
  for (int g = 0; g < G; ++g) std::memset(grp.o[g], 0, sizeof(float) * hd);
  float32x4_t m_run[2] = {vdupq_n_f32(-INFINITY), vdupq_n_f32(-INFINITY)};
  float32x4_t l_run[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  for (int64_t j0 = lo; j0 < hi; j0 += kB) {
    const int64_t nb = std::min(kB, hi - j0);
    const uint8_t* kb = k + j0 * stride;
    const int64_t nbk = nb / KJ * KJ;
    qk_keys<G, KJ, T>(grp, kb, stride, 0, nbk, hd, scale, tile);
    if constexpr (KJ > 1) qk_keys<G, 1, T>(grp, kb, stride, nbk, nb, hd, scale, tile);
    for (int half = 0; half < 2; ++half) {  // online softmax, 4 heads per vector
      if (half * 4 >= G) break;
      float* t = tile + half * 4;
      float32x4_t mb = vdupq_n_f32(-INFINITY);
      for (int64_t jj = 0; jj < nb; ++jj) mb = vmaxq_f32(mb, vld1q_f32(t + jj * kG));
      const float32x4_t m_new = vmaxq_f32(m_run[half], mb);
      const float32x4_t corr = simd::exp(vsubq_f32(m_run[half], m_new));  // 0 on the first block
      if (j0 != lo) {
        float cf[4];
        vst1q_f32(cf, corr);
        for (int g = half * 4; g < G && g < half * 4 + 4; ++g) {
          if (cf[g - half * 4] != 1.0f) scale_row(grp.o[g], hd, cf[g - half * 4]);
        }
      }
      float32x4_t lsum = vdupq_n_f32(0.0f);
      for (int64_t jj = 0; jj < nb; ++jj) {
        float32x4_t e = simd::exp(vsubq_f32(vld1q_f32(t + jj * kG), m_new));
        vst1q_f32(t + jj * kG, e);
        lsum = vaddq_f32(lsum, e);
      }
      l_run[half] = vfmaq_f32(lsum, l_run[half], corr);
      m_run[half] = m_new;
    }
    pv_tile<G, T>(grp, v + j0 * stride, stride, nb, hd, tile);
  }
  float l[8];
  vst1q_f32(l, l_run[0]);
  vst1q_f32(l + 4, l_run[1]);
  for (int g = 0; g < G; ++g) scale_row(grp.o[g], hd, 1.0f / l[g]);
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

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
