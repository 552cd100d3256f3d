// Compute ops: every SIMD body compiled in (avx2 / neon) against the scalar reference on odd
// shapes, and the reference against from-first-principles double computations (rope, softmax,
// rmsnorm, attention). The tolerance of each comparison is written next to it.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel/kv_store.h"
#include "kernel/ops.h"
#include "kernel/quant.h"
#include "kernel/thread_pool.h"

namespace hpl::kernel {
namespace {

// One body's op table, so every test can walk all of them.
struct OpSet : Ops {
  const char* name;
};

// The SIMD bodies this machine can run, each op table once: avxvnni / dotprod .. bring only a
// matmul and share the rest with their parent (matmul_test covers those).
std::vector<OpSet> simd_sets() {
  std::vector<OpSet> v;
  for (Isa isa : runnable_isas()) {
    if (isa == Isa::kRef || isa_parent(isa) != Isa::kRef) continue;
    v.push_back({ops(isa), isa_name(isa)});
  }
  return v;
}
// Every body, the reference included (for argument checks).
std::vector<OpSet> all_sets() {
  std::vector<OpSet> v = simd_sets();
  v.insert(v.begin(), OpSet{ops(Isa::kRef), "ref"});
  return v;
}

TEST(Dispatch, EveryBodyOfTheArchitectureIsBuilt) {
  // One binary holds every body for its architecture; the CPU decides which run.
  for (Isa isa : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni})
    EXPECT_EQ(isa_built(isa), HPL_X86_64 == 1) << isa_name(isa);
  for (Isa isa : {Isa::kNeon, Isa::kDotprod, Isa::kI8mm})
    EXPECT_EQ(isa_built(isa), HPL_ARM64 == 1) << isa_name(isa);
  const std::vector<Isa> run = runnable_isas();
  ASSERT_FALSE(run.empty());
  EXPECT_EQ(run.front(), Isa::kRef);
#if HPL_ARM64
  EXPECT_TRUE(isa_runnable(Isa::kNeon));  // AdvSIMD is part of ARMv8-A
#endif
  for (Isa isa : run) EXPECT_EQ(ops(isa).isa, isa) << isa_name(isa);
  std::printf("cpu features: %s; runnable bodies:", cpu_feature_names().c_str());
  for (Isa isa : run) std::printf(" %s", isa_name(isa));
  std::printf("; active: %s\n", isa_name(active_isa()));
}

TEST(Dispatch, HplIsaPicksARunnableBodyAndRefusesTheRest) {
  EXPECT_EQ(isa_from_env(nullptr), runnable_isas().back());
  EXPECT_EQ(isa_from_env(""), runnable_isas().back());
  for (Isa isa : {Isa::kRef, Isa::kNeon, Isa::kDotprod, Isa::kI8mm, Isa::kAvx2, Isa::kAvxVnni,
                  Isa::kAvx512Vnni}) {
    Isa parsed;
    ASSERT_TRUE(isa_from_name(isa_name(isa), &parsed));
    EXPECT_EQ(parsed, isa);
    if (isa_runnable(isa)) {
      EXPECT_EQ(isa_from_env(isa_name(isa)), isa);
    } else {
      try {
        isa_from_env(isa_name(isa));
        ADD_FAILURE() << "HPL_ISA=" << isa_name(isa) << " accepted on a machine without it";
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(isa_name(isa)), std::string::npos) << e.what();
      }
    }
    if (!isa_built(isa)) {
      EXPECT_THROW((void)ops(isa), std::invalid_argument) << isa_name(isa);
    }
  }
  EXPECT_THROW(isa_from_env("sse2"), std::runtime_error);
}

const int64_t kSizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 100, 640, 2048, 2051};

