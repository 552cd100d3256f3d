// NEON matmul: integer block dots with sdot (vdotq_s32: 4 x (4 int8 x 4 int8) -> int32 per
// instruction), f32 accumulators per token. Tiles are one weight row x up to 4 tokens, so each
// unpacked weight block feeds 4 tokens; with i8mm the Q4_K, Q4_0, Q5_0 and Q8_0 gemm uses smmla
// (vmmlaq_s32) on 2 rows x 4 tokens instead.
//
// This file is compiled three times (kernel/CMakeLists.txt): HPL_NEON_LEVEL 0 is the neon body
// for ARMv8.0 (Cortex-A53: sdot emulated with smull + pairwise adds), 1 the dotprod body, 2 the
// i8mm body.
#include "kernel/isa.h"

#if HPL_ARM64

#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "kernel/matmul_common.h"
#include "kernel/ops.h"
#include "kernel/repack.h"

#ifndef HPL_NEON_LEVEL
#define HPL_NEON_LEVEL 0
#endif

// llvm-mca region markers around the Q4_K and packed tiles' block loops (bench/mca_q4k_neon.sh and
// bench/mca_packed_neon.sh define HPL_MCA_MARKERS).
#ifdef HPL_MCA_MARKERS
#define HPL_MCA_BEGIN() __asm__ volatile("// LLVM-MCA-BEGIN block")
#define HPL_MCA_END() __asm__ volatile("// LLVM-MCA-END")
#else
#define HPL_MCA_BEGIN()
#define HPL_MCA_END()
#endif

#if HPL_NEON_LEVEL == 1
#define HPL_NEON_BODY dotprod
HPL_TARGET_BEGIN("arch=armv8.2-a+dotprod")
#elif HPL_NEON_LEVEL == 2
#define HPL_NEON_BODY i8mm
HPL_TARGET_BEGIN("arch=armv8.2-a+dotprod+i8mm")
#else
#define HPL_NEON_BODY neon
#endif

namespace hpl::kernel::HPL_NEON_BODY {
namespace {

// acc + a . b per group of 4 int8 (sdot); ARMv8.0 gets the same sums from widening products.
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if HPL_NEON_LEVEL >= 1
  return vdotq_s32(acc, a, b);
#else
  const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  const int32x4_t hi = vpaddlq_s16(vmull_high_s8(a, b));
  return vaddq_s32(acc, vpaddq_s32(lo, hi));
#endif
}

constexpr int kMaxTok = 4;     // tokens per register tile
constexpr int kRowBlock = 16;  // rows whose weights are reused by every token chunk

inline float h2f(f16_t h) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

// --- activation quantizers -----------------------------------------------------------------

inline float amax_of(const float* x, int n) {
  float32x4_t m = vdupq_n_f32(0.0f);
  for (int i = 0; i < n; i += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + i)));
  return vmaxvq_f32(m);
}

// x (16,) * id rounded to nearest even (fcvtns) -> q (16,) int8.
inline int8x16_t round16(const float* x, float id) {
  int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x), id));
  int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4), id));
  int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 8), id));
  int32x4_t d = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 12), id));
  int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
  int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
  return vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd));
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK8_0) {
    const float d = amax_of(x, kQK8_0) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    vst1q_s8(y[b].qs, round16(x, id));
    vst1q_s8(y[b].qs + 16, round16(x + 16, id));
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    const float d = amax_of(x, kQKK) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int g = 0; g < kQKK / 16; ++g) {
      int8x16_t q = round16(x + 16 * g, id);
      vst1q_s8(y[b].qs + 16 * g, q);
      y[b].bsums[g] = vaddlvq_s8(q);
    }
  }
}

// --- tiles: one weight row x NT tokens -> out[NT] ---------------------------------------------
// x[k]: token k's activation row; xd[k]: its per-block f32 scales (Q8_0 activations only).

// 32 signed weights of a Q8_0-activation block as two int8x16 (elements 0..15, 16..31).
struct W32 {
  int8x16_t lo, hi;
};

// Scales dw * xd are made 4 blocks at a time (one f16 conversion, one multiply; the FMA takes
// its lane); for gemv, blocks alternate between 2 accumulator sets so consecutive FMAs do not
// wait on each other.
template <class Block, class Unpack>
struct TileQ8_0 {
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const float* const* xd, int64_t nb,
                  int64_t, float* out) {
    const auto* w = reinterpret_cast<const Block*>(wrow);
    constexpr int U = NT <= 2 ? 2 : 1;  // accumulator sets, used by alternate blocks
    float32x4_t acc[U][NT];
    for (int u = 0; u < U; ++u)
      for (int k = 0; k < NT; ++k) acc[u][k] = vdupq_n_f32(0.0f);
    auto dots = [&](int64_t b, int32x4_t* s) {
      const W32 q = Unpack::get(w[b]);
      for (int k = 0; k < NT; ++k) {
        const int8_t* a = reinterpret_cast<const BlockQ8_0*>(x[k])[b].qs;
        s[k] = sdot(sdot(vdupq_n_s32(0), q.lo, vld1q_s8(a)), q.hi, vld1q_s8(a + 16));
      }
    };
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
      uint16x4_t d4 = vdup_n_u16(w[b].d);
      d4 = vset_lane_u16(w[b + 1].d, d4, 1);
      d4 = vset_lane_u16(w[b + 2].d, d4, 2);
      d4 = vset_lane_u16(w[b + 3].d, d4, 3);
      const float32x4_t dw4 = vcvt_f32_f16(vreinterpret_f16_u16(d4));
      float32x4_t sc[NT];
      for (int k = 0; k < NT; ++k) sc[k] = vmulq_f32(dw4, vld1q_f32(xd[k] + b));
      int32x4_t s[4][NT];
      for (int u = 0; u < 4; ++u) dots(b + u, s[u]);
      for (int k = 0; k < NT; ++k) {
        acc[0][k] = vfmaq_laneq_f32(acc[0][k], vcvtq_f32_s32(s[0][k]), sc[k], 0);
        acc[1 % U][k] = vfmaq_laneq_f32(acc[1 % U][k], vcvtq_f32_s32(s[1][k]), sc[k], 1);
        acc[0][k] = vfmaq_laneq_f32(acc[0][k], vcvtq_f32_s32(s[2][k]), sc[k], 2);
        acc[1 % U][k] = vfmaq_laneq_f32(acc[1 % U][k], vcvtq_f32_s32(s[3][k]), sc[k], 3);
      }
    }
    for (; b < nb; ++b) {
      const float dw = h2f(w[b].d);
      int32x4_t s[NT];
      dots(b, s);
      for (int k = 0; k < NT; ++k)
        acc[0][k] = vfmaq_n_f32(acc[0][k], vcvtq_f32_s32(s[k]), dw * xd[k][b]);
    }
    for (int k = 0; k < NT; ++k) {
      if constexpr (U == 2) acc[0][k] = vaddq_f32(acc[0][k], acc[1][k]);
      out[k] = vaddvq_f32(acc[0][k]);
    }
  }
};

struct UnpackQ4_0 {
  static W32 get(const BlockQ4_0& b) {
    const uint8x16_t q = vld1q_u8(b.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight),
            vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight)};
  }
};
struct UnpackQ5_0 {
  // lane j tests bit j of qh; where it is clear, OR-ing 0xF0 makes the int8 nibble - 16.
  static W32 get(const BlockQ5_0& b) {
    static const uint8_t kBits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    // h0 lanes 0..7 get qh[0], 8..15 qh[1]; h1 likewise qh[2], qh[3] (one load, two lookups)
    static const uint8_t kIdx[2][16] = {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
                                        {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3}};
    const uint8x16_t bits = vld1q_u8(kBits);
    const uint8x16_t q = vld1q_u8(b.qs);
    const uint8x16_t f0 = vdupq_n_u8(0xF0);
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const uint8x16_t h4 = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    uint8x16_t h0 = vqtbl1q_u8(h4, vld1q_u8(kIdx[0]));
    uint8x16_t h1 = vqtbl1q_u8(h4, vld1q_u8(kIdx[1]));
    uint8x16_t lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), vbicq_u8(f0, vtstq_u8(h0, bits)));
    uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), vbicq_u8(f0, vtstq_u8(h1, bits)));
    return {vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)};
  }
};
struct UnpackQ8_0 {
  static W32 get(const BlockQ8_0& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }
};

// Q4_K / Q5_K 12 scale bytes -> 8 scales and 8 mins (see matmul_common.h), 4 at a time.
inline void k4_scales(const uint8_t* s, uint8x8_t* sc, uint8x8_t* mn) {
  uint64_t u01;  // two scalar loads, no stack copy
  uint32_t u2;
  std::memcpy(&u01, s, 8);
  std::memcpy(&u2, s + 8, 4);
  // lo = [sc0..3 mn0..3]: low 6 bits of bytes 0..7; hi = [sc4..7 mn4..7]: a nibble of bytes
  // 8..11 and the top 2 bits of bytes 0..7
  const uint64_t lo = u01 & 0x3f3f3f3f3f3f3f3full;
  const uint64_t nib = (u2 & 0x0f0f0f0fu) | static_cast<uint64_t>((u2 >> 4) & 0x0f0f0f0fu) << 32;
  const uint64_t hi = nib | ((u01 >> 2) & 0x3030303030303030ull);
  const uint32x2_t l = vcreate_u32(lo), h = vcreate_u32(hi);
  *sc = vreinterpret_u8_u32(vzip1_u32(l, h));
  *mn = vreinterpret_u8_u32(vzip2_u32(l, h));
}

