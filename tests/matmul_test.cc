// matmul and quantize_act_row on every ISA compiled in, against the scalar reference, and the
// reference against an fp64 dequantize-then-dot written here from the block format definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel/ops.h"
#include "kernel/repack.h"
#include "kernel/thread_pool.h"
#include "kernel/types.h"

namespace hpl::kernel {
namespace {

// One body: the two functions under test.
struct Body {
  const char* name;
  void (*quantize)(DType, const float*, void*, int64_t);
  void (*matmul)(DType, const void*, size_t, const void*, size_t, float*, size_t, int64_t, int64_t,
                 int64_t, int64_t);
};

// Every SIMD body this machine can run (x86-64: avx2, avxvnni, avx512vnni; ARM64: neon,
// dotprod, i8mm), from the one binary.
std::vector<Body> simd_isas() {
  std::vector<Body> v;
  for (Isa isa : runnable_isas()) {
    if (isa != Isa::kRef) v.push_back({isa_name(isa), ops(isa).quantize_act_row, ops(isa).matmul});
  }
  return v;
}

const Body kRef = {"ref", ref::quantize_act_row, ref::matmul};

const DType kWeightTypes[] = {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K,
                              DType::Q6_K, DType::F16,  DType::BF16, DType::F32};

// --- fp64 dequantizers, element by element from the format definitions -------------------

double h2d(f16_t h) {
  return fp16_to_fp32(h);
}

// Q4_K/Q5_K 6-bit scale (is_min = 0) or min (is_min = 1) of sub-block j, read bit by bit.
int k4_scale(const uint8_t* s, int j, int is_min) {
  if (j < 4) return s[j + 4 * is_min] & 63;
  int low4 = is_min ? s[j + 4] >> 4 : s[j + 4] & 15;
  int high2 = s[j - 4 + 4 * is_min] >> 6;
  return low4 | high2 << 4;
}

void dequant_row(DType t, const void* src, double* out, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    switch (t) {
      case DType::F32:
        out[i] = reinterpret_cast<const float*>(p)[i];
        break;
      case DType::F16:
        out[i] = h2d(reinterpret_cast<const f16_t*>(p)[i]);
        break;
      case DType::BF16:
        out[i] = bf16_to_fp32(reinterpret_cast<const bf16_t*>(p)[i]);
        break;
      case DType::Q8_0: {
        const auto& b = reinterpret_cast<const BlockQ8_0*>(p)[i / 32];
        out[i] = h2d(b.d) * b.qs[i % 32];
        break;
      }
      case DType::Q4_0: {
        const auto& b = reinterpret_cast<const BlockQ4_0*>(p)[i / 32];
        int e = i % 32;
        int q = e < 16 ? b.qs[e] & 15 : b.qs[e - 16] >> 4;
        out[i] = h2d(b.d) * (q - 8);
        break;
      }
      case DType::Q5_0: {
        const auto& b = reinterpret_cast<const BlockQ5_0*>(p)[i / 32];
        int e = i % 32;
        int q = e < 16 ? b.qs[e] & 15 : b.qs[e - 16] >> 4;
        int hb = (b.qh[e / 8] >> (e % 8)) & 1;
        out[i] = h2d(b.d) * ((q | hb << 4) - 16);
        break;
      }
      case DType::Q4_K:
      case DType::Q5_K: {
        const bool five = t == DType::Q5_K;
        const uint8_t* blk = p + (i / 256) * (five ? 176 : 144);
        const uint8_t* scales = blk + 4;
        const uint8_t* qh = blk + 16;
        const uint8_t* qs = blk + (five ? 48 : 16);
        int e = i % 256, j = e / 32, l = e % 32, chunk = e / 64;
        int byte = qs[32 * chunk + l];
        int q = (j % 2 == 0) ? byte & 15 : byte >> 4;
        if (five) q |= ((qh[l] >> j) & 1) << 4;
        f16_t d, dmin;
        std::memcpy(&d, blk, 2);
        std::memcpy(&dmin, blk + 2, 2);
        out[i] = h2d(d) * k4_scale(scales, j, 0) * q - h2d(dmin) * k4_scale(scales, j, 1);
        break;
      }
      case DType::Q6_K: {
        const auto& b = reinterpret_cast<const BlockQ6_K*>(p)[i / 256];
        int e = i % 256, half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        // quarters 0..3 take ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high
        int lo = (quarter == 0)   ? b.ql[64 * half + l] & 15
                 : (quarter == 1) ? b.ql[64 * half + l + 32] & 15
                 : (quarter == 2) ? b.ql[64 * half + l] >> 4
                                  : b.ql[64 * half + l + 32] >> 4;
        int hi = (b.qh[32 * half + l] >> (2 * quarter)) & 3;
        out[i] = h2d(b.d) * b.scales[e / 16] * ((lo | hi << 4) - 32);
        break;
      }
      case DType::Q8_K: {
        const auto& b = reinterpret_cast<const BlockQ8_K*>(p)[i / 256];
        out[i] = static_cast<double>(b.d) * b.qs[i % 256];
        break;
      }
      default:
        FAIL() << "no test dequantizer for " << type_name(t);
    }
  }
}

// --- random valid weights -----------------------------------------------------------------

// A random f16 of magnitude in [lo, hi), random sign if sign is set.
f16_t rand_scale(std::mt19937& rng, float lo, float hi, bool sign) {
  std::uniform_real_distribution<float> u(lo, hi);
  float v = u(rng);
  if (sign && (rng() & 1)) v = -v;
  return fp32_to_fp16(v);
}

// rows x n weights of type t: random bytes, then sane scales written over the scale fields.
std::vector<uint8_t> random_weights(std::mt19937& rng, DType t, int64_t rows, int64_t n) {
  const size_t rb = row_bytes(t, n);
  std::vector<uint8_t> w(rb * rows);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  const int64_t nblocks = rows * n / type_traits(t).block_elems;
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int64_t k = 0; k < nblocks; ++k) {
    switch (t) {
      case DType::F32: {
        for (int64_t i = 0; i < rows * n; ++i) reinterpret_cast<float*>(w.data())[i] = g(rng);
        return w;
      }
      case DType::F16:
        for (int64_t i = 0; i < rows * n; ++i)
          reinterpret_cast<f16_t*>(w.data())[i] = fp32_to_fp16(g(rng));
        return w;
      case DType::BF16:
        for (int64_t i = 0; i < rows * n; ++i)
          reinterpret_cast<bf16_t*>(w.data())[i] = fp32_to_bf16(g(rng));
        return w;
      case DType::Q4_0:
        reinterpret_cast<BlockQ4_0*>(w.data())[k].d = rand_scale(rng, 1e-3f, 0.1f, true);
        break;
      case DType::Q5_0:
        reinterpret_cast<BlockQ5_0*>(w.data())[k].d = rand_scale(rng, 1e-3f, 0.1f, true);
        break;
      case DType::Q8_0:
        reinterpret_cast<BlockQ8_0*>(w.data())[k].d = rand_scale(rng, 1e-4f, 1e-2f, true);
        break;
      case DType::Q4_K: {
        auto& b = reinterpret_cast<BlockQ4_K*>(w.data())[k];
        b.d = rand_scale(rng, 1e-4f, 1e-2f, false);
        b.dmin = rand_scale(rng, 1e-4f, 1e-2f, false);
        break;
      }
      case DType::Q5_K: {
        auto& b = reinterpret_cast<BlockQ5_K*>(w.data())[k];
        b.d = rand_scale(rng, 1e-4f, 1e-2f, false);
        b.dmin = rand_scale(rng, 1e-4f, 1e-2f, false);
        break;
      }
      case DType::Q6_K:
        reinterpret_cast<BlockQ6_K*>(w.data())[k].d = rand_scale(rng, 1e-4f, 1e-2f, true);
        break;
      default:
        ADD_FAILURE() << "no generator for " << type_name(t);
        return w;
    }
  }
  return w;
}

