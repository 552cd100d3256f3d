// K-quant super-block quantizers (internal to kernel/; called by quantize_row).
#pragma once

#include <cstdint>

namespace hpl::kernel::quant_detail {

// x (nb * 256,) -> nb blocks; w (nb * 256,) are per-element error weights (never null).
void quantize_q4_k(const float* x, const float* w, void* y, int64_t nb);
void quantize_q5_k(const float* x, const float* w, void* y, int64_t nb);
void quantize_q6_k(const float* x, const float* w, void* y, int64_t nb);

}  // namespace hpl::kernel::quant_detail
