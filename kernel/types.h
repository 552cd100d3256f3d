// Tensor element types as numbered by GGUF/ggml, their block layouts (byte for byte as
// stored in GGUF files), and fp16/bf16 scalar conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace hpl {

// GGUF tensor type ids (ggml_type). Values are part of the file format.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  // hpl's own repacked layouts (kernel/repack.h): 8 rows interleaved 8 bytes at a time for the
  // int8 tile instructions. Not ggml types (0x1000 + the source type's id, far from ggml's
  // numbering): `hpl pack` stores them in GGUF files that carry the key hpl.packed_layout
  // (gguf/gguf.h); other readers refuse those files, and ours refuses the ids without the key.
  Q4_0_X8 = 0x1002,
  Q5_0_X8 = 0x1006,
  Q8_0_X8 = 0x1008,
  Q4_K_X8 = 0x100C,
  Q5_K_X8 = 0x100D,
  Q6_K_X8 = 0x100E,
};

struct TypeTraits {
  const char* name;     // "q4_K", as ggml spells it
  int64_t block_elems;  // elements per block (1 for plain types)
  size_t block_bytes;   // bytes per block
  bool known;           // a type id GGUF defines (may still be unsupported by our kernels)
};

// True for hpl's packed layouts (Q4_0_X8 .. Q6_K_X8).
inline bool is_packed_type(uint32_t id) {
  switch (static_cast<DType>(id)) {
    case DType::Q4_0_X8:
    case DType::Q5_0_X8:
    case DType::Q8_0_X8:
    case DType::Q4_K_X8:
    case DType::Q5_K_X8:
    case DType::Q6_K_X8:
      return true;
    default:
      return false;
  }
}
inline bool is_packed_type(DType t) {
  return is_packed_type(static_cast<uint32_t>(t));
}

// Rows per interleaved group of a packed type (kernel/repack.h); a packed tensor's row count is
// a multiple of it.
constexpr int kPackRows = 8;

// Traits for any uint32 type id; unknown ids give known == false (also hpl's packed ids).
TypeTraits type_traits(uint32_t type_id);
inline TypeTraits type_traits(DType t) {
  return type_traits(static_cast<uint32_t>(t));
}
inline const char* type_name(DType t) {
  return type_traits(t).name;
}

// Bytes of a row of n elements; n must be a multiple of block_elems.
inline size_t row_bytes(DType t, int64_t n) {
  TypeTraits tr = type_traits(t);
  return static_cast<size_t>(n / tr.block_elems) * tr.block_bytes;
}

constexpr int kQK4_0 = 32;
constexpr int kQK8_0 = 32;
constexpr int kQK5_0 = 32;
constexpr int kQKK = 256;  // K-quant super-block
constexpr int kKScaleBytes = 12;

using f16_t = uint16_t;   // IEEE half bits
using bf16_t = uint16_t;  // bfloat16 bits

struct BlockQ4_0 {
  f16_t d;
  uint8_t qs[kQK4_0 / 2];  // low nibbles: elems 0..15, high nibbles: 16..31
};
struct BlockQ4_1 {
  f16_t d, m;
  uint8_t qs[kQK4_0 / 2];
};
struct BlockQ5_0 {
  f16_t d;
  uint8_t qh[4];  // 5th bit of each of the 32 elements
  uint8_t qs[kQK5_0 / 2];
};
struct BlockQ5_1 {
  f16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};
struct BlockQ8_0 {
  f16_t d;
  int8_t qs[kQK8_0];
};
struct BlockQ4_K {
  f16_t d;                       // super-block scale for the 6-bit scales
  f16_t dmin;                    // super-block scale for the 6-bit mins
  uint8_t scales[kKScaleBytes];  // 8 scales and 8 mins, 6 bits each
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  f16_t d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];  // low 4 bits
  uint8_t qh[kQKK / 4];  // high 2 bits
  int8_t scales[kQKK / 16];
  f16_t d;
};
// Activation format for K-quant dots: fp32 scale, int8 values, sums of each 16 for the min term.
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// IEEE binary16 <-> binary32, exact for every value (reference conversions; SIMD bodies use
// F16C / NEON fp16 instructions and must agree bit for bit).
float fp16_to_fp32(f16_t h);
f16_t fp32_to_fp16(float f);  // round to nearest even
inline float bf16_to_fp32(bf16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
bf16_t fp32_to_bf16(float f);  // round to nearest even, NaN kept quiet

}  // namespace hpl