// sums of each 32 of a Q8_K block: 8 int16 from its 16 sums of 16.
inline int16x8_t bsums32(const BlockQ8_K& xb) {
  return vpaddq_s16(vld1q_s16(xb.bsums), vld1q_s16(xb.bsums + 8));
}

// [s0 s1 s2 s3]: horizontal sums of four int32x4.
inline int32x4_t hsum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

// Q4_K / Q5_K: 8 sub-blocks of 32; value = d * sc * q - dmin * m.
template <bool kFive>
struct TileK4 {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const float* const*, int64_t nb,
                  int64_t, float* out) {
    const auto* w = reinterpret_cast<const Block*>(wrow);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc[NT];
    for (int k = 0; k < NT; ++k) acc[k] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      HPL_MCA_BEGIN();
      uint8x8_t sc8, mn8;
      k4_scales(w[b].scales, &sc8, &mn8);
      const int16x8_t sc16 = vreinterpretq_s16_u16(vmovl_u8(sc8));
      const int16x8_t mn16 = vreinterpretq_s16_u16(vmovl_u8(mn8));
      // [d, dmin, d, dmin] as f32 from the two adjacent f16 fields, one conversion
      uint32_t dd;
      std::memcpy(&dd, &w[b].d, 4);
      const float32x4_t dm = vcvt_f32_f16(vreinterpret_f16_u32(vdup_n_u32(dd)));
      // per token: int32 dot of each sub-block, 4 lanes each (sdot), reduced 4 at a time
      int32x4_t sum[NT][2];
      [[maybe_unused]] uint8x16_t qh0, qh1;
      if constexpr (kFive) {
        qh0 = vld1q_u8(w[b].qh);
        qh1 = vld1q_u8(w[b].qh + 16);
      }
      for (int half = 0; half < 2; ++half) {  // sub-blocks 4 half .. 4 half + 3
        int32x4_t p[NT][4];
        for (int cc = 0; cc < 2; ++cc) {
          const int c = 2 * half + cc;  // 64-element chunk: sub-blocks 2c (low) and 2c + 1 (high)
          const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * c), q1 = vld1q_u8(w[b].qs + 32 * c + 16);
          uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4);
          uint8x16_t h0 = vshrq_n_u8(q0, 4), h1 = vshrq_n_u8(q1, 4);
          if constexpr (kFive) {  // bit 2c of qh[l] -> bit 4 of low, bit 2c + 1 -> of high
            const uint8x16_t b4 = vdupq_n_u8(0x10);
            l0 = vorrq_u8(l0, vandq_u8(vshlq_n_u8(qh0, 4), b4));
            l1 = vorrq_u8(l1, vandq_u8(vshlq_n_u8(qh1, 4), b4));
            h0 = vorrq_u8(h0, vandq_u8(vshlq_n_u8(qh0, 3), b4));
            h1 = vorrq_u8(h1, vandq_u8(vshlq_n_u8(qh1, 3), b4));
            qh0 = vshrq_n_u8(qh0, 2);
            qh1 = vshrq_n_u8(qh1, 2);
          }
          for (int k = 0; k < NT; ++k) {
            const int8_t* a = reinterpret_cast<const BlockQ8_K*>(x[k])[b].qs + 64 * c;
            const int32x4_t z = vdupq_n_s32(0);
            p[k][2 * cc] = sdot(sdot(z, vreinterpretq_s8_u8(l0), vld1q_s8(a)),
                                vreinterpretq_s8_u8(l1), vld1q_s8(a + 16));
            p[k][2 * cc + 1] = sdot(sdot(z, vreinterpretq_s8_u8(h0), vld1q_s8(a + 32)),
                                    vreinterpretq_s8_u8(h1), vld1q_s8(a + 48));
          }
        }
        for (int k = 0; k < NT; ++k) sum[k][half] = hsum4(p[k][0], p[k][1], p[k][2], p[k][3]);
      }
      for (int k = 0; k < NT; ++k) {
        const auto& xb = reinterpret_cast<const BlockQ8_K*>(x[k])[b];
        int32x4_t si = vmulq_s32(sum[k][0], vmovl_s16(vget_low_s16(sc16)));
        si = vmlaq_s32(si, sum[k][1], vmovl_s16(vget_high_s16(sc16)));
        const int16x8_t bs = bsums32(xb);
        int32x4_t sm = vmull_s16(vget_low_s16(bs), vget_low_s16(mn16));
        sm = vmlal_s16(sm, vget_high_s16(bs), vget_high_s16(mn16));
        const float32x4_t dx = vmulq_n_f32(dm, xb.d);  // [d dx, dmin dx, ..]
        acc[k] = vfmaq_laneq_f32(acc[k], vcvtq_f32_s32(si), dx, 0);
        acc[k] = vfmsq_laneq_f32(acc[k], vcvtq_f32_s32(sm), dx, 1);
      }
      HPL_MCA_END();
    }
    for (int k = 0; k < NT; ++k) out[k] = vaddvq_f32(acc[k]);
  }
};

#if HPL_NEON_LEVEL >= 2
// Q4_K gemm with smmla: vmmlaq_s32(acc, A, B) adds the 2x2 products of A (2 rows x 8 int8)
// and B (2 tokens x 8 int8). Weights of rows (ra, rb) are interleaved 8 at a time on the fly;
// activations of token pairs are interleaved once per call (pack_pairs). Accumulator lanes:
// [ra t0, ra t1, rb t0, rb t1]. One call: 2 rows x NP token pairs.

// Token pair (t0, t1) -> for each block, 32 groups of [t0 q[8g..8g+7], t1 q[8g..8g+7]].
void pack_pairs(const uint8_t* x, size_t xs, int64_t npairs, int64_t nb, int8_t* out) {
  for (int64_t p = 0; p < npairs; ++p) {
    const auto* x0 = reinterpret_cast<const BlockQ8_K*>(x + 2 * p * xs);
    const auto* x1 = reinterpret_cast<const BlockQ8_K*>(x + (2 * p + 1) * xs);
    for (int64_t b = 0; b < nb; ++b) {
      int8_t* o = out + (p * nb + b) * 2 * kQKK;
      for (int g = 0; g < kQKK / 8; ++g) {
        std::memcpy(o + 16 * g, x0[b].qs + 8 * g, 8);
        std::memcpy(o + 16 * g + 8, x1[b].qs + 8 * g, 8);
      }
    }
  }
}

