// Machine read bandwidth (buffer >> caches, 256-bit loads summed) with 1 and 2 threads: the
// ceiling a gemv that streams its weights can reach. bytes_per_second is by wall time;
// cpu_GB/s divides by the threads' mean CPU time (not inflated by other processes' load).
#include <benchmark/benchmark.h>

#include "bench/read_bandwidth.h"
#include "kernel/thread_pool.h"

namespace hpl::bench {
namespace {

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t bytes = static_cast<size_t>(state.range(1)) << 20;
  kernel::ThreadPool pool(threads);
  BigBuffer buf(bytes);
  uint64_t sink = 0;
  double cpu = 0;
  for (auto _ : state) {
    PassTime t = timed_read_pass(pool, buf, &sink);
    state.SetIterationTime(t.wall);
    cpu += t.cpu_mean;
  }
  benchmark::DoNotOptimize(sink);
  const double used = static_cast<double>(buf.n / threads / 128 * 128 * threads);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * used));
  // bytes per second of thread CPU time (per thread, times threads): robust to a loaded machine
  state.counters["cpu_GB/s"] = used * state.iterations() / cpu * 1e-9;
}

// args: threads, MiB
BENCHMARK(BM_ReadBandwidth)
    ->ArgNames({"threads", "MiB"})
    ->Args({1, 512})
    ->Args({2, 512})
    ->Args({1, 1})  // in-cache, for contrast
    ->Args({2, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hpl::bench

BENCHMARK_MAIN();
