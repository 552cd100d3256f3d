// Runtime embed and rerank requests: the same FIFO worker and events as generation, vectors
// equal to the engine's Embedder, grouped evaluation, stop (queued, between groups), and the
// input errors refused at submit. On stories260K (a decoder: pooled embeddings).
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "engine/embedding.h"
#include "runtime/runtime.h"
#include "tests/runtime_test_util.h"

namespace hpl {
namespace {

using test::model_path;
using test::Recorder;

const char* kModel = "stories260K.gguf";

RuntimeOptions options(int64_t n_ctx = 64, int64_t n_ubatch = 16) {
  RuntimeOptions o;
  o.model_path = model_path(kModel);
  o.session.n_ctx = n_ctx;
  o.session.n_ubatch = n_ubatch;
  o.session.n_threads = 1;
  return o;
}

EmbedRequest texts(std::vector<std::string> inputs) {
  EmbedRequest r;
  r.inputs = std::move(inputs);
  return r;
}

std::string error_of(Runtime& rt, EmbedRequest r) {
  try {
    rt.submit_embed(std::move(r), nullptr);
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    return e.what();
  }
  return "(accepted)";
}

const std::vector<std::string> kTexts = {"Once upon a time", "The cat sat on the mat.",
                                         "Lily and Ben went to the park to play", "Hi"};

// The vectors are the engine's Embedder's (the runtime only queues, groups and delivers),
// whatever the grouping: a micro-batch of 8 tokens puts each text in its own group, one of 64
// evaluates them together.
TEST(RuntimeEmbedTest, VectorsEqualTheEmbeddersInEveryGrouping) {
  auto model = Model::load(model_path(kModel));
  auto tok = ModelRegistry().acquire(model_path(kModel))->tokenizer;
  ForwardOptions fo;
  fo.n_ctx = 64;
  fo.n_threads = 1;
  Embedder direct(*model, fo);
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& t : kTexts) ids.push_back(embed_tokens(*tok, t));
  const auto want = direct.embed(ids, EmbedParams{});
  for (int64_t ubatch : {8, 64}) {
    Runtime rt(options(64, ubatch));
    EXPECT_EQ(rt.model_kind(), ModelKind::kGenerate);  // a decoder generates and embeds
    Recorder rec;
    const RequestId id = rt.submit_embed(texts(kTexts), rec.callback());
    ASSERT_TRUE(rt.wait(id, 60000));
    const test::RequestLog log = rec.log(id);
    ASSERT_EQ(log.terminal.type, EventType::kDone) << log.error_text;
    EXPECT_TRUE(log.protocol_ok) << log.protocol_error;
    EXPECT_EQ(log.types, (std::vector<EventType>{EventType::kQueued, EventType::kProcessing,
                                                 EventType::kDone}));
    ASSERT_EQ(log.terminal.n_outputs, 4);
    ASSERT_EQ(log.terminal.dim, rt.n_embd());
    ASSERT_EQ(log.outputs.size(), 4u * rt.n_embd());
    int64_t n_tokens = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      n_tokens += static_cast<int64_t>(ids[i].size());
      double norm = 0;
      for (int64_t j = 0; j < rt.n_embd(); ++j) {
        const float got = log.outputs[i * rt.n_embd() + j];
        EXPECT_NEAR(got, want[i][j], 1e-5) << "text " << i << " dim " << j << " ubatch " << ubatch;
        norm += double(got) * got;
      }
      EXPECT_NEAR(norm, 1.0, 1e-4);  // normalize is the default
    }
    EXPECT_EQ(log.terminal.stats.prompt_tokens, n_tokens);
    EXPECT_EQ(log.terminal.stats.finish, FinishReason::kEndOfGeneration);
  }
}

// Generation and embedding requests share one FIFO queue; pooling and normalize reach the
// embedder; a generation model that cannot rerank says so at submit.
TEST(RuntimeEmbedTest, SharesTheQueueWithGenerationAndPassesParams) {
  Runtime rt(options());
  Recorder rec;
  RequestParams g;
  g.prompt = "Once upon a time";
  g.max_tokens = 8;
  g.sampling.temp = 0;
  const RequestId a = rt.submit(g, rec.callback());
  EmbedRequest mean = texts({"Once upon a time"});
  mean.params.pooling = Pooling::kMean;
  mean.params.normalize = false;
  const RequestId b = rt.submit_embed(mean, rec.callback());
  const RequestId c = rt.submit(g, rec.callback());
  const RequestId d = rt.submit_embed(texts({"Once upon a time"}), rec.callback());
  rt.wait_idle();
  EXPECT_EQ(rec.processing_order(), (std::vector<RequestId>{a, b, c, d}));
  for (RequestId id : {a, b, c, d})
    EXPECT_EQ(rec.log(id).terminal.type, EventType::kDone) << rec.log(id).error_text;
  EXPECT_EQ(rec.log(a).text, rec.log(c).text);
  // Mean pooling, not normalized: not the (unit) last-token vector of d.
  const std::vector<float> vb = rec.log(b).outputs, vd = rec.log(d).outputs;
  ASSERT_EQ(vb.size(), vd.size());
  double nb = 0, diff = 0;
  for (size_t j = 0; j < vb.size(); ++j) {
    nb += double(vb[j]) * vb[j];
    diff += std::fabs(vb[j] - vd[j]);
  }
  EXPECT_GT(std::fabs(std::sqrt(nb) - 1.0), 1e-3);
  EXPECT_GT(diff, 1e-3);

  RerankRequest rr;
  rr.query = "cat";
  rr.documents = {"The cat sat."};
  try {
    rt.submit_rerank(rr, rec.callback());
    ADD_FAILURE() << "a generation model reranked";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("is a generation model with no classification head"),
              std::string::npos)
        << e.what();
  }
}

