// Shared by the SIMD attention bodies (avx2, neon): the group of query heads that read one kv
// head, the scalar tails for head_dim not a multiple of the vector width, and the walk over
// tokens and head groups. Internal to kernel/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel::attn_detail {

constexpr int kG = 8;       // query heads per pass = lanes of the score tile
constexpr int64_t kB = 64;  // keys per online-softmax block

// Up to kG query heads of one token that read the same kv head.
struct Group {
  const float* q[kG];
  float* o[kG];
  int n;
};

// q (hd,) . k (hd,) over dims [d0, hd) in scalar, for the head_dim % lanes dims.
inline float dot_tail(const float* q, const f16_t* k, int64_t d0, int64_t hd) {
  float acc = 0.0f;
  for (int64_t d = d0; d < hd; ++d) acc += q[d] * fp16_to_fp32(k[d]);
  return acc;
}

// Score-tile row jj (KJ == 1 path): tile[jj * kG + g] += scale * q_g . k_jj over the scalar
// dims [d0, hd), after the vector part stored scale * (sum over [0, d0)).
template <int G>
inline void add_tail_scores(const Group& grp, const f16_t* k, int64_t stride, int64_t jj,
                            int64_t d0, int64_t hd, float scale, float* tile) {
  if (d0 >= hd) return;
  for (int g = 0; g < G; ++g)
    tile[jj * kG + g] += dot_tail(grp.q[g], k + jj * stride, d0, hd) * scale;
}

// Score-tile rows [jj, jj + KJ): tile[(jj + kj) * kG + g] = scale * (r[kj * G + g] + the
// scalar dims [d0, hd) of q_g . k_(jj+kj)), r holding the vector sums over [0, d0).
template <int G, int KJ>
inline void store_scores(const Group& grp, const f16_t* k, int64_t stride, int64_t jj, int64_t d0,
                         int64_t hd, float scale, const float* r, float* tile) {
  for (int kj = 0; kj < KJ; ++kj) {
    for (int g = 0; g < G; ++g) {
      float t = d0 < hd ? dot_tail(grp.q[g], k + (jj + kj) * stride, d0, hd) : 0.0f;
      tile[(jj + kj) * kG + g] = (r[kj * G + g] + t) * scale;
    }
  }
}

// o_g[d0, hd) += sum_jj tile[jj * kG + g] * v_jj for jj in [0, nb), in scalar (the head_dim %
// lanes dims); v_jj = v + jj * stride.
template <int G>
inline void pv_tail(const Group& grp, const f16_t* v, int64_t stride, int64_t nb, int64_t d0,
                    int64_t hd, const float* tile) {
  for (int64_t d = d0; d < hd; ++d) {
    for (int g = 0; g < G; ++g) {
      float acc = 0.0f;
      for (int64_t jj = 0; jj < nb; ++jj)
        acc += tile[jj * kG + g] * fp16_to_fp32(v[jj * stride + d]);
      grp.o[g][d] += acc;
    }
  }
}

// For each token t and each run of heads in [h0, h1) that share a kv head (at most kG):
//   attend(std::integral_constant<int, G>{}, grp, k_head, v_head, lo, hi)
// with G = grp.n and keys [lo, hi) = [first_key(pos), pos + 1); k_head / v_head point at the
// kv head's row 0. Arguments are already checked.
template <typename Attend>
inline void for_each_group(const AttnParams& p, const float* q, const f16_t* k, const f16_t* v,
                           float* out, int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1,
                           Attend attend) {
  const int64_t hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = pos0 + t, lo = check::attn_first_key(pos, p.window);
    for (int64_t h = h0; h < h1;) {
      // heads [h, he): same kv head, inside [h0, h1), at most kG
      const int64_t kvh = h / group;
      const int64_t he = std::min({h1, (kvh + 1) * group, h + kG});
      Group grp;
      grp.n = static_cast<int>(he - h);
      for (int i = 0; i < grp.n; ++i) {
        grp.q[i] = q + t * p.q_stride + (h + i) * hd;
        grp.o[i] = out + t * p.out_stride + (h + i) * hd;
      }
      const f16_t* kh = k + kvh * hd;
      const f16_t* vh = v + kvh * hd;
      const int64_t hi = pos + 1;
      switch (grp.n) {
        case 1:
          attend(std::integral_constant<int, 1>{}, grp, kh, vh, lo, hi);
          break;
        case 2:
          attend(std::integral_constant<int, 2>{}, grp, kh, vh, lo, hi);
          break;
        case 3:
          attend(std::integral_constant<int, 3>{}, grp, kh, vh, lo, hi);
          break;
        case 4:
          attend(std::integral_constant<int, 4>{}, grp, kh, vh, lo, hi);
          break;
        case 5:
          attend(std::integral_constant<int, 5>{}, grp, kh, vh, lo, hi);
          break;
        case 6:
          attend(std::integral_constant<int, 6>{}, grp, kh, vh, lo, hi);
          break;
        case 7:
          attend(std::integral_constant<int, 7>{}, grp, kh, vh, lo, hi);
          break;
        default:
          attend(std::integral_constant<int, 8>{}, grp, kh, vh, lo, hi);
          break;
      }
      h = he;
    }
  }
}

}  // namespace hpl::kernel::attn_detail
