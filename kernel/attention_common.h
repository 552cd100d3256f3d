// Shared by the attention bodies (ref, avx2, neon): the K/V row formats (element access and
// byte offsets per type), the group of query heads that read one kv head, the scalar tails
// for head_dim not a multiple of the vector width, and the walk over tokens and head groups.
// Internal to kernel/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/types.h"

namespace hpl::kernel::attn_detail {

// Bytes of n elements of a K/V row of type T (n a multiple of T's block for Q8_0 / Q4_0).
template <DType T>
constexpr int64_t kv_bytes(int64_t n) {
  static_assert(T == DType::F32 || T == DType::F16 || T == DType::Q8_0 || T == DType::Q4_0);
  if constexpr (T == DType::F32) return n * 4;
  if constexpr (T == DType::F16) return n * 2;
  if constexpr (T == DType::Q8_0) return n / kQK8_0 * static_cast<int64_t>(sizeof(BlockQ8_0));
  return n / kQK4_0 * static_cast<int64_t>(sizeof(BlockQ4_0));
}

// Element d of a K/V row of type T (blocks start at the row's first byte).
template <DType T>
inline float kv_elem(const uint8_t* row, int64_t d) {
  if constexpr (T == DType::F32) {
    float f;
    std::memcpy(&f, row + 4 * d, 4);
    return f;
  } else if constexpr (T == DType::F16) {
    f16_t h;
    std::memcpy(&h, row + 2 * d, 2);
    return fp16_to_fp32(h);
  } else if constexpr (T == DType::Q8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + d / kQK8_0;
    return fp16_to_fp32(b->d) * static_cast<float>(b->qs[d % kQK8_0]);
  } else {
    static_assert(T == DType::Q4_0);
    const auto* b = reinterpret_cast<const BlockQ4_0*>(row) + d / kQK4_0;
    const int i = static_cast<int>(d % kQK4_0);
    const int q = i < kQK4_0 / 2 ? (b->qs[i] & 0x0F) : (b->qs[i - kQK4_0 / 2] >> 4);
    return fp16_to_fp32(b->d) * static_cast<float>(q - 8);
  }
}

// f(std::integral_constant<DType, T>{}) for the run-time K/V type t (checked already).
template <typename F>
inline void with_kv_type(DType t, F f) {
  switch (t) {
    case DType::F32:
      f(std::integral_constant<DType, DType::F32>{});
      break;
    case DType::Q8_0:
      f(std::integral_constant<DType, DType::Q8_0>{});
      break;
    case DType::Q4_0:
      f(std::integral_constant<DType, DType::Q4_0>{});
      break;
    default:
      f(std::integral_constant<DType, DType::F16>{});
      break;
  }
}

constexpr int kG = 8;       // query heads per pass = lanes of the score tile
constexpr int64_t kB = 64;  // keys per online-softmax block

// Up to kG query heads of one token that read the same kv head.
struct Group {
  const float* q[kG];
  float* o[kG];
  int n;
};

// q (hd,) . k (hd,) over dims [d0, hd) in scalar, for the head_dim % lanes dims.
template <DType T>
inline float dot_tail(const float* q, const uint8_t* k, int64_t d0, int64_t hd) {
  float acc = 0.0f;
  for (int64_t d = d0; d < hd; ++d) acc += q[d] * kv_elem<T>(k, d);
  return acc;
}

// Score-tile row jj (KJ == 1 path): tile[jj * kG + g] += scale * q_g . k_jj over the scalar
// dims [d0, hd), after the vector part stored scale * (sum over [0, d0)); k_jj = k + jj * stride
// bytes.
template <int G, DType T>
inline void add_tail_scores(const Group& grp, const uint8_t* k, int64_t stride, int64_t jj,
                            int64_t d0, int64_t hd, float scale, float* tile) {
  if (d0 >= hd) return;
  for (int g = 0; g < G; ++g)
    tile[jj * kG + g] += dot_tail<T>(grp.q[g], k + jj * stride, d0, hd) * scale;
}

// Score-tile rows [jj, jj + KJ): tile[(jj + kj) * kG + g] = scale * (r[kj * G + g] + the
// scalar dims [d0, hd) of q_g . k_(jj+kj)), r holding the vector sums over [0, d0).
template <int G, int KJ, DType T>
inline void store_scores(const Group& grp, const uint8_t* k, int64_t stride, int64_t jj, int64_t d0,
                         int64_t hd, float scale, const float* r, float* tile) {
  for (int kj = 0; kj < KJ; ++kj) {
    for (int g = 0; g < G; ++g) {
      float t = d0 < hd ? dot_tail<T>(grp.q[g], k + (jj + kj) * stride, d0, hd) : 0.0f;
      tile[(jj + kj) * kG + g] = (r[kj * G + g] + t) * scale;
    }
  }
}

// o_g[d0, hd) += sum_jj tile[jj * kG + g] * v_jj for jj in [0, nb), in scalar (the head_dim %
// lanes dims); v_jj = v + jj * stride bytes.
template <int G, DType T>
inline void pv_tail(const Group& grp, const uint8_t* v, int64_t stride, int64_t nb, int64_t d0,
                    int64_t hd, const float* tile) {
  for (int64_t d = d0; d < hd; ++d) {
    for (int g = 0; g < G; ++g) {
      float acc = 0.0f;
      for (int64_t jj = 0; jj < nb; ++jj) acc += tile[jj * kG + g] * kv_elem<T>(v + jj * stride, d);
      grp.o[g][d] += acc;
    }
  }
}

// For each token t and each run of heads in [h0, h1) that share a kv head (at most kG):
//   attend(std::integral_constant<int, G>{}, grp, k_head, v_head, lo, hi)
// with G = grp.n and keys [lo, hi) = [first_key(pos), pos + 1); k_head / v_head point at the
// kv head's row 0 (rows kv_bytes<T>(p.kv_stride) apart). Arguments are already checked.
template <DType T, typename Attend>
inline void for_each_group(const AttnParams& p, const float* q, const void* k, const void* v,
                           float* out, int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1,
                           Attend attend) {
  const int64_t hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  const auto* k8 = static_cast<const uint8_t*>(k);
  const auto* v8 = static_cast<const uint8_t*>(v);
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
      const uint8_t* kh = k8 + kv_bytes<T>(kvh * hd);
      const uint8_t* vh = v8 + kv_bytes<T>(kvh * hd);
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