template <int NP>
void q4k_i8mm_tile(const BlockQ4_K* wa, const BlockQ4_K* wb, const BlockQ8_K* const* x,
                   const int8_t* const* pk, int64_t nb, float32x4_t* out) {
  // idx[j]: int32 lanes [sc_a[j], sc_a[j], sc_b[j], sc_b[j]] from bytes [sc_a(8) sc_b(8)]
  static const uint8_t kIdx[8][16] = {
#define HPL_IDX(j) {j, 255, 255, 255, j, 255, 255, 255, 8 + j, 255, 255, 255, 8 + j, 255, 255, 255}
      HPL_IDX(0), HPL_IDX(1), HPL_IDX(2), HPL_IDX(3), HPL_IDX(4),
      HPL_IDX(5), HPL_IDX(6), HPL_IDX(7)
#undef HPL_IDX
  };
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  float32x4_t acc[NP];
  for (int p = 0; p < NP; ++p) acc[p] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    uint8x8_t sca, mna, scb, mnb;
    k4_scales(wa[b].scales, &sca, &mna);
    k4_scales(wb[b].scales, &scb, &mnb);
    const uint8x16_t scab = vcombine_u8(sca, scb);
    const int16x8_t mna16 = vreinterpretq_s16_u16(vmovl_u8(mna));
    const int16x8_t mnb16 = vreinterpretq_s16_u16(vmovl_u8(mnb));
    uint32_t da, db;
    std::memcpy(&da, &wa[b].d, 4);
    std::memcpy(&db, &wb[b].d, 4);
    // [d_a, dmin_a, d_b, dmin_b] -> [d_a, d_a, d_b, d_b] and [dmin_a, dmin_a, dmin_b, dmin_b]
    const float32x4_t dd = vcvt_f32_f16(vreinterpret_f16_u32(vset_lane_u32(db, vdup_n_u32(da), 1)));
    const float32x4_t dv = vtrn1q_f32(dd, dd), mv = vtrn2q_f32(dd, dd);
    int32x4_t si[NP];
    for (int p = 0; p < NP; ++p) si[p] = vdupq_n_s32(0);
    for (int c = 0; c < 4; ++c) {  // sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles)
      const uint8x16_t a0 = vld1q_u8(wa[b].qs + 32 * c), a1 = vld1q_u8(wa[b].qs + 32 * c + 16);
      const uint8x16_t b0 = vld1q_u8(wb[b].qs + 32 * c), b1 = vld1q_u8(wb[b].qs + 32 * c + 16);
      for (int hi = 0; hi < 2; ++hi) {
        const uint8x16_t qa0 = hi ? vshrq_n_u8(a0, 4) : vandq_u8(a0, m4);
        const uint8x16_t qa1 = hi ? vshrq_n_u8(a1, 4) : vandq_u8(a1, m4);
        const uint8x16_t qb0 = hi ? vshrq_n_u8(b0, 4) : vandq_u8(b0, m4);
        const uint8x16_t qb1 = hi ? vshrq_n_u8(b1, 4) : vandq_u8(b1, m4);
        // [ra e(8g..8g+7), rb e(8g..8g+7)] for the 4 groups of 8 of this sub-block
        const int8x16_t m[4] = {
            vreinterpretq_s8_u64(vzip1q_u64(vreinterpretq_u64_u8(qa0), vreinterpretq_u64_u8(qb0))),
            vreinterpretq_s8_u64(vzip2q_u64(vreinterpretq_u64_u8(qa0), vreinterpretq_u64_u8(qb0))),
            vreinterpretq_s8_u64(vzip1q_u64(vreinterpretq_u64_u8(qa1), vreinterpretq_u64_u8(qb1))),
            vreinterpretq_s8_u64(vzip2q_u64(vreinterpretq_u64_u8(qa1), vreinterpretq_u64_u8(qb1)))};
        const int j = 2 * c + hi;
        const int32x4_t sc = vreinterpretq_s32_u8(vqtbl1q_u8(scab, vld1q_u8(kIdx[j])));
        for (int p = 0; p < NP; ++p) {
          const int8_t* xp = pk[p] + b * 2 * kQKK + 16 * 4 * j;  // groups 4j .. 4j + 3
          int32x4_t s = vmmlaq_s32(vdupq_n_s32(0), m[0], vld1q_s8(xp));
          s = vmmlaq_s32(s, m[1], vld1q_s8(xp + 16));
          s = vmmlaq_s32(s, m[2], vld1q_s8(xp + 32));
          s = vmmlaq_s32(s, m[3], vld1q_s8(xp + 48));
          si[p] = vmlaq_s32(si[p], s, sc);
        }
      }
    }
    for (int p = 0; p < NP; ++p) {
      const BlockQ8_K& x0 = x[2 * p][b];
      const BlockQ8_K& x1 = x[2 * p + 1][b];
      const int16x8_t s0 = bsums32(x0), s1 = bsums32(x1);
      auto dot8 = [](int16x8_t a, int16x8_t m) {
        return vmlal_high_s16(vmull_s16(vget_low_s16(a), vget_low_s16(m)), a, m);
      };
      const int32x4_t sm =
          hsum4(dot8(s0, mna16), dot8(s1, mna16), dot8(s0, mnb16), dot8(s1, mnb16));
      const float32x4_t dx = vcombine_f32(vset_lane_f32(x1.d, vdup_n_f32(x0.d), 1),
                                          vset_lane_f32(x1.d, vdup_n_f32(x0.d), 1));
      acc[p] = vfmaq_f32(acc[p], vcvtq_f32_s32(si[p]), vmulq_f32(dv, dx));
      acc[p] = vfmsq_f32(acc[p], vcvtq_f32_s32(sm), vmulq_f32(mv, dx));
    }
  }
  for (int p = 0; p < NP; ++p) out[p] = acc[p];
}

// Q4_K, ntok >= 2: rows paired by absolute index (2i, 2i + 1), so a row's result does not
// depend on how rows are split across threads; an unpaired row and an odd last token go
// through the sdot tile.
void q4k_gemm_i8mm(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y, size_t ys,
                   int64_t nb, int64_t r0, int64_t r1, int64_t ntok) {
  const int64_t npairs = ntok / 2;
  thread_local std::vector<int8_t> pk_buf;
  pk_buf.resize(static_cast<size_t>(npairs * nb * 2 * kQKK));
  pack_pairs(x, xs, npairs, nb, pk_buf.data());
  auto row = [&](int64_t r) { return reinterpret_cast<const BlockQ4_K*>(w + r * ws); };
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t re = std::min<int64_t>(rb + kRowBlock, r1);
    for (int64_t p0 = 0; p0 < npairs; p0 += 2) {
      const int np = static_cast<int>(std::min<int64_t>(2, npairs - p0));
      const BlockQ8_K* xq[4];
      const uint8_t* xr[4];
      const int8_t* pk[2];
      for (int k = 0; k < 2 * np; ++k) {
        xr[k] = x + (2 * p0 + k) * xs;
        xq[k] = reinterpret_cast<const BlockQ8_K*>(xr[k]);
      }
      for (int p = 0; p < np; ++p) pk[p] = pk_buf.data() + (p0 + p) * nb * 2 * kQKK;
      for (int64_t r = rb; r < re;) {
        if (r % 2 == 1 || r + 1 == re) {  // unpaired row
          float out[4] = {};
          if (np == 2) {
            TileK4<false>::run<4>(w + r * ws, xr, nullptr, nb, 0, out);
          } else {
            TileK4<false>::run<2>(w + r * ws, xr, nullptr, nb, 0, out);
          }
          for (int k = 0; k < 2 * np; ++k) y[(2 * p0 + k) * ys + r] = out[k];
          ++r;
          continue;
        }
        float32x4_t o[2];
        if (np == 2) {
          q4k_i8mm_tile<2>(row(r), row(r + 1), xq, pk, nb, o);
        } else {
          q4k_i8mm_tile<1>(row(r), row(r + 1), xq, pk, nb, o);
        }
        for (int p = 0; p < np; ++p) {
          const int64_t t = 2 * (p0 + p);
          y[t * ys + r] = vgetq_lane_f32(o[p], 0);
          y[(t + 1) * ys + r] = vgetq_lane_f32(o[p], 1);
          y[t * ys + r + 1] = vgetq_lane_f32(o[p], 2);
          y[(t + 1) * ys + r + 1] = vgetq_lane_f32(o[p], 3);
        }
        r += 2;
      }
    }
  }
  if (ntok % 2 == 1) {  // last token alone
    const uint8_t* xl[1] = {x + (ntok - 1) * xs};
    for (int64_t r = r0; r < r1; ++r) {
      float out[1];
      TileK4<false>::run<1>(w + r * ws, xl, nullptr, nb, 0, out);
      y[(ntok - 1) * ys + r] = out[0];
    }
  }
}

// Q4_0 / Q5_0 / Q8_0 gemm with smmla: 2 rows x 2 token pairs, as the Q4_K path. Per token
// pair, per block: 4 groups of [t0 q[8g..8g+7], t1 q[8g..8g+7]] (64 bytes) and the two
// activation scales [d_t0, d_t1].
void pack_pairs_q8_0(const uint8_t* x, size_t xs, int64_t npairs, int64_t nb, int8_t* out,
                     float* dout) {
  for (int64_t p = 0; p < npairs; ++p) {
    const auto* x0 = reinterpret_cast<const BlockQ8_0*>(x + 2 * p * xs);
    const auto* x1 = reinterpret_cast<const BlockQ8_0*>(x + (2 * p + 1) * xs);
    for (int64_t b = 0; b < nb; ++b) {
      int8_t* o = out + (p * nb + b) * 2 * kQK8_0;
      for (int g = 0; g < kQK8_0 / 8; ++g) {
        std::memcpy(o + 16 * g, x0[b].qs + 8 * g, 8);
        std::memcpy(o + 16 * g + 8, x1[b].qs + 8 * g, 8);
      }
      dout[2 * (p * nb + b)] = h2f(x0[b].d);
      dout[2 * (p * nb + b) + 1] = h2f(x1[b].d);
    }
  }
}

template <class Block, class Unpack, int NP>
void q8_i8mm_tile(const Block* wa, const Block* wb, const int8_t* const* pk, const float* const* pd,
                  int64_t nb, float32x4_t* out) {
  float32x4_t acc[NP];
  for (int p = 0; p < NP; ++p) acc[p] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const W32 qa = Unpack::get(wa[b]), qb = Unpack::get(wb[b]);
    auto zip1 = [](int8x16_t u, int8x16_t v) {
      return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(u), vreinterpretq_s64_s8(v)));
    };
    auto zip2 = [](int8x16_t u, int8x16_t v) {
      return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(u), vreinterpretq_s64_s8(v)));
    };
    const int8x16_t m0 = zip1(qa.lo, qb.lo), m1 = zip2(qa.lo, qb.lo);
    const int8x16_t m2 = zip1(qa.hi, qb.hi), m3 = zip2(qa.hi, qb.hi);
    // [d_a, d_a, d_b, d_b]
    const uint16x4_t dh = vset_lane_u16(wb[b].d, vset_lane_u16(wb[b].d, vdup_n_u16(wa[b].d), 2), 3);
    const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(dh));
    for (int p = 0; p < NP; ++p) {
      const int8_t* xp = pk[p] + b * 2 * kQK8_0;
      int32x4_t s = vmmlaq_s32(vdupq_n_s32(0), m0, vld1q_s8(xp));
      s = vmmlaq_s32(s, m1, vld1q_s8(xp + 16));
      s = vmmlaq_s32(s, m2, vld1q_s8(xp + 32));
      s = vmmlaq_s32(s, m3, vld1q_s8(xp + 48));
      const float32x2_t d2 = vld1_f32(pd[p] + 2 * b);  // [d_t0, d_t1]
      acc[p] = vfmaq_f32(acc[p], vcvtq_f32_s32(s), vmulq_f32(dw, vcombine_f32(d2, d2)));
    }
  }
  for (int p = 0; p < NP; ++p) out[p] = acc[p];
}

