// Persistent worker threads that share jobs split into chunks. The caller is thread 0 and works
// too. Threads take the next chunk of a job from one shared atomic counter, so a slow or
// preempted thread holds the job up by at most the chunk it is running, never by a fixed share.
// Idle workers spin (pause, no yield) for spin_us after each job, then sleep on a futex; the
// caller never waits for a worker to wake up, only for chunks already taken.
// No allocation or lock on the hot path. run() / for_chunks() must be called from one thread at
// a time and not from inside a job; jobs must not throw.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace hpl::kernel {

class ThreadPool {
 public:
  // Idle workers poll this long before sleeping: covers the serial work between two ops of a
  // decode step, so a worker is still awake when the next op is published.
  static constexpr int kDefaultSpinUs = 200;
  // Chunks per thread that parallel_for aims for: enough that a preempted thread's chunk is a
  // small part of the job, few enough that claiming (one atomic each) costs nothing.
  static constexpr int kChunksPerThread = 8;

  // n_threads: total threads including the caller (>= 1; larger values are clamped to 256).
  // spin_us: how long an idle worker polls for the next job before it sleeps (0: sleep at once).
  // cpus: if not empty, the workers, and each thread that calls run() (the first time it does),
  // are pinned to these CPUs (all of them, not one each); see pin_warning().
  explicit ThreadPool(int n_threads, int spin_us = kDefaultSpinUs, std::vector<int> cpus = {});
  ~ThreadPool();  // wakes and joins the workers
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Empty when no pinning was asked for or the OS applied it exactly; else a sentence naming
  // the CPUs asked for and the ones the threads got (the OS may refuse or narrow a mask, e.g.
  // Android cpusets). The caller's pinning is checked when run() first pins it.
  std::string pin_warning() const;

  // Calls f(chunk, ith) for every chunk in [0, n_chunks), each exactly once, and returns when
  // all finished. ith (0 = the caller, < size()) is the thread running the chunk: use it to
  // index per-thread scratch. Which thread runs which chunk is not fixed.
  template <class F>
  void for_chunks(int64_t n_chunks, F&& f) {
    using T = std::remove_reference_t<F>;
    run_raw([](void* ctx, int64_t c, int ith) { (*static_cast<T*>(ctx))(c, ith); },
            const_cast<void*>(static_cast<const void*>(std::addressof(f))), n_chunks);
  }

  // Calls f(i, size()) once for each i in [0, size()) (on some thread, not necessarily thread
  // i; two calls with the same i never overlap, so i may index per-thread scratch).
  template <class F>
  void run(F&& f) {
    const int n = n_threads_;
    for_chunks(n, [&](int64_t c, int) { f(static_cast<int>(c), n); });
  }

  // Splits [0, n) into contiguous ranges whose bounds are multiples of grain (about
  // kChunksPerThread per thread) and calls f(begin, end) for each. grain < 1 is taken as 1.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& f) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int64_t blocks = (n + grain - 1) / grain;
    const int64_t want = int64_t{n_threads_} * kChunksPerThread;
    const int64_t chunks = blocks < want ? blocks : want;
    for_chunks(chunks, [&](int64_t c, int) {
      const int64_t b0 = blocks * c / chunks, b1 = blocks * (c + 1) / chunks;
      const int64_t begin = b0 * grain, end = b1 * grain < n ? b1 * grain : n;
      if (begin < end) f(begin, end);
    });
  }

 private:
  using Fn = void (*)(void* ctx, int64_t chunk, int ith);
  void run_raw(Fn fn, void* ctx, int64_t n_chunks);
  struct Impl;
  Impl* impl_;
  int n_threads_;
};

}  // namespace hpl::kernel