std::vector<float> random_vec(std::mt19937& rng, int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Checks |got - want| <= atol + rtol * |want| element-wise; reports the worst element.
void expect_close(const float* got, const double* want, int64_t n, double atol, double rtol,
                  const std::string& what) {
  int64_t bad = 0, worst = -1;
  double worst_excess = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    double lim = atol + rtol * std::fabs(want[i]);
    bool nan_mismatch = std::isnan(got[i]) != std::isnan(want[i]);
    if (nan_mismatch || err > lim) {
      ++bad;
      double excess = nan_mismatch ? INFINITY : err - lim;
      if (worst < 0 || excess > worst_excess) worst = i, worst_excess = excess;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << n << " elements off; worst [" << worst
                    << "] got " << (worst >= 0 ? got[worst] : 0.0f) << " want "
                    << (worst >= 0 ? want[worst] : 0.0) << " (atol " << atol << ", rtol " << rtol
                    << ")";
}
void expect_close(const float* got, const float* want, int64_t n, double atol, double rtol,
                  const std::string& what) {
  std::vector<double> w(want, want + n);
  expect_close(got, w.data(), n, atol, rtol, what);
}

std::string shape(const char* isa, int64_t n) {
  return std::string(isa) + " n=" + std::to_string(n);
}

// ---- rmsnorm ----------------------------------------------------------------------------------

TEST(Ops, RmsnormMatchesRef) {
  std::mt19937 rng(1);
  for (const OpSet& s : simd_sets()) {
    for (int64_t n : kSizes) {
      for (float w_offset : {0.0f, 1.0f}) {
        for (float amp : {1.0f, 1000.0f}) {
          auto x = random_vec(rng, n, -amp, amp);
          auto w = random_vec(rng, n, -1.0f, 1.0f);
          std::vector<float> want(n), got(n), inplace = x;
          ref::rmsnorm(x.data(), w.data(), want.data(), n, 1e-6f, w_offset);
          s.rmsnorm(x.data(), w.data(), got.data(), n, 1e-6f, w_offset);
          s.rmsnorm(inplace.data(), w.data(), inplace.data(), n, 1e-6f, w_offset);
          // tolerance: 1e-6 relative (float sum of squares in 32 partial sums vs double)
          expect_close(got.data(), want.data(), n, 1e-30, 1e-6, shape(s.name, n));
          EXPECT_EQ(0, std::memcmp(got.data(), inplace.data(), n * sizeof(float)))
              << "y aliasing x";
        }
      }
    }
  }
}

TEST(Ops, RmsnormRefMatchesDouble) {
  std::mt19937 rng(2);
  for (int64_t n : kSizes) {
    auto x = random_vec(rng, n, -3.0f, 3.0f);
    auto w = random_vec(rng, n, -1.0f, 1.0f);
    const float eps = 1e-5f;
    std::vector<float> y(n);
    ref::rmsnorm(x.data(), w.data(), y.data(), n, eps, 1.0f);
    double ms = 0.0;
    for (float v : x) ms += static_cast<double>(v) * v / static_cast<double>(n);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = x[i] / std::sqrt(ms + eps) * (1.0 + w[i]);
    // tolerance: 1e-6 relative (one float rounding of a double result: <= 6e-8)
    expect_close(y.data(), want.data(), n, 1e-30, 1e-6, shape("ref", n));
  }
}

// ---- rope -------------------------------------------------------------------------------------

struct RopeCase {
  int64_t n_heads, head_dim, rot_dim;
};
const RopeCase kRopeCases[] = {
    {1, 2, 2},     {3, 8, 8},      {32, 64, 64},  {4, 256, 256}, {2, 64, 32},
    {5, 80, 80},   {2, 80, 40},    {1, 130, 130}, {3, 12, 6},    {2, 64, 0},
    {1, 300, 258}, {1, 1100, 1030}};  // the last is above the 512-pair table cache
const int64_t kRopePos[] = {0, 1, 17, 511, 4095, 131071};

TEST(Ops, RopeMatchesRef) {
  std::mt19937 rng(3);
  for (const OpSet& s : simd_sets()) {
    for (RopeCase c : kRopeCases) {
      for (int64_t pos : kRopePos) {
        for (RopeLayout layout : {RopeLayout::kNormal, RopeLayout::kNeox}) {
          for (float base : {10000.0f, 1000000.0f}) {
            const float fscale = pos % 2 ? 0.25f : 1.0f;
            // Llama 3 / Phi-3 frequency divisors in [1, 32] on every other call.
            const auto factors = random_vec(rng, std::max<int64_t>(1, c.rot_dim / 2), 1.0f, 32.0f);
            const float* ff = base == 10000.0f ? factors.data() : nullptr;
            auto x = random_vec(rng, c.n_heads * c.head_dim, -2.0f, 2.0f);
            std::vector<float> want = x, got = x;
            ref::rope(want.data(), c.n_heads, c.head_dim, c.rot_dim, pos, base, fscale, layout, ff);
            s.rope(got.data(), c.n_heads, c.head_dim, c.rot_dim, pos, base, fscale, layout, ff);
            // tolerance: 1e-6 abs on |x| <= 2 (float cos/sin table + 2 float ops vs double)
            expect_close(got.data(), want.data(), x.size(), 1e-6, 0.0,
                         std::string(s.name) + " heads=" + std::to_string(c.n_heads) +
                             " hd=" + std::to_string(c.head_dim) +
                             " rot=" + std::to_string(c.rot_dim) + " pos=" + std::to_string(pos) +
                             (layout == RopeLayout::kNeox ? " neox" : " normal"));
          }
        }
      }
    }
  }
}

TEST(Ops, RopeRefMatchesComplexRotation) {
  // Pair (a, b) is the complex number a + ib multiplied by e^(i theta), theta from the
  // definition theta_i = pos * freq_scale / base^(2i / rot_dim); unrotated dims stay bit-equal.
  std::mt19937 rng(4);
  for (RopeCase c : kRopeCases) {
    for (int64_t pos : kRopePos) {
      for (RopeLayout layout : {RopeLayout::kNormal, RopeLayout::kNeox}) {
        const double base = 10000.0, fscale = 0.5;
        auto x = random_vec(rng, c.n_heads * c.head_dim, -2.0f, 2.0f);
        // theta_i is divided by factor i: use 1 + i so every pair gets its own.
        std::vector<float> ff(static_cast<size_t>(std::max<int64_t>(1, c.rot_dim / 2)));
        for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + static_cast<float>(i);
        std::vector<float> y = x;
        ref::rope(y.data(), c.n_heads, c.head_dim, c.rot_dim, pos, static_cast<float>(base),
                  static_cast<float>(fscale), layout, ff.data());
        std::vector<double> want(x.begin(), x.end());
        const int64_t half = c.rot_dim / 2;
        for (int64_t h = 0; h < c.n_heads; ++h) {
          for (int64_t i = 0; i < half; ++i) {
            int64_t a = h * c.head_dim + (layout == RopeLayout::kNormal ? 2 * i : i);
            int64_t b = h * c.head_dim + (layout == RopeLayout::kNormal ? 2 * i + 1 : i + half);
            double theta =
                pos * fscale / std::exp(std::log(base) * (2.0 * i) / c.rot_dim) / (1.0 + i);
            std::complex<double> z = std::complex<double>(x[a], x[b]) * std::polar(1.0, theta);
            want[a] = z.real();
            want[b] = z.imag();
          }
        }
        // tolerance: 2e-6 abs; pos up to 131071 makes theta ~1e5 rad, where the double angle
        // computed two ways differs by ~1e-11 rad.
        expect_close(y.data(), want.data(), y.size(), 2e-6, 0.0,
                     "ref rot=" + std::to_string(c.rot_dim) + " pos=" + std::to_string(pos));
        for (int64_t h = 0; h < c.n_heads; ++h) {
          for (int64_t d = c.rot_dim; d < c.head_dim; ++d)
            ASSERT_EQ(y[h * c.head_dim + d], x[h * c.head_dim + d]) << "unrotated dim changed";
        }
      }
    }
  }
}

// ---- softmax ----------------------------------------------------------------------------------

struct Range {
  int64_t begin, end;
};
std::vector<Range> softmax_ranges(int64_t n) {
  std::vector<Range> r = {{0, n}, {0, 1}, {n - 1, n}, {0, (n + 1) / 2}, {n / 3, n - n / 4}};
  std::vector<Range> ok;
  for (Range x : r)
    if (0 <= x.begin && x.begin < x.end && x.end <= n) ok.push_back(x);
  return ok;
}

TEST(Ops, SoftmaxMatchesRef) {
  std::mt19937 rng(5);
  for (const OpSet& s : simd_sets()) {
    for (int64_t n : kSizes) {
      for (Range r : softmax_ranges(n)) {
        for (float sc : {1.0f, 0.125f, -0.5f}) {
          auto x = random_vec(rng, n, -20.0f, 20.0f);
          if (n > 4 && sc > 0) x[n / 2] = -INFINITY;  // a masked entry inside the range
          std::vector<float> want = x, got = x;
          ref::softmax(want.data(), n, sc, r.begin, r.end);
          s.softmax(got.data(), n, sc, r.begin, r.end);
          // tolerance: 1e-6 abs (polynomial exp ~2 ulp, float sum; outputs are <= 1)
          std::string what = shape(s.name, n) + " [" + std::to_string(r.begin) + "," +
                             std::to_string(r.end) + ") scale " + std::to_string(sc);
          expect_close(got.data(), want.data(), n, 1e-6, 0.0, what);
          for (int64_t i = 0; i < n; ++i) {
            if (i < r.begin || i >= r.end) {
              ASSERT_EQ(got[i], 0.0f) << what << " outside [" << i << "]";
            }
          }
        }
      }
    }
  }
}

TEST(Ops, SoftmaxRefMatchesDouble) {
  // p_i = 1 / sum_j exp(s_j - s_i): no max subtraction, a different formula from the body.
  std::mt19937 rng(6);
  for (int64_t n : kSizes) {
    for (Range r : softmax_ranges(n)) {
      auto x = random_vec(rng, n, -8.0f, 8.0f);
      std::vector<float> y = x;
      const double sc = 0.75;
      ref::softmax(y.data(), n, static_cast<float>(sc), r.begin, r.end);
      std::vector<double> want(n, 0.0);
      for (int64_t i = r.begin; i < r.end; ++i) {
        double den = 0.0;
        for (int64_t j = r.begin; j < r.end; ++j) den += std::exp(sc * x[j] - sc * x[i]);
        want[i] = 1.0 / den;
      }
      // tolerance: 1e-7 abs (ref is double inside, rounded once)
      expect_close(y.data(), want.data(), n, 1e-7, 0.0, shape("ref", n));
    }
  }
}

TEST(Ops, SoftmaxAllMaskedGivesZeros) {
  for (const OpSet& s : all_sets()) {
    std::vector<float> x(19, -INFINITY);
    x[0] = 3.0f;
    s.softmax(x.data(), 19, 1.0f, 2, 17);
    for (float v : x) EXPECT_EQ(v, 0.0f) << s.name;
  }
}

// ---- elementwise ------------------------------------------------------------------------------

// Random values in [-lo, hi] plus the edges of the exp range.
std::vector<float> activation_inputs(std::mt19937& rng, int64_t n) {
  auto x = random_vec(rng, n, -12.0f, 12.0f);
  const float special[] = {0.0f,   -0.0f, 1e-8f,  -1e-8f, 30.0f,
                           -30.0f, 90.0f, -90.0f, 200.0f, -200.0f};
  for (int64_t i = 0; i < n && i < 10; ++i) x[(i * 7) % n] = special[i];
  return x;
}

TEST(Ops, ActivationsMatchRef) {
  std::mt19937 rng(7);
  for (const OpSet& s : simd_sets()) {
    for (int64_t n : kSizes) {
      auto x = activation_inputs(rng, n);
      auto up = random_vec(rng, n, -3.0f, 3.0f);
      std::vector<float> want(n), got(n);
      // tolerance for every exp-based op: 1e-6 abs + 1e-5 rel (polynomial exp ~2 ulp, one
      // division); gelu uses x * sigmoid(2u), the same function as the tanh form.
      ref::silu(x.data(), want.data(), n);
      s.silu(x.data(), got.data(), n);
      expect_close(got.data(), want.data(), n, 1e-6, 1e-5, shape(s.name, n) + " silu");
      ref::gelu_tanh(x.data(), want.data(), n);
      s.gelu_tanh(x.data(), got.data(), n);
      expect_close(got.data(), want.data(), n, 1e-6, 1e-5, shape(s.name, n) + " gelu_tanh");
      ref::swiglu(x.data(), up.data(), want.data(), n);
      s.swiglu(x.data(), up.data(), got.data(), n);
      expect_close(got.data(), want.data(), n, 1e-6, 1e-5, shape(s.name, n) + " swiglu");
      ref::geglu(x.data(), up.data(), want.data(), n);
      s.geglu(x.data(), up.data(), got.data(), n);
      expect_close(got.data(), want.data(), n, 1e-6, 1e-5, shape(s.name, n) + " geglu");
      // in place (y aliases the first input) gives the same bits
      std::vector<float> inplace = x;
      s.swiglu(inplace.data(), up.data(), inplace.data(), n);
      s.swiglu(x.data(), up.data(), got.data(), n);
      EXPECT_EQ(0, std::memcmp(got.data(), inplace.data(), n * sizeof(float))) << s.name;
    }
  }
}

TEST(Ops, ActivationRefsMatchDefinitions) {
  // silu(x) = x * sigmoid(x); gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))).
  const float xs[] = {-6.0f, -1.5f, -0.25f, 0.0f, 0.5f, 1.0f, 3.0f};
  // values from Python's math module (double): x / (1 + exp(-x)) and the tanh formula
  const double silu_want[] = {-0.014835738939808647, -0.2736382857095345, -0.10945587477855048, 0.0,
                              0.3112296656009273,    0.7310585786300049,  2.8577223804672998};
  const double gelu_want[] = {-8.43964897967453e-11, -0.10042842301976707, -0.100324649298315, 0.0,
                              0.34571400982514394,   0.8411919906082768,   2.996362607918227};
  float y[7];
  ref::silu(xs, y, 7);
  for (int i = 0; i < 7; ++i) EXPECT_NEAR(y[i], silu_want[i], 2e-7) << "silu(" << xs[i] << ")";
  ref::gelu_tanh(xs, y, 7);
  for (int i = 0; i < 7; ++i) EXPECT_NEAR(y[i], gelu_want[i], 2e-7) << "gelu(" << xs[i] << ")";
}

TEST(Ops, ArithmeticIsExact) {
  std::mt19937 rng(8);
  for (const OpSet& s : simd_sets()) {
    for (int64_t n : kSizes) {
      auto a = random_vec(rng, n, -5.0f, 5.0f), b = random_vec(rng, n, -5.0f, 5.0f);
      std::vector<float> want(n), got(n);
      // tolerance: 0 (one IEEE operation per element)
      ref::add(a.data(), b.data(), want.data(), n);
      s.add(a.data(), b.data(), got.data(), n);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(float)))
          << shape(s.name, n) << " add";
      ref::mul(a.data(), b.data(), want.data(), n);
      s.mul(a.data(), b.data(), got.data(), n);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(float)))
          << shape(s.name, n) << " mul";
      ref::scale(a.data(), -0.3f, want.data(), n);
      s.scale(a.data(), -0.3f, got.data(), n);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(float)))
          << shape(s.name, n) << " scale";
      std::vector<float> c = a;
      s.add(c.data(), b.data(), c.data(), n);  // residual add in place
      ref::add(a.data(), b.data(), want.data(), n);
      EXPECT_EQ(0, std::memcmp(c.data(), want.data(), n * sizeof(float)))
          << shape(s.name, n) << " add in place";
      EXPECT_EQ(want[n - 1], a[n - 1] + b[n - 1]);
    }
  }
}

