// Prompt cache (runtime/prompt_cache.h): stateless requests reuse the KV of the longest usable
// prefix; greedy output is the same with and without it, on every llama-family test model
// (other architectures, Gemma 3's sliding window among them: tests/python/test_prompt_cache.py);
// prompts never see each other's output; states are bounded, LRU evicted and charged to the
// registry's budget; a conversation restarted after a full context continues as a fresh one.
#include "runtime/prompt_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/session.h"
#include "tests/runtime_test_util.h"

namespace hpl {
namespace {

using test::model_path;
using test::Recorder;

RuntimeOptions options(const char* model, bool cache, int64_t n_ctx = 256, int64_t n_ubatch = 8) {
  RuntimeOptions o;
  o.model_path = model_path(model);
  o.session.n_ctx = n_ctx;
  o.session.n_ubatch = n_ubatch;
  o.session.n_threads = 1;
  o.prompt_cache = cache;
  return o;
}

struct Reply {
  std::string text;
  RequestStats stats;
};

Reply run(Runtime& rt, const std::string& prompt, int max_tokens = 12) {
  Recorder rec;
  RequestParams p;
  p.prompt = prompt;
  p.max_tokens = max_tokens;
  p.sampling.temp = 0;
  const RequestId id = rt.submit(p, rec.callback());
  EXPECT_TRUE(rt.wait(id, 60000));
  const auto log = rec.log(id);
  EXPECT_EQ(log.terminal.type, EventType::kDone) << log.error_text;
  EXPECT_TRUE(log.protocol_ok) << log.protocol_error;
  return {log.text, log.terminal.stats};
}

// A sequence that exercises every path: a cold prompt, its extension (the live state), an
// unrelated prompt (swaps the first state out), the first prompt again (swapped back in from
// a saved state), the same prompt exactly (entirely cached: only its last token evaluated),
// a shorter prefix of it (rewind), and one that shares only BOS.
const std::vector<std::string> kPrompts = {
    "Once upon a time, there was a little girl named Lily.",
    "Once upon a time, there was a little girl named Lily. She loved to play",
    "The dog ran to the park and saw a big red ball.",
    "Once upon a time, there was a little girl named Lily. She loved to play",
    "Once upon a time, there was a little girl named Lily. She loved to play",
    "Once upon a time, there was",
    "Tom had a boat.",
};

class PromptCacheModels : public ::testing::TestWithParam<const char*> {};

TEST_P(PromptCacheModels, GreedyOutputIsTheSameWithAndWithoutTheCache) {
  Runtime cached(options(GetParam(), true));
  Runtime plain(options(GetParam(), false));
  const Tokenizer& tok = *cached.registry().acquire(model_path(GetParam()))->tokenizer;
  int64_t saved = 0;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const Reply a = run(cached, kPrompts[i]);
    const Reply b = run(plain, kPrompts[i]);
    EXPECT_EQ(a.text, b.text) << "prompt " << i << ": " << kPrompts[i];
    const auto n = static_cast<int32_t>(tok.encode(kPrompts[i], true, true).size());
    EXPECT_EQ(b.stats.cached_tokens, 0);
    EXPECT_EQ(b.stats.prompt_tokens, n);
    EXPECT_EQ(a.stats.prompt_tokens + a.stats.cached_tokens, n) << "prompt " << i;
    EXPECT_GE(a.stats.prompt_tokens, 1);  // the last token is always evaluated
    saved += a.stats.cached_tokens;
  }
  const auto n = [&](size_t i) {
    return static_cast<int32_t>(tok.encode(kPrompts[i], true, true).size());
  };
  // What each request must have found (exact prefixes, BOS included).
  const Reply again = run(cached, kPrompts[4]);
  EXPECT_EQ(again.stats.cached_tokens, n(4) - 1);
  EXPECT_GT(saved, n(0) + n(5) - 4);
}

INSTANTIATE_TEST_SUITE_P(Llama, PromptCacheModels,
                         ::testing::Values("stories260K.gguf", "tinyllamas-stories-260k-q8_0.gguf",
                                           "TinyStories-656K.f16.gguf",
                                           "TinyLLama-v0.Q4_K_M.requant.gguf"));

TEST(PromptCacheTest, EachRequestFindsItsOwnPrefixOnly) {
  Runtime rt(options("stories260K.gguf", true));
  const Tokenizer& tok = *rt.registry().acquire(model_path("stories260K.gguf"))->tokenizer;
  auto ids = [&](const std::string& s) { return tok.encode(s, true, true); };
  EXPECT_EQ(run(rt, kPrompts[0]).stats.cached_tokens, 0);  // cold
  // At least the first prompt; more when the prompt repeats the reply the model gave to it.
  EXPECT_GE(run(rt, kPrompts[1]).stats.cached_tokens,
            static_cast<int32_t>(ids(kPrompts[0]).size()));
  // Shares only BOS with what is cached: nothing of the other requests' text is reused.
  EXPECT_EQ(run(rt, kPrompts[6]).stats.cached_tokens, 1);
  EXPECT_EQ(run(rt, kPrompts[5]).stats.cached_tokens,
            static_cast<int32_t>(ids(kPrompts[5]).size()) - 1);
  // cache_prompt = false evaluates everything.
  Recorder rec;
  RequestParams p;
  p.prompt = kPrompts[5];
  p.max_tokens = 4;
  p.sampling.temp = 0;
  p.cache_prompt = false;
  const RequestId id = rt.submit(p, rec.callback());
  ASSERT_TRUE(rt.wait(id));
  EXPECT_EQ(rec.log(id).terminal.stats.cached_tokens, 0);
  EXPECT_EQ(rec.log(id).terminal.stats.prompt_tokens,
            static_cast<int32_t>(ids(kPrompts[5]).size()));
}

TEST(PromptCacheTest, ReusablePrefixStopsAtTheLastTokenAndTheSlidingWindow) {
  KvLayout l;
  l.n_ctx = 64;
  l.kv_dim = 1;
  l.capacity = {64, 12};
  l.keep = {64, 3};  // layer 1 slides: keeps 3 positions before a new one
  const std::vector<int32_t> held = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const std::vector<int32_t> same = held;
  const std::vector<int64_t> from0 = {0, 0}, from5 = {0, 5};
  EXPECT_EQ(reusable_prefix(l, from0, held, same, 9), 9);  // all but the last
  EXPECT_EQ(reusable_prefix(l, from0, held, std::vector<int32_t>{1, 2, 7}, 2), 2);
  EXPECT_EQ(reusable_prefix(l, from0, held, std::vector<int32_t>{9}, 0), 0);
  // Layer 1 holds positions 5..9: position n needs n - 3 >= 5.
  EXPECT_EQ(reusable_prefix(l, from5, held, same, 9), 9);
  EXPECT_EQ(reusable_prefix(l, from5, held, same, 8), 8);
  EXPECT_EQ(reusable_prefix(l, from5, held, same, 7), 0);  // the window lost position 4
}

TEST(PromptCacheTest, StatesAreBoundedAndLeastRecentlyUsedGoFirst) {
  RuntimeOptions o = options("stories260K.gguf", true);
  o.prompt_cache_options.max_states = 2;
  Runtime rt(o);
  const std::vector<std::string> distinct = {"Tom had a boat.", "The sun was hot.",
                                             "A cat sat on a mat.", "Birds sing in trees."};
  for (const auto& s : distinct) run(rt, s);
  // Four distinct states: the live one plus at most two saved.
  EXPECT_EQ(rt.memory().prompt_cache_states, 2u);
  const size_t two = rt.memory().prompt_cache_bytes;
  EXPECT_GT(two, 0u);
  // The oldest ("Tom") was evicted; the two before the live one are found again.
  EXPECT_EQ(run(rt, distinct[2] + " It").stats.cached_tokens > 1, true);
  EXPECT_EQ(run(rt, distinct[0] + " It").stats.cached_tokens, 1);

  // A byte bound below one state keeps none (and still answers).
  RuntimeOptions tiny = options("stories260K.gguf", true);
  tiny.prompt_cache_options.max_bytes = 1000;
  Runtime rt2(tiny);
  for (const auto& s : distinct) run(rt2, s);
  EXPECT_EQ(rt2.memory().prompt_cache_states, 0u);
  EXPECT_EQ(run(rt2, distinct[3] + " It").stats.cached_tokens > 1, true);  // the live state
}

TEST(PromptCacheTest, SavedStatesAreChargedToTheBudgetAndGivenBack) {
  const std::string a = model_path("stories260K.gguf"), b = model_path("TinyStories-656K.f16.gguf");
  const size_t sa = std::filesystem::file_size(a), sb = std::filesystem::file_size(b);
  auto reg = std::make_shared<ModelRegistry>();
  RuntimeOptions o = options("stories260K.gguf", true);
  o.registry = reg;
  Runtime rt(o);
  run(rt, "Tom had a boat.");
  run(rt, "The sun was hot.");  // saves the first state
  const size_t cache = rt.memory().prompt_cache_bytes;
  ASSERT_GT(cache, 0u);
  EXPECT_EQ(reg->used_bytes(), sa + cache);
  // Loading another model that needs the room releases the idle runtime's states.
  reg->set_budget(sa + sb);
  auto lb = reg->acquire(b);
  EXPECT_EQ(rt.memory().prompt_cache_bytes, 0u);
  EXPECT_EQ(reg->used_bytes(), sa + sb);
  lb.reset();
  // A budget with no room for a state: requests still run, nothing is saved.
  reg->set_budget(sa + 64);
  EXPECT_FALSE(reg->is_loaded(b));
  run(rt, "Tom had a boat.");
  run(rt, "The sun was hot.");
  EXPECT_EQ(rt.memory().prompt_cache_bytes, 0u);
  EXPECT_LE(reg->used_bytes(), sa + 64);
}

// A stateless request that filled the context, then requests sharing its prefix.
TEST(PromptCacheTest, ContextEndThenReuseMatchesAFreshRun) {
  Runtime cached(options("stories260K.gguf", true, 48, 8));
  Runtime plain(options("stories260K.gguf", false, 48, 8));
  const Tokenizer& tok = *cached.registry().acquire(model_path("stories260K.gguf"))->tokenizer;
  for (const char* p : {"Once upon a time", "Once upon a time, there", "Once upon a time"}) {
    Recorder rc, rp;
    RequestParams q;
    q.prompt = p;
    q.max_tokens = 48 - static_cast<int32_t>(tok.encode(p, true, true).size());  // to the end
    q.sampling.temp = 0;
    const RequestId ic = cached.submit(q, rc.callback()), ip = plain.submit(q, rp.callback());
    ASSERT_TRUE(cached.wait(ic) && plain.wait(ip));
    EXPECT_EQ(rc.log(ic).text, rp.log(ip).text) << p;
    EXPECT_EQ(rc.log(ic).terminal.stats.finish, rp.log(ip).terminal.stats.finish);
  }
}

// A conversation restarted with its last exchange keeps the KV of the prefix the replay shares
// with it; its next turn is the same as in a session that evaluates the replay from scratch.
TEST(PromptCacheTest, RestartedConversationContinuesLikeAFreshOne) {
  ModelRegistry reg;
  SessionOptions so;
  so.n_ctx = 256;
  so.n_ubatch = 8;
  so.chat_template = "chatml";
  auto lease = reg.acquire(model_path("stories260K.gguf"));
  Session s(lease, so), fresh(lease, so);
  RequestParams p;
  p.sampling.temp = 0;
  p.max_tokens = 10;
  auto turn = [&](Session& x, RequestParams& q) {
    return x.run_turn(q, x.prepare_turn(q, q.max_tokens), [](std::string_view) {}).text;
  };
  for (const char* u : {"Hi", "Tell me a story.", "About a dog."}) {
    p.messages = {{"user", u}};
    if (s.exchanges().empty()) p.messages.insert(p.messages.begin(), {"system", "Be kind."});
    turn(s, p);
  }
  s.keep_last_exchanges(2);
  ASSERT_GT(s.n_past(), 0);  // BOS + the system message at least
  fresh.tokens() = s.tokens();
  fresh.exchanges() = s.exchanges();
  ASSERT_EQ(fresh.n_past(), 0);
  p.messages = {{"user", "And then?"}};
  EXPECT_EQ(turn(s, p), turn(fresh, p));
  EXPECT_EQ(s.tokens(), fresh.tokens());
}

}  // namespace
}  // namespace hpl
