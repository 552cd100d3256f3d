// Rotary position embedding, scalar specification: angles, cos/sin and the rotation in double.
#include <cmath>

#include "kernel/op_checks.h"
#include "kernel/ops.h"

namespace hpl::kernel::ref {

// x (n_heads, head_dim) in place; pair i of the first rot_dim dims rotates by
// theta_i = pos * freq_scale * freq_base^(-2i / rot_dim) / freq_factors[i]. kNormal pairs
// (2i, 2i+1), kNeox pairs (i, i + rot_dim/2).
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeLayout layout, const float* freq_factors) {
  check::rope(n_heads, head_dim, rot_dim);
  const int64_t half = rot_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      double theta = static_cast<double>(pos) * freq_scale *
                     std::pow(static_cast<double>(freq_base), -2.0 * i / rot_dim);
      if (freq_factors) theta /= freq_factors[i];
      double c = std::cos(theta), s = std::sin(theta);
      int64_t i0 = layout == RopeLayout::kNormal ? 2 * i : i;
      int64_t i1 = layout == RopeLayout::kNormal ? 2 * i + 1 : i + half;
      double x0 = xh[i0], x1 = xh[i1];
      xh[i0] = static_cast<float>(x0 * c - x1 * s);
      xh[i1] = static_cast<float>(x0 * s + x1 * c);
    }
  }
}

}  // namespace hpl::kernel::ref
