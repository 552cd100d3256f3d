// Persistent worker threads for splitting ops by row ranges. The caller is thread 0.
// run() neither allocates nor locks on its fast path: workers poll an atomic generation counter
// (a few pause instructions, then sched_yield) for spin_us after each job, then sleep on a
// condition variable, so idle workers don't burn cores between calls.
// run() must be called from one thread at a time and not from inside f; f must not throw.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>

namespace hpl::kernel {

class ThreadPool {
 public:
  // n_threads: total threads including the caller (>= 1; larger values are clamped to 256).
  // spin_us: how long an idle worker polls for the next job before it goes to sleep.
  explicit ThreadPool(int n_threads, int spin_us = 100);
  ~ThreadPool();  // wakes and joins the workers
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls f(ith, nth) on every thread (caller is ith == 0) and returns when all finished.
  template <class F>
  void run(F&& f) {
    using T = std::remove_reference_t<F>;
    run_raw([](void* ctx, int ith, int nth) { (*static_cast<T*>(ctx))(ith, nth); },
            const_cast<void*>(static_cast<const void*>(std::addressof(f))));
  }

  // Splits [0, n) into size() contiguous ranges whose bounds are multiples of grain and
  // calls f(begin, end) for each non-empty one. grain < 1 is taken as 1.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& f) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    run([&](int ith, int nth) {
      int64_t blocks = (n + grain - 1) / grain;
      int64_t b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;
      int64_t begin = b0 * grain, end = b1 * grain < n ? b1 * grain : n;
      if (begin < end) f(begin, end);
    });
  }

 private:
  using Fn = void (*)(void* ctx, int ith, int nth);
  void run_raw(Fn fn, void* ctx);
  struct Impl;
  Impl* impl_;
  int n_threads_;
};

}  // namespace hpl::kernel