// Rows paired by absolute index as in q4k_gemm_i8mm; an unpaired row and an odd last token go
// through the sdot tile.
template <class Block, class Unpack>
void q8_gemm_i8mm(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y, size_t ys,
                  int64_t nb, int64_t r0, int64_t r1, int64_t ntok) {
  using Tile = TileQ8_0<Block, Unpack>;
  const int64_t npairs = ntok / 2;
  thread_local std::vector<int8_t> pk_buf;
  thread_local std::vector<float> pd_buf, xd_buf;
  pk_buf.resize(static_cast<size_t>(npairs * nb * 2 * kQK8_0));
  pd_buf.resize(static_cast<size_t>(npairs * nb * 2));
  pack_pairs_q8_0(x, xs, npairs, nb, pk_buf.data(), pd_buf.data());
  xd_buf.resize(static_cast<size_t>(ntok * nb));  // per-token f32 scales for the sdot tile
  for (int64_t t = 0; t < ntok; ++t) {
    const auto* xb = reinterpret_cast<const BlockQ8_0*>(x + t * xs);
    for (int64_t b = 0; b < nb; ++b) xd_buf[t * nb + b] = h2f(xb[b].d);
  }
  auto row = [&](int64_t r) { return reinterpret_cast<const Block*>(w + r * ws); };
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t re = std::min<int64_t>(rb + kRowBlock, r1);
    for (int64_t p0 = 0; p0 < npairs; p0 += 2) {
      const int np = static_cast<int>(std::min<int64_t>(2, npairs - p0));
      const uint8_t* xr[4];
      const float* dp[4];
      const int8_t* pk[2];
      const float* pd[2];
      for (int k = 0; k < 2 * np; ++k) {
        xr[k] = x + (2 * p0 + k) * xs;
        dp[k] = xd_buf.data() + (2 * p0 + k) * nb;
      }
      for (int p = 0; p < np; ++p) {
        pk[p] = pk_buf.data() + (p0 + p) * nb * 2 * kQK8_0;
        pd[p] = pd_buf.data() + (p0 + p) * nb * 2;
      }
      for (int64_t r = rb; r < re;) {
        if (r % 2 == 1 || r + 1 == re) {  // unpaired row
          float out[4] = {};
          if (np == 2) {
            Tile::template run<4>(w + r * ws, xr, dp, nb, 0, out);
          } else {
            Tile::template run<2>(w + r * ws, xr, dp, nb, 0, out);
          }
          for (int k = 0; k < 2 * np; ++k) y[(2 * p0 + k) * ys + r] = out[k];
          ++r;
          continue;
        }
        float32x4_t o[2];
        if (np == 2) {
          q8_i8mm_tile<Block, Unpack, 2>(row(r), row(r + 1), pk, pd, nb, o);
        } else {
          q8_i8mm_tile<Block, Unpack, 1>(row(r), row(r + 1), pk, pd, nb, o);
        }
        for (int p = 0; p < np; ++p) {
          const int64_t t = 2 * (p0 + p);
          y[t * ys + r] = vgetq_lane_f32(o[p], 0);
          y[(t + 1) * ys + r] = vgetq_lane_f32(o[p], 1);
          y[t * ys + r + 1] = vgetq_lane_f32(o[p], 2);
          y[(t + 1) * ys + r + 1] = vgetq_lane_f32(o[p], 3);
        }
        r += 2;
      }
    }
  }
  if (ntok % 2 == 1) {  // last token alone
    const uint8_t* xl[1] = {x + (ntok - 1) * xs};
    const float* dl[1] = {xd_buf.data() + (ntok - 1) * nb};
    for (int64_t r = r0; r < r1; ++r) {
      float out[1];
      Tile::template run<1>(w + r * ws, xl, dl, nb, 0, out);
      y[(ntok - 1) * ys + r] = out[0];
    }
  }
}
#endif  // HPL_NEON_LEVEL >= 2

// Q6_K: unsigned 6-bit q (as int8 for sdot), 16 int8 scales, one per 16 elements; the -32
// offset comes off with the activation's sums of 16: sum sc_g * (q . a - 32 * bsum_g).
struct TileQ6_K {
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const float* const*, int64_t nb,
                  int64_t, float* out) {
    const auto* w = reinterpret_cast<const BlockQ6_K*>(wrow);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m2 = vdupq_n_u8(0x30);
    float32x4_t acc[NT];
    for (int k = 0; k < NT; ++k) acc[k] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      const float d = h2f(w[b].d);
      const int8x16_t sc = vld1q_s8(w[b].scales);
      int32x4_t si[NT] = {};
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = w[b].ql + 64 * h;
        const uint8_t* qh = w[b].qh + 32 * h;
        // groups of 16: g = 8h + 2j + (l >= 16); the 4 quarters j of this half
        int32x4_t p[NT][8];
        for (int part = 0; part < 2; ++part) {  // l in [16 part, 16 part + 16)
          const uint8x16_t a0 = vld1q_u8(ql + 16 * part), a1 = vld1q_u8(ql + 32 + 16 * part);
          const uint8x16_t hh = vld1q_u8(qh + 16 * part);
          const uint8x16_t q[4] = {vorrq_u8(vandq_u8(a0, m4), vandq_u8(vshlq_n_u8(hh, 4), m2)),
                                   vorrq_u8(vandq_u8(a1, m4), vandq_u8(vshlq_n_u8(hh, 2), m2)),
                                   vorrq_u8(vshrq_n_u8(a0, 4), vandq_u8(hh, m2)),
                                   vorrq_u8(vshrq_n_u8(a1, 4), vandq_u8(vshrq_n_u8(hh, 2), m2))};
          for (int j = 0; j < 4; ++j) {
            for (int k = 0; k < NT; ++k) {
              const int8_t* a =
                  reinterpret_cast<const BlockQ8_K*>(x[k])[b].qs + 128 * h + 32 * j + 16 * part;
              p[k][2 * j + part] = sdot(vdupq_n_s32(0), vreinterpretq_s8_u8(q[j]), vld1q_s8(a));
            }
          }
        }
        // group sums in scale order 8h + 0..7, times the scales
        const int16x8_t sc16 = vmovl_s8(h ? vget_high_s8(sc) : vget_low_s8(sc));
        for (int k = 0; k < NT; ++k) {
          int32x4_t g03 = hsum4(p[k][0], p[k][1], p[k][2], p[k][3]);
          int32x4_t g47 = hsum4(p[k][4], p[k][5], p[k][6], p[k][7]);
          si[k] = vmlaq_s32(si[k], g03, vmovl_s16(vget_low_s16(sc16)));
          si[k] = vmlaq_s32(si[k], g47, vmovl_s16(vget_high_s16(sc16)));
        }
      }
      const int16x8_t sc_lo = vmovl_s8(vget_low_s8(sc)), sc_hi = vmovl_s8(vget_high_s8(sc));
      for (int k = 0; k < NT; ++k) {
        const auto& xb = reinterpret_cast<const BlockQ8_K*>(x[k])[b];
        const int16x8_t b0 = vld1q_s16(xb.bsums), b1 = vld1q_s16(xb.bsums + 8);
        int32x4_t off = vmull_s16(vget_low_s16(b0), vget_low_s16(sc_lo));
        off = vmlal_s16(off, vget_high_s16(b0), vget_high_s16(sc_lo));
        off = vmlal_s16(off, vget_low_s16(b1), vget_low_s16(sc_hi));
        off = vmlal_s16(off, vget_high_s16(b1), vget_high_s16(sc_hi));
        int32x4_t s = vsubq_s32(si[k], vshlq_n_s32(off, 5));
        acc[k] = vfmaq_n_f32(acc[k], vcvtq_f32_s32(s), d * xb.d);
      }
    }
    for (int k = 0; k < NT; ++k) out[k] = vaddvq_f32(acc[k]);
  }
};

// F32 / F16 / BF16 weights against f32 activations; n need not be a multiple of 8.
struct Bf16 {
  uint16_t v;
};
inline void load8(const float* p, float32x4_t* a, float32x4_t* b) {
  *a = vld1q_f32(p);
  *b = vld1q_f32(p + 4);
}
inline void load8(const f16_t* p, float32x4_t* a, float32x4_t* b) {
  float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
  *a = vcvt_f32_f16(vget_low_f16(h));
  *b = vcvt_high_f32_f16(h);
}
inline void load8(const Bf16* p, float32x4_t* a, float32x4_t* b) {
  uint16x8_t h = vld1q_u16(reinterpret_cast<const uint16_t*>(p));
  *a = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
  *b = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
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
  template <int NT>
  static void run(const uint8_t* wrow, const uint8_t* const* x, const float* const*, int64_t,
                  int64_t n, float* out) {
    const auto* w = reinterpret_cast<const T*>(wrow);
    float32x4_t acc0[NT], acc1[NT];
    for (int k = 0; k < NT; ++k) acc0[k] = acc1[k] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      float32x4_t w0, w1;
      load8(w + i, &w0, &w1);
      for (int k = 0; k < NT; ++k) {
        const float* xk = reinterpret_cast<const float*>(x[k]) + i;
        acc0[k] = vfmaq_f32(acc0[k], w0, vld1q_f32(xk));
        acc1[k] = vfmaq_f32(acc1[k], w1, vld1q_f32(xk + 4));
      }
    }
    for (int k = 0; k < NT; ++k) {
      float s = vaddvq_f32(vaddq_f32(acc0[k], acc1[k]));
      const float* xk = reinterpret_cast<const float*>(x[k]);
      for (int64_t j = i; j < n; ++j) s += to_f32(w[j]) * xk[j];
      out[k] = s;
    }
  }
};

