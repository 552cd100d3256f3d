// Embedder on decoder models: pooled rows are the Forward's final-normed hidden states
// (checked against the logits through the output matrix), bad inputs give clear errors.
#include "engine/embedding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/memory_estimate.h"
#include "kernel/quant.h"

namespace hpl {
namespace {

std::string model_path(const char* name) {
  return std::string(HPL_TEST_DATA_DIR) + "/models/" + name;
}

std::unique_ptr<Model> tiny() {
  return Model::load(model_path("TinyLLama-v0.Q4_0.from-ggmlv3.gguf"));
}

ForwardOptions opts(int64_t n_ctx = 64) {
  ForwardOptions o;
  o.n_ctx = n_ctx;
  o.n_ubatch = 4;  // several micro-batches per text
  o.n_threads = 2;
  return o;
}

TEST(PoolRows, MeanClsLast) {
  const float h[] = {1, 2, 3, 4, 5, 6};  // (3, 2)
  float out[2];
  pool_rows(h, 3, 2, Pooling::kMean, out);
  EXPECT_FLOAT_EQ(out[0], 3.0f);
  EXPECT_FLOAT_EQ(out[1], 4.0f);
  pool_rows(h, 3, 2, Pooling::kCls, out);
  EXPECT_FLOAT_EQ(out[0], 1.0f);
  pool_rows(h, 3, 2, Pooling::kLast, out);
  EXPECT_FLOAT_EQ(out[1], 6.0f);
  EXPECT_THROW(pool_rows(h, 3, 2, Pooling::kNone, out), std::invalid_argument);
  float v[] = {3, 4};
  l2_normalize(v, 2);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  float z[] = {0, 0};
  l2_normalize(z, 2);
  EXPECT_EQ(z[0], 0.0f);
}

TEST(PoolingNames, RoundTrip) {
  for (Pooling p : {Pooling::kNone, Pooling::kMean, Pooling::kCls, Pooling::kLast, Pooling::kRank})
    EXPECT_EQ(parse_pooling(pooling_name(p)), p);
  EXPECT_THROW(parse_pooling("max"), std::invalid_argument);
}

TEST(DecoderEmbedding, KindAndDefaults) {
  auto m = tiny();
  EXPECT_EQ(model_kind(*m), ModelKind::kGenerate);
  EXPECT_EQ(model_pooling(*m), Pooling::kLast);
}

// The last hidden row through the output matrix gives the logits eval gives.
TEST(DecoderEmbedding, LastRowMatchesLogits) {
  auto m = tiny();
  const std::vector<int32_t> ids = {1, 400, 31, 2000, 7, 99, 12};
  Embedder emb(*m, opts());
  EmbedParams p;
  p.pooling = Pooling::kLast;
  p.normalize = false;
  const auto e = emb.embed({ids}, p);
  ASSERT_EQ(e.size(), 1u);
  const int64_t E = m->config.n_embd, V = m->config.n_vocab;
  ASSERT_EQ(static_cast<int64_t>(e[0].size()), E);

  Forward fwd(*m, opts());
  std::vector<float> logits(static_cast<size_t>(V));
  fwd.eval(ids.data(), static_cast<int64_t>(ids.size()), logits.data());
  // The output matrix as the file stores it (the loaded one may be repacked).
  auto file = GgufFile::open(model_path("TinyLLama-v0.Q4_0.from-ggmlv3.gguf"));
  const GgufTensor* W = file->tensor("output.weight");
  ASSERT_NE(W, nullptr);
  const size_t stride = row_bytes(W->type, E);
  std::vector<float> row(static_cast<size_t>(E));
  float lo = logits[0], hi = logits[0], err = 0.0f;
  for (int64_t r = 0; r < V; ++r) {
    kernel::dequantize_row(W->type, W->data + r * stride, row.data(), E);
    double s = 0;
    for (int64_t j = 0; j < E; ++j) s += static_cast<double>(row[j]) * e[0][j];
    err = std::max(err, std::fabs(static_cast<float>(s) - logits[r]));
    lo = std::min(lo, logits[r]);
    hi = std::max(hi, logits[r]);
  }
  // The engine quantizes the activation to Q8_0 for the output matmul: ~1% of the range.
  EXPECT_LT(err, 0.02f * (hi - lo));
}

// Mean pooling is the mean of the per-prefix last rows (causal: row t depends on ids[0..t]);
// batching several texts gives each the vector it gets alone; normalize gives unit length.
TEST(DecoderEmbedding, MeanIsMeanOfPrefixRowsAndBatchIndependent) {
  auto m = tiny();
  const std::vector<int32_t> ids = {1, 50, 60, 70, 80, 90};
  Embedder emb(*m, opts());
  EmbedParams last;
  last.pooling = Pooling::kLast;
  last.normalize = false;
  std::vector<std::vector<int32_t>> prefixes;
  for (size_t n = 1; n <= ids.size(); ++n) prefixes.emplace_back(ids.begin(), ids.begin() + n);
  const auto rows = emb.embed(prefixes, last);
  EmbedParams mean = last;
  mean.pooling = Pooling::kMean;
  const auto mv = emb.embed({ids}, mean);
  const int64_t E = emb.n_embd();
  for (int64_t j = 0; j < E; ++j) {
    float s = 0;
    for (const auto& r : rows) s += r[j];
    EXPECT_NEAR(mv[0][j], s / rows.size(), 1e-3f * (1 + std::fabs(mv[0][j])));
  }
  EmbedParams norm = mean;
  norm.normalize = true;
  const auto nv = emb.embed({{1, 5}, ids}, norm);
  double ss = 0;
  for (float v : nv[1]) ss += v * v;
  EXPECT_NEAR(ss, 1.0, 1e-5);
}

TEST(DecoderEmbedding, BadInputs) {
  auto m = tiny();
  Embedder emb(*m, opts(8));
  EmbedParams p;
  auto msg = [&](auto&& f) {
    try {
      f();
    } catch (const ModelError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([&] { emb.embed({}, p); }).find("empty"), std::string::npos);
  EXPECT_NE(msg([&] { emb.embed({{1, 2}, {}}, p); }).find("input 1 is empty"), std::string::npos);
  const std::vector<int32_t> long_ids(9, 5);
  EXPECT_NE(msg([&] { emb.embed({long_ids}, p); }).find("context of 8"), std::string::npos);
  p.truncate = true;
  EXPECT_EQ(emb.embed({long_ids}, p).size(), 1u);
  p.truncate = false;
  p.pooling = Pooling::kNone;
  EXPECT_NE(msg([&] { emb.embed({{1}}, p); }).find("pooling none"), std::string::npos);
  p.pooling = Pooling::kMean;
  EXPECT_NE(msg([&] {
              emb.embed({{1, 1 << 30}}, p);
            }).find("outside the vocabulary"),
            std::string::npos);
  EXPECT_NE(msg([&] { emb.rerank({1}, {{2}}, false); }).find("cannot rerank"), std::string::npos);
}

// The estimate for an Embedder (from the metadata alone) is what one allocates: the Forward's
// KV cache, and its scratch plus the hidden rows (n_ctx, n_embd); a generation estimate has
// no hidden rows. Exact, for several contexts, batches and thread counts.
TEST(DecoderEmbedding, MemoryEstimateEqualsAllocated) {
  auto m = tiny();
  for (int64_t n_ctx : {8, 64, 300}) {
    for (int64_t ub : {1, 4, 512}) {
      for (int t : {1, 3}) {
        ForwardOptions o = opts(n_ctx);
        o.n_ubatch = ub;
        o.n_threads = t;
        SCOPED_TRACE(std::to_string(n_ctx) + " " + std::to_string(ub) + " " + std::to_string(t));
        Embedder emb(*m, o);
        const MemoryEstimate e = estimate_memory(*m->file, o, ModelKind::kEmbed);
        EXPECT_EQ(e.kind, ModelKind::kEmbed);
        EXPECT_FALSE(e.encoder);
        EXPECT_EQ(e.kv_bytes, emb.kv_bytes());
        EXPECT_EQ(e.scratch_bytes, emb.scratch_bytes());
        const size_t hidden = static_cast<size_t>(n_ctx * m->config.n_embd) * sizeof(float);
        Forward fwd(*m, o);
        EXPECT_EQ(emb.scratch_bytes(), fwd.scratch_bytes() + hidden);
        const MemoryEstimate g = estimate_memory(*m->file, o);  // its own kind: generate
        EXPECT_EQ(g.kind, ModelKind::kGenerate);
        EXPECT_EQ(g.scratch_bytes, fwd.scratch_bytes());
        EXPECT_EQ(g.kv_bytes, fwd.kv_bytes());
      }
    }
  }
}

}  // namespace
}  // namespace hpl
