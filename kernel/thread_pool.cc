// Thread pool: one job at a time; its chunks are claimed from one atomic word.
//
// job = gen (32 bits) | n_claims (16) | next (16). A claim is a CAS next -> next + 1 that only
// succeeds while gen is the job's and next < n_claims, so a late worker can never take a chunk
// of a job that already ended, or of the next one it has not seen. fn / ctx are read only after
// a successful claim: the job cannot end before that claim is counted done, and the caller
// writes the next job's fn / ctx only after every claim is done.
//
// Caller (thread 0)                          Worker i
//   fn, ctx = job; done = 0                    spin (pause) until wake != seen, then futex-
//   job = {gen, n, 0}; wake = gen (seq_cst)      sleep on wake (sleepers++ first)
//   sleepers > 0 ? futex-wake all              claim chunks of job.gen, run them
//   claim and run chunks like the workers      done += claimed (seq_cst); last one and the
//   spin until done == n, then futex-sleep       caller sleeps? futex-wake it
//
// Both sleeps are Dekker pairs of seq_cst operations (wake/sleepers, done/caller_sleeps) and
// the futex re-checks the word, so no wake-up is lost. Nobody ever yields: under a niced
// background load each sched_yield hands the core away for a whole time slice, which is what
// made decode collapse (7 barriers per layer, each a yield).
#include "kernel/thread_pool.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "kernel/cpu_topology.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace hpl::kernel {
namespace {

constexpr int kMaxThreads = 256;
constexpr uint32_t kMaxClaims = 0xFFFF;  // the 16-bit next / n fields of the job word

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

// Sleeps while *w == expected (may return spuriously); wakes every sleeper on w.
void futex_wait(std::atomic<uint32_t>* w, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr,
          0);
#else
  w->wait(expected, std::memory_order_seq_cst);
#endif
}
void futex_wake_all(std::atomic<uint32_t>* w) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr,
          0);
#else
  w->notify_all();
#endif
}

// Polls cond() with pause for up to limit_ns (clock read every 32 polls); true once it holds.
template <class Cond>
bool spin_until(int64_t limit_ns, Cond cond) {
  if (cond()) return true;
  if (limit_ns <= 0) return false;
  const int64_t t0 = now_ns();
  for (uint32_t i = 1;; ++i) {
    cpu_relax();
    if (cond()) return true;
    if ((i & 31) == 0 && now_ns() - t0 >= limit_ns) return false;
  }
}

constexpr uint64_t pack(uint32_t gen, uint32_t n, uint32_t next) {
  return uint64_t{gen} << 32 | uint64_t{n} << 16 | next;
}
constexpr uint32_t gen_of(uint64_t v) {
  return static_cast<uint32_t>(v >> 32);
}
constexpr uint32_t n_of(uint64_t v) {
  return static_cast<uint32_t>(v >> 16) & 0xFFFF;
}
constexpr uint32_t next_of(uint64_t v) {
  return static_cast<uint32_t>(v) & 0xFFFF;
}

std::atomic<uint64_t> g_pool_ids{0};
thread_local uint64_t t_pinned_for = 0;  // id of the pool that pinned this caller thread

}  // namespace

