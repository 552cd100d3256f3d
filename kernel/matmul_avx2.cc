// AVX2 + FMA + F16C matmul. Integer block dots with maddubs (u8 x s8 -> s16 pairs) and madd
// (s16 x s16 -> s32, which also applies the sub-block scale); f32 accumulators per token.
// Gemm: a tile is one weight row x up to 4 tokens, so each unpacked weight block feeds 4
// tokens; rows are walked in blocks of kRowBlock so a block's weights stay in L1 while every
// token chunk passes over them.
//
// This file is compiled three times: as the avx2 body, and (HPL_AVX_VNNI = 1 / 2, see
// kernel/CMakeLists.txt) as the avxvnni and avx512vnni bodies, whose u8 x s8 dots are one
// vpdpbusd instead of maddubs + madd.
#include "kernel/isa.h"

#if HPL_X86_64

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "kernel/matmul_common.h"
#include "kernel/ops.h"
#include "kernel/repack.h"
#include "kernel/simd_avx2.h"

#ifndef HPL_AVX_VNNI
#define HPL_AVX_VNNI 0
#endif
#if HPL_AVX_VNNI == 1
#define HPL_AVX_BODY avxvnni
HPL_TARGET_BEGIN("avx2,fma,f16c,avxvnni")
#elif HPL_AVX_VNNI == 2
#define HPL_AVX_BODY avx512vnni
HPL_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#if !defined(__clang__)
// GCC 12 flags the intrinsics' own _mm512_undefined_* pass-through operands
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#else
#define HPL_AVX_BODY avx2
#endif

namespace hpl::kernel::HPL_AVX_BODY {
namespace {

#if HPL_AVX_VNNI
namespace simd = avx2::simd;
#endif

constexpr int kMaxTok = 4;     // tokens per register tile
constexpr int kRowBlock = 16;  // rows whose weights are reused by every token chunk

using simd::hmax;
using simd::hsum;

// acc + (u8 u) . (s8 s) per group of 4 bytes, in int32 lanes. maddubs cannot saturate here:
// every caller's pair sums stay below 2^15 (|s| <= 127, u <= 128).
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if HPL_AVX_VNNI == 1
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#elif HPL_AVX_VNNI == 2
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

inline float h2f(f16_t h) {
  return _cvtsh_ss(h);
}

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// --- activation quantizers -----------------------------------------------------------------

inline float amax_of(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  return hmax(m);
}

// x (32,) * id rounded to nearest even -> q (32,) int8, in order.
inline void round32(const float* x, float id, int8_t* q) {
  const __m256 v = _mm256_set1_ps(id);
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), v));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), v));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), v));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), v));
  // packs interleave the 128-bit lanes; the permute restores element order.
  __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK8_0) {
    const float d = amax_of(x, kQK8_0) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    round32(x, id, y[b].qs);
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    const float d = amax_of(x, kQKK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int i = 0; i < kQKK; i += 32) round32(x + i, id, y[b].qs + i);
    // sums of 16: maddubs with ones gives pair sums, madd with ones quad sums.
    for (int i = 0; i < kQKK; i += 32) {
      __m256i q = load256(y[b].qs + i);
      __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                                     _mm256_set1_epi16(1));  // 8 sums of 4
      alignas(32) int32_t s[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(s), s4);
      y[b].bsums[i / 16] = static_cast<int16_t>(s[0] + s[1] + s[2] + s[3]);
      y[b].bsums[i / 16 + 1] = static_cast<int16_t>(s[4] + s[5] + s[6] + s[7]);
    }
  }
}

// --- tiles: one weight row x NT tokens -> out[NT] ---------------------------------------------
// x[k]: token k's activation row; aux[k]: what the tile's prepare() made of that row once per
// call (Q8_0 activations: per-block f32 scales; Q4_K/Q5_K: the quants reordered), or nothing;
// aux_bytes(nb): bytes of aux per token.

// Q8_0-activation formats share the tile. Unpack::get gives the block's 32 weights in order:
// signed (kOffset == 0: Q8_0, made unsigned for maddubs with the sign trick) or unsigned
// q + kOffset (Q4_0: nibble, offset 8; Q5_0: nibble | 5th bit << 4, offset 16), which feed
// maddubs directly; the offset term dw * xd * (-kOffset * sum x) is added per 4 blocks in f32
// from the activation sums made once per call (prepare). Scales dw * xd are made for 4 blocks
// at once (one f16 conversion, one multiply) and broadcast with a permute. For gemv, blocks
// alternate between 2 accumulator sets so consecutive FMAs do not wait on each other.
template <class Block, class Unpack>
struct TileQ8_0 {
  static constexpr int kOffset = Unpack::kOffset;
  // per token: nb f32 scales xd, then (kOffset > 0) nb f32 -kOffset * (sum of the block's x)
  static size_t aux_bytes(int64_t nb) {
    return static_cast<size_t>(nb) * sizeof(float) * (kOffset > 0 ? 2 : 1);
  }
  static void prepare(const uint8_t* x, int64_t nb, uint8_t* aux) {
    const auto* xb = reinterpret_cast<const BlockQ8_0*>(x);
    auto* xd = reinterpret_cast<float*>(aux);
    for (int64_t b = 0; b < nb; ++b) xd[b] = h2f(xb[b].d);
    if constexpr (kOffset > 0) {
      float* cs = xd + nb;
      const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
      for (int64_t b = 0; b < nb; ++b) {
        const __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(one8, load256(xb[b].qs)), one16);
        cs[b] = -kOffset * hsum(_mm256_cvtepi32_ps(s8));  // exact: |sum| <= 32 * 128
      }
    }
  }
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const uint8_t* const* aux,
                  int64_t nb, int64_t, float* out) {
    const auto* w = reinterpret_cast<const Block*>(wrow);
    constexpr int U = NT <= 2 ? 2 : 1;  // accumulator sets, used by alternate blocks
    const float* xd[NT];
    __m256 acc[U][NT];
    __m128 off[NT];
    for (int k = 0; k < NT; ++k) {
      xd[k] = reinterpret_cast<const float*>(aux[k]);
      off[k] = _mm_setzero_ps();
      for (int u = 0; u < U; ++u) acc[u][k] = _mm256_setzero_ps();
    }
    // block b's int32 lanes (summing to the dot of its weights with token k's quants)
    auto dots = [&](int64_t b, __m256i* s) {
      const __m256i wq = Unpack::get(w[b]);
      if constexpr (kOffset > 0) {
        for (int k = 0; k < NT; ++k) {
          const auto* xb = reinterpret_cast<const BlockQ8_0*>(x[k]) + b;
          s[k] = dot_u8s8(_mm256_setzero_si256(), wq, load256(xb->qs));
        }
      } else {
        const __m256i aw = _mm256_sign_epi8(wq, wq);  // |w| as u8; the sign moves onto x
        for (int k = 0; k < NT; ++k) {
          const auto* xb = reinterpret_cast<const BlockQ8_0*>(x[k]) + b;
          s[k] = dot_u8s8(_mm256_setzero_si256(), aw, _mm256_sign_epi8(load256(xb->qs), wq));
        }
      }
    };
    const __m256i lane[4] = {_mm256_set1_epi32(0), _mm256_set1_epi32(1), _mm256_set1_epi32(2),
                             _mm256_set1_epi32(3)};
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
      const uint64_t d4 = static_cast<uint64_t>(w[b].d) | static_cast<uint64_t>(w[b + 1].d) << 16 |
                          static_cast<uint64_t>(w[b + 2].d) << 32 |
                          static_cast<uint64_t>(w[b + 3].d) << 48;
      const __m128 dw4 = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(d4)));
      __m256 sc[NT];
      for (int k = 0; k < NT; ++k) {
        const __m128 s4 = _mm_mul_ps(dw4, _mm_loadu_ps(xd[k] + b));
        if constexpr (kOffset > 0) off[k] = _mm_fmadd_ps(s4, _mm_loadu_ps(xd[k] + nb + b), off[k]);
        sc[k] = _mm256_castps128_ps256(s4);
      }
      for (int u = 0; u < 4; ++u) {
        __m256i s[NT];
        dots(b + u, s);
        for (int k = 0; k < NT; ++k) {
          __m256& a = acc[u % U][k];
          a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k]), _mm256_permutevar8x32_ps(sc[k], lane[u]),
                              a);
        }
      }
    }
    for (; b < nb; ++b) {
      const float dw = h2f(w[b].d);
      __m256i s[NT];
      dots(b, s);
      for (int k = 0; k < NT; ++k) {
        const float sk = dw * xd[k][b];
        acc[0][k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k]), _mm256_set1_ps(sk), acc[0][k]);
        if constexpr (kOffset > 0) off[k] = _mm_add_ss(off[k], _mm_set_ss(sk * xd[k][nb + b]));
      }
    }
    for (int k = 0; k < NT; ++k) {
      for (int u = 1; u < U; ++u) acc[0][k] = _mm256_add_ps(acc[0][k], acc[u][k]);
      out[k] = hsum(_mm256_add_ps(acc[0][k], _mm256_castps128_ps256(off[k])));
    }
  }
};