TEST(RuntimeEmbedTest, BadInputsAreRefusedAtSubmitNamingTheInput) {
  Runtime rt(options(16));
  EXPECT_EQ(error_of(rt, texts({})), "inputs is empty: give at least one text");
  EXPECT_EQ(error_of(rt, texts({"a", ""})), "inputs[1] is an empty string");
  EXPECT_EQ(error_of(rt, texts({"ok", "bad \xC3\x28"})), "inputs[1] is not valid UTF-8 at byte 4");
  const std::string long_text =
      "Once upon a time there was a little girl who liked to play in the park every day";
  const std::string e = error_of(rt, texts({"short", long_text}));
  EXPECT_NE(e.find("inputs[1] is "), std::string::npos) << e;
  EXPECT_NE(e.find("more than the context of 16 tokens"), std::string::npos) << e;
  EmbedRequest tokens;
  tokens.token_inputs = {{1, 2}, {1, 1 << 20}};
  EXPECT_EQ(error_of(rt, tokens).rfind("token_inputs[1][1] is 1048576, outside the vocab", 0), 0u);
  tokens.token_inputs = {{}};
  EXPECT_EQ(error_of(rt, tokens), "token_inputs[0] is empty: no tokens");
  EmbedRequest none = texts({"a"});
  none.params.pooling = Pooling::kNone;
  EXPECT_EQ(error_of(rt, none), "pooling must be mean, cls or last (or the model's), got none");

  // Truncation on request: the long text is cut to the context and embedded.
  EmbedRequest cut = texts({long_text});
  cut.params.truncate = true;
  Recorder rec;
  const RequestId id = rt.submit_embed(cut, rec.callback());
  rt.wait(id);
  EXPECT_EQ(rec.log(id).terminal.type, EventType::kDone) << rec.log(id).error_text;
  EXPECT_EQ(rec.log(id).terminal.n_outputs, 1);
  EXPECT_EQ(rec.log(id).terminal.stats.prompt_tokens, 16);
}

// Stop: a queued embed request ends with done (stopped) without running; a running one stops
// between groups and keeps the vectors of the inputs it finished (here: none, stopped as
// it starts).
TEST(RuntimeEmbedTest, StopQueuedAndRunning) {
  Runtime rt(options(64, 8));
  Recorder rec;
  RequestParams g;
  g.prompt = "Once upon a time";
  g.max_tokens = 16;
  // a holds the worker at its processing event until b has been stopped: b is still queued.
  std::mutex mu;
  std::condition_variable cv;
  bool b_stopped = false;
  auto held = [&](const Event& ev) {
    if (ev.type == EventType::kProcessing) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return b_stopped; });
    }
    rec.on_event(ev);
  };
  const RequestId a = rt.submit(g, held);
  const RequestId b = rt.submit_embed(texts(kTexts), rec.callback());
  EXPECT_TRUE(rt.stop(b));
  {
    std::lock_guard<std::mutex> lock(mu);
    b_stopped = true;
  }
  cv.notify_all();
  RequestId c = 0;
  auto stop_at_start = [&](const Event& ev) {
    if (ev.type == EventType::kProcessing) rt.stop(ev.id);
    rec.on_event(ev);
  };
  c = rt.submit_embed(texts(kTexts), stop_at_start);
  rt.wait_idle();
  EXPECT_EQ(rec.log(a).terminal.type, EventType::kDone);
  const test::RequestLog lb = rec.log(b), lc = rec.log(c);
  EXPECT_EQ(lb.terminal.stats.finish, FinishReason::kStopped);
  EXPECT_EQ(lb.types, (std::vector<EventType>{EventType::kQueued, EventType::kDone}));
  EXPECT_EQ(lc.terminal.type, EventType::kDone);
  EXPECT_EQ(lc.terminal.stats.finish, FinishReason::kStopped);
  EXPECT_TRUE(lc.terminal.stats.truncated);
  EXPECT_EQ(lc.terminal.n_outputs, 0);
  EXPECT_TRUE(lc.protocol_ok) << lc.protocol_error;
  EXPECT_FALSE(rt.failed());
}

}  // namespace
}  // namespace hpl
