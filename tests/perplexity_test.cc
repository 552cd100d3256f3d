// Perplexity: the NLL of one token, and the chunked second-half scoring against logits of
// whole chunks computed here.
#include "tools/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/model.h"

namespace hpl {
namespace {

const std::string kModel = std::string(HPL_TEST_DATA_DIR) + "/models/stories260K.gguf";

TEST(TokenNll, MatchesTheDefinition) {
  const std::vector<float> l = {1.0f, 2.0f, 3.0f, -1.0f};
  double z = 0;
  for (float x : l) z += std::exp(static_cast<double>(x));
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(token_nll(l.data(), 4, t), std::log(z) - l[t], 1e-12);
  // Large logits do not overflow.
  const std::vector<float> big = {1000.0f, 1000.0f};
  EXPECT_NEAR(token_nll(big.data(), 2, 0), std::log(2.0), 1e-12);
}

TEST(Perplexity, FirstScored) {
  EXPECT_EQ(perplexity_first_scored(512), 257);
  EXPECT_EQ(perplexity_first_scored(5), 3);
}

TEST(Perplexity, MatchesWholeChunkLogits) {
  auto model = Model::load(kModel);
  ForwardOptions fo;
  fo.n_ctx = 96;
  fo.n_threads = 2;
  Forward fwd(*model, fo);
  const int64_t V = fwd.n_vocab(), ctx = 80;
  std::vector<int32_t> ids;
  for (int i = 0; i < 250; ++i) ids.push_back(1 + (i * 131 + i * i) % 511);
  const int32_t bos = 1;

  std::vector<PerplexityChunk> seen;
  const PerplexityResult r =
      perplexity(fwd, ids, ctx, 0, bos, [&](const PerplexityChunk& c) { seen.push_back(c); });
  ASSERT_EQ(r.chunks.size(), 3u);  // 250 / 80
  ASSERT_EQ(seen.size(), 3u);

  // Reference: each whole chunk in one eval with every position's logits.
  std::vector<float> logits(ctx * V);
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int64_t c = 0; c < 3; ++c) {
    std::vector<int32_t> chunk(ids.begin() + c * ctx, ids.begin() + (c + 1) * ctx);
    chunk[0] = bos;
    fwd.reset();
    fwd.eval(chunk.data(), ctx, logits.data(), true);
    double chunk_sum = 0;
    for (int64_t p = ctx / 2 + 1; p < ctx; ++p) {
      const double nll = token_nll(logits.data() + (p - 1) * V, V, chunk[p]);
      chunk_sum += nll;
      sum2 += nll * nll;
      ++n;
    }
    sum += chunk_sum;
    EXPECT_NEAR(r.chunks[c].nll_sum, chunk_sum, 1e-6 * std::abs(chunk_sum));
    EXPECT_EQ(r.chunks[c].n_scored, ctx - 1 - ctx / 2);
    EXPECT_NEAR(r.chunks[c].ppl_running, std::exp(sum / n), 1e-6 * std::exp(sum / n));
  }
  EXPECT_EQ(r.n_scored, n);
  EXPECT_NEAR(r.mean_nll, sum / n, 1e-9);
  EXPECT_NEAR(r.ppl, std::exp(sum / n), 1e-6 * r.ppl);
  const double mean = sum / n;
  const double se = std::sqrt((sum2 / n - mean * mean) / (n - 1));
  EXPECT_NEAR(r.nll_stderr, se, 1e-6 * se);
  EXPECT_NEAR(r.ppl_stderr, r.ppl * se, 1e-6 * r.ppl * se);

  // --chunks limits; bos < 0 keeps the first token.
  EXPECT_EQ(perplexity(fwd, ids, ctx, 2, bos, {}).chunks.size(), 2u);
  EXPECT_NO_THROW(perplexity(fwd, ids, ctx, 1, -1, {}));
}

TEST(Perplexity, Errors) {
  auto model = Model::load(kModel);
  ForwardOptions fo;
  fo.n_ctx = 32;
  Forward fwd(*model, fo);
  std::vector<int32_t> ids(20, 5);
  EXPECT_THROW(perplexity(fwd, ids, 32, 0, 1, {}), ModelError);  // fewer than one chunk
  EXPECT_THROW(perplexity(fwd, ids, 64, 0, 1, {}), ModelError);  // larger than the context
  EXPECT_THROW(perplexity(fwd, ids, 3, 0, 1, {}), ModelError);   // too small
  try {
    perplexity(fwd, ids, 32, 0, 1, {});
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("20 tokens"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hpl
