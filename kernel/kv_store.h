// Writing K/V rows into a cache of type F32, F16, Q8_0 or Q4_0 (the types attention reads).
#pragma once

#include <cstdint>

#include "kernel/types.h"

namespace hpl::kernel {

// x (n,) f32 -> y (n,) in type t: F32 copied, F16 rounded to nearest even, Q8_0 / Q4_0 blocks
// of 32 with the absmax scale rounded to nearest (no scale search: this runs per token). n a
// multiple of t's block; an unsupported t or n throws std::invalid_argument.
void kv_store_row(DType t, const float* x, void* y, int64_t n);

}  // namespace hpl::kernel
