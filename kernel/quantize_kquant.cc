// Q4_K / Q5_K / Q6_K quantization with a scale search (cf. ggml's make_qkx / make_qx_quants,
// written from the format description):
//   1. each sub-block gets its own best scale (and min) by quant_search.h;
//   2. the sub-block scales are themselves quantized against one fp16 super-block scale
//      (6-bit unsigned for Q4_K/Q5_K, int8 for Q6_K), trying each rounded scale and its two
//      neighbours with freshly rounded q and keeping the one of least error;
//   3. the super-block scale(s) are refit by least squares over the whole block with the
//      integer codes fixed, and step 2 is repeated; the best encoding seen is kept.
// Every error is measured on exactly what dequantize_row will produce.
#include "kernel/quantize_kquant.h"

#include <cmath>
#include <cstring>

#include "kernel/quant_search.h"
#include "kernel/quant_util.h"
#include "kernel/types.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace hpl::kernel::quant_detail {
namespace {

constexpr int kRefineRounds = 3;

float f16_round(float v) {
  return fp16_to_fp32(fp32_to_fp16_sat(v));
}

// ---- Q4_K / Q5_K: x ~ (d * sc[j]) * q - (dmin * m[j]), sc, m 6-bit, q in [0, qmax] --------

struct MinBlock {
  float d = 0, dmin = 0;  // already fp16-representable
  int sc[8] = {}, mn[8] = {};
  uint8_t q[kQKK] = {};
  double err = 0;
};

// Best 6-bit (sc, m) for sub-block j near the continuous (s, m), with fresh q; returns error.
double encode_sub_min(const float* x, const float* w, int qmax, float d, float dmin, float s,
                      float m, int* sc_out, int* mn_out, uint8_t* q_out) {
  const int sc0 = d > 0 ? nearest_clamped(s / d, 0, 63) : 0;
  const int mn0 = dmin > 0 ? nearest_clamped(m / dmin, 0, 63) : 0;
  double best = INFINITY;
  uint8_t q[32];
  for (int sc = sc0 - 1; sc <= sc0 + 1; ++sc) {
    if (sc < 0 || sc > 63 || (d == 0 && sc != 0)) continue;
    for (int mn = mn0 - 1; mn <= mn0 + 1; ++mn) {
      if (mn < 0 || mn > 63 || (dmin == 0 && mn != 0)) continue;
      const float ss = d * static_cast<float>(sc), mm = dmin * static_cast<float>(mn);
      round_with_min(x, 32, ss, mm, qmax, q);
      const double e = weighted_error_min(x, w, 32, ss, mm, q);
      if (e < best) {
        best = e, *sc_out = sc, *mn_out = mn;
        std::memcpy(q_out, q, 32);
      }
    }
  }
  return best;
}

double encode_block_min(const float* x, const float* w, int qmax, const float* s, const float* m,
                        MinBlock* b) {
  b->err = 0;
  for (int j = 0; j < 8; ++j) {
    b->err += encode_sub_min(x + 32 * j, w + 32 * j, qmax, b->d, b->dmin, s[j], m[j], &b->sc[j],
                             &b->mn[j], b->q + 32 * j);
  }
  return b->err;
}

// Least squares (d, dmin) for fixed codes: x ~ d * (sc q) - dmin * m. False if degenerate.
bool refit_d_dmin(const float* x, const float* w, const MinBlock& b, float* d, float* dmin) {
  double saa = 0, sac = 0, scc = 0, sxa = 0, sxc = 0;
  for (int i = 0; i < kQKK; ++i) {
    const double a = static_cast<double>(b.sc[i / 32]) * b.q[i], c = b.mn[i / 32];
    saa += w[i] * a * a, sac += w[i] * a * c, scc += w[i] * c * c;
    sxa += w[i] * x[i] * a, sxc += w[i] * x[i] * c;
  }
  // Normal equations of min sum w (x - d a + dmin c)^2.
  const double det = saa * scc - sac * sac;
  double dd, dm;
  if (!(saa > 0)) return false;
  if (scc > 0 && det > 1e-12 * saa * scc) {
    dd = (sxa * scc - sxc * sac) / det;
    dm = (sxa * sac - sxc * saa) / det;
  } else {  // no mins in use: fit d alone
    dd = sxa / saa;
    dm = b.dmin;
  }
  if (dd <= 0 || dm < 0 || !std::isfinite(dd) || !std::isfinite(dm)) return false;
  *d = f16_round(static_cast<float>(dd));
  *dmin = f16_round(static_cast<float>(dm));
  return true;
}

// One super-block of 256: fills best (d, dmin, sc, m, q).
void search_block_min(const float* x, const float* w, int qmax, MinBlock* best) {
  float s[8], m[8];
  uint8_t scratch[32];
  float smax = 0, mmax = 0;
  for (int j = 0; j < 8; ++j) {
    s[j] = search_scale_min(x + 32 * j, w + 32 * j, 32, qmax, scratch, &m[j]);
    smax = std::fmax(smax, s[j]);
    mmax = std::fmax(mmax, m[j]);
  }
  best->d = f16_round(smax / 63.0f);
  best->dmin = f16_round(mmax / 63.0f);
  encode_block_min(x, w, qmax, s, m, best);
  MinBlock cand;
  for (int r = 0; r < kRefineRounds; ++r) {
    cand = *best;
    if (!refit_d_dmin(x, w, *best, &cand.d, &cand.dmin)) break;
    if (cand.d == best->d && cand.dmin == best->dmin) break;
    if (encode_block_min(x, w, qmax, s, m, &cand) >= best->err) break;
    *best = cand;
  }
}

void pack_scales_k4(const MinBlock& b, uint8_t* scales) {
  std::memset(scales, 0, kKScaleBytes);
  for (int j = 0; j < 8; ++j) set_scale_min_k4(j, scales, b.sc[j], b.mn[j]);
}

// ---- Q6_K: x ~ (d * sc[j]) * q, sc int8, q in [-32, 31], 16 sub-blocks of 16 ---------------

struct SymBlock {
  float d = 0;
  int sc[16] = {};
  int8_t q[kQKK] = {};
  double err = 0;
};

double encode_block_sym(const float* x, const float* w, const float* s, SymBlock* b) {
  b->err = 0;
  int8_t q[16];
  for (int j = 0; j < 16; ++j) {
    const float* xj = x + 16 * j;
    const float* wj = w + 16 * j;
    const int sc0 = b->d != 0 ? nearest_clamped(s[j] / b->d, -128, 127) : 0;
    double best = INFINITY;
    for (int sc = sc0 - 1; sc <= sc0 + 1; ++sc) {
      if (sc < -128 || sc > 127 || (b->d == 0 && sc != 0)) continue;
      const float ss = b->d * static_cast<float>(sc);
      round_symmetric(xj, 16, ss, -32, 31, q);
      const double e = weighted_error_sym(xj, wj, 16, ss, q);
      if (e < best) {
        best = e, b->sc[j] = sc;
        std::memcpy(b->q + 16 * j, q, 16);
      }
    }
    b->err += best;
  }
  return b->err;
}

void search_block_q6(const float* x, const float* w, SymBlock* best) {
  float s[16];
  int8_t scratch[16];
  float sm = 0;  // sub-block scale of largest magnitude, signed
  for (int j = 0; j < 16; ++j) {
    s[j] = search_symmetric_scale(x + 16 * j, w + 16 * j, 16, -32, 31, false, scratch);
    if (std::fabs(s[j]) > std::fabs(sm)) sm = s[j];
  }
  // Either end of the int8 range may hold the largest sub-scale.
  best->d = f16_round(sm / -128.0f);
  encode_block_sym(x, w, s, best);
  SymBlock cand;
  cand.d = f16_round(sm / 127.0f);
  if (encode_block_sym(x, w, s, &cand) < best->err) *best = cand;
  for (int r = 0; r < kRefineRounds; ++r) {
    double sxa = 0, saa = 0;
    for (int i = 0; i < kQKK; ++i) {
      const double a = static_cast<double>(best->sc[i / 16]) * best->q[i];
      sxa += w[i] * x[i] * a, saa += w[i] * a * a;
    }
    if (!(saa > 0)) break;
    cand = *best;
    cand.d = f16_round(static_cast<float>(sxa / saa));
    if (cand.d == best->d || !(cand.d != 0)) break;
    if (encode_block_sym(x, w, s, &cand) >= best->err) break;
    *best = cand;
  }
}

}  // namespace