// Q4_0 / Q5_0 nibbles: low nibbles are elements 0..15, high nibbles 16..31.
// (broadcast load, one variable shift of the upper 128 bits, one and)
inline __m256i nibbles(const uint8_t* qs) {
  const __m256i q = _mm256_broadcastsi128_si256(load128(qs));
  return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)),
                          _mm256_set1_epi8(0x0F));
}

struct UnpackQ4_0 {
  static constexpr int kOffset = 8;
  static __m256i get(const BlockQ4_0& b) { return nibbles(b.qs); }
};
struct UnpackQ5_0 {
  static constexpr int kOffset = 16;
  // byte j gets qh byte j / 8 (shuffle of the broadcast 32 bits) and tests its bit j % 8;
  // where set, 0x10 goes into the nibble.
  static __m256i get(const BlockQ5_0& b) {
    // the 4 qh bytes broadcast straight from memory (a load, no ALU work)
    const __m256i qh =
        _mm256_castps_si256(_mm256_broadcast_ss(reinterpret_cast<const float*>(b.qh)));
    __m256i bytes =
        _mm256_shuffle_epi8(qh, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2,
                                                 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_or_si256(nibbles(b.qs), _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  }
};
struct UnpackQ8_0 {
  static constexpr int kOffset = 0;
  static __m256i get(const BlockQ8_0& b) { return load256(b.qs); }
};

// shuffle masks that broadcast int16 lane j of a 128-bit register into every lane
inline __m256i bcast16_mask(int j) {
  return _mm256_set1_epi16(static_cast<short>((2 * j + 1) << 8 | (2 * j)));
}

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins (see matmul_common.h).
// 64-element chunk c holds sub-blocks 2c (low nibbles of qs[32c..32c+31]) and 2c + 1 (high
// nibbles). A 256-bit register takes [sub-block 2c elements 0..15 | 2c + 1 elements 0..15]
// (16 bytes broadcast, the high half shifted by 4) and another [16..31 | 16..31]; with the
// activations reordered to match once per call (prepare), the two maddubs results add in
// int16 and one madd applies [scale 2c | scale 2c + 1]. Per 64 weights and token: 2 maddubs,
// 1 madd and 1 scale shuffle per row, against 2 madd and 2 shuffles in element order.
template <bool kFive>
struct TileK4 {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static size_t aux_bytes(int64_t nb) { return static_cast<size_t>(nb) * kQKK; }
  // per chunk of 64: x[0..15], x[32..47], x[16..31], x[48..63]
  static void prepare(const uint8_t* x, int64_t nb, uint8_t* aux) {
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    for (int64_t b = 0; b < nb; ++b) {
      for (int c = 0; c < 4; ++c) {
        const int8_t* q = xb[b].qs + 64 * c;
        uint8_t* o = aux + b * kQKK + 64 * c;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o),
                            _mm256_set_m128i(load128(q + 32), load128(q)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 32),
                            _mm256_set_m128i(load128(q + 48), load128(q + 16)));
      }
    }
  }
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const uint8_t* const* aux,
                  int64_t nb, int64_t, float* out) {
    const auto* w = reinterpret_cast<const Block*>(wrow);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);  // high half: high nibbles
    __m256 acc[NT];
    for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      // 12 scale bytes -> [sc0..3 mn0..3] (low 6 bits of bytes 0..7) and [sc4..7 mn4..7] (a
      // nibble of bytes 8..11 with the top 2 bits of bytes 0..7), in 64-bit scalar words
      uint64_t u01;
      uint32_t u2;
      std::memcpy(&u01, w[b].scales, 8);
      std::memcpy(&u2, w[b].scales + 8, 4);
      const uint64_t lo = u01 & 0x3f3f3f3f3f3f3f3full;
      const uint64_t nib = (u2 & 0x0f0f0f0fu) | static_cast<uint64_t>((u2 >> 4) & 0x0f0f0f0fu)
                                                    << 32;
      const uint64_t hi = nib | ((u01 >> 2) & 0x3030303030303030ull);
      // [sc0..3 mn0..3 sc4..7 mn4..7] -> [sc0..7 mn0..7]
      const __m128i scmn =
          _mm_shuffle_epi8(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)),
                           _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15));
      const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scmn));
      const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scmn, scmn));  // m0 m0 m1 ..
      // [d, dmin] as f32 from the two adjacent f16 fields
      uint32_t dd16;
      std::memcpy(&dd16, &w[b].d, 4);
      const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd16)));

      __m256i s[NT];
      for (int k = 0; k < NT; ++k) s[k] = _mm256_setzero_si256();
      [[maybe_unused]] __m256i qh0, qh1;
      if constexpr (kFive) {
        qh0 = _mm256_broadcastsi128_si256(load128(w[b].qh));
        qh1 = _mm256_broadcastsi128_si256(load128(w[b].qh + 16));
      }
      for (int c = 0; c < 4; ++c) {
        __m256i v0 = _mm256_and_si256(
            _mm256_srlv_epi32(_mm256_broadcastsi128_si256(load128(w[b].qs + 32 * c)), shift), m4);
        __m256i v1 = _mm256_and_si256(
            _mm256_srlv_epi32(_mm256_broadcastsi128_si256(load128(w[b].qs + 32 * c + 16)), shift),
            m4);
        if constexpr (kFive) {  // bit 2c of qh[l] (low half), 2c + 1 (high half) -> bit 4
          const __m256i hs =
              _mm256_add_epi32(_mm256_set1_epi32(2 * c), _mm256_srli_epi32(shift, 2));
          const __m256i b4 = _mm256_set1_epi8(0x10);
          v0 = _mm256_or_si256(
              v0, _mm256_and_si256(_mm256_slli_epi32(_mm256_srlv_epi32(qh0, hs), 4), b4));
          v1 = _mm256_or_si256(
              v1, _mm256_and_si256(_mm256_slli_epi32(_mm256_srlv_epi32(qh1, hs), 4), b4));
        }
        // int16 lanes: low half scale 2c, high half scale 2c + 1
        const __m256i sc = _mm256_shuffle_epi8(
            sc16, _mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(2 * c + 1)),
                                   _mm256_castsi256_si128(bcast16_mask(2 * c))));
        for (int k = 0; k < NT; ++k) {
          const uint8_t* a = aux[k] + b * kQKK + 64 * c;
          __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(v0, load256(a)),
                                       _mm256_maddubs_epi16(v1, load256(a + 32)));
          s[k] = _mm256_add_epi32(s[k], _mm256_madd_epi16(p, sc));
        }
      }
      for (int k = 0; k < NT; ++k) {
        const auto& xb = reinterpret_cast<const BlockQ8_K*>(x[k])[b];
        __m256i m = _mm256_madd_epi16(load256(xb.bsums), mn16);     // min_j * sum of sub-block j
        const __m128 dx = _mm_mul_ps(dd, _mm_broadcast_ss(&xb.d));  // [d dx, dmin dx, ..]
        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k]), _mm256_broadcastss_ps(dx), acc[k]);
        acc[k] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m), _mm256_broadcastss_ps(_mm_movehdup_ps(dx)),
                                  acc[k]);
      }
    }
    for (int k = 0; k < NT; ++k) out[k] = hsum(acc[k]);
  }
};