TEST(Ops, Fp16ToFp32RowIsBitExactForAllHalves) {
  std::vector<f16_t> h(65536 + 3);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<f16_t>(i);
  std::vector<float> want(h.size()), got(h.size());
  ref::fp16_to_fp32_row(h.data(), want.data(), h.size());
  for (size_t i = 0; i < 16; ++i) ASSERT_EQ(want[i * 4096 + 1], fp16_to_fp32(h[i * 4096 + 1]));
  for (const OpSet& s : simd_sets()) {
    s.fp16_to_fp32_row(h.data(), got.data(), h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      uint32_t a, b;
      std::memcpy(&a, &got[i], 4);
      std::memcpy(&b, &want[i], 4);
      // Signaling NaN halves (exp 31, mantissa != 0, quiet bit 9 clear) come out of F16C /
      // fcvtl quieted (fp32 bit 22 set); every other half converts bit-exactly.
      bool snan = (h[i] & 0x7c00) == 0x7c00 && (h[i] & 0x3ff) != 0 && (h[i] & 0x200) == 0;
      ASSERT_EQ(a, snan ? (b | 0x00400000u) : b) << s.name << " half 0x" << std::hex << h[i];
    }
  }
}

TEST(Ops, Fp32ToFp16RowIsBitExact) {
  // Random bit patterns over the whole float range (inf, NaN, subnormals included), and values
  // exactly halfway between two halves (round to nearest even) with their neighbours.
  std::mt19937 rng(9);
  std::vector<float> x;
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
  }
  for (uint32_t h = 0; h < 0x7c00; h += 7) {
    float a = fp16_to_fp32(static_cast<f16_t>(h)), b = fp16_to_fp32(static_cast<f16_t>(h + 1));
    float mid = static_cast<float>((static_cast<double>(a) + b) / 2);
    for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), a * 1.0001f}) {
      x.push_back(v);
      x.push_back(-v);
    }
  }
  for (float v : {65504.0f, 65519.0f, 65520.0f, 1e-8f, 2.9802322e-08f, 5.9604645e-08f, INFINITY,
                  -INFINITY, NAN})
    x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<f16_t> want(n), got(n);
  ref::fp32_to_fp16_row(x.data(), want.data(), n);
  EXPECT_EQ(want[n - 3], 0x7c00);  // +inf
  for (const OpSet& s : simd_sets()) {
    s.fp32_to_fp16_row(x.data(), got.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &x[i], 4);
      ASSERT_EQ(got[i], want[i]) << s.name << " float bits 0x" << std::hex << bits;
    }
    // odd-length tails
    for (int64_t m : {1, 7, 9, 15, 17}) {
      std::vector<f16_t> t(m);
      s.fp32_to_fp16_row(x.data() + 3, t.data(), m);
      for (int64_t i = 0; i < m; ++i) ASSERT_EQ(t[i], want[3 + i]) << s.name << " tail " << m;
    }
  }
}

