// Profiler: scopes and parallel sections add up to wall time; the forward pass gives the same
// logits with and without a profiler and reports every matmul role.
#include "engine/profiler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "engine/forward.h"
#include "engine/model.h"

namespace hpl {
namespace {

const std::string kModel = std::string(HPL_TEST_DATA_DIR) + "/models/stories260K.gguf";
const std::string kModelQ8 =
    std::string(HPL_TEST_DATA_DIR) + "/models/tinyllamas-stories-260k-q8_0.gguf";

void spin(double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
  }
}

TEST(Profiler, NullScopesDoNothing) {
  int calls = 0;
  {
    ProfScope s(nullptr, ProfOp::kNorm);
    ProfSection sec(nullptr);
    sec.part(ProfOp::kRope, [&] { ++calls; });
  }
  EXPECT_EQ(calls, 1);  // the work still runs
}

TEST(Profiler, ScopeAddsWallTime) {
  Profiler p;
  {
    ProfScope s(&p, ProfOp::kAttention);
    spin(0.01);
  }
  EXPECT_GE(p.seconds(ProfOp::kAttention), 0.01);
  EXPECT_LT(p.seconds(ProfOp::kAttention), 60.0);
  EXPECT_EQ(p.seconds(ProfOp::kNorm), 0.0);
  EXPECT_DOUBLE_EQ(p.total(), p.seconds(ProfOp::kAttention));
  p.clear();
  EXPECT_EQ(p.total(), 0.0);
}

// Timings are not asserted (the machine is shared); only how the wall time is attributed.
TEST(Profiler, SectionSplitsItsWallTime) {
  Profiler p;
  const auto t0 = std::chrono::steady_clock::now();
  double inside = 0;
  {
    ProfSection sec(&p);
    const auto t1 = std::chrono::steady_clock::now();  // the section started before t1
    auto work = [&] {
      sec.part(ProfOp::kRope, [] { spin(0.002); });
      sec.part(ProfOp::kNorm, [] { spin(0.001); });
    };
    std::thread th(work);
    work();
    th.join();
    inside = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(p.seconds(ProfOp::kRope), 0.0);
  EXPECT_GT(p.seconds(ProfOp::kNorm), 0.0);
  EXPECT_EQ(p.seconds(ProfOp::kOther), 0.0);
  EXPECT_GE(p.total(), inside * (1 - 1e-9));  // the whole section, split, nothing more
  EXPECT_LE(p.total(), wall * (1 + 1e-9));

  // One kind only: all of it; no parts at all: "other".
  Profiler q;
  {
    ProfSection sec(&q);
    sec.part(ProfOp::kAdd, [] { spin(0.001); });
  }
  EXPECT_DOUBLE_EQ(q.total(), q.seconds(ProfOp::kAdd));
  EXPECT_GE(q.seconds(ProfOp::kAdd), 0.001);
  Profiler r;
  {
    ProfSection sec(&r);
    spin(0.001);
  }
  EXPECT_DOUBLE_EQ(r.total(), r.seconds(ProfOp::kOther));
  EXPECT_GE(r.seconds(ProfOp::kOther), 0.001);
}

TEST(Profiler, NamesAndGroups) {
  EXPECT_STREQ(prof_op_name(ProfOp::kAttnQ), "attn_q");
  EXPECT_STREQ(prof_op_name(ProfOp::kOutput), "output");
  EXPECT_STREQ(prof_op_name(ProfOp::kQuantizeAct), "quantize_act");
  EXPECT_TRUE(prof_op_is_matmul(ProfOp::kFfnDown));
  EXPECT_FALSE(prof_op_is_matmul(ProfOp::kAttention));
  for (int i = 0; i < kProfOpCount; ++i)
    EXPECT_STRNE(prof_op_name(static_cast<ProfOp>(i)), "?") << i;
}

class ProfiledForward : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(ProfiledForward, SameLogitsAndEveryRole) {
  const auto& [path, threads] = GetParam();
  auto model = Model::load(path);
  ForwardOptions fo;
  fo.n_ctx = 64;
  fo.n_ubatch = 16;
  fo.n_threads = threads;
  Forward fwd(*model, fo);
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(1 + (i * 37) % 500);
  const int64_t V = fwd.n_vocab();
  std::vector<float> plain(ids.size() * V), profiled(ids.size() * V);
  fwd.eval(ids.data(), static_cast<int64_t>(ids.size()), plain.data(), true);
  fwd.reset();
  Profiler p;
  fwd.set_profiler(&p);
  fwd.eval(ids.data(), static_cast<int64_t>(ids.size()), profiled.data(), true);
  EXPECT_EQ(plain, profiled);
  for (ProfOp op :
       {ProfOp::kAttnQ, ProfOp::kAttnK, ProfOp::kAttnV, ProfOp::kAttnOutput, ProfOp::kFfnGate,
        ProfOp::kFfnUp, ProfOp::kFfnDown, ProfOp::kOutput, ProfOp::kAttention, ProfOp::kNorm,
        ProfOp::kRope, ProfOp::kActivation, ProfOp::kKvStore, ProfOp::kAdd, ProfOp::kEmbedding}) {
    EXPECT_GT(p.seconds(op), 0.0) << prof_op_name(op);
  }
  EXPECT_EQ(p.seconds(ProfOp::kQuantizeAct) > 0.0, path == kModelQ8);
  EXPECT_EQ(p.seconds(ProfOp::kSampling), 0.0);  // the caller's to time
  // Off again: nothing more is recorded.
  const double before = p.total();
  fwd.set_profiler(nullptr);
  fwd.eval(ids.data(), 1, nullptr);
  EXPECT_EQ(p.total(), before);
}

INSTANTIATE_TEST_SUITE_P(Models, ProfiledForward,
                         ::testing::Combine(::testing::Values(kModel, kModelQ8),
                                            ::testing::Values(1, 2)));

}  // namespace
}  // namespace hpl
