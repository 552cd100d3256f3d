// Whole-tensor conversions between F32 and the stored block formats. Scalar: these run
// at load / quantize time, not in the hot loop.
#pragma once

#include <cstdint>

#include "kernel/types.h"

namespace hpl::kernel {

// x (n,) in type t -> y (n,) f32. n a multiple of the type's block size.
// Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K.
bool dequantize_supported(DType t);
void dequantize_row(DType t, const void* x, float* y, int64_t n);

// x (n,) f32 -> y (n,) in type t, with the K-quant scale search (iterative refinement of
// scale and min per sub-block); importance (n,) weights the error, may be null.
// Supports F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K.
bool quantize_supported(DType t);
void quantize_row(DType t, const float* x, void* y, int64_t n, const float* importance);

}  // namespace hpl::kernel
