// Measures the runtime's stop latency: the time from Runtime::stop() to the done event, for a
// request that is decoding and for one whose prompt is being evaluated (micro-batch bound).
//   runtime_stop_latency MODEL.gguf [threads=2] [trials=10] [n_ubatch=64]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.h"

using namespace hpl;
using Clock = std::chrono::steady_clock;

namespace {

struct Probe {
  std::atomic<int> tokens{0};
  std::atomic<bool> processing{false};
  std::atomic<bool> done{false};
  std::atomic<int64_t> done_ns{0};
  RequestStats stats;
  std::string error;
};

void print(const char* what, std::vector<double> ms) {
  if (ms.empty()) {
    std::printf("%s: no samples\n", what);
    return;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%s: n=%zu min %.2f ms, median %.2f ms, max %.2f ms\n", what, ms.size(), ms.front(),
              ms[ms.size() / 2], ms.back());
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [threads] [trials] [n_ubatch]\n", argv[0]);
    return 2;
  }
  RuntimeOptions o;
  o.model_path = argv[1];
  o.session.n_threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const int trials = argc > 3 ? std::atoi(argv[3]) : 10;
  o.session.n_ubatch = argc > 4 ? std::atoi(argv[4]) : 64;
  o.session.n_ctx = 1024;
  try {
    Runtime rt(o);
    std::vector<double> decode_ms, prefill_ms, token_ms, ubatch_ms;
    std::string long_prompt;
    for (int i = 0; i < 40; ++i) long_prompt += "Once upon a time there was a little girl. ";
    for (int t = 0; t < trials; ++t) {
      for (int mode = 0; mode < 2; ++mode) {
        Probe pr;
        RequestParams p;
        p.prompt = mode == 0 ? "Once upon a time" : long_prompt;
        p.max_tokens = mode == 0 ? 400 : 8;
        p.sampling.seed = 100 + t;
        const RequestId id = rt.submit(p, [&pr](const Event& ev) {
          if (ev.type == EventType::kProcessing) pr.processing = true;
          if (ev.type == EventType::kToken) ++pr.tokens;
          if (ev.type == EventType::kDone || ev.type == EventType::kError) {
            pr.stats = ev.stats;
            if (ev.type == EventType::kError) pr.error = std::string(ev.text);
            pr.done_ns = now_ns();
            pr.done = true;
          }
        });
        if (mode == 0) {
          while (pr.tokens < 8 && !pr.done)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        } else {
          while (!pr.processing && !pr.done)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        const int64_t t_stop = now_ns();
        rt.stop(id);
        rt.wait(id);
        if (!pr.error.empty()) {
          std::fprintf(stderr, "request failed: %s\n", pr.error.c_str());
          return 1;
        }
        if (pr.stats.finish != FinishReason::kStopped) continue;  // ended before the stop
        const double ms = (pr.done_ns - t_stop) / 1e6;
        if (mode == 0) {
          decode_ms.push_back(ms);
          token_ms.push_back(1000.0 / pr.stats.decode_tokens_per_s);
        } else if (pr.stats.completion_tokens == 0) {
          prefill_ms.push_back(ms);
          if (pr.stats.prompt_tokens > 0)
            ubatch_ms.push_back(pr.stats.total_ms * o.session.n_ubatch / pr.stats.prompt_tokens);
        }
      }
    }
    std::printf("%s, %d threads, n_ubatch %lld\n", argv[1], o.session.n_threads,
                static_cast<long long>(o.session.n_ubatch));
    print("stop latency while decoding (stop -> done)", decode_ms);
    print("  for reference, time per generated token", token_ms);
    print("stop latency during prompt evaluation (stop -> done)", prefill_ms);
    print("  for reference, time per prompt micro-batch", ubatch_ms);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
