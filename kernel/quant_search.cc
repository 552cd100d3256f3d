// Scale searches for the quantizers; see quant_search.h. Scalar, run at quantize time.
#include "kernel/quant_search.h"

#include <cmath>

#include "kernel/quant_util.h"
#include "kernel/types.h"

// Errors are judged on the exact f32 values dequantize produces: no FMA contraction.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace hpl::kernel::quant_detail {
namespace {

constexpr int kMaxSub = 256;  // longest run any caller searches (a Q8_K-sized block)

// Candidate offsets around the nominal level count: -1.0, -0.8, ..., +1.0 (steps of 0.1 gain
// only ~0.03% RMSE on Gaussian data at 1.5x the time).
constexpr int kSteps = 5;
constexpr float kStep = 0.2f;

float to_f16_and_back(float s) {
  return fp16_to_fp32(fp32_to_fp16_sat(s));
}

}  // namespace

void round_symmetric(const float* x, int n, float s, int qmin, int qmax, int8_t* q) {
  if (s == 0.0f || !std::isfinite(s)) {
    for (int i = 0; i < n; ++i) q[i] = 0;
    return;
  }
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(nearest_clamped(x[i] * inv, qmin, qmax));
}

void round_with_min(const float* x, int n, float s, float m, int qmax, uint8_t* q) {
  if (s == 0.0f || !std::isfinite(s)) {
    for (int i = 0; i < n; ++i) q[i] = 0;
    return;
  }
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i)
    q[i] = static_cast<uint8_t>(nearest_clamped((x[i] + m) * inv, 0, qmax));
}

double weighted_error_sym(const float* x, const float* w, int n, float s, const int8_t* q) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const float y = s * static_cast<float>(q[i]);
    const double r = static_cast<double>(x[i]) - y;
    e += w[i] * r * r;
  }
  return e;
}

double weighted_error_min(const float* x, const float* w, int n, float s, float m,
                          const uint8_t* q) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const float y = s * static_cast<float>(q[i]) - m;
    const double r = static_cast<double>(x[i]) - y;
    e += w[i] * r * r;
  }
  return e;
}

float search_symmetric_scale(const float* x, const float* w, int n, int qmin, int qmax,
                             bool f16_scale, int8_t* q) {
  float xm = 0;  // the element of largest magnitude, with its sign
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(xm)) xm = x[i];
  }
  auto settle = [&](float s) { return f16_scale ? to_f16_and_back(s) : s; };
  if (xm == 0.0f || !std::isfinite(xm)) {
    for (int i = 0; i < n; ++i) q[i] = 0;
    return 0.0f;
  }
  int8_t cand[kMaxSub];
  float best_s = settle(xm / static_cast<float>(qmin));  // absmax -> qmin: ggml's choice
  round_symmetric(x, n, best_s, qmin, qmax, q);
  double best_e = weighted_error_sym(x, w, n, best_s, q);

  auto consider = [&](float s) {
    s = settle(s);
    if (!(s != 0.0f) || !std::isfinite(s)) return;
    round_symmetric(x, n, s, qmin, qmax, cand);
    // Least squares scale for these q: s* = sum w x q / sum w q^2, then round again.
    double sxq = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      sxq += static_cast<double>(w[i]) * x[i] * cand[i];
      sqq += static_cast<double>(w[i]) * cand[i] * cand[i];
    }
    double e = weighted_error_sym(x, w, n, s, cand);
    if (e < best_e) {
      best_e = e, best_s = s;
      for (int i = 0; i < n; ++i) q[i] = cand[i];
    }
    if (sqq <= 0) return;
    const float s_ls = settle(static_cast<float>(sxq / sqq));
    if (!(s_ls != 0.0f) || !std::isfinite(s_ls)) return;
    round_symmetric(x, n, s_ls, qmin, qmax, cand);
    e = weighted_error_sym(x, w, n, s_ls, cand);
    if (e < best_e) {
      best_e = e, best_s = s_ls;
      for (int i = 0; i < n; ++i) q[i] = cand[i];
    }
  };
  // Map the largest element to either end of the range, nudged by up to one level.
  for (int k = -kSteps; k <= kSteps; ++k) {
    consider(xm / (static_cast<float>(qmin) - kStep * static_cast<float>(k)));
    consider(xm / (static_cast<float>(qmax) + kStep * static_cast<float>(k)));
  }
  return best_s;
}

float search_scale_min(const float* x, const float* w, int n, int qmax, uint8_t* q, float* m) {
  float lo = 0, hi = 0;  // lo <= 0: the stored min is non-negative
  for (int i = 0; i < n; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
  }
  if (!(hi > lo) || !std::isfinite(hi - lo)) {  // all zero (or non-finite): nothing to fit
    for (int i = 0; i < n; ++i) q[i] = 0;
    *m = -lo;
    return 0.0f;
  }
  uint8_t cand[kMaxSub];
  // Naive start: min/max spread over qmax levels.
  float best_s = (hi - lo) / static_cast<float>(qmax), best_m = -lo;
  round_with_min(x, n, best_s, best_m, qmax, q);
  double best_e = weighted_error_min(x, w, n, best_s, best_m, q);

  // Weighted least squares of x ~ s * q + b over fixed q, with b = -m <= 0.
  auto fit = [&](const uint8_t* qq, float* s, float* mm) {
    double sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int i = 0; i < n; ++i) {
      const double wi = w[i];
      sw += wi, sq += wi * qq[i], sqq += wi * qq[i] * qq[i];
      sx += wi * x[i], sxq += wi * x[i] * qq[i];
    }
    const double det = sw * sqq - sq * sq;
    double ss = 0, b = 0;
    if (det > 0) {
      ss = (sw * sxq - sq * sx) / det;
      b = (sqq * sx - sq * sxq) / det;
    }
    if (b > 0 || det <= 0) {  // the offset may only pull down: refit with b = 0
      b = 0;
      ss = sqq > 0 ? sxq / sqq : 0;
    }
    if (ss < 0) {  // degenerate: a pure offset
      ss = 0;
      b = sw > 0 ? std::fmin(sx / sw, 0.0) : 0;
    }
    *s = static_cast<float>(ss);
    *mm = static_cast<float>(-b);
  };
  auto try_scale = [&](float s, float mm) {
    if (!(s > 0.0f) || !std::isfinite(s) || !std::isfinite(mm)) return false;
    round_with_min(x, n, s, mm, qmax, cand);
    const double e = weighted_error_min(x, w, n, s, mm, cand);
    if (e >= best_e) return false;
    best_e = e, best_s = s, best_m = mm;
    for (int i = 0; i < n; ++i) q[i] = cand[i];
    return true;
  };

  // Candidate level counts qmax + k * kStep over [lo, hi], each refined once by least squares.
  for (int k = -kSteps; k <= kSteps; ++k) {
    const float s = (hi - lo) / (static_cast<float>(qmax) + kStep * static_cast<float>(k));
    round_with_min(x, n, s, -lo, qmax, cand);
    try_scale(s, -lo);
    float s_ls, m_ls;
    fit(cand, &s_ls, &m_ls);
    try_scale(s_ls, m_ls);
  }
  // Then alternate rounding and least squares from the best until it stops improving.
  for (int it = 0; it < 8; ++it) {
    float s_ls, m_ls;
    fit(q, &s_ls, &m_ls);
    if (!try_scale(s_ls, m_ls)) break;
  }
  *m = best_m;
  return best_s;
}

}  // namespace hpl::kernel::quant_detail
