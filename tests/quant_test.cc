// Block-format conversions (kernel/quant.h): round trips, importance weights, special values,
// hand-built blocks, fp16/bf16 rounding, bad input. Bitwise agreement with the gguf package is
// tested in tests/python/test_quant_formats.py; this binary also runs on aarch64 (qemu) and
// under ASan/UBSan.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernel/quant.h"
#include "kernel/types.h"

namespace hpl::kernel {
namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  return x;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x, const float* imp = nullptr) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(t, n));
  quantize_row(t, x.data(), q.data(), n, imp);
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), n);
  return y;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s / a.size());
}

const DType kQuantTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                             DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};

// RMSE bound of dequant(quant(x)) on N(0, 1) data (16384 values), i.e. relative to the data's
// std; measured values in the comments, bounds with ~5% slack. For comparison, ggml's absmax
// reference quantizers (gguf package) give Q4_0 0.0858, Q5_0 0.0426, Q8_0 0.00534, and a naive
// min/max K-quant Q4_K 0.0783, Q5_K 0.0381, Q6_K 0.0193 (tests/python/test_quant_formats.py).
struct RmseBound {
  DType type;
  double bound;
};
constexpr RmseBound kRmseBounds[] = {
    {DType::F32, 0},         //
    {DType::F16, 2.3e-4},    // 2.08e-4: 11-bit significand
    {DType::BF16, 1.8e-3},   // 1.68e-3: 8-bit significand
    {DType::Q8_0, 5.65e-3},  // 5.39e-3
    {DType::Q8_K, 7.3e-3},   // 6.84e-3: one scale per 256 (absmax ~3.5 sigma)
    {DType::Q4_0, 0.0845},   // 0.0809
    {DType::Q5_0, 0.0420},   // 0.0402
    {DType::Q4_K, 0.0735},   // 0.0701
    {DType::Q5_K, 0.0362},   // 0.0346
    {DType::Q6_K, 0.0177},   // 0.0167
};

double rmse_bound(DType t) {
  for (const auto& b : kRmseBounds) {
    if (b.type == t) return b.bound;
  }
  ADD_FAILURE() << "no RMSE bound for " << type_name(t);
  return 0;
}

TEST(Quant, SupportedSets) {
  for (DType t : kQuantTypes) {
    EXPECT_TRUE(quantize_supported(t)) << type_name(t);
    EXPECT_TRUE(dequantize_supported(t)) << type_name(t);
  }
  EXPECT_TRUE(dequantize_supported(DType::Q4_1));
  EXPECT_TRUE(dequantize_supported(DType::Q5_1));
  EXPECT_FALSE(quantize_supported(DType::Q4_1));
  EXPECT_FALSE(quantize_supported(DType::IQ2_XXS));
  EXPECT_FALSE(dequantize_supported(DType::Q2_K));
  EXPECT_FALSE(dequantize_supported(DType::I32));
}

TEST(Quant, RoundTripRmseOnGaussianWithinBound) {
  const auto x = gaussian(64 * kQKK, 42);
  for (DType t : kQuantTypes) {
    const double e = rmse(x, round_trip(t, x));
    EXPECT_LE(e, rmse_bound(t)) << type_name(t);
    std::printf("  %-5s rmse/std %.6g (bound %.6g)\n", type_name(t), e, rmse_bound(t));
  }
}

TEST(Quant, RoundTripScalesWithData) {  // RMSE relative to std does not depend on the scale
  for (float sigma : {1e-3f, 30.0f}) {
    const auto x = gaussian(16 * kQKK, 7, sigma);
    for (DType t : kQuantTypes) {
      if (t == DType::F32) continue;
      EXPECT_LE(rmse(x, round_trip(t, x)), rmse_bound(t) * sigma * 1.05) << type_name(t);
    }
  }
}

TEST(Quant, ImportanceLowersWeightedError) {
  const int64_t n = 32 * kQKK;
  const auto x = gaussian(n, 3);
  std::mt19937 rng(5);
  std::exponential_distribution<float> ex(1.0f);
  std::vector<float> imp(static_cast<size_t>(n));
  for (auto& v : imp) v = std::pow(ex(rng), 3.0f);  // a few elements matter most
  auto werr = [&](const std::vector<float>& y) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += imp[i] * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    return s;
  };
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const double plain = werr(round_trip(t, x));
    const double weighted = werr(round_trip(t, x, imp.data()));
    EXPECT_LT(weighted, 0.97 * plain) << type_name(t);
  }
}

