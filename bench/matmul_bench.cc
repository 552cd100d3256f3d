// matmul throughput at the shapes of a 1.1B llama (TinyLlama: d 2048, ffn 5632, vocab 32000,
// kv 256) and of Gemma 3 270M (d 640, ffn 2048: rows of 640 elements): gemv (1 token, decode)
// and gemm (32/128/512 tokens, prefill), for the GGUF layouts and the packed ones
// (kernel/repack.h); HPL_ISA picks the body, rows split across 1 or 2 threads. Counters:
// bytes_per_second (weights read once per call), GOP/s (a multiply-add counts 2) and, for
// gemv, pct_bw = weight bytes/s as % of the read bandwidth measured at start-up with the same
// thread count. cpu_* counters divide by the threads' mean CPU time instead of wall time
// (robust to a shared, loaded machine); pct_bw_cpu compares those with the bandwidth measured
// the same way. Activations are quantized in setup.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/read_bandwidth.h"
#include "kernel/ops.h"
#include "kernel/repack.h"
#include "kernel/thread_pool.h"
#include "kernel/types.h"

namespace hpl::bench {
namespace {

Bandwidth g_bandwidth[3];  // read bandwidth by thread count

// rows x n weights of type t: random bytes with sane f16 scales (random normals for floats).
std::vector<uint8_t> make_weights(DType t, int64_t rows, int64_t n) {
  std::mt19937 rng(42);
  const size_t bytes = row_bytes(t, n) * rows;
  std::vector<uint8_t> w(bytes);
  for (size_t i = 0; i + 4 <= bytes; i += 4) {
    uint32_t r = rng();
    std::memcpy(&w[i], &r, 4);
  }
  std::normal_distribution<float> g(0.0f, 1.0f);
  auto put16 = [&](size_t off, f16_t v) { std::memcpy(&w[off], &v, 2); };
  const TypeTraits tr = type_traits(t);
  const int64_t count = rows * n / tr.block_elems;
  for (int64_t k = 0; k < count; ++k) {
    const size_t b = k * tr.block_bytes;
    switch (t) {
      case DType::F16:
        put16(b, fp32_to_fp16(g(rng)));
        break;
      case DType::BF16:
        put16(b, fp32_to_bf16(g(rng)));
        break;
      case DType::F32: {
        float v = g(rng);
        std::memcpy(&w[b], &v, 4);
        break;
      }
      case DType::Q4_K:
      case DType::Q5_K:
        put16(b, fp32_to_fp16(0.002f));
        put16(b + 2, fp32_to_fp16(0.001f));
        break;
      case DType::Q6_K:
        put16(b + 208, fp32_to_fp16(0.002f));
        break;
      default:
        put16(b, fp32_to_fp16(0.01f));
        break;  // Q4_0, Q5_0, Q8_0: d first
    }
  }
  return w;
}

struct Pools {
  std::unique_ptr<kernel::ThreadPool> p[3];
  kernel::ThreadPool& get(int n) {
    if (!p[n]) p[n] = std::make_unique<kernel::ThreadPool>(n);
    return *p[n];
  }
} g_pools;

void run_matmul(benchmark::State& state, DType t, int64_t rows, int64_t n, int64_t ntok,
                int threads) {
  const DType act = kernel::vec_dot_type(t);
  const size_t ws = row_bytes(t, n), xs = row_bytes(act, n);
  auto w = make_weights(kernel::unpacked_type(t), rows, n);
  if (kernel::unpacked_type(t) != t) {  // a packed layout: the same weights, interleaved
    std::vector<uint8_t> packed(w.size());
    kernel::repack_rows(kernel::unpacked_type(t), w.data(), ws, rows, n, packed.data());
    w.swap(packed);
  }
  std::vector<float> x(ntok * n);
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto& v : x) v = g(rng);
  std::vector<uint8_t> xq(xs * ntok);
  for (int64_t k = 0; k < ntok; ++k)
    kernel::best::quantize_act_row(act, x.data() + k * n, xq.data() + k * xs, n);
  std::vector<float> y(rows * ntok);
  kernel::ThreadPool& pool = g_pools.get(threads);
  std::vector<double> cpu(threads, 0.0);
  const int64_t grain = 16, blocks = (rows + grain - 1) / grain;
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    pool.run([&](int ith, int nth) {  // contiguous row ranges, multiples of 16
      const double c0 = thread_cpu_seconds();
      const int64_t r0 = std::min(rows, blocks * ith / nth * grain);
      const int64_t r1 = std::min(rows, blocks * (ith + 1) / nth * grain);
      if (r0 < r1) {
        kernel::best::matmul(t, w.data(), ws, xq.data(), xs, y.data(), rows, n, r0, r1, ntok);
      }
      cpu[ith] += thread_cpu_seconds() - c0;
    });
    benchmark::ClobberMemory();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu_mean = 0;
  for (double c : cpu) cpu_mean += c / threads;
  const double iters = static_cast<double>(state.iterations());
  const double wbytes = static_cast<double>(ws * rows) * iters;
  const double ops = 2.0 * rows * n * ntok * iters;
  state.SetBytesProcessed(static_cast<int64_t>(wbytes));
  state.counters["GOP/s"] = ops / wall * 1e-9;
  // rates per second of the threads' CPU time: what the threads achieve while running, which
  // a loaded machine (wall time includes being descheduled) does not distort as much
  state.counters["cpu_GOP/s"] = ops / cpu_mean * 1e-9;
  if (ntok == 1) {
    state.counters["cpu_GB/s"] = wbytes / cpu_mean * 1e-9;
    state.counters["pct_bw"] = 100.0 * (wbytes / wall) / g_bandwidth[threads].wall;
    state.counters["pct_bw_cpu"] = 100.0 * (wbytes / cpu_mean) / g_bandwidth[threads].cpu;
  }
}

struct Shape {
  int64_t rows, n;
};
const Shape kShapes[] = {{2048, 2048},  {256, 2048}, {5632, 2048}, {2048, 5632},
                         {32000, 2048}, {2048, 640}, {65536, 640}};

void register_all() {
  const DType types[] = {DType::Q4_K,    DType::Q5_K,    DType::Q6_K,    DType::Q8_0,
                         DType::Q5_0,    DType::Q4_0,    DType::Q4_0_X8, DType::Q5_0_X8,
                         DType::Q8_0_X8, DType::Q4_K_X8, DType::Q5_K_X8, DType::Q6_K_X8,
                         DType::F16};
  for (DType t : types) {
    for (const Shape& s : kShapes) {
      if (s.n % type_traits(t).block_elems != 0) continue;  // 640 is not a K-quant row
      const kernel::WeightKernels* k = kernel::ops().weight_kernels(t);
      if (k == nullptr) continue;  // a packed layout this body has no kernel for
      for (int64_t ntok : {1, 32, 128, 512}) {
        // gemm of the secondary types only at the two square-ish shapes, to keep runs short
        if (ntok > 1 && t != DType::Q4_K && s.rows != 2048) continue;
        for (int threads : {1, 2}) {
          std::string name = std::string("matmul/") + type_name(t) + "/" + std::to_string(s.rows) +
                             "x" + std::to_string(s.n) + "/tok:" + std::to_string(ntok) +
                             "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [=](benchmark::State& st) { run_matmul(st, t, s.rows, s.n, ntok, threads); })
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace hpl::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int threads : {1, 2}) {
    hpl::bench::g_bandwidth[threads] =
        hpl::bench::measure_read_bandwidth(hpl::bench::g_pools.get(threads));
    std::fprintf(stderr, "read bandwidth, %d thread(s): %.2f GB/s wall, %.2f GB/s per CPU time\n",
                 threads, hpl::bench::g_bandwidth[threads].wall * 1e-9,
                 hpl::bench::g_bandwidth[threads].cpu * 1e-9);
  }
  hpl::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
