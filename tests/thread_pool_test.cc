// ThreadPool: every chunk runs exactly once per for_chunks() / run(), on a thread whose ith no
// other running chunk has; results are visible to the caller when it returns (TSan checks the
// happens-before); parallel_for covers [0, n) exactly once; the pool wakes from sleep and shuts
// down cleanly.
#include "kernel/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace hpl::kernel {
namespace {

TEST(ThreadPool, SizeIsClampedToAtLeastOne) {
  EXPECT_EQ(ThreadPool(0).size(), 1);
  EXPECT_EQ(ThreadPool(-3).size(), 1);
  EXPECT_EQ(ThreadPool(3).size(), 3);
}

TEST(ThreadPool, EveryIndexOncePerRunManyRuns) {
  for (int nth = 1; nth <= 8; ++nth) {
    ThreadPool pool(nth);
    std::vector<int> hits(nth, 0);  // plain ints: run() must order the workers' writes
    std::vector<int> seen_nth(nth, 0);
    const int runs = 500;
    for (int r = 0; r < runs; ++r) {
      pool.run([&](int ith, int n) {
        hits[ith] += 1;
        seen_nth[ith] = n;
      });
      for (int i = 0; i < nth; ++i) ASSERT_EQ(hits[i], r + 1) << "nth=" << nth << " i=" << i;
    }
    for (int i = 0; i < nth; ++i) EXPECT_EQ(seen_nth[i], nth);
  }
}

TEST(ThreadPool, CallerIsThreadZeroAndWorkersAreNot) {
  ThreadPool pool(4);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> bad{0};
  for (int r = 0; r < 200; ++r) {
    pool.for_chunks(64, [&](int64_t, int ith) {
      if ((ith == 0) != (std::this_thread::get_id() == caller) || ith < 0 || ith >= 4) bad++;
    });
  }
  EXPECT_EQ(bad.load(), 0);
}

TEST(ThreadPool, ForChunksRunsEveryChunkOnce) {
  // Includes counts above the 65535 claims of one job word (claims then hold several chunks).
  const int64_t counts[] = {0, 1, 2, 3, 5, 64, 1000, 65535, 65536, 200001};
  for (int nth : {1, 2, 3, 8}) {
    ThreadPool pool(nth);
    for (int64_t n : counts) {
      std::vector<uint8_t> hits(static_cast<size_t>(n), 0);  // plain: ordered by the pool
      pool.for_chunks(n, [&](int64_t c, int) { hits[static_cast<size_t>(c)]++; });
      for (int64_t c = 0; c < n; ++c)
        ASSERT_EQ(hits[c], 1) << "nth=" << nth << " n=" << n << " c=" << c;
    }
  }
}

TEST(ThreadPool, NoTwoRunningChunksShareAThreadIndex) {
  // ith indexes per-thread scratch, so two chunks running at once must never have the same.
  ThreadPool pool(4);
  std::vector<std::atomic<int>> in_use(4);
  std::atomic<int> overlaps{0};
  for (int r = 0; r < 100; ++r) {
    pool.for_chunks(256, [&](int64_t c, int ith) {
      if (in_use[ith].fetch_add(1) != 0) overlaps++;
      volatile int spin = 0;
      for (int i = 0; i < static_cast<int>(c % 7) * 100; ++i) spin = spin + i;
      in_use[ith].fetch_sub(1);
    });
  }
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(ThreadPool, SlowChunkDoesNotLoseOthers) {
  // One chunk stalls (as if its thread were preempted); every other chunk still runs once and
  // the job ends only after the slow one.
  ThreadPool pool(3, /*spin_us=*/0);
  std::vector<int> hits(300, 0);
  std::atomic<bool> slow_done{false};
  pool.for_chunks(300, [&](int64_t c, int) {
    if (c == 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      slow_done = true;
    }
    hits[static_cast<size_t>(c)]++;
  });
  EXPECT_TRUE(slow_done.load());
  for (int c = 0; c < 300; ++c) ASSERT_EQ(hits[c], 1) << c;
}

TEST(ThreadPool, DataWrittenByCallerBeforeRunIsSeenByWorkers) {
  ThreadPool pool(4);
  std::vector<int64_t> in(4), out(4);
  for (int r = 0; r < 500; ++r) {
    for (int i = 0; i < 4; ++i) in[i] = r * 10 + i;
    pool.run([&](int ith, int) { out[ith] = in[ith] * 2; });
    for (int i = 0; i < 4; ++i) ASSERT_EQ(out[i], (r * 10 + i) * 2);
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  const int64_t sizes[] = {0, 1, 2, 3, 7, 17, 64, 100, 1001, 4096};
  const int64_t grains[] = {0, 1, 3, 16, 64, 5000};
  for (int nth = 1; nth <= 8; ++nth) {
    ThreadPool pool(nth);
    for (int64_t n : sizes) {
      for (int64_t grain : grains) {
        std::vector<int> hits(n, 0);
        std::atomic<int> bad_bounds{0};
        int64_t g = grain < 1 ? 1 : grain;
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          if (b % g != 0 || b >= e || e > n || (e != n && e % g != 0)) bad_bounds++;
          for (int64_t i = b; i < e; ++i) hits[i] += 1;
        });
        EXPECT_EQ(bad_bounds.load(), 0) << "nth=" << nth << " n=" << n << " grain=" << grain;
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[i], 1) << "nth=" << nth << " n=" << n << " grain=" << grain << " i=" << i;
      }
    }
  }
}

TEST(ThreadPool, LvalueAndConstFunctors) {
  ThreadPool pool(3);
  std::atomic<int> count{0};
  auto f = [&](int, int) { count++; };
  pool.run(f);
  const auto& cf = f;
  pool.run(cf);
  EXPECT_EQ(count.load(), 6);
}

TEST(ThreadPool, WakesFromSleepWithoutLostWakeups) {
  // spin_us = 0: workers go to sleep right after each job and the caller sleeps while chunks
  // are out, so every run exercises both futex handshakes; a lost wake-up would hang here.
  // Chunks take a few microseconds so the workers do wake up and take some.
  for (int nth : {2, 3, 8}) {
    ThreadPool pool(nth, /*spin_us=*/0);
    std::vector<int> hits(64, 0);
    for (int r = 0; r < 2000; ++r) {
      pool.for_chunks(64, [&](int64_t c, int) {
        volatile int spin = 0;
        for (int i = 0; i < 300; ++i) spin = spin + i;
        hits[static_cast<size_t>(c)]++;
      });
    }
    for (int c = 0; c < 64; ++c) EXPECT_EQ(hits[c], 2000);
  }
}

TEST(ThreadPool, RunsAfterWorkersFellAsleep) {
  ThreadPool pool(4, /*spin_us=*/50);
  std::atomic<int> count{0};
  for (int r = 0; r < 5; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // workers are asleep now
    pool.run([&](int, int) { count++; });
  }
  EXPECT_EQ(count.load(), 20);
}

TEST(ThreadPool, DestructionWhileIdle) {
  for (int nth = 1; nth <= 8; ++nth) {
    std::atomic<int> count{0};
    { ThreadPool never_used(nth); }  // workers may not even have started waiting yet
    {
      ThreadPool spinning(nth);
      spinning.run([&](int, int) { count++; });
    }  // destroyed while workers still spin
    {
      ThreadPool sleeping(nth, /*spin_us=*/10);
      sleeping.run([&](int, int) { count++; });
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }  // destroyed while workers sleep
    EXPECT_EQ(count.load(), 2 * nth);
  }
}

}  // namespace
}  // namespace hpl::kernel
