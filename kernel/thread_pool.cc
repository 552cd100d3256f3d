// Thread pool: one job at a time, published through an atomic generation counter.
//
// Caller (thread 0)                       Worker i
//   fn_, ctx_ = job; pending_ = n - 1       spin: gen_ (acquire) != seen? -> run job
//   gen_ += 1 (seq_cst)                     after spin_ns: lock, sleepers_++, wait on cv
//   if sleepers_ > 0: lock/unlock, notify   run fn_(ctx_, i, n); pending_ -= 1 (release)
//   run fn_(ctx_, 0, n)
//   spin until pending_ == 0 (acquire)
//
// The increment of gen_ and the worker's sleepers_++ are both seq_cst, so either the caller
// sees the sleeper (and notifies under the mutex) or the sleeper sees the new generation
// before it waits: no lost wake-up. A worker cannot miss a generation because the caller
// does not publish the next one before every worker has decremented pending_.
#include "kernel/thread_pool.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace hpl::kernel {
namespace {

constexpr int kMaxThreads = 256;

// Tells the core we are in a spin-wait loop (saves power, frees the sibling hyper-thread).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Busy-wait pacing: the first kPausePolls polls pause (a job usually arrives within
// nanoseconds), later ones sched_yield until limit_ns has passed. Yielding costs a syscall per
// poll (~0.3 us) but keeps a waiting thread from holding a core that a peer of the same pool
// needs: with more runnable threads than cores (shared machines, big.LITTLE under load), pure
// pause-spinning measured 7-15 us per empty run() on 2 shared cores, yield-polling 0.3-0.6 us.
constexpr uint32_t kPausePolls = 16;
class SpinTimer {
 public:
  explicit SpinTimer(int64_t limit_ns) : limit_ns_(limit_ns) {}
  // One poll's wait; false once limit_ns has passed.
  bool step() {
    if (++i_ <= kPausePolls) {
      cpu_relax();
      return true;
    }
    std::this_thread::yield();
    if ((i_ & 7) == 0) {  // read the clock every 8 yields
      int64_t t = now_ns();
      if (t0_ == 0) t0_ = t;
      if (t - t0_ >= limit_ns_) return false;
    }
    return true;
  }

 private:
  int64_t limit_ns_;
  int64_t t0_ = 0;
  uint32_t i_ = 0;
};

}  // namespace

struct ThreadPool::Impl {
  // Hot atomics on their own cache lines: gen_ is read by every spinning worker, pending_ is
  // written by every finishing worker.
  alignas(64) std::atomic<uint32_t> gen{0};
  alignas(64) std::atomic<int> pending{0};
  alignas(64) std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> busy{false};  // catches concurrent or nested run() calls
  Fn fn = nullptr;                // job, published by the release of gen
  void* ctx = nullptr;
  int n = 1;
  int64_t spin_ns = 0;
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::thread> workers;

  // Returns the first generation != seen: polls (SpinTimer pacing) for spin_ns, then sleeps.
  uint32_t wait_for_job(uint32_t seen) {
    if (spin_ns > 0) {  // spin_ns == 0: straight to sleep
      SpinTimer timer(spin_ns);
      do {
        uint32_t g = gen.load(std::memory_order_acquire);
        if (g != seen) return g;
      } while (timer.step());
    }
    std::unique_lock<std::mutex> lk(m);
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    uint32_t g;
    while ((g = gen.load(std::memory_order_seq_cst)) == seen) cv.wait(lk);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    return g;
  }

  void worker_main(int ith) {
    uint32_t seen = 0;
    for (;;) {
      seen = wait_for_job(seen);
      if (stop.load(std::memory_order_relaxed)) return;  // ordered by the acquire of gen
      fn(ctx, ith, n);
      pending.fetch_sub(1, std::memory_order_release);
    }
  }

  // Bumps the generation and wakes sleeping workers (the only path that takes the mutex).
  void publish() {
    gen.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(m); }
      cv.notify_all();
    }
  }

  void shutdown() {
    stop.store(true, std::memory_order_relaxed);
    publish();
    for (std::thread& t : workers) t.join();
    workers.clear();
  }
};

ThreadPool::ThreadPool(int n_threads, int spin_us) : impl_(new Impl) {
  if (n_threads < 1) n_threads = 1;
  if (n_threads > kMaxThreads) n_threads = kMaxThreads;
  n_threads_ = n_threads;
  impl_->n = n_threads;
  impl_->spin_ns = static_cast<int64_t>(spin_us < 0 ? 0 : spin_us) * 1000;
  try {
    impl_->workers.reserve(n_threads - 1);
    for (int i = 1; i < n_threads; ++i)
      impl_->workers.emplace_back([this, i] { impl_->worker_main(i); });
  } catch (...) {  // thread creation failed: join the ones we have, then report
    impl_->shutdown();
    delete impl_;
    throw;
  }
}

ThreadPool::~ThreadPool() {
  impl_->shutdown();
  delete impl_;
}

void ThreadPool::run_raw(Fn fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  Impl& s = *impl_;
  if (s.busy.exchange(true, std::memory_order_acquire)) {
    std::fprintf(stderr, "hpl: ThreadPool::run called concurrently or from inside a job\n");
    std::abort();
  }
  s.fn = fn;
  s.ctx = ctx;
  s.pending.store(s.n - 1, std::memory_order_relaxed);
  s.publish();
  fn(ctx, 0, s.n);
  // Wait for the workers: they are usually just behind us, so poll; yield the core after a
  // while in case one of them was preempted.
  SpinTimer timer(INT64_MAX);
  while (s.pending.load(std::memory_order_acquire) != 0) timer.step();
  s.busy.store(false, std::memory_order_release);
}

}  // namespace hpl::kernel
