// Which activation format each weight type is dotted with, and which weight types matmul
// supports (the same set for every ISA body).
#include "kernel/ops.h"

namespace hpl::kernel {

DType vec_dot_type(DType w) {
  switch (w) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
    case DType::Q4_0_X8:
    case DType::Q5_0_X8:
    case DType::Q8_0_X8:
      return DType::Q8_0;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q4_K_X8:
    case DType::Q5_K_X8:
    case DType::Q6_K_X8:
      return DType::Q8_K;
    default:
      return DType::F32;
  }
}

bool matmul_supported(DType w) {
  if (is_packed_type(w)) return true;
  switch (w) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::F16:
    case DType::BF16:
    case DType::F32:
      return true;
    default:
      return false;
  }
}

}  // namespace hpl::kernel