TEST(Quant, AllZeroImportanceIsHarmless) {
  const auto x = gaussian(4 * kQKK, 9);
  std::vector<float> imp(x.size(), 0.0f);
  for (DType t : {DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    EXPECT_LE(rmse(x, round_trip(t, x, imp.data())), rmse_bound(t) * 1.3) << type_name(t);
  }
}

TEST(Quant, AllZerosStayZero) {
  const std::vector<float> x(4 * kQKK, 0.0f);
  for (DType t : kQuantTypes) {
    for (float v : round_trip(t, x)) ASSERT_EQ(v, 0.0f) << type_name(t);
  }
}

TEST(Quant, ConstantRows) {
  for (float c : {0.37f, -2.5f, 1e-3f, 100.0f}) {
    const std::vector<float> x(2 * kQKK, c);
    for (DType t : kQuantTypes) {
      for (float v : round_trip(t, x)) {
        // fp16 scales: 2^-11 relative; bf16 keeps 8 significant bits: 2^-9. A K-quant's
        // super-block d = c / (sc * q) ~ c / 945 is an fp16 subnormal for small c: its grid
        // step 2^-24 times sc * q (<= 63 * 63) bounds the absolute error from that.
        const double rel = t == DType::BF16 ? 4e-3 : 2e-3;
        const bool kquant = t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
        const double abs_tol = kquant ? std::ldexp(63.0 * 63.0, -25) : 0.0;
        ASSERT_NEAR(v, c, std::fabs(c) * rel + abs_tol) << type_name(t) << " c=" << c;
      }
    }
  }
}

TEST(Quant, OneHugeOutlierStaysInItsBlock) {
  const int64_t n = 4 * kQKK;
  const auto base = gaussian(n, 11);
  auto x = base;
  const int64_t at = kQKK + 37;  // in super-block 1
  x[at] = 1000.0f;
  for (DType t : kQuantTypes) {
    const auto y = round_trip(t, x);
    const auto y_base = round_trip(t, base);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << type_name(t);
    EXPECT_NEAR(y[at], 1000.0f, 1000.0f * 0.01) << type_name(t);
    // Blocks are independent: the blocks without the outlier come out unchanged.
    for (int64_t i = 0; i < n; ++i) {
      if (i / kQKK == 1) continue;
      ASSERT_EQ(y[i], y_base[i]) << type_name(t) << " at " << i;
    }
  }
}

TEST(Quant, ScalesBeyondFp16StayFinite) {
  std::vector<float> x(kQKK, 0.0f);
  x[3] = 3e9f;  // max / 8 overflows fp16: the scale saturates at 65504 instead of inf
  x[4] = -1e6f;
  for (DType t : kQuantTypes) {
    if (t == DType::F16) continue;  // plain F16 rounds 3e9 to inf, as it must
    for (float v : round_trip(t, x)) ASSERT_TRUE(std::isfinite(v)) << type_name(t);
  }
}

TEST(Quant, Fp16RowsRoundExactly) {
  // Every finite half value survives f32 -> F16 -> f32 bit for bit.
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    if ((h & 0x7c00u) != 0x7c00u) x.push_back(fp16_to_fp32(static_cast<f16_t>(h)));
  }
  x.resize(x.size() / 32 * 32);
  const auto y = round_trip(DType::F16, x);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(std::memcmp(&x[i], &y[i], 4), 0) << i;
  // Ties round to even, halfway values above the largest half overflow to inf.
  std::vector<float> t = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, -(1.0f + 1.0f / 2048), 65520.0f};
  std::vector<f16_t> h(t.size());
  quantize_row(DType::F16, t.data(), h.data(), static_cast<int64_t>(t.size()), nullptr);
  EXPECT_EQ(h[0], 0x3c00);
  EXPECT_EQ(h[1], 0x3c02);
  EXPECT_EQ(h[2], 0xbc00);
  EXPECT_EQ(h[3], 0x7c00);
}

TEST(Quant, Bf16RowsRoundExactly) {
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x10000u; h += 3) {
    const float f = bf16_to_fp32(static_cast<bf16_t>(h));
    if (std::isfinite(f)) x.push_back(f);
  }
  const auto y = round_trip(DType::BF16, x);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(std::memcmp(&x[i], &y[i], 4), 0) << i;
  std::vector<float> t = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 256 + 1e-6f, NAN};
  std::vector<bf16_t> h(t.size());
  quantize_row(DType::BF16, t.data(), h.data(), static_cast<int64_t>(t.size()), nullptr);
  EXPECT_EQ(h[0], 0x3f80);  // tie -> even
  EXPECT_EQ(h[1], 0x3f82);  // tie -> even (up)
  EXPECT_EQ(h[2], 0x3f81);  // above the tie
  EXPECT_TRUE(std::isnan(bf16_to_fp32(h[3])));
}

