// Sampler stages, the chain, seed determinism, penalties; and the context-overflow errors of
// the forward pass and generate().
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"

namespace hpl {
namespace {

std::vector<Candidate> cands(const std::vector<float>& logits) {
  std::vector<Candidate> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({static_cast<int32_t>(i), logits[i], 0});
  return c;
}

std::vector<int32_t> ids_of(const std::vector<Candidate>& c) {
  std::vector<int32_t> v;
  for (const auto& x : c) v.push_back(x.id);
  return v;
}

TEST(Sampling, PenalizeDividesPositiveMultipliesNegativeOncePerId) {
  std::vector<float> l = {2.0f, -1.0f, 3.0f, 0.5f};
  sampling::penalize(l.data(), 4, {0, 1, 0, 0, 7, -1}, 2.0f);  // dupes once; 7, -1 ignored
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], -2.0f);
  EXPECT_FLOAT_EQ(l[2], 3.0f);
  EXPECT_FLOAT_EQ(l[3], 0.5f);
}

TEST(Sampling, TopKKeepsHighestSortedWithLowerIdFirstOnTies) {
  auto c = cands({1.0f, 5.0f, 3.0f, 5.0f, -2.0f});
  sampling::top_k(c, 3);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{1, 3, 2}));
  auto all = cands({1.0f, 5.0f, 3.0f});
  sampling::top_k(all, 0);  // off: everything, sorted
  EXPECT_EQ(ids_of(all), (std::vector<int32_t>{1, 2, 0}));
}

TEST(Sampling, SoftmaxWithTemperature) {
  auto c = cands({std::log(2.0f), 0.0f});
  sampling::softmax(c);
  EXPECT_NEAR(c[0].p, 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(c[1].p, 1.0 / 3.0, 1e-6);
  sampling::softmax(c, 0.5f);  // logits / 0.5: ratio 4:1
  EXPECT_NEAR(c[0].p, 0.8, 1e-6);
}

TEST(Sampling, TopPKeepsShortestPrefixReachingP) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto c = cands(l);
  sampling::top_p(c, 0.7f);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 1}));
  c = cands(l);
  sampling::top_p(c, 0.1f);  // at least one
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0}));
  c = cands(l);
  sampling::top_p(c, 1.0f);  // off
  EXPECT_EQ(c.size(), 3u);
}

TEST(Sampling, MinPDropsBelowFractionOfBest) {
  auto c = cands({std::log(0.5f), std::log(0.3f), std::log(0.2f)});
  sampling::min_p(c, 0.5f);  // keep p >= 0.25
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 1}));
  c = cands({0.0f, 0.0f});
  sampling::min_p(c, 0.0f);  // off
  EXPECT_EQ(c.size(), 2u);
}

TEST(Sampling, DrawMapsUniformOntoCumulativeProbabilities) {
  auto c = cands({std::log(0.5f), std::log(0.25f), std::log(0.25f)});
  sampling::softmax(c);
  EXPECT_EQ(sampling::draw(c, 0.0), 0u);
  EXPECT_EQ(sampling::draw(c, 0.49), 0u);
  EXPECT_EQ(sampling::draw(c, 0.51), 1u);
  EXPECT_EQ(sampling::draw(c, 0.99), 2u);
  EXPECT_EQ(sampling::draw(c, 1.5), 2u);  // beyond the sum: the last one
}

TEST(Sampler, GreedyIsArgmaxAndIgnoresSeed) {
  const std::vector<float> l = {0.1f, 2.0f, 1.9f, -3.0f};
  SamplerParams p;
  p.temp = 0.0f;
  for (uint64_t seed : {1u, 2u, 3u}) {
    p.seed = seed;
    Sampler s(p, 4);
    EXPECT_EQ(s.sample(l.data()), 1);
  }
}

TEST(Sampler, RepetitionPenaltyOverLastN) {
  const std::vector<float> l = {0.1f, 2.0f, 1.9f, -3.0f};
  SamplerParams p;
  p.temp = 0.0f;
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 2;
  Sampler s(p, 4);
  s.accept(1);  // 2.0 / 1.5 < 1.9
  EXPECT_EQ(s.sample(l.data()), 2);
  s.accept(2);
  s.accept(3);  // window {2, 3}: 1 is no longer penalized
  EXPECT_EQ(s.sample(l.data()), 1);
  EXPECT_FLOAT_EQ(l[1], 2.0f);  // the caller's logits are untouched
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(i * 1.7f);
  SamplerParams p;
  p.temp = 5.0f;
  p.top_k = 1;
  Sampler s(p, 100);
  int best = 0;
  for (int i = 1; i < 100; ++i) best = l[i] > l[best] ? i : best;
  for (int r = 0; r < 20; ++r) EXPECT_EQ(s.sample(l.data()), best);
}

std::vector<int32_t> draws(uint64_t seed, int n) {
  std::vector<float> l(50, 0.0f);  // uniform
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  Sampler s(p, 50);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(l.data()));
  return out;
}

