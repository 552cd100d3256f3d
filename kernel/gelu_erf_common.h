// The erf approximation the SIMD bodies of gelu_erf share (Abramowitz & Stegun 7.1.26):
// erf(a) = 1 - t (p1 + t (p2 + t (p3 + t (p4 + t p5)))) e^(-a^2), t = 1 / (1 + p a), a >= 0,
// absolute error <= 1.5e-7; odd in a.
#pragma once

namespace hpl::kernel::gelu_erf_poly {
constexpr float kP = 0.3275911f;
constexpr float kP1 = 0.254829592f;
constexpr float kP2 = -0.284496736f;
constexpr float kP3 = 1.421413741f;
constexpr float kP4 = -1.453152027f;
constexpr float kP5 = 1.061405429f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
}  // namespace hpl::kernel::gelu_erf_poly
