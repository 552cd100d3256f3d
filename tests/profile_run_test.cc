// The profile's measurement loop: every repetition's op times add up to its measured wall time
// (hooks never count a moment twice, "other" is the rest), layers add up to at most the
// total, and a traced repetition's slices nest properly per thread with the expected counts.
#include "tools/profile_run.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

namespace hpl {
namespace {

const std::string kModel = std::string(HPL_TEST_DATA_DIR) + "/models/stories260K.gguf";

TEST(Spread, MedianMinMax) {
  const Spread a = spread_of({3, 1, 2});
  EXPECT_EQ(a.median, 2);
  EXPECT_EQ(a.min, 1);
  EXPECT_EQ(a.max, 3);
  EXPECT_EQ(spread_of({4, 1, 2, 3}).median, 2.5);
}

TEST(Roofline, Attainable) {
  Roofline r{10e9, 100e9, 50e9};
  OpCost mem{1e6, 1e6, true};  // 1 op/byte -> 10 GOP/s by bandwidth
  EXPECT_DOUBLE_EQ(r.attainable_ops(mem), 10e9);
  OpCost comp{1e3, 1e9, false};  // 1e6 op/byte -> the f32 peak
  EXPECT_DOUBLE_EQ(r.attainable_ops(comp), 50e9);
}

class ProfileRunTest : public ::testing::TestWithParam<int> {};

TEST_P(ProfileRunTest, OpsAddUpToWallAndTraceNests) {
  auto m = Model::load(kModel);
  ForwardOptions fo;
  fo.n_threads = GetParam();
  fo.n_ubatch = 8;
  fo.n_ctx = 64;
  ProfileOptions po;
  po.n_prompt = 20;
  po.n_gen = 4;
  po.reps = 3;
  po.ctx_depths = {0, 30};
  po.trace = true;
  const ProfileRun run = profile_forward(*m, fo, po, 1);
  EXPECT_GT(run.first_token_s, 0);
  ASSERT_EQ(run.decode.size(), 2u);
  EXPECT_EQ(run.decode[1].depth, 30);

  std::vector<const PhaseRun*> phases = {&run.prefill, &run.decode[0], &run.decode[1]};
  for (const PhaseRun* ph : phases) {
    ASSERT_EQ(ph->wall_s.size(), 3u);
    ASSERT_EQ(ph->op_s.size(), 3u);
    for (size_t r = 0; r < 3; ++r) {
      const double wall = ph->wall_s[r];
      // Tolerance: 1e-9 relative (sums of doubles). Hooks see no more than the wall time...
      EXPECT_LE(ph->hooked_s[r], wall * (1 + 1e-9)) << ph->name;
      // ...and the op times, "other" included, add up to it.
      double sum = 0;
      for (double s : ph->op_s[r]) sum += s;
      EXPECT_NEAR(sum, wall, wall * 1e-9) << ph->name;
      double layers = 0;
      for (const auto& l : ph->layer_s[r])
        for (double s : l) layers += s;
      EXPECT_LE(layers, ph->hooked_s[r] * (1 + 1e-9));
      EXPECT_EQ(ph->layer_s[r].size(), 5u);
    }
  }

  // Trace: per thread, slices are properly nested (or disjoint) inside the phase's span.
  for (const PhaseRun* ph : phases) {
    ASSERT_FALSE(ph->slices.empty());
    std::map<int, std::vector<const ProfSlice*>> by_thread;
    int layer_slices = 0, matmul_slices = 0;
    for (const ProfSlice& s : ph->slices) {
      EXPECT_LE(s.t0_ns, s.t1_ns);
      EXPECT_GE(s.t0_ns, ph->t0_ns);
      EXPECT_LE(s.t1_ns, ph->t1_ns);
      by_thread[s.thread].push_back(&s);
      layer_slices += s.is_layer;
      if (!s.is_layer && prof_op_is_matmul(s.op)) {
        ++matmul_slices;
        EXPECT_NE(s.shape.type, nullptr);
        EXPECT_LT(s.shape.r0, s.shape.r1);
      }
      if (!s.is_layer && s.op != ProfOp::kOutput && s.op != ProfOp::kEmbedding &&
          s.op != ProfOp::kSampling && s.op != ProfOp::kNorm) {
        EXPECT_GE(s.layer, 0) << prof_op_name(s.op);
      }
    }
    // Layer slices: 5 per micro-batch, on the driving thread.
    const int evals = ph->name == "prefill" ? 3 : 4;  // 20 tokens in micro-batches of 8
    EXPECT_EQ(layer_slices, 5 * evals) << ph->name;
    // Matmuls: 7 per layer + output per eval, one slice per thread that got rows (>= 1).
    if (GetParam() == 1) {
      EXPECT_EQ(matmul_slices, evals * (5 * 7) + (ph->name == "prefill" ? 1 : 4));
    } else {
      EXPECT_GE(matmul_slices, evals * (5 * 7));
    }
    EXPECT_EQ(by_thread.count(ph->thread), 1u);
    for (auto& [tid, v] : by_thread) {
      std::sort(v.begin(), v.end(), [](const ProfSlice* a, const ProfSlice* b) {
        return a->t0_ns != b->t0_ns ? a->t0_ns < b->t0_ns : a->t1_ns > b->t1_ns;
      });
      std::vector<const ProfSlice*> open;
      for (const ProfSlice* s : v) {
        while (!open.empty() && open.back()->t1_ns <= s->t0_ns) open.pop_back();
        if (!open.empty()) {
          EXPECT_LE(s->t1_ns, open.back()->t1_ns) << "slice overlaps its parent on thread " << tid;
          EXPECT_TRUE(open.back()->is_layer) << "only layer slices enclose others";
        }
        open.push_back(s);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, ProfileRunTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace hpl