// ---- attention --------------------------------------------------------------------------------

struct AttnCase {
  int64_t n_heads, n_kv_heads, head_dim;
};
// MHA, GQA groups of 2/3/4/8/12 (more than 8 heads per kv head are processed in several
// passes), head_dim with 8-lane and 4-lane tails (7, 12, 40, 80).
const AttnCase kAttnCases[] = {{4, 4, 64}, {8, 2, 64},  {4, 1, 256}, {3, 1, 12},  {2, 1, 80},
                               {6, 3, 7},  {2, 2, 128}, {4, 2, 40},  {16, 2, 64}, {12, 1, 32}};

// The K/V row types attention reads; the quantized ones need head_dim % 32 == 0.
constexpr DType kKvTypes[] = {DType::F16, DType::F32, DType::Q8_0, DType::Q4_0};
bool kv_type_fits(DType t, AttnCase c) {
  return c.head_dim % type_traits(t).block_elems == 0;
}

struct AttnData {
  AttnParams p;
  int64_t n_ctx;  // positions in the cache
  std::vector<float> q;
  std::vector<uint8_t> k, v;  // (n_ctx, kv_stride) in p.kv_type
  std::vector<float> kd, vd;  // the same, dequantized by kernel::dequantize_row
};

AttnData make_attn(std::mt19937& rng, AttnCase c, int64_t n_tok, int64_t pos0, int64_t window,
                   DType kv_type = DType::F16) {
  AttnData a;
  a.p.n_heads = c.n_heads;
  a.p.n_kv_heads = c.n_kv_heads;
  a.p.head_dim = c.head_dim;
  a.p.q_stride = c.n_heads * c.head_dim + 3;  // padded rows: strides are honoured
  const int64_t blk = type_traits(kv_type).block_elems;
  a.p.kv_stride = c.n_kv_heads * c.head_dim + (blk > 1 ? blk : 5);
  a.p.kv_type = kv_type;
  a.p.out_stride = c.n_heads * c.head_dim + 2;
  a.p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  a.p.window = window;
  a.n_ctx = pos0 + n_tok;
  a.q = random_vec(rng, n_tok * a.p.q_stride, -2.0f, 2.0f);
  auto kf = random_vec(rng, a.n_ctx * a.p.kv_stride, -2.0f, 2.0f);
  auto vf = random_vec(rng, a.n_ctx * a.p.kv_stride, -1.0f, 1.0f);
  const size_t row = row_bytes(kv_type, a.p.kv_stride);
  a.k.resize(a.n_ctx * row);
  a.v.resize(a.n_ctx * row);
  a.kd.resize(kf.size());
  a.vd.resize(vf.size());
  for (int64_t j = 0; j < a.n_ctx; ++j) {
    const int64_t e = j * a.p.kv_stride;
    kv_store_row(kv_type, kf.data() + e, a.k.data() + j * row, a.p.kv_stride);
    kv_store_row(kv_type, vf.data() + e, a.v.data() + j * row, a.p.kv_stride);
    dequantize_row(kv_type, a.k.data() + j * row, a.kd.data() + e, a.p.kv_stride);
    dequantize_row(kv_type, a.v.data() + j * row, a.vd.data() + e, a.p.kv_stride);
  }
  return a;
}