// Q6_K: unsigned 6-bit q with 16 int8 scales (one per 16); the -32 offset is taken off with
// the activation's sums of 16: sum sc_g * (q . a - 32 * bsum_g).
struct TileQ6_K {
  static size_t aux_bytes(int64_t) { return 0; }
  static void prepare(const uint8_t*, int64_t, uint8_t*) {}
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const uint8_t* const*, int64_t nb,
                  int64_t, float* out) {
    const auto* w = reinterpret_cast<const BlockQ6_K*>(wrow);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    // per 32 elements: int16 lanes 0..7 (elements 0..15) take scale g, lanes 8..15 scale g + 1
    const __m256i pair_mask[4] = {_mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(1)),
                                                   _mm256_castsi256_si128(bcast16_mask(0))),
                                  _mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(3)),
                                                   _mm256_castsi256_si128(bcast16_mask(2))),
                                  _mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(5)),
                                                   _mm256_castsi256_si128(bcast16_mask(4))),
                                  _mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(7)),
                                                   _mm256_castsi256_si128(bcast16_mask(6)))};
    __m256 acc[NT];
    for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const float d = h2f(w[b].d);
      __m256i s[NT];
      for (int k = 0; k < NT; ++k) s[k] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[b].scales + 8 * h))));
        const __m256i qa = load256(w[b].ql + 64 * h), qb = load256(w[b].ql + 64 * h + 32);
        const __m256i qh = load256(w[b].qh + 32 * h);
        const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(qa, m4),
                                              _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
                              _mm256_or_si256(_mm256_and_si256(qb, m4),
                                              _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
                              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                              _mm256_and_si256(qh, m2)),
                              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                              _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2))};
        for (int j = 0; j < 4; ++j) {
          const __m256i sv = _mm256_shuffle_epi8(sc16, pair_mask[j]);
          for (int k = 0; k < NT; ++k) {
            const int8_t* a = reinterpret_cast<const BlockQ8_K*>(x[k])[b].qs + 128 * h + 32 * j;
            s[k] = _mm256_add_epi32(s[k],
                                    _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], load256(a)), sv));
          }
        }
      }
      const __m256i sc_all = _mm256_cvtepi8_epi16(load128(w[b].scales));
      for (int k = 0; k < NT; ++k) {
        const auto& xb = reinterpret_cast<const BlockQ8_K*>(x[k])[b];
        __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(load256(xb.bsums), sc_all), 5);
        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s[k], off)),
                                 _mm256_set1_ps(d * xb.d), acc[k]);
      }
    }
    for (int k = 0; k < NT; ++k) out[k] = hsum(acc[k]);
  }
};

// F32 / F16 / BF16 weights against f32 activations; n need not be a multiple of 8.
template <class T>
inline __m256 load8(const T* p);
template <>
inline __m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
template <>
inline __m256 load8(const f16_t* p) {
  return _mm256_cvtph_ps(load128(p));
}
struct Bf16 {
  uint16_t v;
};
template <>
inline __m256 load8(const Bf16* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
}
inline float to_f32(float v) {
  return v;
}
inline float to_f32(f16_t v) {
  return fp16_to_fp32(v);
}
inline float to_f32(Bf16 v) {
  return bf16_to_fp32(v.v);
}

template <class T>
struct TileFloat {
  static size_t aux_bytes(int64_t) { return 0; }
  static void prepare(const uint8_t*, int64_t, uint8_t*) {}
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const uint8_t* const*, int64_t,
                  int64_t n, float* out) {
    const auto* w = reinterpret_cast<const T*>(wrow);
    constexpr int U = NT == 1 ? 4 : (NT == 2 ? 2 : 1);  // independent FMA chains per token
    __m256 acc[NT][U];
    for (int k = 0; k < NT; ++k)
      for (int u = 0; u < U; ++u) acc[k][u] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 * U <= n; i += 8 * U) {
      for (int u = 0; u < U; ++u) {
        const __m256 wv = load8(w + i + 8 * u);
        for (int k = 0; k < NT; ++k)
          acc[k][u] = _mm256_fmadd_ps(
              wv, _mm256_loadu_ps(reinterpret_cast<const float*>(x[k]) + i + 8 * u), acc[k][u]);
      }
    }
    for (; i + 8 <= n; i += 8) {
      const __m256 wv = load8(w + i);
      for (int k = 0; k < NT; ++k)
        acc[k][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(reinterpret_cast<const float*>(x[k]) + i),
                                    acc[k][0]);
    }
    for (int k = 0; k < NT; ++k) {
      for (int u = 1; u < U; ++u) acc[k][0] = _mm256_add_ps(acc[k][0], acc[k][u]);
      float s = hsum(acc[k][0]);
      const float* xk = reinterpret_cast<const float*>(x[k]);
      for (int64_t j = i; j < n; ++j) s += to_f32(w[j]) * xk[j];
      out[k] = s;
    }
  }
};

// --- packed tiles: 8 interleaved rows (kernel/repack.h) x up to kPackTok tokens --------------
// A 64-byte run of a packed block holds 8 bytes of each of the 8 rows; vpdpbusd against the
// token's matching 8 activation bytes broadcast to every 64-bit lane gives, per 32-bit lane
// pair, that row's partial dot. Lane pairs are added once per row at the end. Weights enter
// unsigned (nibbles; Q5_0 with the 5th bit; Q8_0 + 128), and offset * (sum of the block's
// activations), made once per call, comes off in int32 before the block's scale.

