// Shared by the SIMD rope bodies: cos/sin tables of theta_i for a block of pairs, computed in
// double like the reference (the angle pos * theta grows large, float would lose it), and the
// block loop with its scalar tails around the ISA's vector steps.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernel/ops.h"

namespace hpl::kernel::rope_detail {

constexpr int64_t kPairsPerBlock = 64;  // tables live on the stack: 2 * 64 floats each

// c[k], s[k] for pairs i = i0 + k, k < count:
// theta_i = pos * freq_scale * base^(-2i/rot_dim) / ff[i] (ff null: all 1).
inline void rope_table(int64_t i0, int64_t count, int64_t rot_dim, int64_t pos, float freq_base,
                       float freq_scale, const float* ff, float* c, float* s) {
  const double p = static_cast<double>(pos) * freq_scale;
  for (int64_t k = 0; k < count; ++k) {
    double theta =
        p * std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i0 + k) / rot_dim);
    if (ff) theta /= ff[i0 + k];
    c[k] = static_cast<float>(std::cos(theta));
    s[k] = static_cast<float>(std::sin(theta));
  }
}

// Per-thread cache of the last full table: the q and k rotations of every layer of a token use
// the same (pos, rot_dim, base, scale, factors), so the double cos/sin are computed once per
// token.
constexpr int64_t kMaxCachedPairs = 512;
struct RopeCache {
  int64_t pos = -1, rot_dim = -1;
  float base = 0.0f, scale = 0.0f;
  bool has_ff = false;
  float ff[kMaxCachedPairs];  // a copy: a caller may reuse one address for other factors
  float c[kMaxCachedPairs], s[kMaxCachedPairs];
};

// The table for pairs [0, rot_dim / 2), or nullptr when rot_dim / 2 > kMaxCachedPairs.
inline const RopeCache* rope_cached(int64_t rot_dim, int64_t pos, float freq_base, float freq_scale,
                                    const float* ff) {
  thread_local RopeCache cache;
  const int64_t half = rot_dim / 2;
  if (half > kMaxCachedPairs) return nullptr;
  const size_t ff_bytes = static_cast<size_t>(half) * sizeof(float);
  if (cache.pos != pos || cache.rot_dim != rot_dim || cache.base != freq_base ||
      cache.scale != freq_scale || cache.has_ff != (ff != nullptr) ||
      (ff && std::memcmp(cache.ff, ff, ff_bytes) != 0)) {
    rope_table(0, half, rot_dim, pos, freq_base, freq_scale, ff, cache.c, cache.s);
    cache.pos = pos;
    cache.rot_dim = rot_dim;
    cache.base = freq_base;
    cache.scale = freq_scale;
    cache.has_ff = ff != nullptr;
    if (ff) std::memcpy(cache.ff, ff, ff_bytes);
  }
  return &cache;
}

// x (n_heads, head_dim) in place, first rot_dim dims of each head (arguments already checked).
// Per block of pairs the tables are shared by all heads; Simd does kLanes floats per step:
//   Simd::neox(x0, x1, c, s)      x0[j], x1[j] = x0 c - x1 s, x0 s + x1 c   (pairs (i, i + half))
//   Simd::adjacent(xp, cd, sa)    xp[2i], xp[2i+1] rotated, c duplicated and s as (-s, +s)
// and the scalar tails finish what is left.
template <typename Simd>
inline void rope_blocks(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
                        float freq_base, float freq_scale, RopeLayout layout, const float* ff) {
  constexpr int64_t L = Simd::kLanes;
  const int64_t half = rot_dim / 2;
  float cbuf[kPairsPerBlock], sbuf[kPairsPerBlock];
  const RopeCache* tab = rope_cached(rot_dim, pos, freq_base, freq_scale, ff);
  for (int64_t i0 = 0; i0 < half; i0 += kPairsPerBlock) {
    const int64_t cnt = half - i0 < kPairsPerBlock ? half - i0 : kPairsPerBlock;
    const float* c = cbuf;
    const float* s = sbuf;
    if (tab) {
      c = tab->c + i0;
      s = tab->s + i0;
    } else {
      rope_table(i0, cnt, rot_dim, pos, freq_base, freq_scale, ff, cbuf, sbuf);
    }
    if (layout == RopeLayout::kNeox) {  // pairs (i, i + half)
      for (int64_t h = 0; h < n_heads; ++h) {
        float* x0 = x + h * head_dim + i0;
        float* x1 = x0 + half;
        int64_t k = 0;
        for (; k + L <= cnt; k += L) Simd::neox(x0 + k, x1 + k, c + k, s + k);
        for (; k < cnt; ++k) {
          float a = x0[k], b = x1[k];
          x0[k] = a * c[k] - b * s[k];
          x1[k] = a * s[k] + b * c[k];
        }
      }
    } else {  // adjacent pairs (2i, 2i+1): L / 2 pairs per vector
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
        for (; k + L <= len; k += L) Simd::adjacent(xp + k, cd + k, sa + k);
        for (; k < len; k += 2) {
          float a = xp[k], b = xp[k + 1];
          xp[k] = a * cd[k] + b * sa[k];
          xp[k + 1] = b * cd[k] + a * sa[k + 1];
        }
      }
    }
  }
}

}  // namespace hpl::kernel::rope_detail
