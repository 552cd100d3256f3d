// Scalar matmul: the specification every SIMD body is tested against. Plain loops, one
// integer dot product per block exactly as the block format defines it, block results
// combined in double so the reference itself adds no rounding worth mentioning.
#include <cmath>
#include <cstring>

#include "kernel/matmul_common.h"
#include "kernel/ops.h"

namespace hpl::kernel::ref {
namespace {

// Round to nearest, ties to even (the default FP mode): SIMD bodies use the same rounding
// (cvtps2dq / fcvtns) so quantized activations are identical byte for byte on every ISA.
inline int8_t round_q8(float v) {
  return static_cast<int8_t>(std::nearbyint(v));
}

// x (32,) -> BlockQ8_0: d = amax / 127, q = round(x / d).
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK8_0) {
    float amax = 0.0f;
    for (int i = 0; i < kQK8_0; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (int i = 0; i < kQK8_0; ++i) y[b].qs[i] = round_q8(x[i] * id);
  }
}

// x (256,) -> BlockQ8_K: fp32 d = amax / 127, q = round(x / d), bsums[g] = sum of q[16g..16g+15].
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    float amax = 0.0f;
    for (int i = 0; i < kQKK; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int i = 0; i < kQKK; ++i) y[b].qs[i] = round_q8(x[i] * id);
    for (int g = 0; g < kQKK / 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += y[b].qs[16 * g + i];
      y[b].bsums[g] = static_cast<int16_t>(s);
    }
  }
}

// Q4_0: q = nibble - 8; low nibbles are elements 0..15, high nibbles 16..31.
double dot_q4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  double acc = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) {
      s += ((w[b].qs[j] & 0xF) - 8) * x[b].qs[j];
      s += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
    }
    acc += static_cast<double>(fp16_to_fp32(w[b].d)) * fp16_to_fp32(x[b].d) * s;
  }
  return acc;
}

// Q5_0: q = (nibble | bit j of qh << 4) - 16.
double dot_q5_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t nb) {
  double acc = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    uint32_t qh;
    std::memcpy(&qh, w[b].qh, 4);
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) {
      int lo = (w[b].qs[j] & 0xF) | static_cast<int>((qh >> j) & 1) << 4;
      int hi = (w[b].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4;
      s += (lo - 16) * x[b].qs[j] + (hi - 16) * x[b].qs[j + 16];
    }
    acc += static_cast<double>(fp16_to_fp32(w[b].d)) * fp16_to_fp32(x[b].d) * s;
  }
  return acc;
}

double dot_q8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  double acc = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < kQK8_0; ++j) s += w[b].qs[j] * x[b].qs[j];
    acc += static_cast<double>(fp16_to_fp32(w[b].d)) * fp16_to_fp32(x[b].d) * s;
  }
  return acc;
}

// Q4_K / Q5_K: element 64c + l (l < 32) is quant(w, c, l, 0), from the low nibble of
// qs[32c + l], in sub-block 2c; element 64c + 32 + l is quant(w, c, l, 1), from the high nibble,
// in sub-block 2c + 1; value = d * sc * q - dmin * m.
template <typename Block, typename Quant>
double dot_k4_family(const Block* w, const BlockQ8_K* x, int64_t nb, Quant quant) {
  double acc = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t sc[8], mn[8];
    detail::unpack_k4_scales(w[b].scales, sc, mn);
    int32_t sumi = 0, summ = 0;
    for (int c = 0; c < 4; ++c) {
      int32_t s0 = 0, s1 = 0;
      for (int l = 0; l < 32; ++l) {
        s0 += quant(w[b], c, l, 0) * x[b].qs[64 * c + l];
        s1 += quant(w[b], c, l, 1) * x[b].qs[64 * c + 32 + l];
      }
      sumi += sc[2 * c] * s0 + sc[2 * c + 1] * s1;
    }
    for (int j = 0; j < 8; ++j) summ += mn[j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
    acc += static_cast<double>(x[b].d) * (static_cast<double>(fp16_to_fp32(w[b].d)) * sumi -
                                          static_cast<double>(fp16_to_fp32(w[b].dmin)) * summ);
  }
  return acc;
}

double dot_q4_k(const BlockQ4_K* w, const BlockQ8_K* x, int64_t nb) {
  return dot_k4_family(w, x, nb, [](const BlockQ4_K& wb, int c, int l, int hi) {
    return (wb.qs[32 * c + l] >> (4 * hi)) & 0xF;
  });
}

// Q5_K: as Q4_K with a 5th bit: bit 2c of qh[l] for element 64c + l, bit 2c + 1 for 64c + 32 + l.
double dot_q5_k(const BlockQ5_K* w, const BlockQ8_K* x, int64_t nb) {
  return dot_k4_family(w, x, nb, [](const BlockQ5_K& wb, int c, int l, int hi) {
    return ((wb.qs[32 * c + l] >> (4 * hi)) & 0xF) | ((wb.qh[l] >> (2 * c + hi)) & 1) << 4;
  });
}