// shuffle index that spreads byte k of each 64-bit lane's low word over the lane's 8 bytes
inline __m128i qh_index(int k) {
  const long long b = 0x0101010101010101LL;
  return _mm_set_epi64x(b * (8 + k), b * k);
}

#if HPL_AVX_VNNI == 2
// zmm: one vector is a whole 64-byte run (rows 0..7).
struct PackVec {
  using I = __m512i;
  using F = __m512;
  static constexpr int kPerRun = 1;  // vectors per 64-byte run
  static I load(const uint8_t* p, int) { return _mm512_loadu_si512(p); }
  static I bcast8(const int8_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
  }
  static I set8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
  static I band(I a, I b) { return _mm512_and_si512(a, b); }
  static I bxor(I a, I b) { return _mm512_xor_si512(a, b); }
  static I bor(I a, I b) { return _mm512_or_si512(a, b); }
  static I srl4(I a) { return _mm512_srli_epi16(a, 4); }
  static I sll16(I a, int k) { return _mm512_slli_epi16(a, k); }
  static I srl16(I a, int k) { return _mm512_srli_epi16(a, k); }
  static I sra16(I a, int k) { return _mm512_srai_epi16(a, k); }
  static I sra32(I a, int k) { return _mm512_srai_epi32(a, k); }
  static I dot(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
  static I dot16(I acc, I a, I b) { return _mm512_dpwssd_epi32(acc, a, b); }
  static I izero() { return _mm512_setzero_si512(); }
  // pshufb with the same 16-byte index in every 128-bit lane
  static I shuf(I a, __m128i idx) { return _mm512_shuffle_epi8(a, _mm512_broadcast_i32x4(idx)); }
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F fload(const float* p) { return _mm512_loadu_ps(p); }
  // lanes 2r, 2r + 1 = v[r] for 8 floats (from a 32-byte array), as row_scales does
  static F dup_rows(const float* v, int) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm512_castps256_ps512(_mm256_loadu_ps(v)));
  }
  static F fzero() { return _mm512_setzero_ps(); }
  static F fset(float v) { return _mm512_set1_ps(v); }
  static F cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  // lanes 2r, 2r + 1 = row r's f16 scale as f32
  static F row_scales(const f16_t* d, int) {
    const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm512_castps256_ps512(d8));
  }
  // the 32-bit qh words of the 8 rows, one per 64-bit lane
  static I qh_lanes(const uint8_t* qh, int) {
    return _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh)));
  }
  // q | 0x10 where bit j of byte k of the lane's qh word is set, for byte j of each lane
  static I add_bit4(I q, I qh, int k) {
    const I bytes = _mm512_shuffle_epi8(qh, _mm512_broadcast_i32x4(qh_index(k)));
    const __mmask64 m = _mm512_test_epi8_mask(bytes, _mm512_set1_epi64(0x8040201008040201LL));
    return _mm512_mask_add_epi8(q, m, q, set8(0x10));
  }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
};
#else
// ymm: a 64-byte run is two vectors (rows 0..3, rows 4..7).
struct PackVec {
  using I = __m256i;
  using F = __m256;
  static constexpr int kPerRun = 2;
  static I load(const uint8_t* p, int v) { return load256(p + 32 * v); }
  static I bcast8(const int8_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
  }
  static I set8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  static I band(I a, I b) { return _mm256_and_si256(a, b); }
  static I bxor(I a, I b) { return _mm256_xor_si256(a, b); }
  static I bor(I a, I b) { return _mm256_or_si256(a, b); }
  static I srl4(I a) { return _mm256_srli_epi16(a, 4); }
  static I sll16(I a, int k) { return _mm256_slli_epi16(a, k); }
  static I srl16(I a, int k) { return _mm256_srli_epi16(a, k); }
  static I sra16(I a, int k) { return _mm256_srai_epi16(a, k); }
  static I sra32(I a, int k) { return _mm256_srai_epi32(a, k); }
  static I dot(I acc, I u, I s) { return dot_u8s8(acc, u, s); }
  static I dot16(I acc, I a, I b) {
#if HPL_AVX_VNNI == 1
    return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
  }
  static I izero() {
    return _mm256_setzero_si256();
  }
  static I shuf(I a, __m128i idx) {
    return _mm256_shuffle_epi8(a, _mm256_broadcastsi128_si256(idx));
  }
  static F fnma(F a, F b, F c) {
    return _mm256_fnmadd_ps(a, b, c);
  }
  static F fload(const float* p) {
    return _mm256_loadu_ps(p);
  }
  static F dup_rows(const float* v, int half) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(v + 4 * half)),
                                    _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
  }
  static F fzero() {
    return _mm256_setzero_ps();
  }
  static F fset(float v) {
    return _mm256_set1_ps(v);
  }
  static F cvt(I a) {
    return _mm256_cvtepi32_ps(a);
  }
  static F fma(F a, F b, F c) {
    return _mm256_fmadd_ps(a, b, c);
  }
  static F mul(F a, F b) {
    return _mm256_mul_ps(a, b);
  }
  static F row_scales(const f16_t* d, int v) {
    const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d + 4 * v)));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4),
                                    _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
  }
  static I qh_lanes(const uint8_t* qh, int v) {
    return _mm256_cvtepu32_epi64(load128(qh + 16 * v));
  }
  static I add_bit4(I q, I qh, int k) {
    const I bytes = _mm256_shuffle_epi8(qh, _mm256_broadcastsi128_si256(qh_index(k)));
    const I bit = _mm256_set1_epi64x(0x8040201008040201LL);
    const I set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_or_si256(q, _mm256_and_si256(set, set8(0x10)));
  }
  static void store(float* p, F v) {
    _mm256_storeu_ps(p, v);
  }
};
#endif

// Bit b (0..7) of every byte of h, moved to bit 4 (the 16-bit shifts keep it in its byte).
inline PackVec::I bit_to4_impl(PackVec::I h, int b) {
  const auto bit = PackVec::set8(0x10);
  return PackVec::band(b <= 4 ? PackVec::sll16(h, 4 - b) : PackVec::srl16(h, b - 4), bit);
}

// Unpacked runs of one packed block: kRuns runs of 64 bytes, run i dotted with activation
// bytes [kActAt[i], kActAt[i] + 8) of the token's Q8_0 block.
struct PackQ4_0 {
  static constexpr int kRuns = 4, kOffset = 8;
  static constexpr size_t kBlockBytes = 8 * sizeof(BlockQ4_0);
  static constexpr int kActAt[4] = {0, 16, 8, 24};
  template <class V>
  static void get(const uint8_t* blk, typename V::I (*q)[V::kPerRun]) {
    const auto m4 = V::set8(0x0F);
    for (int c = 0; c < 2; ++c) {
      for (int v = 0; v < V::kPerRun; ++v) {
        const auto r = V::load(blk + 16 + 64 * c, v);
        q[2 * c][v] = V::band(r, m4);
        q[2 * c + 1][v] = V::band(V::srl4(r), m4);
      }
    }
  }
};
struct PackQ5_0 {
  static constexpr int kRuns = 4, kOffset = 16;
  static constexpr size_t kBlockBytes = 8 * sizeof(BlockQ5_0);
  static constexpr int kActAt[4] = {0, 16, 8, 24};
  template <class V>
  static void get(const uint8_t* blk, typename V::I (*q)[V::kPerRun]) {
    PackQ4_0::get<V>(blk, q);
    for (int v = 0; v < V::kPerRun; ++v) {
      const auto qh = V::qh_lanes(blk + 16 + 128, v);
      for (int c = 0; c < 2; ++c) {
        q[2 * c][v] = V::add_bit4(q[2 * c][v], qh, c);              // elements 8c + j
        q[2 * c + 1][v] = V::add_bit4(q[2 * c + 1][v], qh, 2 + c);  // 16 + 8c + j
      }
    }
  }
};
struct PackQ8_0 {
  static constexpr int kRuns = 4, kOffset = 128;
  static constexpr size_t kBlockBytes = 8 * sizeof(BlockQ8_0);
  static constexpr int kActAt[4] = {0, 8, 16, 24};
  template <class V>
  static void get(const uint8_t* blk, typename V::I (*q)[V::kPerRun]) {
    const auto flip = V::set8(0x80);  // s8 + 128 as u8
    for (int c = 0; c < 4; ++c)
      for (int v = 0; v < V::kPerRun; ++v) q[c][v] = V::bxor(V::load(blk + 16 + 64 * c, v), flip);
  }
};

