// LayerNorm, scalar specification: mean and variance in double (two passes), one rounding to
// float at the end.
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel::ref {

// x (n,) -> y (n,) = (x - mean) / sqrt(var + eps) * w + b
void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  check::layernorm(n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps));
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>((x[i] - mean) * inv * w[i] + static_cast<double>(b[i]));
  }
}

}  // namespace hpl::kernel::ref
