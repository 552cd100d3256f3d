// Helpers shared by the block-format converters (dequantize.cc, quantize*.cc). Internal.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernel/types.h"

namespace hpl::kernel::quant_detail {

// Throws std::invalid_argument unless type t with n elements fills whole blocks.
inline void check_row(const char* fn, DType t, int64_t n) {
  TypeTraits tr = type_traits(t);
  if (n < 0 || n % tr.block_elems != 0) {
    throw std::invalid_argument(std::string(fn) + ": " + tr.name + ": n = " + std::to_string(n) +
                                " is not a non-negative multiple of the block size " +
                                std::to_string(tr.block_elems));
  }
}

[[noreturn]] inline void unsupported(const char* fn, DType t) {
  throw std::invalid_argument(std::string(fn) + ": type " + type_name(t) + " (id " +
                              std::to_string(static_cast<uint32_t>(t)) + ") is not supported");
}

// round(v) clamped to [lo, hi]; NaN gives lo (a float -> int cast of NaN/inf would be UB).
inline int nearest_clamped(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::nearbyint(v));
}

// fp32 -> fp16 saturating to the largest finite half (a block scale must never become inf).
inline f16_t fp32_to_fp16_sat(float f) {
  f16_t h = fp32_to_fp16(f);
  if ((h & 0x7fffu) == 0x7c00u) h = static_cast<f16_t>((h & 0x8000u) | 0x7bffu);
  return h;
}

// Sub-block scales/mins of Q4_K and Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes.
// bytes 0-3: low 6 bits of sc[0..3], top 2 bits = high bits of sc[4..7];
// bytes 4-7: low 6 bits of m[0..3], top 2 bits = high bits of m[4..7];
// bytes 8-11: low nibble = low 4 bits of sc[4..7], high nibble = low 4 bits of m[4..7].
inline void get_scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

inline void set_scale_min_k4(int j, uint8_t* q, int sc, int m) {  // sc, m in [0, 63]
  if (j < 4) {
    q[j] = static_cast<uint8_t>((q[j] & 0xC0) | sc);
    q[j + 4] = static_cast<uint8_t>((q[j + 4] & 0xC0) | m);
  } else {
    q[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    q[j - 4] = static_cast<uint8_t>((q[j - 4] & 0x3F) | ((sc >> 4) << 6));
    q[j] = static_cast<uint8_t>((q[j] & 0x3F) | ((m >> 4) << 6));
  }
}

}  // namespace hpl::kernel::quant_detail