// --- driver --------------------------------------------------------------------------------

// W rows [r0, r1) x ntok tokens, in row blocks x token chunks of kMaxTok.
template <class Tile, bool kActScales>
void run_tiles(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y, size_t ys,
               int64_t nb, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  // Q8_0 activations: their f16 scales as f32, once per call rather than once per row.
  thread_local std::vector<float> xd_buf;
  if (kActScales) {
    xd_buf.resize(static_cast<size_t>(ntok * nb));
    for (int64_t t = 0; t < ntok; ++t) {
      const auto* xb = reinterpret_cast<const BlockQ8_0*>(x + t * xs);
      for (int64_t b = 0; b < nb; ++b) xd_buf[t * nb + b] = h2f(xb[b].d);
    }
  }
  detail::run_tile_blocks<Tile, kMaxTok, kRowBlock>(
      w, ws, x, xs, y, ys, nb, n, r0, r1, ntok,
      [&](int64_t t) -> const float* { return kActScales ? xd_buf.data() + t * nb : nullptr; });
}

// W rows [r0, r1) @ X (ntok, n) with the sdot Tile, for weight type T (kActScales: Q8_0
// activations, whose f16 scales the tile wants as f32).
template <DType T, class Tile, bool kActScales>
void tile_matmul(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                 size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  run_tiles<Tile, kActScales>(static_cast<const uint8_t*>(w), w_stride,
                              static_cast<const uint8_t*>(xq), x_stride, y, y_stride,
                              n / type_traits(T).block_elems, n, r0, r1, ntok);
}

#if HPL_NEON_LEVEL >= 2
// The SMMLA gemm for the 32-element formats and Q4_K (ntok >= 2).
template <DType T, class Block, class Unpack>
void q8_gemm(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
             size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  q8_gemm_i8mm<Block, Unpack>(static_cast<const uint8_t*>(w), w_stride,
                              static_cast<const uint8_t*>(xq), x_stride, y, y_stride, n / kQK8_0,
                              r0, r1, ntok);
}
void q4k_gemm(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
              size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  q4k_gemm_i8mm(static_cast<const uint8_t*>(w), w_stride, static_cast<const uint8_t*>(xq), x_stride,
                y, y_stride, n / kQKK, r0, r1, ntok);
}
#endif

#if HPL_NEON_LEVEL >= 1
// --- packed tiles: 8 interleaved rows (kernel/repack.h) x up to kPackTok tokens --------------
// The in-loop tile, for gemv and small batches (the gemm below unpacks once per call instead).
// A 16-byte vector v of a 64-byte packed run holds 8 bytes of rows 2v and 2v + 1. sdot
// against the token's 8 matching activation bytes, duplicated, gives per row two int32 lanes
// (added pairwise per block). Q4_0 / Q5_0 weights enter unsigned (nibble, nibble | 5th bit:
// fine for the signed dot, being < 128) and kOffset * (sum of the block's activations), made
// once per call, comes off as the int32 sums' starting value; Q8_0 is signed as it is.
constexpr int kPackTok = 4;

// The 4 runs of one packed block, q[i][v] (rows 2v, 2v + 1), run i dotted with activation
// bytes [kActAt[i], kActAt[i] + 8) of the token's Q8_0 block.
struct PackQ4_0 {
  static constexpr size_t kBlockBytes = 8 * sizeof(BlockQ4_0);
  static constexpr int kActAt[4] = {0, 16, 8, 24};
  static constexpr int kOffset = 8;
  static void get(const uint8_t* blk, int8x16_t (*q)[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int c = 0; c < 2; ++c) {
      for (int v = 0; v < 4; ++v) {
        const uint8x16_t r = vld1q_u8(blk + 16 + 64 * c + 16 * v);
        q[2 * c][v] = vreinterpretq_s8_u8(vandq_u8(r, m4));
        q[2 * c + 1][v] = vreinterpretq_s8_u8(vshrq_n_u8(r, 4));
      }
    }
  }
};
struct PackQ5_0 {
  static constexpr size_t kBlockBytes = 8 * sizeof(BlockQ5_0);
  static constexpr int kActAt[4] = {0, 16, 8, 24};
  static constexpr int kOffset = 16;
  // Run i's elements start at kActAt[i], so their 5th bits are byte kActAt[i] / 8 of qh: a
  // table lookup spreads that byte of row 2v (2v + 1) over the vector's low (high) 8 bytes and
  // a bit test per byte position picks the element's bit.
  static void get(const uint8_t* blk, int8x16_t (*q)[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);
    const uint8x16_t bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ULL));
    for (int v = 0; v < 4; ++v) {
      const uint8x8_t qh2 = vld1_u8(blk + 16 + 128 + 8 * v);  // qh of rows 2v, 2v + 1
      const uint8x16_t qh = vcombine_u8(qh2, qh2);
      for (int i = 0; i < 4; ++i) {
        const uint8x16_t r = vld1q_u8(blk + 16 + 64 * (i / 2) + 16 * v);
        const uint8x16_t nib = i % 2 == 0 ? vandq_u8(r, m4) : vshrq_n_u8(r, 4);
        const int k = kActAt[i] / 8;
        const uint8x16_t idx =
            vcombine_u8(vdup_n_u8(static_cast<uint8_t>(k)), vdup_n_u8(static_cast<uint8_t>(4 + k)));
        const uint8x16_t hb = vandq_u8(vtstq_u8(vqtbl1q_u8(qh, idx), bits), b4);
        q[i][v] = vreinterpretq_s8_u8(vorrq_u8(nib, hb));
      }
    }
  }
};
struct PackQ8_0 {
  static constexpr size_t kBlockBytes = 8 * sizeof(BlockQ8_0);
  static constexpr int kActAt[4] = {0, 8, 16, 24};
  static constexpr int kOffset = 0;
  static void get(const uint8_t* blk, int8x16_t (*q)[4]) {
    for (int i = 0; i < 4; ++i)
      for (int v = 0; v < 4; ++v)
        q[i][v] = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 16 + 64 * i + 16 * v));
  }
};

// the 8 rows' f16 scales at blk as f32: rows 0..3, rows 4..7
inline void packed_row_scales(const uint8_t* blk, float32x4_t& d0, float32x4_t& d1) {
  const uint16x8_t h = vld1q_u16(reinterpret_cast<const uint16_t*>(blk));
  d0 = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
  d1 = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
}

// -kOffset * (sum of a Q8_0 block's 32 activations)
template <class P>
inline int32_t act_offset(const BlockQ8_0& b) {
  if constexpr (P::kOffset == 0) return 0;
  const int16x8_t s = vaddq_s16(vpaddlq_s8(vld1q_s8(b.qs)), vpaddlq_s8(vld1q_s8(b.qs + 16)));
  return -P::kOffset * vaddlvq_s16(s);
}

// Per token and block, what the sdot tile loads (made once per call): the 8 activation bytes
// of each run, duplicated to 16 (a plain load then, not a load and a lane insert), and the
// int32 start [act_offset, 0, act_offset, 0] (one offset per row's lane pair).
constexpr size_t kSdotActBytes = 4 * 16 + 16;

template <class P>
void prepare_sdot_act(const BlockQ8_0& x, int8_t* a) {
  for (int i = 0; i < 4; ++i) {
    std::memcpy(a + 16 * i, x.qs + P::kActAt[i], 8);
    std::memcpy(a + 16 * i + 8, x.qs + P::kActAt[i], 8);
  }
  const int32_t o[4] = {act_offset<P>(x), 0, act_offset<P>(x), 0};
  std::memcpy(a + 64, o, sizeof(o));
}

// sdot: one group of 8 packed rows x NT tokens -> out[k][r]; xa[k]: token k's prepared
// activations (prepare_sdot_act, per block), xd[k] its per-block scales as f32.
template <class P, int NT>
void packed_sdot_tile(const uint8_t* grp, const int8_t* const* xa, const float* const* xd,
                      int64_t nb, float (*out)[kPackRows]) {
  float32x4_t acc[NT][2];
  for (int k = 0; k < NT; ++k) acc[k][0] = acc[k][1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    HPL_MCA_BEGIN();
    const uint8_t* blk = grp + b * P::kBlockBytes;
    int8x16_t q[4][4];
    P::get(blk, q);
    float32x4_t d0, d1;
    packed_row_scales(blk, d0, d1);
    for (int k = 0; k < NT; ++k) {
      const int8_t* a = xa[k] + b * kSdotActBytes;
      const int32x4_t o = vld1q_s32(reinterpret_cast<const int32_t*>(a + 64));
      int32x4_t s[4] = {o, o, o, o};
      for (int i = 0; i < 4; ++i) {
        const int8x16_t ai = vld1q_s8(a + 16 * i);
        for (int v = 0; v < 4; ++v) s[v] = vdotq_s32(s[v], q[i][v], ai);
      }
      const float dx = xd[k][b];
      acc[k][0] = vfmaq_f32(acc[k][0], vcvtq_f32_s32(vpaddq_s32(s[0], s[1])), vmulq_n_f32(d0, dx));
      acc[k][1] = vfmaq_f32(acc[k][1], vcvtq_f32_s32(vpaddq_s32(s[2], s[3])), vmulq_n_f32(d1, dx));
    }
    HPL_MCA_END();
  }
  for (int k = 0; k < NT; ++k) {
    vst1q_f32(out[k], acc[k][0]);
    vst1q_f32(out[k] + 4, acc[k][1]);
  }
}