std::string attn_what(const char* isa, AttnCase c, int64_t n_tok, int64_t pos0, int64_t window,
                      DType t = DType::F16) {
  return std::string(isa) + " " + type_name(t) + " heads=" + std::to_string(c.n_heads) + "/" +
         std::to_string(c.n_kv_heads) + " hd=" + std::to_string(c.head_dim) +
         " n_tok=" + std::to_string(n_tok) + " pos0=" + std::to_string(pos0) +
         " window=" + std::to_string(window);
}

TEST(Ops, AttentionMatchesRef) {
  std::mt19937 rng(10);
  const float kPad = 12345.0f;  // out padding must stay untouched
  for (const OpSet& s : simd_sets()) {
    for (DType t : kKvTypes) {
      for (AttnCase c : kAttnCases) {
        if (!kv_type_fits(t, c)) continue;
        for (int64_t n_tok : {1, 5, 17}) {
          for (int64_t pos0 : {0, 1, 37, 300}) {
            for (int64_t window : {0, 1, 4, 64}) {
              AttnData a = make_attn(rng, c, n_tok, pos0, window, t);
              std::vector<float> want(n_tok * a.p.out_stride, kPad), got = want;
              std::vector<float> scratch(a.n_ctx);
              ref::attention(a.p, a.q.data(), a.k.data(), a.v.data(), want.data(), n_tok, pos0, 0,
                             c.n_heads, scratch.data());
              s.attention(a.p, a.q.data(), a.k.data(), a.v.data(), got.data(), n_tok, pos0, 0,
                          c.n_heads, scratch.data());
              // tolerance: 1e-5 abs on |v| <= 1 (float dots and sums, polynomial exp vs
              // double; the bodies read the same K/V values, whatever their type)
              expect_close(got.data(), want.data(), got.size(), 1e-5, 0.0,
                           attn_what(s.name, c, n_tok, pos0, window, t));
            }
          }
        }
      }
    }
  }
}