std::vector<float> random_acts(std::mt19937& rng, int64_t ntok, int64_t n) {
  std::vector<float> x(ntok * n);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto& v : x) v = g(rng);
  // Some rows with a big outlier and some all-zero blocks: exercises amax and d == 0.
  if (ntok > 1) x[n + 3] = 40.0f;
  if (n >= 512) std::fill(x.begin() + 256, x.begin() + 512, 0.0f);
  return x;
}

// ntok activation rows quantized with isa, x_stride bytes apart (padded to catch stride bugs).
std::vector<uint8_t> quantize_acts(const Body& isa, DType act, const std::vector<float>& x,
                                   int64_t ntok, int64_t n, size_t x_stride) {
  std::vector<uint8_t> q(x_stride * ntok, 0xAB);
  for (int64_t t = 0; t < ntok; ++t)
    isa.quantize(act, x.data() + t * n, q.data() + t * x_stride, n);
  return q;
}

// --- tests --------------------------------------------------------------------------------

TEST(Matmul, DotTypes) {
  EXPECT_EQ(vec_dot_type(DType::Q4_K), DType::Q8_K);
  EXPECT_EQ(vec_dot_type(DType::Q6_K), DType::Q8_K);
  EXPECT_EQ(vec_dot_type(DType::Q4_0), DType::Q8_0);
  EXPECT_EQ(vec_dot_type(DType::F16), DType::F32);
  for (DType t : kWeightTypes) EXPECT_TRUE(matmul_supported(t)) << type_name(t);
  EXPECT_FALSE(matmul_supported(DType::Q2_K));
  EXPECT_FALSE(matmul_supported(DType::IQ4_NL));
}

