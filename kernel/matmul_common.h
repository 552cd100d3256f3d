// Helpers shared by the matmul bodies (ref, avx2.., neon..): K-quant scale unpacking, argument
// checks, and the fp16 product of scales. Internal to kernel/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernel/ops.h"
#include "kernel/repack.h"
#include "kernel/types.h"

namespace hpl::kernel::detail {

// Q4_K / Q5_K: 8 sub-blocks of 32, each a 6-bit scale and a 6-bit min, packed in 12 bytes:
// bytes 0..3 low 6 bits = scales 0..3, bytes 4..7 low 6 bits = mins 0..3, bytes 8..11 low
// nibble = low 4 bits of scales 4..7, high nibble = low 4 bits of mins 4..7; the top 2 bits
// of bytes 0..3 / 4..7 are the high bits of scales 4..7 / mins 4..7.
inline void unpack_k4_scales(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 0xF) | ((s[j] >> 6) << 4));
    mn[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
  }
}

// Throws std::invalid_argument naming the problem when a matmul call is malformed.
inline void check_matmul_args(DType wt, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  if (!matmul_supported(wt)) {
    throw std::invalid_argument(std::string("matmul: unsupported weight type ") + type_name(wt));
  }
  const int64_t blk = type_traits(wt).block_elems;
  if (n <= 0 || n % blk != 0) {
    throw std::invalid_argument("matmul: n = " + std::to_string(n) +
                                " is not a positive multiple of " + std::to_string(blk) + " for " +
                                type_name(wt));
  }
  if (r0 < 0 || r1 < r0 || ntok < 0) {
    throw std::invalid_argument("matmul: bad row range [" + std::to_string(r0) + ", " +
                                std::to_string(r1) + ") or ntok " + std::to_string(ntok));
  }
}

// The entry for wt in a body's per-type table, or nullptr.
template <size_t N>
inline const WeightKernels* find_kernels(const WeightKernels (&table)[N], DType wt) {
  for (const WeightKernels& k : table)
    if (k.type == wt) return &k;
  return nullptr;
}

// Every body's matmul: check, then the type's gemv (one token) or gemm (more).
inline void matmul_with(const WeightKernels* k, DType wt, const void* w, size_t w_stride,
                        const void* xq, size_t x_stride, float* y, size_t y_stride, int64_t n,
                        int64_t r0, int64_t r1, int64_t ntok) {
  check_matmul_args(wt, n, r0, r1, ntok);
  if (k == nullptr) {
    throw std::invalid_argument(std::string("matmul: this body lacks weight type ") +
                                type_name(wt));
  }
  (ntok == 1 ? k->gemv : k->gemm)(w, w_stride, xq, x_stride, y, y_stride, n, r0, r1, ntok);
}

inline void check_act_args(DType act, int64_t n) {
  if (act != DType::Q8_0 && act != DType::Q8_K && act != DType::F32) {
    throw std::invalid_argument(std::string("quantize_act_row: unsupported activation type ") +
                                type_name(act));
  }
  const int64_t blk = type_traits(act).block_elems;
  if (n < 0 || n % blk != 0) {
    throw std::invalid_argument("quantize_act_row: n = " + std::to_string(n) +
                                " is not a multiple of " + std::to_string(blk) + " for " +
                                type_name(act));
  }
}

// X (n,) f32 -> one activation row of type act (Q8_0 / Q8_K blocks, or F32 copied), with the
// calling ISA's block quantizers.
template <typename QuantizeQ8_0, typename QuantizeQ8_K>
inline void quantize_act_row_with(DType act, const float* x, void* y, int64_t n,
                                  QuantizeQ8_0 quantize_q8_0, QuantizeQ8_K quantize_q8_k) {
  check_act_args(act, n);
  switch (act) {
    case DType::Q8_0:
      quantize_q8_0(x, static_cast<BlockQ8_0*>(y), n / kQK8_0);
      break;
    case DType::Q8_K:
      quantize_q8_k(x, static_cast<BlockQ8_K*>(y), n / kQKK);
      break;
    default:
      std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
      break;
  }
}