template <class P>
struct PackedSdotTile {
  const int8_t* xa;  // per token: nb * kSdotActBytes
  const float* xd;   // per token: nb scales
  int64_t nb;
  template <int NT>
  void run(const uint8_t* grp, int64_t t0, float (*out)[kPackRows]) const {
    const int8_t* ap[NT];
    const float* dp[NT];
    for (int k = 0; k < NT; ++k) {
      ap[k] = xa + (t0 + k) * nb * kSdotActBytes;
      dp[k] = xd + (t0 + k) * nb;
    }
    packed_sdot_tile<P, NT>(grp, ap, dp, nb, out);
  }
};

// W (rows, n) packed (Q4_0_X8, Q5_0_X8, Q8_0_X8), rows [r0, r1) @ X (ntok, n) Q8_0 -> Y, sdot.
template <class P>
void packed_sdot_matmul(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                        size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  const int64_t nb = n / kQK8_0;
  thread_local std::vector<int8_t> xa_buf;
  thread_local std::vector<float> xd_buf;
  xa_buf.resize(static_cast<size_t>(ntok * nb) * kSdotActBytes);
  xd_buf.resize(static_cast<size_t>(ntok * nb));
  const auto* xb = static_cast<const uint8_t*>(xq);
  for (int64_t t = 0; t < ntok; ++t) {
    const auto* xr = reinterpret_cast<const BlockQ8_0*>(xb + t * x_stride);
    for (int64_t b = 0; b < nb; ++b) {
      xd_buf[t * nb + b] = h2f(xr[b].d);
      prepare_sdot_act<P>(xr[b], xa_buf.data() + (t * nb + b) * kSdotActBytes);
    }
  }
  detail::run_packed_groups<kPackTok>(PackedSdotTile<P>{xa_buf.data(), xd_buf.data(), nb}, w,
                                      w_stride, y, y_stride, r0, r1, ntok);
}

// --- packed gemm (ntok >= 2): unpack each group once per call, then stream the tokens -------
// Each group of 8 packed rows is unpacked kPackChunk blocks at a time into a small scratch
// (signed int8 weights in the order the instruction wants, f32 row scales) and the tokens then
// run over that chunk in tiles of 4 rows x 8 tokens: the unpack is paid once per group and call
// instead of once per token tile, and the tiles' loops are int8 dots and two FMAs per 4
// outputs, the same for Q4_0, Q5_0 and Q8_0.
// Scaling without scvtf: each int32 block sum s starts at kMagic, the bits of M = 1.5 * 2^23,
// so (|s| < 2^22; a block has |s| <= 32 * 128 * 128) its bits are the float F = M + s exactly.
// fma(-M dw, F, dw) = s dw rounded once (-M dw is exact: dw is an f16 value), then
// acc += (s dw) dx.
constexpr int kPackChunk = 32;  // blocks per scratch chunk: 8 rows x 1024 weights, ~10 KB
constexpr int kQuadTok = 8;     // tokens per gemm tile (4 rows)
constexpr int32_t kMagic = 0x4B400000;
constexpr float kMagicF = 12582912.0f;  // the float whose bits are kMagic

// a packed block's 16 signed weight vectors, q[i][v] as P::get (rows 2v, 2v + 1, elements
// kActAt[i]..+7), with P::kOffset taken off
template <class P>
inline void signed_runs(const uint8_t* blk, int8x16_t (*q)[4]) {
  P::get(blk, q);
  if constexpr (P::kOffset != 0) {
    const int8x16_t off = vdupq_n_s8(P::kOffset);
    for (int i = 0; i < 4; ++i)
      for (int v = 0; v < 4; ++v) q[i][v] = vsubq_s8(q[i][v], off);
  }
}

// Rows [r0, r1) of packed W @ X -> Y (ntok >= 2). unpack(blk, dst) writes one block's scratch
// (kScratch bytes: row quad 0's kScratch / 2, then quad 1's); tile.run<NT>(quad, nbc, t0, b0,
// acc) adds the chunk [b0, b0 + nbc) of one row quad (its scratch at quad, blocks kScratch
// apart) and tokens t0..t0 + NT - 1 to acc[k][0..3].
template <class P, class Tile, class Unpack>
void run_packed_chunks(const Tile& tile, Unpack unpack, const void* w, size_t w_stride, float* y,
                       size_t y_stride, int64_t nb, int64_t r0, int64_t r1, int64_t ntok) {
  thread_local std::vector<int8_t> scratch;
  thread_local std::vector<float> acc_buf;
  scratch.resize(kPackChunk * Tile::kScratch);
  acc_buf.resize(static_cast<size_t>(ntok) * kPackRows);
  auto* acc = reinterpret_cast<float(*)[kPackRows]>(acc_buf.data());
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int64_t g = r0 / kPackRows; g * kPackRows < r1; ++g) {
    const uint8_t* grp = wb + g * kPackRows * w_stride;
    const int64_t ra = std::max(r0, g * kPackRows), rb = std::min(r1, (g + 1) * kPackRows);
    const int h0 = ra - g * kPackRows < 4 ? 0 : 1, h1 = rb - g * kPackRows > 4 ? 2 : 1;
    std::fill(acc_buf.begin(), acc_buf.end(), 0.0f);
    for (int64_t b0 = 0; b0 < nb; b0 += kPackChunk) {
      const int64_t nbc = std::min<int64_t>(kPackChunk, nb - b0);
      for (int64_t b = 0; b < nbc; ++b)
        unpack(grp + (b0 + b) * P::kBlockBytes, scratch.data() + b * Tile::kScratch);
      for (int h = h0; h < h1; ++h) {
        for (int64_t t0 = 0; t0 < ntok; t0 += kQuadTok) {
          const int nt = static_cast<int>(std::min<int64_t>(kQuadTok, ntok - t0));
          detail::run_packed_n<kQuadTok>(tile, nt, scratch.data() + h * Tile::kScratch / 2, nbc, t0,
                                         b0,
                                         reinterpret_cast<float(*)[kPackRows]>(&acc[t0][4 * h]));
        }
      }
    }
    for (int64_t k = 0; k < ntok; ++k)
      for (int64_t r = ra; r < rb; ++r) y[k * y_stride + r] = acc[k][r - g * kPackRows];
  }
}

// acc += fma(-M dw, F, dw) * dx: s (the int32 sum started at kMagic) times dw, times dx
inline float32x4_t scale_acc(float32x4_t acc, int32x4_t s, float32x4_t dw, float32x4_t mdw,
                             float32x4_t dx) {
  return vfmaq_f32(acc, vfmaq_f32(mdw, vreinterpretq_f32_s32(s), dw), dx);
}

// row scales of a packed block: dw (rows 4h..4h + 3) and -M dw
inline void quad_scales(const uint8_t* blk, int h, float32x4_t& dw, float32x4_t& mdw) {
  float32x4_t d0, d1;
  packed_row_scales(blk, d0, d1);
  dw = h == 0 ? d0 : d1;
  mdw = vmulq_n_f32(dw, -kMagicF);
}

#if HPL_NEON_LEVEL == 1
// sdot by lane. Scratch per block and row quad h: dw | w[j], j = 0..7 | -M dw x kQuadTok:
// lane r of w[j] holds row 4h + r's elements 4j..4j + 3, so sdot of w[j] with lane j % 4 of
// the token's elements 16 * (j / 4).. gives the 4 rows at once (no duplicated activations, no
// pairwise adds). -M dw is the FMA's addend, which it overwrites: one copy per token is a
// load rather than a register move.
constexpr size_t kLaneQuad = 16 + 128 + 16 * kQuadTok;
// Activations per tile of kQuadTok tokens and block, made once per call: d[k] f32 x 8 |
// per token k: q[0..31] | kMagic x 4 (the sum's start; tokens past ntok are zeros).
constexpr size_t kLaneTokAct = 32 + 16;
constexpr size_t kLaneAct = 32 + kQuadTok * kLaneTokAct;

template <class P>
void unpack_lane(const uint8_t* blk, int8_t* dst) {
  int8x16_t q[4][4];
  signed_runs<P>(blk, q);
  for (int h = 0; h < 2; ++h) {
    int8_t* quad = dst + h * kLaneQuad;
    float32x4_t dw, mdw;
    quad_scales(blk, h, dw, mdw);
    vst1q_f32(reinterpret_cast<float*>(quad), dw);
    for (int k = 0; k < kQuadTok; ++k) vst1q_f32(reinterpret_cast<float*>(quad + 144) + 4 * k, mdw);
    for (int i = 0; i < 4; ++i) {
      const int j = P::kActAt[i] / 4;
      const int32x4_t a = vreinterpretq_s32_s8(q[i][2 * h]);
      const int32x4_t c = vreinterpretq_s32_s8(q[i][2 * h + 1]);
      vst1q_s8(quad + 16 + 16 * j, vreinterpretq_s8_s32(vuzp1q_s32(a, c)));
      vst1q_s8(quad + 16 + 16 * (j + 1), vreinterpretq_s8_s32(vuzp2q_s32(a, c)));
    }
  }
}

