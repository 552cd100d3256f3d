// Rotation tables shared by the SIMD rope bodies: cos/sin of theta_i for a block of pairs,
// computed in double like the reference (the angle pos * theta grows large, float would lose it).
#pragma once

#include <cmath>
#include <cstdint>

namespace hpl::kernel::rope_detail {

constexpr int64_t kPairsPerBlock = 64;  // tables live on the stack: 2 * 64 floats each

// c[k], s[k] for pairs i = i0 + k, k < count: theta_i = pos * freq_scale * base^(-2i/rot_dim).
inline void rope_table(int64_t i0, int64_t count, int64_t rot_dim, int64_t pos, float freq_base,
                       float freq_scale, float* c, float* s) {
  const double p = static_cast<double>(pos) * freq_scale;
  for (int64_t k = 0; k < count; ++k) {
    double theta =
        p * std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i0 + k) / rot_dim);
    c[k] = static_cast<float>(std::cos(theta));
    s[k] = static_cast<float>(std::sin(theta));
  }
}

// Per-thread cache of the last full table: the q and k rotations of every layer of a token use
// the same (pos, rot_dim, base, scale), so the double cos/sin are computed once per token.
constexpr int64_t kMaxCachedPairs = 512;
struct RopeCache {
  int64_t pos = -1, rot_dim = -1;
  float base = 0.0f, scale = 0.0f;
  float c[kMaxCachedPairs], s[kMaxCachedPairs];
};

// The table for pairs [0, rot_dim / 2), or nullptr when rot_dim / 2 > kMaxCachedPairs.
inline const RopeCache* rope_cached(int64_t rot_dim, int64_t pos, float freq_base,
                                    float freq_scale) {
  thread_local RopeCache cache;
  if (rot_dim / 2 > kMaxCachedPairs) return nullptr;
  if (cache.pos != pos || cache.rot_dim != rot_dim || cache.base != freq_base ||
      cache.scale != freq_scale) {
    rope_table(0, rot_dim / 2, rot_dim, pos, freq_base, freq_scale, cache.c, cache.s);
    cache.pos = pos;
    cache.rot_dim = rot_dim;
    cache.base = freq_base;
    cache.scale = freq_scale;
  }
  return &cache;
}

}  // namespace hpl::kernel::rope_detail