// Tile::run<nt>(args...) for nt tokens in [1, 4]: the tile's token count is a template argument
// so its accumulators stay in registers.
template <typename Tile, typename... Args>
inline void run_tile_n(int nt, Args... args) {
  switch (nt) {
    case 4:
      Tile::template run<4>(args...);
      break;
    case 3:
      Tile::template run<3>(args...);
      break;
    case 2:
      Tile::template run<2>(args...);
      break;
    default:
      Tile::template run<1>(args...);
      break;
  }
}

// W rows [r0, r1) x ntok tokens, in blocks of kRowBlock rows (their weights stay in L1 while
// every token chunk passes over them) x chunks of kMaxTok tokens: y[t * ys + r] = the tile's
// dot of row w + r * ws with x + t * xs, given aux_at(t), the per-token data the tile wants
// (made once per call by the caller; nullptr when none).
template <typename Tile, int kMaxTok, int kRowBlock, typename AuxAt>
inline void run_tile_blocks(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y,
                            size_t ys, int64_t nb, int64_t n, int64_t r0, int64_t r1, int64_t ntok,
                            AuxAt aux_at) {
  static_assert(kMaxTok >= 1 && kMaxTok <= 4, "run_tile_n handles 1..4 tokens");
  using Aux = decltype(aux_at(int64_t{0}));
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t re = rb + kRowBlock < r1 ? rb + kRowBlock : r1;
    for (int64_t t0 = 0; t0 < ntok; t0 += kMaxTok) {
      const int nt = static_cast<int>(ntok - t0 < kMaxTok ? ntok - t0 : kMaxTok);
      const uint8_t* xp[kMaxTok];
      Aux ap[kMaxTok] = {};
      for (int k = 0; k < nt; ++k) {
        xp[k] = x + (t0 + k) * xs;
        ap[k] = aux_at(t0 + k);
      }
      for (int64_t r = rb; r < re; ++r) {
        float out[kMaxTok] = {};
        run_tile_n<Tile>(nt, w + r * ws, xp, ap, nb, n, out);
        for (int k = 0; k < nt; ++k) y[(t0 + k) * ys + r] = out[k];
      }
    }
  }
}

// tile.run<N>(args...) for the token count nt in [N, kTok], N a template argument.
template <int kTok, int N = 1, typename Tile, typename... Args>
inline void run_packed_n(const Tile& tile, int nt, Args... args) {
  if constexpr (N <= kTok) {
    if (nt == N) {
      tile.template run<N>(args...);
    } else {
      run_packed_n<kTok, N + 1>(tile, nt, args...);
    }
  }
}

// Rows [r0, r1) of W, packed in groups of kPackRows rows (group g at w + g * kPackRows *
// w_stride, kernel/repack.h), x ntok tokens -> Y, in tiles of up to kTok tokens:
// tile.run<NT>(group, t0, out) fills out[k][r] for row g * kPackRows + r and token t0 + k.
// Groups that straddle r0 or r1 are computed whole and only their rows in range are stored.
template <int kTok, typename Tile>
inline void run_packed_groups(const Tile& tile, const void* w, size_t w_stride, float* y,
                              size_t y_stride, int64_t r0, int64_t r1, int64_t ntok) {
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int64_t g = r0 / kPackRows; g * kPackRows < r1; ++g) {
    const uint8_t* grp = wb + g * kPackRows * w_stride;
    for (int64_t t0 = 0; t0 < ntok; t0 += kTok) {
      const int nt = static_cast<int>(ntok - t0 < kTok ? ntok - t0 : kTok);
      float out[kTok][kPackRows];
      run_packed_n<kTok>(tile, nt, grp, t0, out);
      const int64_t ra = r0 > g * kPackRows ? r0 : g * kPackRows;
      const int64_t rb = r1 < (g + 1) * kPackRows ? r1 : (g + 1) * kPackRows;
      for (int k = 0; k < nt; ++k)
        for (int64_t r = ra; r < rb; ++r) y[(t0 + k) * y_stride + r] = out[k][r - g * kPackRows];
    }
  }
}

}  // namespace hpl::kernel::detail
