// Softmax over a range of a row, scalar specification (double exp and sum).
#include <cmath>
#include <limits>

#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel::ref {

// x (n,) in place: softmax(x * scale) on [begin, end), 0 elsewhere. -inf entries get 0; a range
// that is all -inf becomes all 0.
void softmax(float* x, int64_t n, float scale, int64_t begin, int64_t end) {
  check::softmax(n, begin, end);
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = begin; i < end; ++i) {
    double v = static_cast<double>(x[i]) * scale;
    if (v > m) m = v;  // (not std::fmax: aarch64 g++ 12 ICEs vectorizing that reduction)
  }
  double sum = 0.0;
  if (m != -std::numeric_limits<double>::infinity()) {
    for (int64_t i = begin; i < end; ++i) sum += std::exp(static_cast<double>(x[i]) * scale - m);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (i < begin || i >= end || sum == 0.0) {
      x[i] = 0.0f;
    } else {
      x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) * scale - m) / sum);
    }
  }
}

}  // namespace hpl::kernel::ref