TEST(Sampler, SameSeedSameDrawsDifferentSeedDifferentDraws) {
  EXPECT_EQ(draws(42, 64), draws(42, 64));
  EXPECT_NE(draws(42, 64), draws(43, 64));
  // reset() reseeds.
  std::vector<float> l(50, 0.0f);
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.seed = 7;
  Sampler s(p, 50);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 16; ++i) a.push_back(s.sample(l.data()));
  s.reset();
  for (int i = 0; i < 16; ++i) b.push_back(s.sample(l.data()));
  EXPECT_EQ(a, b);
}

TEST(Sampler, DrawFrequenciesFollowProbabilities) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 123;
  Sampler s(p, 3);
  int count[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[s.sample(l.data())];
  EXPECT_NEAR(count[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(count[1] / double(n), 0.25, 0.02);
  EXPECT_NEAR(count[2] / double(n), 0.25, 0.02);
}

TEST(Sampler, TruncationStagesBoundTheDraws) {
  // min_p 0.5 keeps only tokens at >= half the best probability: ids 0 and 1 here.
  const std::vector<float> l = {std::log(0.4f), std::log(0.3f), std::log(0.1f), std::log(0.1f),
                                std::log(0.1f)};
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.5f;
  p.seed = 9;
  Sampler s(p, 5);
  bool seen[5] = {};
  for (int i = 0; i < 2000; ++i) seen[s.sample(l.data())] = true;
  EXPECT_TRUE(seen[0] && seen[1]);
  EXPECT_FALSE(seen[2] || seen[3] || seen[4]);
  // top_p 0.6 over 0.4, 0.3, ...: keeps ids 0 and 1 too; top_k 1 keeps id 0 only.
  p.min_p = 0.0f;
  p.top_p = 0.6f;
  Sampler s2(p, 5);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(s2.sample(l.data()), 2);
}

TEST(Sampler, RejectsBadParameters) {
  SamplerParams p;
  p.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler(p, 10), std::invalid_argument);
  p = SamplerParams();
  p.repeat_last_n = -1;
  EXPECT_THROW(Sampler(p, 10), std::invalid_argument);
  EXPECT_THROW(Sampler(SamplerParams(), 0), std::invalid_argument);
}

const std::string kModel = std::string(HPL_TEST_DATA_DIR) + "/models/stories260K.gguf";

TEST(ContextOverflow, CheckNamesContextSizeAndTokensRequired) {
  EXPECT_NO_THROW(check_prompt_fits(8, 0, 8));
  try {
    check_prompt_fits(9, 0, 8);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("9 tokens"), std::string::npos) << msg;
    EXPECT_NE(msg.find("context size is 8"), std::string::npos) << msg;
  }
  EXPECT_THROW(check_prompt_fits(3, 6, 8), ModelError);
}

TEST(ContextOverflow, ForwardFailsBeforeAnyWork) {
  auto m = Model::load(kModel);
  ForwardOptions o;
  o.n_ctx = 4;
  Forward f(*m, o);
  std::vector<int32_t> ids = {1, 403, 407, 261, 378};
  std::vector<float> logits(static_cast<size_t>(f.n_vocab()));
  EXPECT_THROW(f.eval(ids.data(), 5, logits.data()), ModelError);
  EXPECT_EQ(f.n_past(), 0);
  f.eval(ids.data(), 4, logits.data());
  EXPECT_EQ(f.n_past(), 4);
  EXPECT_THROW(f.eval(ids.data(), 1, logits.data()), ModelError);
  EXPECT_EQ(f.n_past(), 4);
  // An out-of-vocabulary id is rejected too, before anything is evaluated.
  f.reset();
  std::vector<int32_t> bad = {1, 100000};
  EXPECT_THROW(f.eval(bad.data(), 2, logits.data()), ModelError);
  EXPECT_EQ(f.n_past(), 0);
}

TEST(ContextOverflow, GenerateFailsBeforeAnyWorkAndStopsWhenFull) {
  auto m = Model::load(kModel);
  auto tok = load_tokenizer(*m->file);
  ForwardOptions o;
  o.n_ctx = 8;
  Forward f(*m, o);
  GenerateParams gp;
  SamplerParams sp;
  sp.temp = 0.0f;
  gp.max_tokens = 100;
  std::vector<int32_t> long_prompt(9, 403);
  long_prompt[0] = 1;
  int pieces = 0;
  auto count = [&](std::string_view) { ++pieces; };
  Sampler sampler(sp, f.n_vocab());
  EXPECT_THROW(generate(f, *tok, sampler, long_prompt, gp, count), ModelError);
  EXPECT_EQ(f.n_past(), 0);
  EXPECT_EQ(pieces, 0);
  // A prompt that fits: generation stops when the context is full.
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  GenerateResult r = generate(f, *tok, sampler, prompt, gp, count);
  EXPECT_EQ(r.finish, FinishReason::kContextEnd);
  EXPECT_EQ(f.n_past(), 8);
  EXPECT_EQ(r.tokens.size(), 4u);  // 3 evaluated after the prompt + the last one sampled
}

