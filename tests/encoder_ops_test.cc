// The encoder ops (layernorm, gelu_erf): every SIMD body against the scalar reference, and the
// reference against its definition in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel/ops.h"

namespace hpl::kernel {
namespace {

struct Body {
  const Ops* ops;
  const char* name;
};

// Every full body this machine runs (matmul-only bodies share their parent's ops).
std::vector<Body> simd_bodies() {
  std::vector<Body> v;
  for (Isa isa : runnable_isas()) {
    if (isa != Isa::kRef && isa_parent(isa) == Isa::kRef) v.push_back({&ops(isa), isa_name(isa)});
  }
  return v;
}

const int64_t kSizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 100, 384, 768, 1029};

std::vector<float> rand_vec(std::mt19937& rng, int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// max |got - want| / (atol + rtol |want|) <= 1
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double atol,
                  double rtol, const std::string& what) {
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(double(got[i]) - want[i]), atol + rtol * std::fabs(double(want[i])))
        << what << " at " << i << ": got " << got[i] << " want " << want[i];
  }
}

TEST(EncoderOps, LayerNormRefMatchesDefinition) {
  const float x[] = {1.0f, 2.0f, 4.0f, -3.0f};
  const float w[] = {1.0f, 0.5f, 2.0f, 1.0f};
  const float b[] = {0.0f, 1.0f, 0.0f, -1.0f};
  float y[4];
  ref::layernorm(x, w, b, y, 4, 1e-5f);
  const double mean = 1.0, var = (0 + 1 + 9 + 16) / 4.0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(y[i], (x[i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i], 1e-6);
  }
  EXPECT_THROW(ref::layernorm(x, w, b, y, 0, 1e-5f), std::invalid_argument);
}

TEST(EncoderOps, LayerNormBodiesMatchRef) {
  std::mt19937 rng(11);
  for (const Body& s : simd_bodies()) {
    for (int64_t n : kSizes) {
      // An offset mean checks the two-pass variance (E[x^2] - mean^2 would lose digits).
      auto x = rand_vec(rng, n, 97.0f, 103.0f);
      auto w = rand_vec(rng, n, -2.0f, 2.0f);
      auto b = rand_vec(rng, n, -1.0f, 1.0f);
      std::vector<float> want(n), got(n), inplace = x;
      ref::layernorm(x.data(), w.data(), b.data(), want.data(), n, 1e-12f);
      s.ops->layernorm(x.data(), w.data(), b.data(), got.data(), n, 1e-12f);
      // float sums over up to 1029 values around 100: ~1e-4 relative in the centered values.
      expect_close(got, want, 2e-4, 2e-4,
                   std::string(s.name) + " layernorm n=" + std::to_string(n));
      s.ops->layernorm(inplace.data(), w.data(), b.data(), inplace.data(), n, 1e-12f);
      EXPECT_EQ(0, std::memcmp(inplace.data(), got.data(), n * sizeof(float))) << s.name;
      EXPECT_THROW(s.ops->layernorm(x.data(), w.data(), b.data(), got.data(), 0, 1e-5f),
                   std::invalid_argument);
    }
  }
}

TEST(EncoderOps, GeluErfRefMatchesDefinition) {
  const float x[] = {-6.0f, -1.5f, -0.25f, 0.0f, 0.5f, 1.0f, 3.0f};
  float y[7];
  ref::gelu_erf(x, y, 7);
  // GELU(x) = x * Phi(x), Phi the standard normal CDF = erfc(-x / sqrt 2) / 2.
  for (int i = 0; i < 7; ++i)
    EXPECT_NEAR(y[i], x[i] * 0.5 * std::erfc(-x[i] / std::sqrt(2.0)), 1e-7);
}

TEST(EncoderOps, GeluErfBodiesMatchRef) {
  std::mt19937 rng(5);
  for (const Body& s : simd_bodies()) {
    for (int64_t n : kSizes) {
      auto x = rand_vec(rng, n, -10.0f, 10.0f);
      const float special[] = {0.0f, -0.0f, 1e-8f, -1e-8f, 30.0f, -30.0f, 1e4f, -1e4f};
      for (int64_t i = 0; i < n && i < 8; ++i) x[(i * 5) % n] = special[i];
      std::vector<float> want(n), got(n);
      ref::gelu_erf(x.data(), want.data(), n);
      s.ops->gelu_erf(x.data(), got.data(), n);
      // erf polynomial 1.5e-7 absolute, times 0.5|x|: 1e-6 absolute + 1e-6 relative.
      expect_close(got, want, 1e-6, 1e-6, std::string(s.name) + " gelu_erf n=" + std::to_string(n));
    }
  }
}

}  // namespace
}  // namespace hpl::kernel