void quantize_q4_k(const float* x, const float* w, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK, w += kQKK) {
    MinBlock b;
    search_block_min(x, w, 15, &b);
    BlockQ4_K out;
    out.d = fp32_to_fp16_sat(b.d);
    out.dmin = fp32_to_fp16_sat(b.dmin);
    pack_scales_k4(b, out.scales);
    // Chunk c of 64: qs[32c + l] = q[64c + l] | q[64c + 32 + l] << 4.
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        out.qs[32 * c + l] = static_cast<uint8_t>(b.q[64 * c + l] | b.q[64 * c + 32 + l] << 4);
      }
    }
    std::memcpy(static_cast<uint8_t*>(y) + i * sizeof out, &out, sizeof out);
  }
}

void quantize_q5_k(const float* x, const float* w, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK, w += kQKK) {
    MinBlock b;
    search_block_min(x, w, 31, &b);
    BlockQ5_K out;
    out.d = fp32_to_fp16_sat(b.d);
    out.dmin = fp32_to_fp16_sat(b.dmin);
    pack_scales_k4(b, out.scales);
    // Low nibbles as Q4_K; bit 4 of element l of sub-block j goes to bit j of qh[l].
    std::memset(out.qh, 0, sizeof out.qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int q0 = b.q[64 * c + l], q1 = b.q[64 * c + 32 + l];
        out.qs[32 * c + l] = static_cast<uint8_t>((q0 & 0xF) | (q1 & 0xF) << 4);
        out.qh[l] =
            static_cast<uint8_t>(out.qh[l] | (q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
      }
    }
    std::memcpy(static_cast<uint8_t*>(y) + i * sizeof out, &out, sizeof out);
  }
}

void quantize_q6_k(const float* x, const float* w, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK, w += kQKK) {
    SymBlock b;
    search_block_q6(x, w, &b);
    BlockQ6_K out;
    out.d = fp32_to_fp16_sat(b.d);
    for (int j = 0; j < 16; ++j) out.scales[j] = static_cast<int8_t>(b.sc[j]);
    // u = q + 32 in [0, 63]; per half h, l < 32: elements l, l+32, l+64, l+96 of the half.
    for (int h = 0; h < 2; ++h) {
      const int8_t* q = b.q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int u0 = q[l] + 32, u1 = q[l + 32] + 32, u2 = q[l + 64] + 32, u3 = q[l + 96] + 32;
        out.ql[64 * h + l] = static_cast<uint8_t>((u0 & 0xF) | (u2 & 0xF) << 4);
        out.ql[64 * h + l + 32] = static_cast<uint8_t>((u1 & 0xF) | (u3 & 0xF) << 4);
        out.qh[32 * h + l] =
            static_cast<uint8_t>((u0 >> 4) | (u1 >> 4) << 2 | (u2 >> 4) << 4 | (u3 >> 4) << 6);
      }
    }
    std::memcpy(static_cast<uint8_t*>(y) + i * sizeof out, &out, sizeof out);
  }
}

}  // namespace hpl::kernel::quant_detail
