#include "kernel/types.h"

namespace hpl {

// long-function: one table row per GGUF type, in the GGUF numbering.
TypeTraits type_traits(uint32_t id) {
  switch (static_cast<DType>(id)) {
    case DType::F32:
      return {"f32", 1, 4, true};
    case DType::F16:
      return {"f16", 1, 2, true};
    case DType::Q4_0:
      return {"q4_0", 32, 18, true};
    case DType::Q4_1:
      return {"q4_1", 32, 20, true};
    case DType::Q5_0:
      return {"q5_0", 32, 22, true};
    case DType::Q5_1:
      return {"q5_1", 32, 24, true};
    case DType::Q8_0:
      return {"q8_0", 32, 34, true};
    case DType::Q8_1:
      return {"q8_1", 32, 36, true};
    case DType::Q2_K:
      return {"q2_K", 256, 84, true};
    case DType::Q3_K:
      return {"q3_K", 256, 110, true};
    case DType::Q4_K:
      return {"q4_K", 256, 144, true};
    case DType::Q5_K:
      return {"q5_K", 256, 176, true};
    case DType::Q6_K:
      return {"q6_K", 256, 210, true};
    case DType::Q8_K:
      return {"q8_K", 256, 292, true};
    case DType::IQ2_XXS:
      return {"iq2_xxs", 256, 66, true};
    case DType::IQ2_XS:
      return {"iq2_xs", 256, 74, true};
    case DType::IQ3_XXS:
      return {"iq3_xxs", 256, 98, true};
    case DType::IQ1_S:
      return {"iq1_s", 256, 50, true};
    case DType::IQ4_NL:
      return {"iq4_nl", 32, 18, true};
    case DType::IQ3_S:
      return {"iq3_s", 256, 110, true};
    case DType::IQ2_S:
      return {"iq2_s", 256, 82, true};
    case DType::IQ4_XS:
      return {"iq4_xs", 256, 136, true};
    case DType::I8:
      return {"i8", 1, 1, true};
    case DType::I16:
      return {"i16", 1, 2, true};
    case DType::I32:
      return {"i32", 1, 4, true};
    case DType::I64:
      return {"i64", 1, 8, true};
    case DType::F64:
      return {"f64", 1, 8, true};
    case DType::IQ1_M:
      return {"iq1_m", 256, 56, true};
    case DType::BF16:
      return {"bf16", 1, 2, true};
    case DType::TQ1_0:
      return {"tq1_0", 256, 54, true};
    case DType::TQ2_0:
      return {"tq2_0", 256, 66, true};
    case DType::MXFP4:
      return {"mxfp4", 32, 17, true};
    // per row as the source type (a group of 8 packed rows is as large as the 8 rows)
    case DType::Q4_0_X8:
      return {"q4_0x8", 32, 18, false};
    case DType::Q5_0_X8:
      return {"q5_0x8", 32, 22, false};
    case DType::Q8_0_X8:
      return {"q8_0x8", 32, 34, false};
    case DType::Q4_K_X8:
      return {"q4_Kx8", 256, 144, false};
    case DType::Q5_K_X8:
      return {"q5_Kx8", 256, 176, false};
    case DType::Q6_K_X8:
      return {"q6_Kx8", 256, 210, false};
  }
  return {"unknown", 1, 0, false};
}

float fp16_to_fp32(f16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        man <<= 1;
        ++e;
      } while ((man & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

f16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<f16_t>(sign | 0x7c00u |
                              (abs > 0x7f800000u ? 0x200u | (abs >> 13 & 0x3ffu) : 0));
  }
  if (abs >= 0x477ff000u) return static_cast<f16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {                                            // result is subnormal or zero
    if (abs < 0x33000000u) return static_cast<f16_t>(sign);
    uint32_t e = abs >> 23;
    uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;  // 14..24 for the range handled here
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<f16_t>(sign | half);
  }
  uint32_t h = ((abs >> 13) - ((127 - 15) << 10));
  uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return static_cast<f16_t>(sign | h);
}

bf16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1);
  return static_cast<bf16_t>(u >> 16);
}

}  // namespace hpl