// Q6_K: two halves of 128; in half h, for l < 32 (ql = ql + 64h, qh = qh + 32h):
//   element 128h + l      = (ql[l] & 15)      | (qh[l] >> 0 & 3) << 4, scale 8h + l/16
//   element 128h + 32 + l = (ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4, scale 8h + 2 + l/16
//   element 128h + 64 + l = (ql[l] >> 4)      | (qh[l] >> 4 & 3) << 4, scale 8h + 4 + l/16
//   element 128h + 96 + l = (ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4, scale 8h + 6 + l/16
// value = d * scale * (q - 32).
double dot_q6_k(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
  double acc = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sumi = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      const int8_t* sc = w[b].scales + 8 * h;
      const int8_t* a = x[b].qs + 128 * h;
      int32_t s[8] = {};
      for (int l = 0; l < 32; ++l) {
        int q0 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
        int q1 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
        int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        int g = l / 16;
        s[g + 0] += q0 * a[l];
        s[g + 2] += q1 * a[l + 32];
        s[g + 4] += q2 * a[l + 64];
        s[g + 6] += q3 * a[l + 96];
      }
      for (int g = 0; g < 8; ++g) sumi += sc[g] * s[g];
    }
    acc += static_cast<double>(x[b].d) * fp16_to_fp32(w[b].d) * sumi;
  }
  return acc;
}

template <class Cvt, class T>
double dot_float(const T* w, const float* x, int64_t n, Cvt cvt) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(cvt(w[i])) * x[i];
  return acc;
}

// Dot of one weight row (n,) with one activation row, for the block type of Block.
template <class Block, class Act, double (*Dot)(const Block*, const Act*, int64_t)>
double dot_blocks(const void* w, const void* x, int64_t n) {
  return Dot(static_cast<const Block*>(w), static_cast<const Act*>(x),
             n / static_cast<int64_t>(sizeof(Act::qs)));
}
template <class T, float (*Cvt)(T)>
double dot_floats(const void* w, const void* x, int64_t n) {
  return dot_float(static_cast<const T*>(w), static_cast<const float*>(x), n, Cvt);
}
float f32_id(float v) {
  return v;
}

// W rows [r0, r1) x ntok tokens, one row dot at a time.
template <double (*DotRow)(const void*, const void*, int64_t)>
void matmul_rows(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                 size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(xq);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < ntok; ++t) {
      y[t * y_stride + r] = static_cast<float>(DotRow(wb + r * w_stride, xb + t * x_stride, n));
    }
  }
}

template <DType T, DType Act, double (*DotRow)(const void*, const void*, int64_t)>
constexpr WeightKernels row_kernels() {
  return {T, Act, matmul_rows<DotRow>, matmul_rows<DotRow>, "1 row x 1 token"};
}

const WeightKernels kKernels[] = {
    row_kernels<DType::Q4_0, DType::Q8_0, dot_blocks<BlockQ4_0, BlockQ8_0, dot_q4_0>>(),
    row_kernels<DType::Q5_0, DType::Q8_0, dot_blocks<BlockQ5_0, BlockQ8_0, dot_q5_0>>(),
    row_kernels<DType::Q8_0, DType::Q8_0, dot_blocks<BlockQ8_0, BlockQ8_0, dot_q8_0>>(),
    row_kernels<DType::Q4_K, DType::Q8_K, dot_blocks<BlockQ4_K, BlockQ8_K, dot_q4_k>>(),
    row_kernels<DType::Q5_K, DType::Q8_K, dot_blocks<BlockQ5_K, BlockQ8_K, dot_q5_k>>(),
    row_kernels<DType::Q6_K, DType::Q8_K, dot_blocks<BlockQ6_K, BlockQ8_K, dot_q6_k>>(),
    row_kernels<DType::F16, DType::F32, dot_floats<f16_t, fp16_to_fp32>>(),
    row_kernels<DType::BF16, DType::F32, dot_floats<bf16_t, bf16_to_fp32>>(),
    row_kernels<DType::F32, DType::F32, dot_floats<float, f32_id>>(),
};

}  // namespace

void quantize_act_row(DType act, const float* x, void* y, int64_t n) {
  detail::quantize_act_row_with(act, x, y, n, quantize_q8_0, quantize_q8_k);
}

const WeightKernels* weight_kernels(DType wt) {
  return detail::find_kernels(kKernels, wt);
}

void matmul(DType wt, const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
            size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  detail::matmul_with(weight_kernels(wt), wt, w, w_stride, xq, x_stride, y, y_stride, n, r0, r1,
                      ntok);
}

}  // namespace hpl::kernel::ref