TEST(Matmul, RejectsBadArguments) {
  std::vector<uint8_t> w(4096), x(4096);
  std::vector<float> y(16);
  for (const Body& isa : [] {
         auto v = simd_isas();
         v.push_back(kRef);
         return v;
       }()) {
    EXPECT_THROW(isa.matmul(DType::Q2_K, w.data(), 84, x.data(), 292, y.data(), 1, 256, 0, 1, 1),
                 std::invalid_argument)
        << isa.name;
    EXPECT_THROW(isa.matmul(DType::Q4_K, w.data(), 144, x.data(), 292, y.data(), 1, 100, 0, 1, 1),
                 std::invalid_argument)
        << isa.name;
    EXPECT_THROW(isa.matmul(DType::Q8_0, w.data(), 34, x.data(), 34, y.data(), 1, 32, 2, 1, 1),
                 std::invalid_argument)
        << isa.name;
    EXPECT_THROW(isa.quantize(DType::Q4_K, reinterpret_cast<float*>(y.data()), x.data(), 256),
                 std::invalid_argument)
        << isa.name;
    EXPECT_THROW(isa.quantize(DType::Q8_0, reinterpret_cast<float*>(y.data()), x.data(), 33),
                 std::invalid_argument)
        << isa.name;
  }
}

// The activation quantizers of every ISA give the reference's bytes exactly.
TEST(QuantizeAct, SimdMatchesReferenceBytes) {
  std::mt19937 rng(7);
  for (const Body& isa : simd_isas()) {
    for (DType act : {DType::Q8_0, DType::Q8_K, DType::F32}) {
      for (int64_t n : {256, 512, 2048}) {
        auto x = random_acts(rng, 3, n);
        // exact ties in the first 256: amax 127 makes d = 1, so k + 0.5 must round to even
        for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 40 - 20) + 0.5f;
        x[0] = x[32] = x[64] = x[96] = x[128] = x[160] = x[192] = x[224] = 127.0f;
        size_t bytes = row_bytes(act, n);
        auto a = quantize_acts(kRef, act, x, 3, n, bytes);
        auto b = quantize_acts(isa, act, x, 3, n, bytes);
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size()))
            << isa.name << " " << type_name(act) << " n=" << n;
      }
    }
  }
}

// Q8_0 / Q8_K activations: scale, rounding and the sums of 16.
TEST(QuantizeAct, ReferenceFollowsTheFormat) {
  {  // ties round to even: d = 1 when amax = 127
    std::vector<float> t(32, 0.0f);
    t[0] = 127.0f, t[1] = 0.5f, t[2] = 1.5f, t[3] = 2.5f, t[4] = -0.5f, t[5] = -1.5f,
    t[6] = -126.5f;
    BlockQ8_0 q;
    ref::quantize_act_row(DType::Q8_0, t.data(), &q, 32);
    EXPECT_EQ(fp16_to_fp32(q.d), 1.0f);
    const int expect[7] = {127, 0, 2, 2, 0, -2, -126};
    for (int i = 0; i < 7; ++i) EXPECT_EQ(q.qs[i], expect[i]) << i;
  }
  std::mt19937 rng(3);
  auto x = random_acts(rng, 1, 512);
  std::vector<BlockQ8_K> qk(2);
  ref::quantize_act_row(DType::Q8_K, x.data(), qk.data(), 512);
  for (int b = 0; b < 2; ++b) {
    double amax = 0;
    for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(double(x[256 * b + i])));
    EXPECT_NEAR(qk[b].d, amax / 127, 1e-6 * amax);
    for (int i = 0; i < 256; ++i) {
      if (qk[b].d == 0) {
        EXPECT_EQ(qk[b].qs[i], 0);
        continue;
      }
      EXPECT_LE(std::fabs(x[256 * b + i] / qk[b].d - qk[b].qs[i]), 0.5 + 1e-4);
    }
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += qk[b].qs[16 * g + i];
      EXPECT_EQ(qk[b].bsums[g], s);
    }
  }
  std::vector<BlockQ8_0> q0(16);
  ref::quantize_act_row(DType::Q8_0, x.data(), q0.data(), 512);
  for (int b = 0; b < 16; ++b) {
    double amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(double(x[32 * b + i])));
    EXPECT_NEAR(fp16_to_fp32(q0[b].d), amax / 127, 1e-3 * amax / 127 + 1e-30);
  }
}