#if HPL_AVX_VNNI == 2
constexpr int kPackTok = 8;  // tokens per packed tile
#else
constexpr int kPackTok = 4;
#endif

// One group of 8 packed rows x NT tokens over nb blocks -> out[k][r] for row r, token k.
// x[k]: token k's Q8_0 row; xd[k]: its per-block f32 scales; xo[k]: per block, -kOffset times
// the sum of the block's activation bytes in the low 32 bits of a 64-bit word (high bits 0), so
// that one broadcast load puts it into the even lane of every row's pair.
template <class P, int NT>
void packed_tile(const uint8_t* grp, const BlockQ8_0* const* x, const float* const* xd,
                 const uint64_t* const* xo, int64_t nb, float (*out)[kPackRows]) {
  using V = PackVec;
  typename V::F acc[NT][V::kPerRun];
  for (int k = 0; k < NT; ++k)
    for (int v = 0; v < V::kPerRun; ++v) acc[k][v] = V::fzero();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * P::kBlockBytes;
    typename V::I q[P::kRuns][V::kPerRun];
    P::template get<V>(blk, q);
    typename V::F dw[V::kPerRun];
    for (int v = 0; v < V::kPerRun; ++v)
      dw[v] = V::row_scales(reinterpret_cast<const f16_t*>(blk), v);
    for (int k = 0; k < NT; ++k) {
      const int8_t* a = x[k][b].qs;
      typename V::I s[V::kPerRun];
      // -offset * sum enters the even lane of each row's pair once
      const auto o = V::bcast8(reinterpret_cast<const int8_t*>(xo[k] + b));
      for (int v = 0; v < V::kPerRun; ++v) s[v] = o;
      for (int i = 0; i < P::kRuns; ++i) {
        const auto ai = V::bcast8(a + P::kActAt[i]);
        for (int v = 0; v < V::kPerRun; ++v) s[v] = V::dot(s[v], q[i][v], ai);
      }
      const auto sx = V::fset(xd[k][b]);
      for (int v = 0; v < V::kPerRun; ++v)
        acc[k][v] = V::fma(V::cvt(s[v]), V::mul(dw[v], sx), acc[k][v]);
    }
  }
  for (int k = 0; k < NT; ++k) {
    float lanes[2 * kPackRows];
    for (int v = 0; v < V::kPerRun; ++v)
      V::store(lanes + v * (2 * kPackRows / V::kPerRun), acc[k][v]);
    for (int r = 0; r < kPackRows; ++r) out[k][r] = lanes[2 * r] + lanes[2 * r + 1];
  }
}

// Q8_0 tokens for packed_tile<P>: rows x_stride bytes apart, with per-block scales xd and
// offset terms xo (nb per token).
template <class P>
struct PackedQ8_0Tile {
  const uint8_t* xb;
  size_t x_stride;
  int64_t nb;
  const float* xd;
  const uint64_t* xo;
  template <int NT>
  void run(const uint8_t* grp, int64_t t0, float (*out)[kPackRows]) const {
    const BlockQ8_0* xp[NT];
    const float* dp[NT];
    const uint64_t* op[NT];
    for (int k = 0; k < NT; ++k) {
      xp[k] = reinterpret_cast<const BlockQ8_0*>(xb + (t0 + k) * x_stride);
      dp[k] = xd + (t0 + k) * nb;
      op[k] = xo + (t0 + k) * nb;
    }
    packed_tile<P, NT>(grp, xp, dp, op, nb, out);
  }
};

// W (rows, n) packed (Q4_0_X8, Q5_0_X8, Q8_0_X8), rows [r0, r1) @ X (ntok, n) Q8_0 -> Y.
template <class P>
void packed_matmul(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                   size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  const int64_t nb = n / kQK8_0;
  thread_local std::vector<float> xd_buf;
  thread_local std::vector<uint64_t> xo_buf;
  xd_buf.resize(static_cast<size_t>(ntok * nb));
  xo_buf.resize(static_cast<size_t>(ntok * nb));
  const auto* xb = static_cast<const uint8_t*>(xq);
  // (made per call, so per row chunk: maddubs / madd sums keep it a few ops per block)
  const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
  for (int64_t t = 0; t < ntok; ++t) {
    const auto* xr = reinterpret_cast<const BlockQ8_0*>(xb + t * x_stride);
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(one8, load256(xr[b].qs)), one16);
      const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
      const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
      const int32_t sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_srli_epi64(s2, 32)));
      xd_buf[t * nb + b] = h2f(xr[b].d);
      xo_buf[t * nb + b] = static_cast<uint32_t>(-P::kOffset * sum);
    }
  }
  detail::run_packed_groups<kPackTok>(
      PackedQ8_0Tile<P>{xb, x_stride, nb, xd_buf.data(), xo_buf.data()}, w, w_stride, y, y_stride,
      r0, r1, ntok);
}

// Q4_K_X8 / Q5_K_X8 (kernel/repack.h) x Q8_K: per super-block and group, the 6-bit scales of
// the 8 rows are decoded once into f32 d * sc (one vector per sub-block, lanes doubled as the
// runs' are) and int16 mins laid out for vpdpwssd against the activation's sums per
// sub-block; the 16 runs of 64 quant bytes (low nibbles: sub-block 2c, high: 2c + 1) feed
// vpdpbusd, Q5_K's with bit 2c / 2c + 1 of the qh run lined up with them as the 5th bit.
// The 12 scale bytes of each of the 8 rows as two 64-bit words per row (matmul_common.h's
// layout): lo = [sc0..3 mn0..3], hi = [sc4..7 mn4..7], 6 bits each. Scalar, 6 ops a row.
inline void q4k_scale_words(const uint8_t* scales, uint64_t lo[kPackRows], uint64_t hi[kPackRows]) {
  for (int r = 0; r < kPackRows; ++r) {
    uint64_t u01;
    uint32_t u2;
    std::memcpy(&u01, scales + 12 * r, 8);
    std::memcpy(&u2, scales + 12 * r + 8, 4);
    lo[r] = u01 & 0x3f3f3f3f3f3f3f3full;
    const uint64_t nib = (u2 & 0x0f0f0f0fu) | static_cast<uint64_t>((u2 >> 4) & 0x0f0f0f0fu) << 32;
    hi[r] = nib | ((u01 >> 2) & 0x3030303030303030ull);
  }
}

