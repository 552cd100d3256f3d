// Scale searches shared by the quantizers (internal to kernel/). Each minimizes the weighted
// squared error sum_i w[i] * (x[i] - dequant(q[i]))^2 over candidate scales, refining each
// candidate by least squares, instead of taking the naive absmax or min/max scale.
#pragma once

#include <cstdint>

namespace hpl::kernel::quant_detail {

// x (n,) ~ s * q with integer q in [qmin, qmax] (qmin < 0 < qmax), s signed.
// If f16_scale, s is rounded to fp16 before it is judged (it is stored as fp16 as is).
// The candidates include absmax -> qmin (ggml's reference choice for Q4_0/Q5_0), so the result
// is never worse than that. Writes q (n,), returns s (0 when x is all zero).
float search_symmetric_scale(const float* x, const float* w, int n, int qmin, int qmax,
                             bool f16_scale, int8_t* q);

// x (n,) ~ s * q - m with q in [0, qmax], s >= 0, m >= 0 (the K-quant sub-block form).
// Writes q (n,) and *m, returns s.
float search_scale_min(const float* x, const float* w, int n, int qmax, uint8_t* q, float* m);

// sum_i w[i] * (x[i] - (s * q[i] - m))^2 with s * q[i] - m rounded to f32 the way dequantize
// computes it.
double weighted_error_sym(const float* x, const float* w, int n, float s, const int8_t* q);
double weighted_error_min(const float* x, const float* w, int n, float s, float m,
                          const uint8_t* q);

// Best q in [qmin, qmax] for a given scale (nearest; all 0 when s == 0).
void round_symmetric(const float* x, int n, float s, int qmin, int qmax, int8_t* q);
void round_with_min(const float* x, int n, float s, float m, int qmax, uint8_t* q);

}  // namespace hpl::kernel::quant_detail
