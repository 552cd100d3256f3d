// Read bandwidth of main memory: every thread sums its slice of a buffer much larger than the
// caches with 256-bit loads (4 independent accumulators), as a gemv streams weights.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernel/thread_pool.h"

namespace hpl::bench {

// Sum of bytes [p, p + n) as 64-bit words; n a multiple of 128. The result is returned so the
// loads cannot be removed.
inline uint64_t read_sum(const uint8_t* p, size_t n) {
#if defined(__AVX2__)
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t v[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
  return v[0] + v[1] + v[2] + v[3];
#else
  uint64_t s[4] = {};
  for (size_t i = 0; i < n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * k, 8);
      s[k] += w;
    }
  }
  return s[0] + s[1] + s[2] + s[3];
#endif
}

// A page-touched, 64-byte aligned buffer of `bytes` (multiple of 4096).
struct BigBuffer {
  explicit BigBuffer(size_t bytes)
      : n(bytes), p(static_cast<uint8_t*>(std::aligned_alloc(64, bytes))) {
    std::memset(p, 1, n);
  }
  ~BigBuffer() { std::free(p); }
  BigBuffer(const BigBuffer&) = delete;
  BigBuffer& operator=(const BigBuffer&) = delete;
  size_t n;
  uint8_t* p;
};

// CPU time of the calling thread, seconds. On a loaded machine wall time includes time the
// thread was descheduled; thread CPU time does not, so both are reported.
inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct PassTime {
  double wall = 0;      // seconds
  double cpu_mean = 0;  // mean over threads of their CPU seconds
};

// One pass over buf split across the pool's threads.
inline PassTime timed_read_pass(kernel::ThreadPool& pool, const BigBuffer& buf, uint64_t* sink) {
  std::vector<uint64_t> sums(pool.size());
  std::vector<double> cpu(pool.size());
  auto t0 = std::chrono::steady_clock::now();
  pool.run([&](int ith, int nth) {
    double c0 = thread_cpu_seconds();
    size_t chunk = buf.n / nth / 128 * 128;
    sums[ith] = read_sum(buf.p + ith * chunk, chunk);
    cpu[ith] = thread_cpu_seconds() - c0;
  });
  auto t1 = std::chrono::steady_clock::now();
  PassTime t;
  t.wall = std::chrono::duration<double>(t1 - t0).count();
  for (int i = 0; i < pool.size(); ++i) {
    *sink += sums[i];
    t.cpu_mean += cpu[i] / pool.size();
  }
  return t;
}

struct Bandwidth {
  double wall = 0;  // bytes / wall second
  double cpu = 0;   // bytes / mean thread CPU second: what the threads read while running
};

// Median read bandwidth (bytes/s) with the pool's threads over `reps` passes of a buffer of
// `bytes` (default 512 MiB: >> a 32 MiB L3).
inline Bandwidth measure_read_bandwidth(kernel::ThreadPool& pool, size_t bytes = size_t{512} << 20,
                                        int reps = 7) {
  BigBuffer buf(bytes);
  uint64_t sink = 0;
  timed_read_pass(pool, buf, &sink);  // warm-up
  std::vector<double> wall, cpu;
  const double used = static_cast<double>(buf.n / pool.size() / 128 * 128 * pool.size());
  for (int r = 0; r < reps; ++r) {
    PassTime t = timed_read_pass(pool, buf, &sink);
    wall.push_back(used / t.wall);
    cpu.push_back(used / t.cpu_mean);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  if (sink == 42) wall[0] += 1;  // keeps sink observable
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

}  // namespace hpl::bench