// Hand-built blocks pin the bit layouts independently of the quantizers.
TEST(Quant, HandBuiltQ4_0AndQ5_0) {
  BlockQ4_0 b4{};
  b4.d = fp32_to_fp16(0.5f);
  b4.qs[0] = 0x0F;  // elem 0: 15 - 8 = 7, elem 16: 0 - 8 = -8
  b4.qs[5] = 0x93;  // elem 5: 3 - 8 = -5, elem 21: 9 - 8 = 1
  float y[32];
  dequantize_row(DType::Q4_0, &b4, y, 32);
  EXPECT_EQ(y[0], 3.5f);
  EXPECT_EQ(y[16], -4.0f);
  EXPECT_EQ(y[5], -2.5f);
  EXPECT_EQ(y[21], 0.5f);
  EXPECT_EQ(y[1], -4.0f);

  BlockQ5_0 b5{};
  b5.d = fp32_to_fp16(0.25f);
  b5.qs[2] = 0x1F;  // elem 2 low nibble 15, elem 18 low nibble 1
  b5.qh[0] = 0x04;  // bit 2: elem 2 gets +16 -> 31 - 16 = 15
  b5.qh[2] = 0x04;  // bit 18: elem 18 gets +16 -> 17 - 16 = 1
  dequantize_row(DType::Q5_0, &b5, y, 32);
  EXPECT_EQ(y[2], 3.75f);
  EXPECT_EQ(y[18], 0.25f);
  EXPECT_EQ(y[0], -4.0f);
}

TEST(Quant, HandBuiltQ4_K) {
  BlockQ4_K b{};
  b.d = fp32_to_fp16(0.5f);
  b.dmin = fp32_to_fp16(0.25f);
  // sub-block 1: sc = 3, m = 2 (low 6 bits in bytes 1 and 5)
  b.scales[1] = 3;
  b.scales[5] = 2;
  // sub-block 6: sc = 0b110101 = 53 (low 4 bits in byte 10, top 2 in byte 2 bits 6-7),
  //              m = 0b100011 = 35 (low 4 bits in byte 10 high nibble, top 2 in byte 6).
  b.scales[10] = static_cast<uint8_t>((53 & 0xF) | (35 & 0xF) << 4);
  b.scales[2] = static_cast<uint8_t>((53 >> 4) << 6);
  b.scales[6] = static_cast<uint8_t>((35 >> 4) << 6);
  b.qs[4] = 0x70;   // elem 36 (chunk 0, high nibble -> sub-block 1) = 7
  b.qs[96] = 0x0A;  // elem 192 (chunk 3, low nibble -> sub-block 6) = 10
  std::vector<float> y(kQKK);
  dequantize_row(DType::Q4_K, &b, y.data(), kQKK);
  EXPECT_EQ(y[36], 0.5f * 3 * 7 - 0.25f * 2);
  EXPECT_EQ(y[32], -0.5f);
  EXPECT_EQ(y[192], 0.5f * 53 * 10 - 0.25f * 35);
  EXPECT_EQ(y[0], 0.0f);
}

TEST(Quant, HandBuiltQ6_K) {
  BlockQ6_K b{};
  b.d = fp32_to_fp16(0.125f);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j - 8);
  // Element 128 + 64 + 20 = 212 (half 1, l = 20, third quarter): high nibble of ql[64 + 20],
  // bits 4-5 of qh[32 + 20]; its scale is scales[212 / 16 = 13] = 5.
  b.ql[84] = 0xB0;  // low bits 11
  b.qh[52] = 0x30;  // high bits 3 -> q = 11 | 48 = 59 -> 59 - 32 = 27
  std::vector<float> y(kQKK);
  dequantize_row(DType::Q6_K, &b, y.data(), kQKK);
  EXPECT_EQ(y[212], 0.125f * 5 * 27);
  EXPECT_EQ(y[20], 0.125f * -7 * -32);  // everything else is q = -32
}

TEST(Quant, Q8_KSumsMatchValues) {
  const auto x = gaussian(2 * kQKK, 13);
  std::vector<BlockQ8_K> b(2);
  quantize_row(DType::Q8_K, x.data(), b.data(), 2 * kQKK, nullptr);
  for (const auto& blk : b) {
    for (int g = 0; g < kQKK / 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += blk.qs[16 * g + j];
      EXPECT_EQ(blk.bsums[g], s);
    }
  }
}