// pshufb indices picked by a loop counter come from a table of all of them: one load each,
// where _mm_setr_epi8 with a variable byte is assembled in registers (vmovd, vpinsrb,
// vpunpck..) on every iteration, about 10 p0/p5 uops per index (the avx512vnni Q4_K / Q6_K
// loops spent ~15% of their vector uops on it, llvm-mca).
using Index16 = std::array<int8_t, 16>;
constexpr int8_t kZero = -128;  // 0x80: pshufb writes 0
template <int N, class Make>
constexpr std::array<Index16, N> index_table(Make make) {
  std::array<Index16, N> t{};
  for (int j = 0; j < N; ++j) t[j] = make(static_cast<int8_t>(j));
  return t;
}
inline __m128i load_index(const Index16& idx) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx.data()));
}

// pshufb index: in each 128-bit lane (rows 2L, 2L + 1 in its 64-bit halves) the int32 lanes of
// row 2L get byte j of its word, those of row 2L + 1 byte 8 + j, zero-extended (j = 0..3).
constexpr auto kK4ScaleIndex = index_table<4>([](int8_t j) {
  const int8_t z = kZero, h = static_cast<int8_t>(8 + j);
  return Index16{j, z, z, z, j, z, z, z, h, z, z, z, h, z, z, z};
});
inline __m128i k4_scale_index(int j) {
  return load_index(kK4ScaleIndex[static_cast<size_t>(j)]);
}
// int16 pairs for vpdpwssd: row 2L's lanes get (mn[j0], mn[j0 + 1]), (mn[j0 + 2], mn[j0 + 3])
// from bytes 4..7 of its word.
inline __m128i k4_min_index() {
  const int z = 0x80;
  return _mm_setr_epi8(4, z, 5, z, 6, z, 7, z, 12, z, 13, z, 14, z, 15, z);
}

// x[k]: token k's Q8_K row; xs[k]: per super-block the 8 int16 sums of its sub-blocks.
// long-function: the inner loop of the packed K-quant gemm, kept in one body so the
// compiler holds the NT x 8 accumulators in registers across the sub-blocks.
template <bool kFive, int NT>
void q4k_packed_tile(const uint8_t* grp, const BlockQ8_K* const* x, const int16_t* const* xs,
                     int64_t nb, float (*out)[kPackRows]) {
  using V = PackVec;
  constexpr int R = V::kPerRun;
  typename V::F acc[NT][R];
  for (int k = 0; k < NT; ++k)
    for (int v = 0; v < R; ++v) acc[k][v] = V::fzero();
  const auto m4 = V::set8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * 8 * (kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
    // scales of the 8 rows: words lo / hi, then f32 d * sc per sub-block and int16 mins
    alignas(64) uint64_t lo[kPackRows], hi[kPackRows];
    q4k_scale_words(blk + 32, lo, hi);
    alignas(32) float d8[kPackRows], dmin8[kPackRows];
    _mm256_store_ps(d8, _mm256_cvtph_ps(load128(blk)));
    _mm256_store_ps(dmin8, _mm256_cvtph_ps(load128(blk + 16)));
    typename V::I wlo[R], whi[R];
    typename V::F dr[R];
    for (int v = 0; v < R; ++v) {
      wlo[v] = V::load(reinterpret_cast<const uint8_t*>(lo), v);
      whi[v] = V::load(reinterpret_cast<const uint8_t*>(hi), v);
      dr[v] = V::dup_rows(d8, v);
    }
    typename V::F sb[NT][R];
    for (int k = 0; k < NT; ++k)
      for (int v = 0; v < R; ++v) sb[k][v] = V::fzero();
    for (int c = 0; c < 4; ++c) {
      typename V::I lo[4][R], hi[4][R];
      for (int j = 0; j < 4; ++j) {
        for (int v = 0; v < R; ++v) {
          const auto q = V::load(blk + 128 + 64 * (4 * c + j), v);
          lo[j][v] = V::band(q, m4);
          hi[j][v] = V::band(V::srl4(q), m4);
          if constexpr (kFive) {  // qh runs follow the 16 qs runs
            const auto h = V::load(blk + 128 + 64 * 16 + 64 * j, v);
            lo[j][v] = V::bor(lo[j][v], bit_to4_impl(h, 2 * c));
            hi[j][v] = V::bor(hi[j][v], bit_to4_impl(h, 2 * c + 1));
          }
        }
      }
      // d * sc of sub-blocks 2c and 2c + 1 (scale bytes 0..3 of lo, then of hi)
      typename V::F s_lo[R], s_hi[R];
      for (int v = 0; v < R; ++v) {
        const auto& wd = c < 2 ? wlo[v] : whi[v];
        s_lo[v] = V::mul(V::cvt(V::shuf(wd, k4_scale_index(2 * c % 4))), dr[v]);
        s_hi[v] = V::mul(V::cvt(V::shuf(wd, k4_scale_index(2 * c % 4 + 1))), dr[v]);
      }
      for (int k = 0; k < NT; ++k) {
        const int8_t* a = x[k][b].qs + 64 * c;
        typename V::I il[R], ih[R];
        for (int v = 0; v < R; ++v) il[v] = ih[v] = V::izero();
        for (int j = 0; j < 4; ++j) {
          const auto al = V::bcast8(a + 8 * j), ah = V::bcast8(a + 32 + 8 * j);
          for (int v = 0; v < R; ++v) {
            il[v] = V::dot(il[v], lo[j][v], al);
            ih[v] = V::dot(ih[v], hi[j][v], ah);
          }
        }
        for (int v = 0; v < R; ++v) {
          sb[k][v] = V::fma(V::cvt(il[v]), s_lo[v], sb[k][v]);
          sb[k][v] = V::fma(V::cvt(ih[v]), s_hi[v], sb[k][v]);
        }
      }
    }
    // mins: lane 2r gets min[r][0..1] . sums[0..1] (+ [4..5] . [4..5]), lane 2r + 1 the rest
    typename V::I m0[R], m1[R];
    typename V::F dm[R];
    for (int v = 0; v < R; ++v) {
      m0[v] = V::shuf(wlo[v], k4_min_index());
      m1[v] = V::shuf(whi[v], k4_min_index());
      dm[v] = V::dup_rows(dmin8, v);
    }
    for (int k = 0; k < NT; ++k) {
      const int16_t* s = xs[k] + 8 * b;
      const auto s0 = V::bcast8(reinterpret_cast<const int8_t*>(s));
      const auto s1 = V::bcast8(reinterpret_cast<const int8_t*>(s + 4));
      const auto dx = V::fset(x[k][b].d);
      for (int v = 0; v < R; ++v) {
        const auto mi = V::dot16(V::dot16(V::izero(), m0[v], s0), m1[v], s1);
        acc[k][v] = V::fma(V::fnma(V::cvt(mi), dm[v], sb[k][v]), dx, acc[k][v]);
      }
    }
  }
  for (int k = 0; k < NT; ++k) {
    float lanes[2 * kPackRows];
    for (int v = 0; v < R; ++v) V::store(lanes + v * (2 * kPackRows / R), acc[k][v]);
    for (int r = 0; r < kPackRows; ++r) out[k][r] = lanes[2 * r] + lanes[2 * r + 1];
  }
}

