// RMSNorm, scalar specification: sums and the scale in double, one rounding to float at the end.
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel::ref {

// x (n,) -> y (n,) = x / sqrt(mean(x^2) + eps) * (w + w_offset)
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps, float w_offset) {
  check::rmsnorm(n);
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps));
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>(x[i] * inv * (static_cast<double>(w[i]) + w_offset));
  }
}

}  // namespace hpl::kernel::ref
