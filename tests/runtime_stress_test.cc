// Stress: 8 threads submit and stop 1,000 requests at random on a tiny model. Nothing lost
// (every request gets exactly one terminal event), nothing duplicated (unique ids, one
// terminal each), FIFO kept (processing order == id order). Run under TSan and ASan/LSan.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "runtime/runtime.h"
#include "tests/runtime_test_util.h"

namespace hpl {
namespace {

TEST(RuntimeStressTest, EightThreadsSubmitAndStopAThousandRequests) {
  constexpr int kThreads = 8, kPerThread = 125;
  RuntimeOptions o;
  o.model_path = test::model_path("stories260K.gguf");
  o.session.n_ctx = 64;
  o.session.n_ubatch = 4;
  Runtime rt(o);
  test::Recorder rec;
  std::vector<std::vector<RequestId>> submitted(kThreads);
  std::atomic<int> stops_accepted{0};
  std::atomic<int> active_stops{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      for (int i = 0; i < kPerThread; ++i) {
        RequestParams p;
        p.prompt = (rng() % 2) ? "Once upon a time" : "Lily and Ben";
        p.max_tokens = 1 + static_cast<int>(rng() % 6);
        p.sampling.seed = rng();
        const RequestId id = rt.submit(p, rec.callback());
        submitted[t].push_back(id);
        switch (rng() % 5) {
          case 0:  // stop it right away (queued, or just started)
            if (rt.stop(id)) ++stops_accepted;
            break;
          case 1: {  // stop one of this thread's earlier requests (maybe finished)
            const RequestId old = submitted[t][rng() % submitted[t].size()];
            if (rt.stop(old)) ++stops_accepted;
            break;
          }
          case 2: {  // stop the request that started last (usually the active one)
            const RequestId active = rec.last_started();
            if (active > 0 && rt.stop(active)) ++active_stops;
            break;
          }
          case 3:
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
            break;
          default:
            break;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(rec.wait_terminals(kThreads * kPerThread, 600)) << "requests were lost";
  rt.wait_idle();

  std::set<RequestId> all;
  for (auto& v : submitted) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread)) << "duplicate ids";
  const auto logs = rec.logs();
  EXPECT_EQ(logs.size(), all.size()) << "events for unknown ids";
  int stopped = 0, done = 0, errors = 0;
  for (RequestId id : all) {
    auto it = logs.find(id);
    ASSERT_NE(it, logs.end()) << "request " << id << " got no event";
    const test::RequestLog& l = it->second;
    EXPECT_TRUE(l.protocol_ok) << "request " << id << ": " << l.protocol_error;
    EXPECT_EQ(l.terminals, 1) << "request " << id;
    if (l.terminal.type == EventType::kError) {
      ++errors;
      ADD_FAILURE() << "request " << id << " failed: " << l.error_text;
    } else if (l.terminal.stats.finish == FinishReason::kStopped) {
      ++stopped;
    } else {
      ++done;
    }
  }
  // FIFO: requests started in id order (stopped-while-queued ones never start).
  const auto order = rec.processing_order();
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_EQ(std::set<RequestId>(order.begin(), order.end()).size(), order.size());
  EXPECT_GT(stopped, 0);
  EXPECT_GT(done, 0);
  EXPECT_EQ(errors, 0);
  std::printf(
      "stress: %zu requests, %d ended stopped, %d done, %zu started; stop() accepted %d times "
      "on queued/any, %d times on the last started one\n",
      all.size(), stopped, done, order.size(), stops_accepted.load(), active_stops.load());
  EXPECT_FALSE(rt.failed());
}

// Switching models under a budget that holds any two of three models, not all three: 300
// stateless requests round-robin over three runtimes sharing a registry, each waited for
// (wait(), then wait_idle(), alternately) before the next is submitted. The model whose
// request has just finished must be evictable at once: no request may fail with kOutOfMemory
// (before the fix the breaker opened within the first ~10 requests), and no breaker may open.
// The C API's default context and threads make a session slow to free, which widened the
// race.
TEST(RuntimeStressTest, SwitchingModelsUnderABudgetNeverFailsOnAFinishedModel) {
  const char* names[3] = {"stories260K.gguf", "TinyStories-656K.f16.gguf",
                          "tinystories-656k-q8_0.gguf"};
  auto reg = std::make_shared<ModelRegistry>();
  std::vector<std::unique_ptr<Runtime>> rts;
  for (const char* n : names) {
    RuntimeOptions o;
    o.model_path = test::model_path(n);
    o.session.n_ctx = 2048;  // the C API's defaults: a session takes a while to free
    o.session.n_threads = 4;
    o.registry = reg;
    rts.push_back(std::make_unique<Runtime>(o));
  }
  reg->set_budget(std::filesystem::file_size(test::model_path(names[0])) +
                  std::filesystem::file_size(test::model_path(names[1])) + 65536);
  test::Recorder recs[3];  // request ids are per runtime
  int failures = 0;
  std::string first_error;
  for (int r = 0; r < 300; ++r) {
    Runtime& rt = *rts[r % 3];
    test::Recorder& rec = recs[r % 3];
    RequestParams p;
    p.prompt = "Once upon a time";
    p.max_tokens = 2;
    p.sampling.temp = 0;
    const RequestId id = rt.submit(p, rec.callback());
    if (r % 2)
      rt.wait_idle();
    else
      rt.wait(id);
    const test::RequestLog log = rec.log(id);
    ASSERT_EQ(log.terminals, 1);
    if (log.terminal.type != EventType::kDone && failures++ == 0) first_error = log.error_text;
  }
  EXPECT_EQ(failures, 0) << "first: " << first_error;
  for (auto& rt : rts) EXPECT_FALSE(rt->failed()) << rt->failed_reason();
}

}  // namespace
}  // namespace hpl