TEST(Quant, Q8_0NeverUsesMinus128) {
  auto x = gaussian(64 * 32, 17);
  std::vector<BlockQ8_0> b(64);
  std::vector<float> imp(x.size(), 1.0f);
  const float* weights[] = {nullptr, imp.data()};
  for (const float* w : weights) {
    quantize_row(DType::Q8_0, x.data(), b.data(), 64 * 32, w);
    for (const auto& blk : b) {
      for (int8_t q : blk.qs) ASSERT_GE(q, -127);
    }
  }
}

TEST(Quant, BadInputThrowsClearly) {
  std::vector<float> x(300, 1.0f);
  std::vector<uint8_t> y(4096);
  try {
    quantize_row(DType::Q4_K, x.data(), y.data(), 300, nullptr);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("q4_K: n = 300 is not"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dequantize_row(DType::Q8_0, y.data(), x.data(), 33), std::invalid_argument);
  EXPECT_THROW(dequantize_row(DType::IQ2_XXS, y.data(), x.data(), 256), std::invalid_argument);
  EXPECT_THROW(quantize_row(DType::Q4_1, x.data(), y.data(), 32, nullptr), std::invalid_argument);
  std::vector<float> imp(32, 1.0f);
  imp[7] = -1.0f;
  EXPECT_THROW(quantize_row(DType::Q4_0, x.data(), y.data(), 32, imp.data()),
               std::invalid_argument);
  imp[7] = NAN;
  EXPECT_THROW(quantize_row(DType::Q4_0, x.data(), y.data(), 32, imp.data()),
               std::invalid_argument);
  // n == 0 is an empty row, not an error.
  EXPECT_NO_THROW(quantize_row(DType::Q4_K, x.data(), y.data(), 0, nullptr));
  EXPECT_NO_THROW(dequantize_row(DType::Q4_K, y.data(), x.data(), 0));
}

TEST(Quant, NonFiniteInputIsNotUndefined) {
  // NaN/inf in the input give unspecified codes, but no UB (UBSan checks float -> int casts).
  auto x = gaussian(kQKK, 19);
  x[5] = NAN;
  x[6] = INFINITY;
  x[300 % kQKK] = -INFINITY;
  for (DType t : kQuantTypes) {
    std::vector<uint8_t> q(row_bytes(t, kQKK));
    quantize_row(t, x.data(), q.data(), kQKK, nullptr);
    std::vector<float> y(kQKK);
    dequantize_row(t, q.data(), y.data(), kQKK);
  }
}

TEST(Quant, DequantizeAnyBytesIsDefined) {
  // Arbitrary bytes (NaN/inf scales included) must decode without UB; with the scale fields
  // forced finite, every output is finite.
  const DType types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,
                         DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                         DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};
  std::mt19937 rng(29);
  for (DType t : types) {
    const int64_t n = 8 * kQKK;
    std::vector<uint8_t> raw(row_bytes(t, n));
    for (auto& b : raw) b = static_cast<uint8_t>(rng());
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, raw.data(), y.data(), n);
    const TypeTraits tr = type_traits(t);
    if (tr.block_elems == 1) continue;
    // Scale fields: fp16 at the start (Q4_0..Q5_K: d, and m/dmin right after) or the end (Q6_K),
    // f32 d at the start of Q8_K. 0x3c00 = 1.0 in fp16.
    for (size_t off = 0; off < raw.size(); off += tr.block_bytes) {
      if (t == DType::Q6_K) {
        raw[off + tr.block_bytes - 1] = 0x3c;
      } else if (t == DType::Q8_K) {
        const float one = 1.0f;
        std::memcpy(&raw[off], &one, 4);
      } else {
        raw[off + 1] = 0x3c;
        if (t == DType::Q4_1 || t == DType::Q5_1 || t == DType::Q4_K || t == DType::Q5_K) {
          raw[off + 3] = 0x3c;
        }
      }
    }
    dequantize_row(t, raw.data(), y.data(), n);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << type_name(t);
  }
}

TEST(Quant, UnalignedBuffers) {  // GGUF data may sit at any byte offset
  const auto x = gaussian(kQKK, 23);
  for (DType t : kQuantTypes) {
    std::vector<uint8_t> q(row_bytes(t, kQKK) + 1);
    quantize_row(t, x.data(), q.data() + 1, kQKK, nullptr);
    std::vector<float> y(kQKK);
    dequantize_row(t, q.data() + 1, y.data(), kQKK);
    EXPECT_LE(rmse(x, y), rmse_bound(t) * 2 + 1e-6) << type_name(t);
  }
}

}  // namespace
}  // namespace hpl::kernel