// Q4_K_X8 groups x Q8_K tokens, as packed_matmul (listed only by the VNNI bodies).
// Q6_K_X8 (kernel/repack.h) x Q8_K. Per 128-element half n and run m (m = 0..3), ql runs
// 8n + m (A) and 8n + 4 + m (B) and qh run 4n + m hold, byte for byte, elements
// e = 128n + 8m + i (A's low nibble, qh bits 0-1), e + 32 (B low, bits 2-3), e + 64 (A high,
// bits 4-5) and e + 96 (B high, bits 6-7): unsigned 6-bit weights for vpdpbusd. Each run of
// 8 lies in one 16-element scale group; two runs (m = 2p, 2p + 1) make a group, scaled in
// f32 by d * sc. The -32 offset comes off once per super-block: 32 * sum_g sc_g * bsum_g,
// int16 pairs through vpdpwssd against the Q8_K activation's own sums of 16.

// pshufb index: the int32 lanes of row 2L get byte j of its scale word in their top byte
// (sign-extended by an arithmetic shift of 24), those of row 2L + 1 byte 8 + j (j = 0..7;
// a table, as k4_scale_index).
constexpr auto kK6ScaleIndex = index_table<8>([](int8_t j) {
  const int8_t z = kZero, h = static_cast<int8_t>(8 + j);
  return Index16{z, z, z, j, z, z, z, j, z, z, z, h, z, z, z, h};
});
inline __m128i k6_scale_index(int j) {
  return load_index(kK6ScaleIndex[static_cast<size_t>(j)]);
}
// int16 pairs, each byte in the high half (sign-extended by a shift of 8): row 2L's lanes get
// (sc[j0], sc[j0 + 1]), (sc[j0 + 2], sc[j0 + 3]); row 2L + 1's the same from byte 8 on.
inline __m128i k6_pair_index(int j0) {
  const int z = 0x80;
  return _mm_setr_epi8(z, j0, z, j0 + 1, z, j0 + 2, z, j0 + 3, z, 8 + j0, z, 9 + j0, z, 10 + j0, z,
                       11 + j0);
}

// long-function: as q4k_packed_tile: one body so the accumulators stay in registers.
template <int NT>
void q6k_packed_tile(const uint8_t* grp, const BlockQ8_K* const* x, int64_t nb,
                     float (*out)[kPackRows]) {
  using V = PackVec;
  constexpr int R = V::kPerRun;
  constexpr size_t kScales = 16, kQl = kScales + 128, kQh = kQl + 1024;  // field offsets
  typename V::F acc[NT][R];
  for (int k = 0; k < NT; ++k)
    for (int v = 0; v < R; ++v) acc[k][v] = V::fzero();
  const auto m4 = V::set8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * 8 * sizeof(BlockQ6_K);
    alignas(32) float d8[kPackRows];
    _mm256_store_ps(d8, _mm256_cvtph_ps(load128(blk)));
    typename V::F dr[R];
    typename V::I sc[2][R];  // scale words: sc[h] has row r's scales 8h..8h+7 in 64-bit lane r
    for (int v = 0; v < R; ++v) {
      dr[v] = V::dup_rows(d8, v);
      for (int h = 0; h < 2; ++h) sc[h][v] = V::load(blk + kScales + 64 * h, v);
    }
    typename V::F sb[NT][R];
    for (int k = 0; k < NT; ++k)
      for (int v = 0; v < R; ++v) sb[k][v] = V::fzero();
    for (int n = 0; n < 2; ++n) {
      for (int p = 0; p < 2; ++p) {
        // quarter k (elements + 32k) of runs m = 2p, 2p + 1 is scale group 8n + 2k + p: byte
        // 2k + p of word n. One quarter at a time keeps the ymm body's registers in bounds.
        for (int k = 0; k < 4; ++k) {
          typename V::I q[2][R];
          for (int u = 0; u < 2; ++u) {
            const int m = 2 * p + u;
            for (int v = 0; v < R; ++v) {
              const auto L = V::load(blk + kQl + 64 * (8 * n + 4 * (k & 1) + m), v);  // A or B
              const auto H = V::load(blk + kQh + 64 * (4 * n + m), v);
              const auto lo = V::band(k < 2 ? L : V::srl4(L), m4);
              // qh bits 2k, 2k + 1 -> bits 4, 5
              const auto hi =
                  V::band(k < 2 ? V::sll16(H, 4 - 2 * k) : V::srl16(H, 2 * k - 4), V::set8(0x30));
              q[u][v] = V::bor(lo, hi);
            }
          }
          typename V::F sk[R];
          for (int v = 0; v < R; ++v)
            sk[v] =
                V::mul(V::cvt(V::sra32(V::shuf(sc[n][v], k6_scale_index(2 * k + p)), 24)), dr[v]);
          for (int t = 0; t < NT; ++t) {
            const int8_t* a = x[t][b].qs + 128 * n + 16 * p + 32 * k;
            typename V::I is[R];
            for (int v = 0; v < R; ++v) is[v] = V::izero();
            for (int u = 0; u < 2; ++u) {
              const auto au = V::bcast8(a + 8 * u);
              for (int v = 0; v < R; ++v) is[v] = V::dot(is[v], q[u][v], au);
            }
            for (int v = 0; v < R; ++v) sb[t][v] = V::fma(V::cvt(is[v]), sk[v], sb[t][v]);
          }
        }
      }
    }
    // 32 * sum_g sc_g * bsum_g per row (lane pair), then (sb - d * that) * dx
    typename V::I pr[4][R];  // sign-extended int16 scale pairs for groups 4i..4i+3
    typename V::F d32[R];
    for (int v = 0; v < R; ++v) {
      for (int i = 0; i < 4; ++i)
        pr[i][v] = V::sra16(V::shuf(sc[i / 2][v], k6_pair_index(4 * (i % 2))), 8);
      d32[v] = V::mul(dr[v], V::fset(32.0f));
    }
    for (int t = 0; t < NT; ++t) {
      const int16_t* bs = x[t][b].bsums;
      const auto dx = V::fset(x[t][b].d);
      typename V::I mi[R];
      for (int v = 0; v < R; ++v) mi[v] = V::izero();
      for (int i = 0; i < 4; ++i) {
        const auto bi = V::bcast8(reinterpret_cast<const int8_t*>(bs + 4 * i));
        for (int v = 0; v < R; ++v) mi[v] = V::dot16(mi[v], pr[i][v], bi);
      }
      for (int v = 0; v < R; ++v)
        acc[t][v] = V::fma(V::fnma(V::cvt(mi[v]), d32[v], sb[t][v]), dx, acc[t][v]);
    }
  }
  for (int k = 0; k < NT; ++k) {
    float lanes[2 * kPackRows];
    for (int v = 0; v < R; ++v) V::store(lanes + v * (2 * kPackRows / R), acc[k][v]);
    for (int r = 0; r < kPackRows; ++r) out[k][r] = lanes[2 * r] + lanes[2 * r + 1];
  }
}