// Naive attention in double, written from the definition: query token t at position pos sees
// key j iff j <= pos and (window == 0 or pos - j < window).
std::vector<double> naive_attention(const AttnData& a, int64_t n_tok, int64_t pos0) {
  const AttnParams& p = a.p;
  std::vector<double> out(n_tok * p.out_stride, 0.0);
  const int64_t group = p.n_heads / p.n_kv_heads;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = pos0 + t;
    for (int64_t h = 0; h < p.n_heads; ++h) {
      const int64_t g = h / group;
      std::vector<double> w(a.n_ctx, 0.0);
      double mx = -INFINITY, den = 0.0;
      for (int64_t j = 0; j < a.n_ctx; ++j) {
        if (j > pos || (p.window > 0 && pos - j >= p.window)) continue;
        double dot = 0.0;
        for (int64_t d = 0; d < p.head_dim; ++d)
          dot += static_cast<double>(a.q[t * p.q_stride + h * p.head_dim + d]) *
                 a.kd[j * p.kv_stride + g * p.head_dim + d];
        w[j] = dot * p.scale;
        mx = std::max(mx, w[j]);
      }
      for (int64_t j = 0; j < a.n_ctx; ++j) {
        bool seen = j <= pos && !(p.window > 0 && pos - j >= p.window);
        w[j] = seen ? std::exp(w[j] - mx) : 0.0;
        den += w[j];
      }
      for (int64_t d = 0; d < p.head_dim; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < a.n_ctx; ++j)
          acc += w[j] * a.vd[j * p.kv_stride + g * p.head_dim + d];
        out[t * p.out_stride + h * p.head_dim + d] = acc / den;
      }
    }
  }
  return out;
}