// GCC 12's schedule for in-order cores (its A55 and generic tunings) lays each token's sdot
// chain out serially, and it pairs adjacent q loads into ldp (6 cycles on LLVM's A55 model, 2
// ldr q take 2): an in-order Cortex-A55 then waits out every sdot. Its A76 schedule
// interleaves the tokens' chains, which in-order cores need and out-of-order ones do not mind
// (bench/mca_packed_neon.sh: 74.8 -> 31 cycles per 256 weights x token on the A55 model, 13.1
// -> 12.4 on the A76's). Clang schedules on its own.
#if defined(__GNUC__) && !defined(__clang__)
#define HPL_LANE_TILE_SCHEDULE __attribute__((target("tune=cortex-a76"), optimize("no-peephole2")))
#else
#define HPL_LANE_TILE_SCHEDULE
#endif

// Tokens 2P, 2P + 1 of a lane_sdot_tile block: acc[2P], acc[2P + 1] += their 4 rows' block
// dots, scaled. xb: the token tile's activations of this block, blk: the row quad's scratch
// block. The two tokens' sdot chains are interleaved for in-order cores (Cortex-A55), which
// would otherwise wait out each sdot's latency.
template <int P>
inline void lane_sdot_pair(float32x4_t* acc, const int8_t* blk, const int8_t* xb,
                           const int8x16_t* wv, float32x4_t dw, float32x4_t dx) {
  const int8_t* a = xb + 32 + 2 * P * kLaneTokAct;
  const int8_t* c = a + kLaneTokAct;
  const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
  const int8x16_t c0 = vld1q_s8(c), c1 = vld1q_s8(c + 16);
  int32x4_t s = vld1q_s32(reinterpret_cast<const int32_t*>(a + 32));
  int32x4_t t = vld1q_s32(reinterpret_cast<const int32_t*>(c + 32));
  s = vdotq_laneq_s32(s, wv[0], a0, 0);
  t = vdotq_laneq_s32(t, wv[0], c0, 0);
  s = vdotq_laneq_s32(s, wv[1], a0, 1);
  t = vdotq_laneq_s32(t, wv[1], c0, 1);
  s = vdotq_laneq_s32(s, wv[2], a0, 2);
  t = vdotq_laneq_s32(t, wv[2], c0, 2);
  s = vdotq_laneq_s32(s, wv[3], a0, 3);
  t = vdotq_laneq_s32(t, wv[3], c0, 3);
  s = vdotq_laneq_s32(s, wv[4], a1, 0);
  t = vdotq_laneq_s32(t, wv[4], c1, 0);
  s = vdotq_laneq_s32(s, wv[5], a1, 1);
  t = vdotq_laneq_s32(t, wv[5], c1, 1);
  s = vdotq_laneq_s32(s, wv[6], a1, 2);
  t = vdotq_laneq_s32(t, wv[6], c1, 2);
  s = vdotq_laneq_s32(s, wv[7], a1, 3);
  t = vdotq_laneq_s32(t, wv[7], c1, 3);
  const auto* mdw = reinterpret_cast<const float*>(blk + 144) + 8 * P;
  const float32x4_t sw = vfmaq_f32(vld1q_f32(mdw), vreinterpretq_f32_s32(s), dw);
  const float32x4_t tw = vfmaq_f32(vld1q_f32(mdw + 4), vreinterpretq_f32_s32(t), dw);
  acc[2 * P] = vfmaq_laneq_f32(acc[2 * P], sw, dx, (2 * P) % 4);
  acc[2 * P + 1] = vfmaq_laneq_f32(acc[2 * P + 1], tw, dx, (2 * P + 1) % 4);
}

// 4 rows x NT tokens over nbc scratch blocks (quad: the row quad's scratch, blocks
// 2 * kLaneQuad apart); xa: the token tile's prepared activations at the chunk's first block.
// acc[k][0..3] += the chunk's dots. (Token pairs are unrolled by index_sequence so that every
// accumulator index is a constant and they all stay in registers; an odd NT computes a zero
// token past the end, which is not stored.)
template <int NT, int... P>
HPL_LANE_TILE_SCHEDULE void lane_sdot_tile(const int8_t* quad, const int8_t* xa, int64_t nbc,
                                           float (*acc_io)[kPackRows],
                                           std::integer_sequence<int, P...>) {
  float32x4_t acc[2 * sizeof...(P)];
  ((acc[2 * P] = vld1q_f32(acc_io[2 * P]),
    acc[2 * P + 1] = 2 * P + 1 < NT ? vld1q_f32(acc_io[2 * P + 1]) : vdupq_n_f32(0.0f)),
   ...);
  for (int64_t b = 0; b < nbc; ++b) {
    HPL_MCA_BEGIN();
    const int8_t* blk = quad + b * 2 * kLaneQuad;
    const int8_t* xb = xa + b * kLaneAct;
    const float32x4_t dw = vld1q_f32(reinterpret_cast<const float*>(blk));
    int8x16_t wv[8];
    for (int j = 0; j < 8; ++j) wv[j] = vld1q_s8(blk + 16 + 16 * j);
    const float32x4_t dx[2] = {vld1q_f32(reinterpret_cast<const float*>(xb)),
                               vld1q_f32(reinterpret_cast<const float*>(xb) + 4)};
    (lane_sdot_pair<P>(acc, blk, xb, wv, dw, dx[P / 2]), ...);
    HPL_MCA_END();
  }
  ((vst1q_f32(acc_io[2 * P], acc[2 * P]),
    2 * P + 1 < NT ? vst1q_f32(acc_io[2 * P + 1], acc[2 * P + 1]) : void()),
   ...);
}
template <int NT>
void lane_sdot_tile(const int8_t* quad, const int8_t* xa, int64_t nbc, float (*acc_io)[kPackRows]) {
  lane_sdot_tile<NT>(quad, xa, nbc, acc_io, std::make_integer_sequence<int, (NT + 1) / 2>{});
}

struct LaneSdotTile {
  static constexpr size_t kScratch = 2 * kLaneQuad;
  const int8_t* xa;  // per token tile: nb * kLaneAct
  int64_t nb;
  template <int NT>
  void run(const int8_t* quad, int64_t nbc, int64_t t0, int64_t b0, float (*acc)[kPackRows]) const {
    lane_sdot_tile<NT>(quad, xa + ((t0 / kQuadTok) * nb + b0) * kLaneAct, nbc, acc);
  }
};

// W (rows, n) packed, rows [r0, r1) @ X (ntok, n) Q8_0 -> Y, sdot by lane (ntok >= 2).
// Below kLaneMinTok tokens the per-call unpack (bench/mca_packed_neon.sh: ~70 cycles per 256
// weights on the A76 model) costs more than it saves over the 8 x 4 tile that unpacks in its
// loop (~9 per 256 weights x token), so those calls take packed_sdot_matmul.
template <class P>
void packed_lane_matmul(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                        size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  constexpr int64_t kLaneMinTok = 8;
  if (ntok < kLaneMinTok) {
    packed_sdot_matmul<P>(w, w_stride, xq, x_stride, y, y_stride, n, r0, r1, ntok);
    return;
  }
  const int64_t nb = n / kQK8_0, ntiles = (ntok + kQuadTok - 1) / kQuadTok;
  thread_local std::vector<int8_t> xa_buf;
  xa_buf.assign(static_cast<size_t>(ntiles * nb) * kLaneAct, 0);
  const auto* xb = static_cast<const uint8_t*>(xq);
  for (int64_t t = 0; t < ntok; ++t) {
    const auto* xr = reinterpret_cast<const BlockQ8_0*>(xb + t * x_stride);
    const int64_t k = t % kQuadTok;
    for (int64_t b = 0; b < nb; ++b) {
      int8_t* a = xa_buf.data() + ((t / kQuadTok) * nb + b) * kLaneAct;
      reinterpret_cast<float*>(a)[k] = h2f(xr[b].d);
      std::memcpy(a + 32 + k * kLaneTokAct, xr[b].qs, 32);
      vst1q_s32(reinterpret_cast<int32_t*>(a + 32 + k * kLaneTokAct + 32), vdupq_n_s32(kMagic));
    }
  }
  run_packed_chunks<P>(LaneSdotTile{xa_buf.data(), nb}, unpack_lane<P>, w, w_stride, y, y_stride,
                       nb, r0, r1, ntok);
}
#endif

#if HPL_NEON_LEVEL >= 2
// smmla. Scratch per block and row quad h (row pairs v = 2h, 2h + 1): dw[v] = [d_2v, d_2v,
// d_2v+1, d_2v+1] x 2 | -M dw[v] x 2 | q[g][v] for g = 0..3 (activation group g: elements
// 8g..8g + 7), v = 2h, 2h + 1. Activations per token pair and block, made once per call: 4
// groups [t0 q[8g..8g+7], t1 q[8g..8g+7]] | [d_t0, d_t1, d_t0, d_t1] | kMagic x 4 x 2.
// Accumulator lanes: [row 2v t0, row 2v t1, row 2v + 1 t0, row 2v + 1 t1].
constexpr size_t kMmlaQuad = 64 + 128;
constexpr size_t kMmlaAct = 64 + 16 + 32;