TEST(Generate, GreedyStopsAtTokenLimitAndStopString) {
  auto m = Model::load(kModel);
  auto tok = load_tokenizer(*m->file);
  ForwardOptions o;
  o.n_ctx = 128;
  Forward f(*m, o);
  GenerateParams gp;
  SamplerParams sp;
  sp.temp = 0.0f;
  gp.max_tokens = 32;
  std::string streamed;
  auto sink = [&](std::string_view s) { streamed += s; };
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  Sampler sampler(sp, f.n_vocab());
  GenerateResult r = generate(f, *tok, sampler, prompt, gp, sink);
  EXPECT_EQ(r.finish, FinishReason::kMaxTokens);
  EXPECT_EQ(r.tokens.size(), 32u);
  EXPECT_EQ(streamed, r.text);
  ASSERT_NE(streamed.find("Lily"), std::string::npos) << streamed;
  // Same prompt with a stop string: the text ends right before it.
  f.reset();
  gp.stop_strings = {"Lily"};
  std::string streamed2;
  Sampler sampler2(sp, f.n_vocab());
  r = generate(f, *tok, sampler2, prompt, gp, [&](std::string_view s) { streamed2 += s; });
  EXPECT_EQ(r.finish, FinishReason::kStopString);
  EXPECT_EQ(streamed2, streamed.substr(0, streamed.find("Lily")));
}

// A stop before the second prompt micro-batch: nothing generated, the context as before.
TEST(Generate, StopDuringThePromptRollsTheContextBack) {
  auto m = Model::load(kModel);
  auto tok = load_tokenizer(*m->file);
  ForwardOptions o;
  o.n_ctx = 64;
  o.n_ubatch = 2;
  Forward f(*m, o);
  SamplerParams sp;
  sp.temp = 0.0f;
  Sampler sampler(sp, f.n_vocab());
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  int checks = 0;
  std::string text;
  GenerateResult r = generate(
      f, *tok, sampler, prompt, GenerateParams(), [&](std::string_view s) { text += s; },
      [&] { return ++checks == 2; });
  EXPECT_EQ(r.finish, FinishReason::kStopped);
  EXPECT_FALSE(r.prompt_done);
  EXPECT_EQ(r.stats.prompt_tokens, 2);  // one micro-batch ran before the stop
  EXPECT_EQ(f.n_past(), 0);
  EXPECT_TRUE(r.tokens.empty());
  EXPECT_TRUE(text.empty());
}

// should_stop() is asked once before the (single) prompt micro-batch, then after each token.
TEST(Generate, StopAfterATokenKeepsWhatWasGenerated) {
  auto m = Model::load(kModel);
  auto tok = load_tokenizer(*m->file);
  ForwardOptions o;
  o.n_ctx = 64;
  Forward f(*m, o);
  SamplerParams sp;
  sp.temp = 0.0f;
  Sampler sampler(sp, f.n_vocab());
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  int checks = 0;
  GenerateResult r = generate(
      f, *tok, sampler, prompt, GenerateParams(), [](std::string_view) {},
      [&] { return ++checks == 4; });
  EXPECT_EQ(r.finish, FinishReason::kStopped);
  EXPECT_TRUE(r.prompt_done);
  EXPECT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.stats.completion_tokens, 3);
  EXPECT_EQ(f.n_past(), 5 + 2);  // the last sampled token is not evaluated
}

// Splitting the prompt into micro-batches changes nothing in what is generated.
TEST(Generate, MicroBatchedPromptGivesTheSameTokens) {
  auto m = Model::load(kModel);
  auto tok = load_tokenizer(*m->file);
  std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 500, 280, 270, 300};
  std::vector<std::vector<int32_t>> outs;
  for (int64_t ub : {1, 3, 256}) {
    ForwardOptions o;
    o.n_ctx = 64;
    o.n_ubatch = ub;
    Forward f(*m, o);
    SamplerParams sp;
    sp.temp = 0.0f;
    Sampler sampler(sp, f.n_vocab());
    GenerateParams gp;
    gp.max_tokens = 16;
    outs.push_back(generate(f, *tok, sampler, prompt, gp, [](std::string_view) {}).tokens);
  }
  ASSERT_EQ(outs[0].size(), 16u);
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
}

// The penalty window is the last repeat_last_n tokens of the context.
TEST(Generate, PenaltyWindowIsTheLastNTokensOfTheContext) {
  std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 1.9f, 2.0f, 0.5f, 0.6f};
  SamplerParams sp;
  sp.temp = 0.0f;
  sp.repeat_penalty = 10.0f;
  sp.repeat_last_n = 2;
  Sampler outside(sp, 8);
  const std::vector<int32_t> old5 = {5, 1, 2};  // 5 fell out of the window
  prime_sampler(outside, old5);
  EXPECT_EQ(outside.sample(logits.data()), 5);
  Sampler inside(sp, 8);
  const std::vector<int32_t> recent5 = {1, 2, 5};
  prime_sampler(inside, recent5);
  EXPECT_EQ(inside.sample(logits.data()), 4);
}

}  // namespace
}  // namespace hpl