struct Shape {
  int64_t rows, n, r0, r1, ntok;
};

// Runs one shape for type t: fp64 exact dot, reference, and every SIMD body.
void check_shape(std::mt19937& rng, DType t, const Shape& s) {
  SCOPED_TRACE(std::string(type_name(t)) + " rows=" + std::to_string(s.rows) +
               " n=" + std::to_string(s.n) + " r=[" + std::to_string(s.r0) + "," +
               std::to_string(s.r1) + ") ntok=" + std::to_string(s.ntok));
  const DType act = vec_dot_type(t);
  const size_t w_stride = row_bytes(t, s.n);
  const size_t x_stride = row_bytes(act, s.n) + 64;  // padded rows
  const size_t y_stride = s.rows + 3;
  auto w = random_weights(rng, t, s.rows, s.n);
  auto x = random_acts(rng, s.ntok, s.n);
  auto xq = quantize_acts(kRef, act, x, s.ntok, s.n, x_stride);

  // fp64 truth from dequantized weights and activations, and sum |w_i x_i| for tolerances.
  std::vector<double> wd(s.n), xd(s.n);
  std::vector<double> exact(s.ntok * s.rows), mag(s.ntok * s.rows);
  for (int64_t r = s.r0; r < s.r1; ++r) {
    dequant_row(t, w.data() + r * w_stride, wd.data(), s.n);
    for (int64_t k = 0; k < s.ntok; ++k) {
      dequant_row(act, xq.data() + k * x_stride, xd.data(), s.n);
      double e = 0, m = 0;
      for (int64_t i = 0; i < s.n; ++i) {
        e += wd[i] * xd[i];
        m += std::fabs(wd[i] * xd[i]);
      }
      exact[k * s.rows + r] = e;
      mag[k * s.rows + r] = m;
    }
  }

  const float kSentinel = -12345.0f;
  auto run = [&](const Body& isa) {
    std::vector<float> y(y_stride * s.ntok, kSentinel);
    isa.matmul(t, w.data(), w_stride, xq.data(), x_stride, y.data(), y_stride, s.n, s.r0, s.r1,
               s.ntok);
    return y;
  };
  auto yr = run(kRef);
  for (int64_t k = 0; k < s.ntok; ++k) {
    for (int64_t r = 0; r < static_cast<int64_t>(y_stride); ++r) {
      float v = yr[k * y_stride + r];
      if (r < s.r0 || r >= s.r1) {
        ASSERT_EQ(v, kSentinel) << "ref wrote outside its rows: tok " << k << " row " << r;
        continue;
      }
      // The reference combines exact integer block dots in double: only the f32 output
      // rounding and the f32 product of the Q8_K and f16 scales remain.
      double e = exact[k * s.rows + r], m = mag[k * s.rows + r];
      ASSERT_NEAR(v, e, 1e-6 * m + 1e-30) << "ref vs fp64: tok " << k << " row " << r;
    }
  }
  // a body's y against the reference's, and nothing written outside [r0, r1)
  auto compare = [&](const std::string& name, const std::vector<float>& ys) {
    for (int64_t k = 0; k < s.ntok; ++k) {
      for (int64_t r = 0; r < static_cast<int64_t>(y_stride); ++r) {
        float v = ys[k * y_stride + r];
        if (r < s.r0 || r >= s.r1) {
          ASSERT_EQ(v, kSentinel) << name << " wrote outside its rows: tok " << k << " row " << r;
          continue;
        }
        // Integer block dots are exact; f32 accumulation of block results costs ~1e-7 each.
        double m = mag[k * s.rows + r];
        ASSERT_NEAR(v, yr[k * y_stride + r], 1e-5 * m + 1e-30)
            << name << " vs ref: tok " << k << " row " << r;
      }
    }
  };
  for (const Body& isa : simd_isas()) {
    compare(isa.name, run(isa));
    if (::testing::Test::HasFatalFailure()) return;
  }

  // The packed layout (kernel/repack.h), on every body that has a kernel for it.
  const DType pt = packed_type(t);
  if (pt == t || s.rows % kPackRows != 0) return;
  std::vector<uint8_t> wp(w.size(), 0xCD), wu(w.size(), 0xEF);
  repack_rows(t, w.data(), w_stride, s.rows, s.n, wp.data());
  unpack_rows(pt, wp.data(), s.rows, s.n, wu.data(), w_stride);
  ASSERT_EQ(wu, w) << "unpack_rows(repack_rows(w)) != w";
  for (int64_t r = 0; r < s.rows; ++r) {  // one row gathered from its group (embedding lookups)
    std::vector<uint8_t> row(w_stride, 0xAB);
    unpack_row(pt, wp.data(), w_stride, r, s.n, row.data());
    ASSERT_TRUE(std::equal(row.begin(), row.end(), w.begin() + r * w_stride))
        << "unpack_row " << type_name(pt) << " row " << r;
  }
  {  // the scalar reference on the packed layout is the reference, bit for bit
    std::vector<float> ys(y_stride * s.ntok, kSentinel);
    matmul_packed_ref(pt, wp.data(), w_stride, xq.data(), x_stride, ys.data(), y_stride, s.n, s.r0,
                      s.r1, s.ntok);
    ASSERT_EQ(ys, yr) << "matmul_packed_ref " << type_name(pt) << " != ref";
  }
  for (Isa isa : runnable_isas()) {
    if (ops(isa).weight_kernels(pt) == nullptr) continue;
    std::vector<float> ys(y_stride * s.ntok, kSentinel);
    ops(isa).matmul(pt, wp.data(), w_stride, xq.data(), x_stride, ys.data(), y_stride, s.n, s.r0,
                    s.r1, s.ntok);
    compare(std::string(isa_name(isa)) + " " + type_name(pt), ys);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Packed layouts: rows in groups of 8, row ranges that cut groups, token counts around the
// tile sizes (4 and 8) and K past the ARM gemm chunk.
TEST(Matmul, PackedLayoutsMatchReference) {
  int bodies = 0;
  for (Isa isa : runnable_isas())
    bodies += ops(isa).weight_kernels(DType::Q4_0_X8) != nullptr ? 1 : 0;
  if (bodies == 0) GTEST_SKIP() << "no body with packed kernels on this machine";
  for (DType t : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    std::mt19937 rng(77 + static_cast<int>(t));
    const int64_t blk = type_traits(t).block_elems;
    for (int64_t ntok : {1, 2, 3, 4, 5, 8, 9, 13, 17}) {
      const int64_t rows = 8 * (1 + rng() % 5);
      const int64_t n = blk * (1 + rng() % (blk == 256 ? 6 : 24));
      const int64_t r0 = rng() % rows;
      const int64_t r1 = r0 + 1 + rng() % (rows - r0);
      check_shape(rng, t, {rows, n, r0, r1, ntok});
      if (HasFatalFailure()) return;
    }
    check_shape(rng, t, {64, 2048, 0, 64, 1});
    check_shape(rng, t, {16, blk == 256 ? 768 : 640, 3, 13, 19});
    // more blocks than one unpacked chunk of the ARM gemm (32), a partial last chunk
    check_shape(rng, t, {16, blk == 256 ? 2304 : 2240, 5, 14, 11});
  }
}

// Packed K-quants at the ends of their ranges: every quant and 6-bit scale and min at its
// maximum (Q6_K: scales alternating -128, 127, or all -128) against activations all +127,
// all -127 and alternating. The NEON tiles' int32 sums wrap in between (running sums times
// scale differences); only the final sums must fit, and they must equal the reference's.
TEST(Matmul, PackedKQuantsAtTheirExtremes) {
  int bodies = 0;
  for (Isa isa : runnable_isas())
    bodies += ops(isa).weight_kernels(DType::Q4_K_X8) != nullptr ? 1 : 0;
  if (bodies == 0) GTEST_SKIP() << "no body with packed K-quant kernels on this machine";
  const int64_t rows = 16, n = 512, ntok = 3;
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(type_name(t));
    const size_t ws = row_bytes(t, n);
    std::vector<uint8_t> w(ws * rows, 0xFF);
    const f16_t d = fp32_to_fp16(1e-3f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < n / 256; ++b) {
        uint8_t* blk = w.data() + r * ws + b * type_traits(t).block_bytes;
        if (t == DType::Q6_K) {
          auto* q = reinterpret_cast<BlockQ6_K*>(blk);
          q->d = d;
          for (int g = 0; g < 16; ++g)  // the largest steps between groups' scales too
            q->scales[g] = static_cast<int8_t>((g + r % 3) % 2 == 0 || r % 3 == 2 ? -128 : 127);
        } else {
          std::memcpy(blk, &d, 2);  // d, dmin
          std::memcpy(blk + 2, &d, 2);
        }
      }
    }
    std::vector<float> x(ntok * n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = 1.0f;
      x[n + i] = -1.0f;
      x[2 * n + i] = i % 2 == 0 ? 1.0f : -1.0f;
    }
    const DType act = vec_dot_type(t);
    const size_t xs = row_bytes(act, n);
    auto xq = quantize_acts(kRef, act, x, ntok, n, xs);
    std::vector<float> yr(ntok * rows), ys(ntok * rows);
    kRef.matmul(t, w.data(), ws, xq.data(), xs, yr.data(), rows, n, 0, rows, ntok);
    const DType pt = packed_type(t);
    std::vector<uint8_t> wp(w.size());
    repack_rows(t, w.data(), ws, rows, n, wp.data());
    for (Isa isa : runnable_isas()) {
      if (ops(isa).weight_kernels(pt) == nullptr) continue;
      for (int64_t k : {int64_t{1}, ntok}) {  // gemv and gemm
        std::fill(ys.begin(), ys.end(), 0.0f);
        ops(isa).matmul(pt, wp.data(), ws, xq.data(), xs, ys.data(), rows, n, 0, rows, k);
        for (int64_t i = 0; i < k * rows; ++i)
          ASSERT_NEAR(ys[i], yr[i], 1e-5 * std::fabs(yr[i]) + 1e-6)
              << isa_name(isa) << " ntok " << k << " tok " << i / rows << " row " << i % rows;
      }
    }
  }
}

