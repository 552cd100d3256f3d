// Block formats -> f32, whole rows, plain scalar loops. Byte-exact with ggml / the gguf
// package: every product is rounded to f32 in the same order as gguf.quants does it, so
// results are bitwise equal (contraction into FMA is switched off below for that reason).
#include <cstring>

#include "kernel/quant.h"
#include "kernel/quant_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace hpl::kernel {
namespace {

using quant_detail::get_scale_min_k4;

// Blocks are copied out with memcpy: input may come from any byte offset of a file.
template <typename Block>
Block load_block(const void* x, int64_t i) {
  Block b;
  std::memcpy(&b, static_cast<const uint8_t*>(x) + i * sizeof(Block), sizeof(Block));
  return b;
}

// Q4_0: y[j] = d * (nibble - 8); low nibbles of qs[0..15] are elems 0..15, high are 16..31.
void dequantize_q4_0(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    auto b = load_block<BlockQ4_0>(x, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((b.qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((b.qs[j] >> 4) - 8);
    }
  }
}

// Q4_1: y[j] = d * nibble + m; nibbles as in Q4_0.
void dequantize_q4_1(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    auto b = load_block<BlockQ4_1>(x, i);
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(b.qs[j] & 0xF) + m;
      y[j + 16] = d * static_cast<float>(b.qs[j] >> 4) + m;
    }
  }
}

// 5th bit of element j of a 32-block: bit j of qh read as little-endian uint32.
inline int q5_high_bit(const uint8_t qh[4], int j) {
  return (qh[j / 8] >> (j % 8)) & 1;
}

// Q5_0: y[j] = d * ((nibble | hbit << 4) - 16); nibbles as in Q4_0, hbit = bit j of qh.
void dequantize_q5_0(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    auto b = load_block<BlockQ5_0>(x, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b.qs[j] & 0xF) | q5_high_bit(b.qh, j) << 4;
      const int q1 = (b.qs[j] >> 4) | q5_high_bit(b.qh, j + 16) << 4;
      y[j] = d * static_cast<float>(q0 - 16);
      y[j + 16] = d * static_cast<float>(q1 - 16);
    }
  }
}

// Q5_1: y[j] = d * (nibble | hbit << 4) + m.
void dequantize_q5_1(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    auto b = load_block<BlockQ5_1>(x, i);
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b.qs[j] & 0xF) | q5_high_bit(b.qh, j) << 4;
      const int q1 = (b.qs[j] >> 4) | q5_high_bit(b.qh, j + 16) << 4;
      y[j] = d * static_cast<float>(q0) + m;
      y[j + 16] = d * static_cast<float>(q1) + m;
    }
  }
}

// Q8_0: y[j] = d * qs[j].
void dequantize_q8_0(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    auto b = load_block<BlockQ8_0>(x, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(b.qs[j]);
  }
}

// Q4_K: 8 sub-blocks of 32; y = (d * sc[s]) * q - (dmin * m[s]), q a nibble. Chunk c of 64
// elements reads qs[32c .. 32c+31]: low nibbles -> sub-block 2c, high nibbles -> 2c+1.
void dequantize_q4_k(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    auto b = load_block<BlockQ4_K>(x, i);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      get_scale_min_k4(2 * c, b.scales, &sc0, &m0);
      get_scale_min_k4(2 * c + 1, b.scales, &sc1, &m1);
      const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
      const uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) y[l] = d0 * static_cast<float>(q[l] & 0xF) - mm0;
      for (int l = 0; l < 32; ++l) y[32 + l] = d1 * static_cast<float>(q[l] >> 4) - mm1;
      y += 64;
    }
  }
}

// Q5_K: as Q4_K with q = nibble | hbit << 4 in [0, 31]; the 5th bit of element l of
// sub-block s is bit s of qh[l].
void dequantize_q5_k(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    auto b = load_block<BlockQ5_K>(x, i);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      get_scale_min_k4(2 * c, b.scales, &sc0, &m0);
      get_scale_min_k4(2 * c + 1, b.scales, &sc1, &m1);
      const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
      const uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) {
        const int q0 = (q[l] & 0xF) | ((b.qh[l] >> (2 * c)) & 1) << 4;
        y[l] = d0 * static_cast<float>(q0) - mm0;
      }
      for (int l = 0; l < 32; ++l) {
        const int q1 = (q[l] >> 4) | ((b.qh[l] >> (2 * c + 1)) & 1) << 4;
        y[32 + l] = d1 * static_cast<float>(q1) - mm1;
      }
      y += 64;
    }
  }
}

// Q6_K: 16 sub-blocks of 16, y[e] = (d * scales[e / 16]) * (q - 32), q 6 bits. Per half h
// of 128 elements (ql + 64h, qh + 32h), for l in [0, 32):
//   e = l      : ql[l] low,       qh[l] bits 0-1      e = l + 32 : ql[l+32] low,  bits 2-3
//   e = l + 64 : ql[l] high,      qh[l] bits 4-5      e = l + 96 : ql[l+32] high, bits 6-7
void dequantize_q6_k(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    auto b = load_block<BlockQ6_K>(x, i);
    const float d = fp16_to_fp32(b.d);
    float ds[16];
    for (int s = 0; s < 16; ++s) ds[s] = d * static_cast<float>(b.scales[s]);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const float* sc = ds + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int q0 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
        const int q1 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
        const int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        const int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        y[l] = sc[l / 16] * static_cast<float>(q0);
        y[l + 32] = sc[2 + l / 16] * static_cast<float>(q1);
        y[l + 64] = sc[4 + l / 16] * static_cast<float>(q2);
        y[l + 96] = sc[6 + l / 16] * static_cast<float>(q3);
      }
      y += 128;
    }
  }
}

// Q8_K: y[j] = d * qs[j], d an f32 (bsums are only used by dot products).
void dequantize_q8_k(const void* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    auto b = load_block<BlockQ8_K>(x, i);
    for (int j = 0; j < kQKK; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
  }
}

}  // namespace

bool dequantize_supported(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row(DType t, const void* x, float* y, int64_t n) {
  if (!dequantize_supported(t)) quant_detail::unsupported("dequantize_row", t);
  quant_detail::check_row("dequantize_row", t, n);
  if (n == 0) return;
  const int64_t nb = n / type_traits(t).block_elems;
  const auto* bytes = static_cast<const uint8_t*>(x);
  switch (t) {
    case DType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        f16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        y[i] = fp16_to_fp32(h);
      }
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        bf16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        y[i] = bf16_to_fp32(h);
      }
      break;
    case DType::Q4_0:
      dequantize_q4_0(x, y, nb);
      break;
    case DType::Q4_1:
      dequantize_q4_1(x, y, nb);
      break;
    case DType::Q5_0:
      dequantize_q5_0(x, y, nb);
      break;
    case DType::Q5_1:
      dequantize_q5_1(x, y, nb);
      break;
    case DType::Q8_0:
      dequantize_q8_0(x, y, nb);
      break;
    case DType::Q4_K:
      dequantize_q4_k(x, y, nb);
      break;
    case DType::Q5_K:
      dequantize_q5_k(x, y, nb);
      break;
    case DType::Q6_K:
      dequantize_q6_k(x, y, nb);
      break;
    case DType::Q8_K:
      dequantize_q8_k(x, y, nb);
      break;
    default:
      quant_detail::unsupported("dequantize_row", t);
  }
}

}  // namespace hpl::kernel