template <class P>
void unpack_mmla(const uint8_t* blk, int8_t* dst) {
  float32x4_t d0, d1;
  packed_row_scales(blk, d0, d1);
  const float32x4_t dw[4] = {vzip1q_f32(d0, d0), vzip2q_f32(d0, d0), vzip1q_f32(d1, d1),
                             vzip2q_f32(d1, d1)};
  int8x16_t q[4][4];
  signed_runs<P>(blk, q);
  for (int h = 0; h < 2; ++h) {
    int8_t* quad = dst + h * kMmlaQuad;
    auto* f = reinterpret_cast<float*>(quad);
    for (int u = 0; u < 2; ++u) {
      vst1q_f32(f + 4 * u, dw[2 * h + u]);
      vst1q_f32(f + 8 + 4 * u, vmulq_n_f32(dw[2 * h + u], -kMagicF));
    }
    for (int i = 0; i < 4; ++i)
      for (int u = 0; u < 2; ++u)
        vst1q_s8(quad + 64 + 16 * (2 * (P::kActAt[i] / 8) + u), q[i][2 * h + u]);
  }
}

// 4 rows x NP token pairs over nbc scratch blocks -> acc[2p + j][0..3] += (the first nt
// tokens); xp[p]: pair p's prepared activations at the chunk's first block.
template <int NP>
void mmla_tile(const int8_t* quad, const int8_t* const* xp, int64_t nbc, float (*acc_io)[kPackRows],
               int nt) {
  float32x4_t acc[NP][2];
  for (int p = 0; p < NP; ++p) acc[p][0] = acc[p][1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nbc; ++b) {
    HPL_MCA_BEGIN();
    const int8_t* blk = quad + b * 2 * kMmlaQuad;
    const auto* f = reinterpret_cast<const float*>(blk);
    const float32x4_t dw[2] = {vld1q_f32(f), vld1q_f32(f + 4)};
    const float32x4_t mdw[2] = {vld1q_f32(f + 8), vld1q_f32(f + 12)};
    int8x16_t q[4][2];
    for (int g = 0; g < 4; ++g)
      for (int u = 0; u < 2; ++u) q[g][u] = vld1q_s8(blk + 64 + 16 * (2 * g + u));
    for (int p = 0; p < NP; ++p) {
      const int8_t* a = xp[p] + b * kMmlaAct;
      const float32x4_t dx = vld1q_f32(reinterpret_cast<const float*>(a + 64));
      int32x4_t s[2] = {vld1q_s32(reinterpret_cast<const int32_t*>(a + 80)),
                        vld1q_s32(reinterpret_cast<const int32_t*>(a + 96))};
      for (int g = 0; g < 4; ++g) {
        const int8x16_t ag = vld1q_s8(a + 16 * g);
        for (int u = 0; u < 2; ++u) s[u] = vmmlaq_s32(s[u], q[g][u], ag);
      }
      for (int u = 0; u < 2; ++u) acc[p][u] = scale_acc(acc[p][u], s[u], dw[u], mdw[u], dx);
    }
    HPL_MCA_END();
  }
  for (int p = 0; p < NP; ++p) {
    for (int u = 0; u < 2; ++u) {
      float l[4];
      vst1q_f32(l, acc[p][u]);
      acc_io[2 * p][2 * u] += l[0];
      acc_io[2 * p][2 * u + 1] += l[2];
      if (2 * p + 1 < nt) {
        acc_io[2 * p + 1][2 * u] += l[1];
        acc_io[2 * p + 1][2 * u + 1] += l[3];
      }
    }
  }
}

struct MmlaTile {
  static constexpr size_t kScratch = 2 * kMmlaQuad;
  const int8_t* xp;  // per token pair: nb * kMmlaAct
  int64_t nb;
  template <int NT>
  void run(const int8_t* quad, int64_t nbc, int64_t t0, int64_t b0, float (*acc)[kPackRows]) const {
    constexpr int NP = (NT + 1) / 2;  // an odd last token is paired with zeros
    const int8_t* pp[NP];
    for (int p = 0; p < NP; ++p) pp[p] = xp + ((t0 / 2 + p) * nb + b0) * kMmlaAct;
    mmla_tile<NP>(quad, pp, nbc, acc, NT);
  }
};

// W (rows, n) packed, rows [r0, r1) @ X (ntok, n) Q8_0 -> Y, smmla (ntok >= 2).
// (2 tokens: the per-call unpack, ~35 cycles per 256 weights on the N2 model, makes this 25
// per 256 weights x token, the in-loop sdot tile 20.5.)
template <class P>
void packed_mmla_matmul(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                        size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  constexpr int64_t kMmlaMinTok = 3;
  if (ntok < kMmlaMinTok) {
    packed_sdot_matmul<P>(w, w_stride, xq, x_stride, y, y_stride, n, r0, r1, ntok);
    return;
  }
  static_assert(kQuadTok % 2 == 0, "token tiles are whole pairs");
  const int64_t nb = n / kQK8_0, npairs = (ntok + 1) / 2;
  thread_local std::vector<int8_t> xp_buf;
  xp_buf.assign(static_cast<size_t>(npairs * nb) * kMmlaAct, 0);
  const auto* xb = static_cast<const uint8_t*>(xq);
  for (int64_t t = 0; t < ntok; ++t) {
    const auto* xr = reinterpret_cast<const BlockQ8_0*>(xb + t * x_stride);
    const int64_t p = t / 2, j = t % 2;
    for (int64_t b = 0; b < nb; ++b) {
      int8_t* a = xp_buf.data() + (p * nb + b) * kMmlaAct;
      for (int g = 0; g < 4; ++g) std::memcpy(a + 16 * g + 8 * j, xr[b].qs + 8 * g, 8);
      auto* dx = reinterpret_cast<float*>(a + 64);
      dx[j] = dx[2 + j] = h2f(xr[b].d);
      vst1q_s32(reinterpret_cast<int32_t*>(a + 80), vdupq_n_s32(kMagic));
      vst1q_s32(reinterpret_cast<int32_t*>(a + 96), vdupq_n_s32(kMagic));
    }
  }
  run_packed_chunks<P>(MmlaTile{xp_buf.data(), nb}, unpack_mmla<P>, w, w_stride, y, y_stride, nb,
                       r0, r1, ntok);
}
#endif

template <DType T, class P>
WeightKernels packed_kernels() {
#if HPL_NEON_LEVEL >= 2
  return {T, DType::Q8_0, packed_sdot_matmul<P>, packed_mmla_matmul<P>,
          "4 rows x 4 token pairs (smmla)"};
#else
  return {T, DType::Q8_0, packed_sdot_matmul<P>, packed_lane_matmul<P>,
          "4 rows x 8 tokens (sdot by lane; 8 x 4 under 8 tokens)"};
#endif
}
#endif

#if HPL_NEON_LEVEL >= 1
#include "kernel/packed_kquant_neon.inc"  // Q4_K_X8, Q5_K_X8, Q6_K_X8: sdot and smmla tiles
#endif

template <DType T, DType Act, class Tile, bool kActScales = false>
WeightKernels tile_kernels() {
  constexpr MatmulFn f = tile_matmul<T, Tile, kActScales>;
  return {T, Act, f, f, "1 row x 4 tokens (sdot)"};
}

template <DType T, class Block, class Unpack>
WeightKernels q8_kernels() {
  WeightKernels k = tile_kernels<T, DType::Q8_0, TileQ8_0<Block, Unpack>, true>();
#if HPL_NEON_LEVEL >= 2
  k.gemm = q8_gemm<T, Block, Unpack>;
  k.gemm_tile = "2 rows x 2 token pairs (smmla)";
#endif
  return k;
}

WeightKernels q4k_kernels() {
  WeightKernels k = tile_kernels<DType::Q4_K, DType::Q8_K, TileK4<false>>();
#if HPL_NEON_LEVEL >= 2
  k.gemm = q4k_gemm;
  k.gemm_tile = "2 rows x 2 token pairs (smmla)";
#endif
  return k;
}

const WeightKernels kKernels[] = {
    q8_kernels<DType::Q4_0, BlockQ4_0, UnpackQ4_0>(),
    q8_kernels<DType::Q5_0, BlockQ5_0, UnpackQ5_0>(),
    q8_kernels<DType::Q8_0, BlockQ8_0, UnpackQ8_0>(),
    q4k_kernels(),
    tile_kernels<DType::Q5_K, DType::Q8_K, TileK4<true>>(),
    tile_kernels<DType::Q6_K, DType::Q8_K, TileQ6_K>(),
    tile_kernels<DType::F16, DType::F32, TileFloat<f16_t>>(),
    tile_kernels<DType::BF16, DType::F32, TileFloat<Bf16>>(),
    tile_kernels<DType::F32, DType::F32, TileFloat<float>>(),
#if HPL_NEON_LEVEL >= 1
    // (the ARMv8.0 body keeps the GGUF layouts: without sdot the packed tile has no edge)
    packed_kernels<DType::Q4_0_X8, PackQ4_0>(),
    packed_kernels<DType::Q5_0_X8, PackQ5_0>(),
    packed_kernels<DType::Q8_0_X8, PackQ8_0>(),
    packed_k_kernels<DType::Q4_K_X8, 4>(),
    packed_k_kernels<DType::Q5_K_X8, 5>(),
    packed_k_kernels<DType::Q6_K_X8, 6>(),
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

}  // namespace hpl::kernel::HPL_NEON_BODY

#if HPL_NEON_LEVEL >= 1
HPL_TARGET_END()
#endif

#endif  // HPL_ARM64
