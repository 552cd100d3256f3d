// f32 -> stored formats, whole rows: the plain types, the 32-element formats and Q8_K here;
// the K-quant scale search in quantize_kquant.cc.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernel/quant.h"
#include "kernel/quant_search.h"
#include "kernel/quant_util.h"
#include "kernel/quantize_kquant.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace hpl::kernel {
namespace {

using quant_detail::fp32_to_fp16_sat;
using quant_detail::nearest_clamped;

template <typename Block>
void store_block(void* y, int64_t i, const Block& b) {
  std::memcpy(static_cast<uint8_t*>(y) + i * sizeof(Block), &b, sizeof(Block));
}

// Q8_0: absmax scale d = max|x| / 127 (stored fp16), q = round(x / d) in [-127, 127] against
// the stored d. -128 is never produced: SIMD dots may take |q| of int8. With importance,
// a weighted search over scales (never worse than absmax, which is one of the candidates).
void quantize_q8_0(const float* x, const float* w, bool weighted, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, w += 32) {
    BlockQ8_0 b;
    float s;
    if (weighted) {
      s = quant_detail::search_symmetric_scale(x, w, 32, -127, 127, true, b.qs);
      if (s < 0) {  // keep d >= 0 so the block reads like ggml's
        s = -s;
        for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(-b.qs[j]);
      }
    } else {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
      s = fp16_to_fp32(fp32_to_fp16_sat(amax / 127.0f));
      quant_detail::round_symmetric(x, 32, s, -127, 127, b.qs);
    }
    b.d = fp32_to_fp16_sat(s);
    store_block(y, i, b);
  }
}

// Q4_0: x ~ d * q, q in [-8, 7]; weighted scale search starting from ggml's max -> -8.
void quantize_q4_0(const float* x, const float* w, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, w += 32) {
    int8_t q[32];
    const float s = quant_detail::search_symmetric_scale(x, w, 32, -8, 7, true, q);
    BlockQ4_0 b;
    b.d = fp32_to_fp16_sat(s);
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((q[j] + 8) | (q[j + 16] + 8) << 4);
    store_block(y, i, b);
  }
}

// Q5_0: x ~ d * q, q in [-16, 15]; low 4 bits of q + 16 as in Q4_0, bit 4 -> bit j of qh.
void quantize_q5_0(const float* x, const float* w, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32, w += 32) {
    int8_t q[32];
    const float s = quant_detail::search_symmetric_scale(x, w, 32, -16, 15, true, q);
    BlockQ5_0 b;
    b.d = fp32_to_fp16_sat(s);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int j = 0; j < 16; ++j) {
      const int u0 = q[j] + 16, u1 = q[j + 16] + 16;
      b.qs[j] = static_cast<uint8_t>((u0 & 0xF) | (u1 & 0xF) << 4);
      b.qh[j / 8] = static_cast<uint8_t>(b.qh[j / 8] | (u0 >> 4) << (j % 8));
      b.qh[2 + j / 8] = static_cast<uint8_t>(b.qh[2 + j / 8] | (u1 >> 4) << (j % 8));
    }
    store_block(y, i, b);
  }
}

// Q8_K (activations): f32 d = max|x| / 127, q = round(x / d) in [-127, 127], bsums = sums of
// each 16 q (for the K-quant min term in dot products).
void quantize_q8_k(const float* x, void* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    BlockQ8_K b;
    float amax = 0;
    for (int j = 0; j < kQKK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    b.d = amax / 127.0f;
    quant_detail::round_symmetric(x, kQKK, b.d, -127, 127, b.qs);
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
      b.bsums[g] = static_cast<int16_t>(sum);
    }
    store_block(y, i, b);
  }
}

void check_importance(const float* importance, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(importance[i] >= 0.0f) || !std::isfinite(importance[i])) {
      throw std::invalid_argument("quantize_row: importance[" + std::to_string(i) +
                                  "] = " + std::to_string(importance[i]) +
                                  " is not a finite non-negative weight");
    }
  }
}

}  // namespace

bool quantize_supported(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
      return true;
    default:
      return false;
  }
}

void quantize_row(DType t, const float* x, void* y, int64_t n, const float* importance) {
  if (!quantize_supported(t)) quant_detail::unsupported("quantize_row", t);
  quant_detail::check_row("quantize_row", t, n);
  if (n == 0) return;
  if (importance) check_importance(importance, n);
  auto* out = static_cast<uint8_t*>(y);
  switch (t) {
    case DType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const f16_t h = fp32_to_fp16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const bf16_t h = fp32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case DType::Q8_K:
      quantize_q8_k(x, y, n / kQKK);
      return;
    default:
      break;
  }
  // Block formats with a scale search: error weights are the importance, or all ones. A block
  // whose weights are all zero is searched unweighted (any answer would do; keep a sane one).
  const int64_t bs = type_traits(t).block_elems;
  std::vector<float> w(static_cast<size_t>(n), 1.0f);
  if (importance) {
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
      double sum = 0;
      for (int64_t j = 0; j < bs; ++j) sum += importance[b0 + j];
      if (sum > 0) std::memcpy(&w[b0], importance + b0, bs * sizeof(float));
    }
  }
  const int64_t nb = n / bs;
  switch (t) {
    case DType::Q8_0:
      quantize_q8_0(x, w.data(), importance != nullptr, y, nb);
      break;
    case DType::Q4_0:
      quantize_q4_0(x, w.data(), y, nb);
      break;
    case DType::Q5_0:
      quantize_q5_0(x, w.data(), y, nb);
      break;
    case DType::Q4_K:
      quant_detail::quantize_q4_k(x, w.data(), y, nb);
      break;
    case DType::Q5_K:
      quant_detail::quantize_q5_k(x, w.data(), y, nb);
      break;
    case DType::Q6_K:
      quant_detail::quantize_q6_k(x, w.data(), y, nb);
      break;
    default:
      quant_detail::unsupported("quantize_row", t);
  }
}

}  // namespace hpl::kernel