TEST(Ops, AttentionRefMatchesNaiveDouble) {
  // The naive form reads K/V through kernel::dequantize_row, so this also checks how the
  // bodies decode each K/V type.
  std::mt19937 rng(11);
  for (DType t : kKvTypes) {
    for (AttnCase c : kAttnCases) {
      if (!kv_type_fits(t, c)) continue;
      for (int64_t n_tok : {1, 6}) {
        for (int64_t pos0 : {0, 3, 50}) {
          for (int64_t window : {0, 1, 5}) {
            AttnData a = make_attn(rng, c, n_tok, pos0, window, t);
            std::vector<float> got(n_tok * a.p.out_stride, 0.0f), scratch(a.n_ctx);
            ref::attention(a.p, a.q.data(), a.k.data(), a.v.data(), got.data(), n_tok, pos0, 0,
                           c.n_heads, scratch.data());
            std::vector<double> want = naive_attention(a, n_tok, pos0);
            // tolerance: 1e-6 abs (ref keeps scores and weights as float, the rest in double)
            expect_close(got.data(), want.data(), got.size(), 1e-6, 0.0,
                         attn_what("ref", c, n_tok, pos0, window, t));
          }
        }
      }
    }
  }
}

TEST(Ops, KvStoreRowRoundTrips) {
  // Each K/V type keeps a row to its precision: f32 exactly, f16 to 2^-11 relative, q8_0 to
  // half a step of max|x| / 127 per block, q4_0 to a step of max|x| / 8 (the value of
  // opposite sign to the largest one clamps at 7 steps), plus the f16 rounding of the scale.
  std::mt19937 rng(15);
  const int64_t n = 256;
  auto x = random_vec(rng, n, -3.0f, 3.0f);
  for (DType t : kKvTypes) {
    std::vector<uint8_t> y(row_bytes(t, n));
    std::vector<float> back(n);
    kv_store_row(t, x.data(), y.data(), n);
    dequantize_row(t, y.data(), back.data(), n);
    for (int64_t b = 0; b < n; b += 32) {
      float amax = 0.0f;
      for (int64_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      const double tol = t == DType::F32    ? 0.0
                         : t == DType::F16  ? amax / 2048.0
                         : t == DType::Q8_0 ? 0.5 * amax / 127.0 + amax / 1024.0
                                            : amax / 8.0 + amax / 1024.0;
      for (int64_t i = b; i < b + 32; ++i)
        ASSERT_LE(std::fabs(back[i] - x[i]), tol) << type_name(t) << " i=" << i;
    }
  }
  std::vector<uint8_t> y(1024);
  EXPECT_THROW(kv_store_row(DType::Q8_0, x.data(), y.data(), 40), std::invalid_argument);
  EXPECT_THROW(kv_store_row(DType::Q4_K, x.data(), y.data(), 256), std::invalid_argument);
}

TEST(Ops, AttentionWindowOfOneCopiesOwnValue) {
  // window 1: each token sees only itself, so out = v at its own position (exactly, up to the
  // 1/sum scaling of a single weight 1).
  std::mt19937 rng(12);
  AttnCase c{4, 2, 16};
  AttnData a = make_attn(rng, c, 3, 10, 1);
  for (const OpSet& s : all_sets()) {
    std::vector<float> out(3 * a.p.out_stride), scratch(a.n_ctx);
    s.attention(a.p, a.q.data(), a.k.data(), a.v.data(), out.data(), 3, 10, 0, 4, scratch.data());
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t d = 0; d < 16; ++d)
          ASSERT_EQ(out[t * a.p.out_stride + h * 16 + d],
                    a.vd[(10 + t) * a.p.kv_stride + (h / 2) * 16 + d])
              << s.name;
  }
}

