// Persistent worker threads for splitting ops by row ranges. The caller is thread 0;
// run() neither allocates nor locks on its fast path (spin, then futex-free sleep fallback).
#pragma once

#include <cstdint>

namespace hpl::kernel {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // total threads including the caller; >= 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls f(ith, nth) on every thread (caller is ith == 0) and returns when all finished.
  template <class F>
  void run(F&& f) {
    run_raw([](void* ctx, int ith, int nth) { (*static_cast<F*>(ctx))(ith, nth); }, &f);
  }

  // Splits [0, n) into size() contiguous ranges whose bounds are multiples of grain and
  // calls f(begin, end) for each non-empty one.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& f) {
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