// Q8_K tokens for the K-quant packed tiles (kBits 4, 5 or 6): rows x_stride bytes apart; xs
// (Q4_K / Q5_K): per super-block the 8 int16 sums of its 32-element sub-blocks.
template <int kBits>
struct PackedKTile {
  const uint8_t* xb;
  size_t x_stride;
  int64_t nb;
  const int16_t* xs;
  template <int NT>
  void run(const uint8_t* grp, int64_t t0, float (*out)[kPackRows]) const {
    const BlockQ8_K* xp[NT];
    const int16_t* sp[NT];
    for (int k = 0; k < NT; ++k) {
      xp[k] = reinterpret_cast<const BlockQ8_K*>(xb + (t0 + k) * x_stride);
      sp[k] = xs + (t0 + k) * nb * 8;
    }
    if constexpr (kBits == 6) {
      q6k_packed_tile<NT>(grp, xp, nb, out);
    } else {
      q4k_packed_tile<kBits == 5, NT>(grp, xp, sp, nb, out);
    }
  }
};

// W (rows, n) packed (Q4_K_X8, Q5_K_X8, Q6_K_X8), rows [r0, r1) @ X (ntok, n) Q8_K -> Y
// (listed only by the VNNI bodies).
template <int kBits>
[[maybe_unused]] void k_packed_matmul(const void* w, size_t w_stride, const void* xq,
                                      size_t x_stride, float* y, size_t y_stride, int64_t n,
                                      int64_t r0, int64_t r1, int64_t ntok) {
  const int64_t nb = n / kQKK;
  thread_local std::vector<int16_t> xs_buf;
  const auto* xb = static_cast<const uint8_t*>(xq);
  if constexpr (kBits != 6) {  // Q6_K's scales are per 16: it takes Q8_K's own bsums
    xs_buf.resize(static_cast<size_t>(ntok * nb * 8));
    for (int64_t t = 0; t < ntok; ++t) {
      const auto* xr = reinterpret_cast<const BlockQ8_K*>(xb + t * x_stride);
      for (int64_t b = 0; b < nb; ++b)
        for (int s = 0; s < 8; ++s)
          xs_buf[(t * nb + b) * 8 + s] =
              static_cast<int16_t>(xr[b].bsums[2 * s] + xr[b].bsums[2 * s + 1]);
    }
  }
  detail::run_packed_groups<kPackTok>(PackedKTile<kBits>{xb, x_stride, nb, xs_buf.data()}, w,
                                      w_stride, y, y_stride, r0, r1, ntok);
}

// --- driver --------------------------------------------------------------------------------

// W rows [r0, r1) x ntok tokens, in row blocks x token chunks of kMaxTok.
template <class Tile>
void run_tiles(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y, size_t ys,
               int64_t nb, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  // per-token data the tile wants, made once per call rather than once per row
  thread_local std::vector<uint8_t> aux_buf;
  const size_t aux_bytes = Tile::aux_bytes(nb);
  if (aux_bytes > 0) {
    aux_buf.resize(aux_bytes * ntok);
    for (int64_t t = 0; t < ntok; ++t)
      Tile::prepare(x + t * xs, nb, aux_buf.data() + t * aux_bytes);
  }
  detail::run_tile_blocks<Tile, kMaxTok, kRowBlock>(
      w, ws, x, xs, y, ys, nb, n, r0, r1, ntok, [&](int64_t t) -> const uint8_t* {
        return aux_bytes > 0 ? aux_buf.data() + t * aux_bytes : nullptr;
      });
}

// W rows [r0, r1) @ X (ntok, n) with Tile, for weight type T.
template <DType T, class Tile>
void tile_matmul(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                 size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  run_tiles<Tile>(static_cast<const uint8_t*>(w), w_stride, static_cast<const uint8_t*>(xq),
                  x_stride, y, y_stride, n / type_traits(T).block_elems, n, r0, r1, ntok);
}

template <DType T, DType Act, class Tile>
WeightKernels tile_kernels() {
  return {T, Act, tile_matmul<T, Tile>, tile_matmul<T, Tile>, "1 row x 4 tokens"};
}

constexpr const char* kPackedTile =
    HPL_AVX_VNNI == 2 ? "8 rows x 8 tokens (vpdpbusd zmm)" : "8 rows x 4 tokens";

template <DType T, class P>
WeightKernels packed_kernels() {
  return {T, DType::Q8_0, packed_matmul<P>, packed_matmul<P>, kPackedTile};
}

template <DType T, int kBits>
[[maybe_unused]] WeightKernels packed_k_kernels() {
  return {T, DType::Q8_K, k_packed_matmul<kBits>, k_packed_matmul<kBits>, kPackedTile};
}

const WeightKernels kKernels[] = {
    tile_kernels<DType::Q4_0, DType::Q8_0, TileQ8_0<BlockQ4_0, UnpackQ4_0>>(),
    tile_kernels<DType::Q5_0, DType::Q8_0, TileQ8_0<BlockQ5_0, UnpackQ5_0>>(),
    tile_kernels<DType::Q8_0, DType::Q8_0, TileQ8_0<BlockQ8_0, UnpackQ8_0>>(),
    tile_kernels<DType::Q4_K, DType::Q8_K, TileK4<false>>(),
    tile_kernels<DType::Q5_K, DType::Q8_K, TileK4<true>>(),
    tile_kernels<DType::Q6_K, DType::Q8_K, TileQ6_K>(),
    tile_kernels<DType::F16, DType::F32, TileFloat<f16_t>>(),
    tile_kernels<DType::BF16, DType::F32, TileFloat<Bf16>>(),
    tile_kernels<DType::F32, DType::F32, TileFloat<float>>(),
    packed_kernels<DType::Q4_0_X8, PackQ4_0>(),
    packed_kernels<DType::Q5_0_X8, PackQ5_0>(),
#if HPL_AVX_VNNI
    // (the avx2 body keeps Q4_K in the GGUF layout: without vpdpbusd the packed tile's
    // ymm registers spill and it is slower, matmul_bench q4_K vs q4_Kx8)
    packed_k_kernels<DType::Q4_K_X8, 4>(),
    packed_k_kernels<DType::Q5_K_X8, 5>(),
#if HPL_AVX_VNNI == 2
    // (avxvnni keeps Q6_K in the GGUF layout: its ymm tile was 0.95x in gemm and 0.6x in gemv,
    // matmul_bench q6_K vs q6_Kx8 2048x2048, 1 thread; the zmm tile is ~1.4x in gemm)
    packed_k_kernels<DType::Q6_K_X8, 6>(),
#endif
    // Q8_0 + 128 exceeds maddubs' int16 pair sums; only vpdpbusd takes it
    packed_kernels<DType::Q8_0_X8, PackQ8_0>(),
#endif
};

}  // namespace

void quantize_act_row(DType act, const float* x, void* y, int64_t n) {
  detail::quantize_act_row_with(act, x, y, n, quantize_q8_0, quantize_q8_k);
}

const WeightKernels* weight_kernels(DType wt) {
  return detail::find_kernels(kKernels, wt);
}

// W (rows, n) @ X (ntok, n) -> Y (ntok, rows), rows [r0, r1) only.
void matmul(DType wt, const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
            size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  detail::matmul_with(weight_kernels(wt), wt, w, w_stride, xq, x_stride, y, y_stride, n, r0, r1,
                      ntok);
}

}  // namespace hpl::kernel::HPL_AVX_BODY

#if HPL_AVX_VNNI
HPL_TARGET_END()
#endif

#endif  // HPL_X86_64
