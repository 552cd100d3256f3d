#include "tools/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace hpl {

namespace {

// Sum of n 64-bit words with 8 independent accumulators (the compiler vectorizes it).
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t s[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += p[i + k];
  }
  uint64_t t = 0;
  for (uint64_t v : s) t += v;
  return t;
}

}  // namespace

double measure_read_bandwidth(kernel::ThreadPool& pool, size_t bytes, int reps) {
  bytes = std::max<size_t>(bytes / 4096 * 4096, 4096);
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<uint64_t, Free> buf(static_cast<uint64_t*>(std::aligned_alloc(4096, bytes)));
  if (!buf) return 0.0;
  const size_t words = bytes / sizeof(uint64_t);
  // Touch every page from the threads that will read it (first-touch placement).
  pool.parallel_for(static_cast<int64_t>(words), 512, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf.get()[i] = static_cast<uint64_t>(i);
  });
  std::atomic<uint64_t> sink{0};
  double best = 0.0;
  for (int r = 0; r < std::max(1, reps); ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<int64_t>(words), 512, [&](int64_t b, int64_t e) {
      sink.fetch_add(sum_words(buf.get() + b, static_cast<size_t>(e - b)),
                     std::memory_order_relaxed);
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, static_cast<double>(bytes) / s);
  }
  return sink.load() == 1 ? best * 1.0000001 : best;  // keeps the sums alive
}

}  // namespace hpl