class MatmulType : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulType, AllIsasMatchReferenceOnRandomShapes) {
  const DType t = GetParam();
  std::mt19937 rng(1234 + static_cast<int>(t));
  const int64_t blk = type_traits(t).block_elems == 1 ? 32 : type_traits(t).block_elems;
  for (int64_t ntok : {1, 2, 3, 4, 5, 7, 8, 13, 32}) {
    for (int rep = 0; rep < 2; ++rep) {
      int64_t rows = 1 + rng() % 37;
      int64_t n = blk * (1 + rng() % (blk == 256 ? 6 : 24));
      if (t == DType::F32 || t == DType::F16 || t == DType::BF16) n += 8 * (rng() % 4) + rng() % 8;
      int64_t r0 = rng() % rows;
      int64_t r1 = r0 + 1 + rng() % (rows - r0);
      check_shape(rng, t, {rows, n, r0, r1, ntok});
      if (HasFatalFailure()) return;
    }
  }
  check_shape(rng, t, {64, 2048, 0, 64, 1});  // model-sized row
  check_shape(rng, t, {9, 2048, 3, 9, 13});
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, MatmulType, ::testing::ValuesIn(kWeightTypes),
                         [](const ::testing::TestParamInfo<DType>& i) {
                           return std::string(type_name(i.param));
                         });

