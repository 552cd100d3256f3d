// Micro-benchmarks of the compute ops (ref vs the best SIMD body) and the thread pool barrier.
//   build-ops/bin/ops_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernel/kv_store.h"
#include "kernel/ops.h"
#include "kernel/thread_pool.h"

namespace hpl::kernel {
namespace {

std::vector<float> rand_vec(int64_t n, float lo = -1.0f, float hi = 1.0f, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

template <bool kBest>
void BM_rmsnorm(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto x = rand_vec(n), w = rand_vec(n, 0.5f, 1.5f, 2);
  std::vector<float> y(n);
  for (auto _ : st) {
    (kBest ? ops() : ops(Isa::kRef)).rmsnorm(x.data(), w.data(), y.data(), n, 1e-6f, 0.0f);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * n * 3 * sizeof(float));
}
BENCHMARK(BM_rmsnorm<false>)->Name("rmsnorm/ref")->Arg(640)->Arg(2048);
BENCHMARK(BM_rmsnorm<true>)->Name("rmsnorm/best")->Arg(640)->Arg(2048);

// args: n_heads, head_dim, layout (0 normal, 1 neox)
template <bool kBest>
void BM_rope(benchmark::State& st) {
  const int64_t nh = st.range(0), hd = st.range(1);
  const RopeLayout layout = st.range(2) ? RopeLayout::kNeox : RopeLayout::kNormal;
  auto x = rand_vec(nh * hd);
  int64_t pos = 1000;
  for (auto _ : st) {
    (kBest ? ops() : ops(Isa::kRef))
        .rope(x.data(), nh, hd, hd, pos, 10000.0f, 1.0f, layout, nullptr);
    benchmark::DoNotOptimize(x.data());
  }
  st.SetItemsProcessed(st.iterations() * nh * hd);
}
// A new position every call: includes computing the cos/sin table (double), which the bodies
// otherwise cache per thread across the q/k calls of all layers at one position.
void BM_rope_new_pos(benchmark::State& st) {
  const int64_t nh = st.range(0), hd = st.range(1);
  auto x = rand_vec(nh * hd);
  int64_t pos = 0;
  for (auto _ : st) {
    best::rope(x.data(), nh, hd, hd, pos++, 10000.0f, 1.0f, RopeLayout::kNeox, nullptr);
    benchmark::DoNotOptimize(x.data());
  }
  st.SetItemsProcessed(st.iterations() * nh * hd);
}
BENCHMARK(BM_rope_new_pos)->Name("rope/best_new_pos")->Args({32, 64})->Args({4, 256});
BENCHMARK(BM_rope<false>)->Name("rope/ref")->Args({32, 64, 0})->Args({4, 256, 1});
BENCHMARK(BM_rope<true>)
    ->Name("rope/best")
    ->Args({32, 64, 0})
    ->Args({32, 64, 1})
    ->Args({4, 256, 1});

template <bool kBest>
void BM_softmax(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto src = rand_vec(n, -10.0f, 10.0f);
  std::vector<float> x = src;
  for (auto _ : st) {
    (kBest ? ops() : ops(Isa::kRef)).softmax(x.data(), n, 0.125f, 0, n);
    benchmark::DoNotOptimize(x.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}
BENCHMARK(BM_softmax<false>)->Name("softmax/ref")->Arg(512)->Arg(2048);
BENCHMARK(BM_softmax<true>)->Name("softmax/best")->Arg(512)->Arg(2048);

template <bool kBest>
void BM_silu(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto g = rand_vec(n, -6.0f, 6.0f), u = rand_vec(n, -1.0f, 1.0f, 3);
  std::vector<float> y(n);
  for (auto _ : st) {
    (kBest ? ops() : ops(Isa::kRef)).swiglu(g.data(), u.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}
BENCHMARK(BM_silu<false>)->Name("swiglu/ref")->Arg(5632);
BENCHMARK(BM_silu<true>)->Name("swiglu/best")->Arg(5632);

// Decode attention (one token at position ctx - 1) over a filled cache, all heads.
// args: n_heads, n_kv_heads, head_dim, ctx, threads, K/V type (GGUF id; default f16)
template <bool kBest>
void BM_attention_decode(benchmark::State& st) {
  AttnParams p;
  p.n_heads = st.range(0);
  p.n_kv_heads = st.range(1);
  p.head_dim = st.range(2);
  const int64_t ctx = st.range(3);
  const int nth = static_cast<int>(st.range(4));
  p.kv_type = static_cast<DType>(st.range(5));
  p.q_stride = p.out_stride = p.n_heads * p.head_dim;
  p.kv_stride = p.n_kv_heads * p.head_dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  auto q = rand_vec(p.q_stride);
  auto kf = rand_vec(ctx * p.kv_stride, -1.0f, 1.0f, 4),
       vf = rand_vec(ctx * p.kv_stride, -1.0f, 1.0f, 5);
  const size_t kv_bytes = ctx * row_bytes(p.kv_type, p.kv_stride);
  std::vector<uint8_t> k(kv_bytes), v(kv_bytes);
  kv_store_row(p.kv_type, kf.data(), k.data(), ctx * p.kv_stride);  // rows are whole blocks
  kv_store_row(p.kv_type, vf.data(), v.data(), ctx * p.kv_stride);
  std::vector<float> out(p.out_stride);
  std::vector<std::vector<float>> scratch(nth, std::vector<float>(ctx));
  ThreadPool pool(nth);
  auto attn = (kBest ? ops() : ops(Isa::kRef)).attention;
  for (auto _ : st) {
    pool.run([&](int ith, int n) {
      int64_t h0 = p.n_heads * ith / n, h1 = p.n_heads * (ith + 1) / n;
      attn(p, q.data(), k.data(), v.data(), out.data(), 1, ctx - 1, h0, h1, scratch[ith].data());
    });
    benchmark::DoNotOptimize(out.data());
  }
  // K and V of every kv head are read (once per query head sharing it; counted once here)
  st.SetBytesProcessed(st.iterations() * 2 * kv_bytes);
}
void attention_args(benchmark::internal::Benchmark* b) {
  const int64_t f16 = static_cast<int64_t>(DType::F16);
  for (int64_t ctx : {512, 2048}) {
    b->Args({32, 4, 64, ctx, 1, f16});  // 1.1B (TinyLlama) shape
    b->Args({4, 1, 256, ctx, 1, f16});  // Gemma 3 270M shape
  }
  b->Args({32, 4, 64, 2048, 2, f16});
  b->Args({4, 1, 256, 2048, 2, f16});
  for (DType t : {DType::F32, DType::Q8_0, DType::Q4_0})  // the other K/V types, Gemma shape
    b->Args({4, 1, 256, 2048, 1, static_cast<int64_t>(t)});
  b->ArgNames({"heads", "kv", "hd", "ctx", "thr", "type"});
  b->UseRealTime();
}
BENCHMARK(BM_attention_decode<false>)
    ->Name("attention_decode/ref")
    ->Args({32, 4, 64, 512, 1, static_cast<int64_t>(DType::F16)})
    ->Args({4, 1, 256, 512, 1, static_cast<int64_t>(DType::F16)})
    ->ArgNames({"heads", "kv", "hd", "ctx", "thr", "type"});
BENCHMARK(BM_attention_decode<true>)->Name("attention_decode/best")->Apply(attention_args);

// Prefill attention: a causal block of n_tok tokens at positions [ctx - n_tok, ctx), all heads.
// args: n_heads, n_kv_heads, head_dim, ctx, n_tok
void BM_attention_prefill(benchmark::State& st) {
  AttnParams p;
  p.n_heads = st.range(0);
  p.n_kv_heads = st.range(1);
  p.head_dim = st.range(2);
  const int64_t ctx = st.range(3), n_tok = st.range(4);
  p.q_stride = p.out_stride = p.n_heads * p.head_dim;
  p.kv_stride = p.n_kv_heads * p.head_dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  auto q = rand_vec(n_tok * p.q_stride);
  auto kf = rand_vec(ctx * p.kv_stride, -1.0f, 1.0f, 4);
  std::vector<f16_t> k(kf.size()), v(kf.size());
  best::fp32_to_fp16_row(kf.data(), k.data(), k.size());
  best::fp32_to_fp16_row(kf.data(), v.data(), v.size());
  std::vector<float> out(n_tok * p.out_stride), scratch(ctx);
  for (auto _ : st) {
    best::attention(p, q.data(), k.data(), v.data(), out.data(), n_tok, ctx - n_tok, 0, p.n_heads,
                    scratch.data());
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(st.iterations() * n_tok);  // tokens/s
}
BENCHMARK(BM_attention_prefill)
    ->Name("attention_prefill/best")
    ->Args({32, 4, 64, 512, 64})
    ->Args({4, 1, 256, 512, 64})
    ->ArgNames({"heads", "kv", "hd", "ctx", "ntok"});

// Thread pool barrier: an empty run() (publish, threads claim its size() no-op chunks, wait for
// the taken ones). Workers spin between runs here (back-to-back calls), the decode steady state.
void BM_pool_barrier(benchmark::State& st) {
  ThreadPool pool(static_cast<int>(st.range(0)));
  for (auto _ : st) pool.run([](int, int) {});
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_pool_barrier)->Name("pool_barrier")->Arg(1)->Arg(2)->UseRealTime();

// The same after the workers went to sleep (spin_us = 0): the wake-up path's cost.
void BM_pool_barrier_wake(benchmark::State& st) {
  ThreadPool pool(static_cast<int>(st.range(0)), /*spin_us=*/0);
  for (auto _ : st) pool.run([](int, int) {});
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_pool_barrier_wake)->Name("pool_barrier_sleeping")->Arg(2)->UseRealTime();

}  // namespace
}  // namespace hpl::kernel

BENCHMARK_MAIN();
