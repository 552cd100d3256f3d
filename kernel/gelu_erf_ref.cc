// Exact GELU, scalar specification: std::erf in double.
#include <cmath>

#include "kernel/ops.h"

namespace hpl::kernel::ref {

// y = 0.5 x (1 + erf(x / sqrt(2)))
void gelu_erf(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    y[i] = static_cast<float>(0.5 * v * (1.0 + std::erf(v * 0.70710678118654752440)));
  }
}

}  // namespace hpl::kernel::ref