// Rows split across threads (as the engine does) give the single-thread result bit for bit.
TEST(Matmul, ThreadedRowSplitMatchesSingleThread) {
  ThreadPool pool(3);
  std::mt19937 rng(99);
  for (DType t : kWeightTypes) {
    const int64_t n = 512, rows = 45;
    const DType act = vec_dot_type(t);
    const size_t ws = row_bytes(t, n), xs = row_bytes(act, n);
    auto w = random_weights(rng, t, rows, n);
    for (int64_t ntok : {1, 5}) {
      auto x = random_acts(rng, ntok, n);
      auto xq = quantize_acts({"best", ops().quantize_act_row, ops().matmul}, act, x, ntok, n, xs);
      std::vector<float> y1(rows * ntok), y2(rows * ntok, 0.0f);
      best::matmul(t, w.data(), ws, xq.data(), xs, y1.data(), rows, n, 0, rows, ntok);
      pool.parallel_for(rows, 4, [&](int64_t r0, int64_t r1) {
        best::matmul(t, w.data(), ws, xq.data(), xs, y2.data(), rows, n, r0, r1, ntok);
      });
      for (size_t i = 0; i < y1.size(); ++i) {
        ASSERT_EQ(y1[i], y2[i]) << type_name(t) << " ntok " << ntok << " index " << i;
      }
    }
  }
}

}  // namespace
}  // namespace hpl::kernel