struct ThreadPool::Impl {
  // Hot atomics on their own cache lines.
  alignas(64) std::atomic<uint64_t> job{0};   // gen | n_claims | next
  alignas(64) std::atomic<uint32_t> wake{0};  // gen of the latest job; sleeping workers' futex
  alignas(64) std::atomic<uint32_t> done{0};  // claims finished in the current job
  alignas(64) std::atomic<uint32_t> sleepers{0};
  std::atomic<uint32_t> caller_sleeps{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> busy{false};  // catches concurrent or nested run() calls
  // The current job, written by the caller before it publishes job / wake.
  Fn fn = nullptr;
  void* ctx = nullptr;
  int64_t n_chunks = 0;  // chunks of the job; claim i runs chunks [n*i/K, n*(i+1)/K)
  uint32_t n_claims = 0;
  uint32_t gen = 0;  // caller's count of published jobs
  int n = 1;
  int64_t spin_ns = 0;
  uint64_t id = 0;
  std::vector<int> cpus;  // pin mask (empty: none)
  std::vector<std::thread> workers;

  std::mutex pin_m;  // guards the fields below (written at start-up and by run()'s first pin)
  std::condition_variable pin_cv;
  int started = 0;
  std::string pin_warning;

  // Claims the next chunk of job g; false when g has ended or has no chunk left.
  bool claim(uint32_t g, uint32_t* idx, uint32_t* n_claims_out) {
    uint64_t v = job.load(std::memory_order_acquire);
    for (;;) {
      if (gen_of(v) != g || next_of(v) >= n_of(v)) return false;
      if (job.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
        *idx = next_of(v);
        *n_claims_out = n_of(v);
        return true;
      }
    }
  }

  void run_claim(uint32_t i, int ith) const {
    const int64_t c0 = n_chunks * i / n_claims, c1 = n_chunks * (i + 1) / n_claims;
    for (int64_t c = c0; c < c1; ++c) fn(ctx, c, ith);
  }

  // Runs claims of job g until none is left; returns how many this thread ran.
  uint32_t work(uint32_t g, int ith, uint32_t* n_claims_out) {
    uint32_t mine = 0, idx;
    while (claim(g, &idx, n_claims_out)) {
      run_claim(idx, ith);
      ++mine;
    }
    return mine;
  }

  // Returns the first wake generation != seen: spins spin_ns, then sleeps on the futex.
  uint32_t wait_for_job(uint32_t seen) {
    uint32_t g = seen;
    if (spin_until(spin_ns, [&] { return (g = wake.load(std::memory_order_acquire)) != seen; }))
      return g;
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    while ((g = wake.load(std::memory_order_seq_cst)) == seen) futex_wait(&wake, seen);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    return g;
  }

  void worker_main(int ith) {
    if (!cpus.empty()) {
      std::string why = pin_current_thread(cpus);
      std::lock_guard<std::mutex> lk(pin_m);
      if (!why.empty() && pin_warning.empty()) pin_warning = "worker threads: " + why;
    }
    {
      std::lock_guard<std::mutex> lk(pin_m);
      ++started;
    }
    pin_cv.notify_all();
    uint32_t seen = 0;
    for (;;) {
      seen = wait_for_job(seen);
      if (stop.load(std::memory_order_acquire)) return;
      const uint32_t g = gen_of(job.load(std::memory_order_acquire));
      uint32_t k = 0;
      const uint32_t mine = work(g, ith, &k);
      if (mine == 0) continue;
      // The claims keep job g alive until counted, so k is this job's claim count.
      const uint32_t d = done.fetch_add(mine, std::memory_order_seq_cst) + mine;
      if (d == k && caller_sleeps.load(std::memory_order_seq_cst)) futex_wake_all(&done);
    }
  }

  void publish(uint32_t n_claims_new) {
    ++gen;
    job.store(pack(gen, n_claims_new, 0), std::memory_order_seq_cst);
    wake.store(gen, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(&wake);
  }

  void shutdown() {
    stop.store(true, std::memory_order_release);
    publish(0);
    for (std::thread& t : workers) t.join();
    workers.clear();
  }
};

ThreadPool::ThreadPool(int n_threads, int spin_us, std::vector<int> cpus) : impl_(new Impl) {
  if (n_threads < 1) n_threads = 1;
  if (n_threads > kMaxThreads) n_threads = kMaxThreads;
  n_threads_ = n_threads;
  impl_->n = n_threads;
  impl_->spin_ns = static_cast<int64_t>(spin_us < 0 ? 0 : spin_us) * 1000;
  impl_->id = g_pool_ids.fetch_add(1) + 1;
  impl_->cpus = std::move(cpus);
  try {
    impl_->workers.reserve(n_threads - 1);
    for (int i = 1; i < n_threads; ++i)
      impl_->workers.emplace_back([this, i] { impl_->worker_main(i); });
  } catch (...) {  // thread creation failed: join the ones we have, then report
    impl_->shutdown();
    delete impl_;
    throw;
  }
  if (!impl_->cpus.empty() && n_threads > 1) {  // wait for the workers' pin results
    std::unique_lock<std::mutex> lk(impl_->pin_m);
    impl_->pin_cv.wait(lk, [&] { return impl_->started == n_threads - 1; });
  } else if (!impl_->cpus.empty()) {  // no workers: a probe thread tells what the OS allows
    std::string why;
    std::thread([&] { why = pin_current_thread(impl_->cpus); }).join();
    if (!why.empty()) impl_->pin_warning = "threads: " + why;
  }
}

ThreadPool::~ThreadPool() {
  impl_->shutdown();
  delete impl_;
}

std::string ThreadPool::pin_warning() const {
  std::lock_guard<std::mutex> lk(impl_->pin_m);
  return impl_->pin_warning;
}

void ThreadPool::run_raw(Fn fn, void* ctx, int64_t n_chunks) {
  if (n_chunks <= 0) return;
  Impl& s = *impl_;
  if (!s.cpus.empty() && t_pinned_for != s.id) {  // pin the calling thread once
    t_pinned_for = s.id;
    std::string why = pin_current_thread(s.cpus);
    std::lock_guard<std::mutex> lk(s.pin_m);
    if (!why.empty() && s.pin_warning.empty()) s.pin_warning = "calling thread: " + why;
  }
  if (n_threads_ == 1 || n_chunks == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(ctx, c, 0);
    return;
  }
  if (s.busy.exchange(true, std::memory_order_acquire)) {
    std::fprintf(stderr, "hpl: ThreadPool::run called concurrently or from inside a job\n");
    std::abort();
  }
  s.fn = fn;
  s.ctx = ctx;
  s.n_chunks = n_chunks;
  s.n_claims = static_cast<uint32_t>(n_chunks < kMaxClaims ? n_chunks : kMaxClaims);
  s.done.store(0, std::memory_order_relaxed);
  s.publish(s.n_claims);
  const uint32_t g = s.gen;
  uint32_t k = 0;
  const uint32_t mine = s.work(g, 0, &k);
  const uint32_t target = s.n_claims;
  if (s.done.fetch_add(mine, std::memory_order_seq_cst) + mine != target) {
    // Chunks taken by other threads are still running: poll, then sleep until the last one
    // wakes us (a preempted worker may need a while to get its core back).
    auto finished = [&] { return s.done.load(std::memory_order_acquire) == target; };
    if (!spin_until(s.spin_ns, finished)) {
      s.caller_sleeps.store(1, std::memory_order_seq_cst);
      uint32_t d;
      while ((d = s.done.load(std::memory_order_seq_cst)) != target) futex_wait(&s.done, d);
      s.caller_sleeps.store(0, std::memory_order_relaxed);
    }
  }
  s.busy.store(false, std::memory_order_release);
}

}  // namespace hpl::kernel