TEST(Ops, AttentionHeadRangesSplitAcrossThreads) {
  // Heads split by a thread pool (each thread its own scratch) give the same bits as one call,
  // and a call for heads [h0, h1) writes only those heads.
  std::mt19937 rng(13);
  AttnCase c{8, 2, 64};
  const int64_t n_tok = 4, pos0 = 90;
  AttnData a = make_attn(rng, c, n_tok, pos0, 32);
  for (const OpSet& s : all_sets()) {
    std::vector<float> whole(n_tok * a.p.out_stride, -7.0f), scratch(a.n_ctx);
    s.attention(a.p, a.q.data(), a.k.data(), a.v.data(), whole.data(), n_tok, pos0, 0, c.n_heads,
                scratch.data());
    for (int nth : {1, 2, 3, 4}) {
      ThreadPool pool(nth);
      std::vector<float> split(whole.size(), -7.0f);
      std::vector<std::vector<float>> scratches(nth, std::vector<float>(a.n_ctx));
      pool.run([&](int ith, int n) {
        int64_t h0 = c.n_heads * ith / n, h1 = c.n_heads * (ith + 1) / n;
        s.attention(a.p, a.q.data(), a.k.data(), a.v.data(), split.data(), n_tok, pos0, h0, h1,
                    scratches[ith].data());
      });
      EXPECT_EQ(0, std::memcmp(split.data(), whole.data(), whole.size() * sizeof(float)))
          << s.name << " threads=" << nth;
    }
    std::vector<float> part(whole.size(), -7.0f);
    s.attention(a.p, a.q.data(), a.k.data(), a.v.data(), part.data(), n_tok, pos0, 2, 5,
                scratch.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t i = 0; i < a.p.out_stride; ++i) {
        float v = part[t * a.p.out_stride + i];
        bool inside = i >= 2 * 64 && i < 5 * 64;
        ASSERT_EQ(v, inside ? whole[t * a.p.out_stride + i] : -7.0f) << s.name << " i=" << i;
      }
    }
  }
}

TEST(Ops, DecodeEqualsLastRowOfPrefill) {
  // Token pos0 + n - 1 of a prefill block sees the same keys as a decode call at that position.
  std::mt19937 rng(14);
  AttnCase c{4, 1, 256};
  const int64_t n_tok = 9, pos0 = 20;
  AttnData a = make_attn(rng, c, n_tok, pos0, 0);
  for (const OpSet& s : all_sets()) {
    std::vector<float> pre(n_tok * a.p.out_stride), dec(a.p.out_stride), scratch(a.n_ctx);
    s.attention(a.p, a.q.data(), a.k.data(), a.v.data(), pre.data(), n_tok, pos0, 0, 4,
                scratch.data());
    s.attention(a.p, a.q.data() + (n_tok - 1) * a.p.q_stride, a.k.data(), a.v.data(), dec.data(), 1,
                pos0 + n_tok - 1, 0, 4, scratch.data());
    EXPECT_EQ(0, std::memcmp(dec.data(), pre.data() + (n_tok - 1) * a.p.out_stride,
                             4 * 256 * sizeof(float)))
        << s.name;
  }
}

// ---- argument checks --------------------------------------------------------------------------

TEST(Ops, BadArgumentsThrow) {
  for (const OpSet& s : all_sets()) {
    std::vector<float> x(64, 1.0f), w(64, 1.0f);
    EXPECT_THROW(s.softmax(x.data(), 8, 1.0f, 3, 3), std::invalid_argument) << s.name;
    EXPECT_THROW(s.softmax(x.data(), 8, 1.0f, 0, 9), std::invalid_argument) << s.name;
    EXPECT_THROW(s.rmsnorm(x.data(), w.data(), x.data(), 0, 1e-6f, 0.0f), std::invalid_argument);
    EXPECT_THROW(s.rope(x.data(), 1, 8, 7, 0, 1e4f, 1.0f, RopeLayout::kNormal, nullptr),
                 std::invalid_argument);
    EXPECT_THROW(s.rope(x.data(), 1, 8, 10, 0, 1e4f, 1.0f, RopeLayout::kNeox, nullptr),
                 std::invalid_argument);
    AttnParams p;
    p.n_heads = 6;
    p.n_kv_heads = 4;
    p.head_dim = 8;
    p.q_stride = p.out_stride = 48;
    p.kv_stride = 32;
    std::vector<f16_t> kv(64);
    EXPECT_THROW(s.attention(p, x.data(), kv.data(), kv.data(), x.data(), 1, 0, 0, 6, w.data()),
                 std::invalid_argument)
        << s.name;
    p.n_kv_heads = 6;
    p.kv_stride = 48;
    p.kv_type = DType::Q8_0;  // head_dim 8 is not a multiple of the 32-element block
    EXPECT_THROW(s.attention(p, x.data(), kv.data(), kv.data(), x.data(), 1, 0, 0, 6, w.data()),
                 std::invalid_argument)
        << s.name;
    p.kv_type = DType::Q4_K;  // not a K/V type
    EXPECT_THROW(s.attention(p, x.data(), kv.data(), kv.data(), x.data(), 1, 0, 0, 6, w.data()),
                 std::invalid_argument)
        << s.name;
    p.kv_type = DType::F16;
    p.n_kv_heads = 4;
    p.kv_stride = 32;
    p.n_kv_heads = 3;
    p.kv_stride = 24;
    EXPECT_THROW(s.attention(p, x.data(), kv.data(), kv.data(), x.data(), 1, 0, 4, 7, w.data()),
                 std::invalid_argument)
        << s.name;
    p.q_stride = 40;
    EXPECT_THROW(s.attention(p, x.data(), kv.data(), kv.data(), x.data(), 1, 0, 0, 6, w.data()),
                 std::invalid_argument)
        << s.name;
  }
}

}  // namespace
}  // namespace hpl::kernel
