// The forward pass (llama, qwen2, gemma3) over a KV cache: prefill in micro-batches where
// every matmul is a gemm over the batch's tokens, decode one token at a time (gemv).
// Activations are quantized once per row into the weights' vec_dot_type; matmuls are split
// across the thread pool by weight row ranges, attention by heads. All scratch is allocated
// once, in the constructor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/matmuls.h"
#include "engine/model.h"
#include "engine/profiler.h"
#include "kernel/thread_pool.h"
#include "kernel/types.h"

namespace hpl {

struct ForwardOptions {
  int64_t n_ctx = 2048;           // KV cache positions
  int64_t n_ubatch = 256;         // prefill micro-batch (tokens per gemm)
  int n_threads = 1;              // <= 0: kernel::default_thread_count(cpus)
  DType cache_type = DType::F16;  // KV cache rows: F16, F32, Q8_0 or Q4_0 (kv_layout)
  int64_t n_rewind = 0;           // positions truncate() can always go back (speculative drafts)
  std::vector<int> cpus;          // pin the pool's threads to these CPUs (empty: no pinning)
};

// Elements of each scratch buffer (floats; the quantized-activation buffers in bytes) for a
// model and options: what the Forward allocates, and what a memory estimate reports.
struct ScratchSizes {
  int n_threads = 1;
  size_t x = 0, xn = 0, q = 0, k = 0, v = 0, att = 0, proj = 0, gate = 0, up = 0, attn = 0;
  size_t xq8_0 = 0, xq8_k = 0;
  size_t bytes() const;
};
ScratchSizes scratch_sizes(const ModelConfig& c, const ForwardOptions& opt);

// The RoPE frequency divisors a context of n_ctx positions uses (null: none): Llama 3.x
// rope_freqs, or phi3's long factors when n_ctx exceeds the original context, else short.
const float* rope_factors_for(const ModelWeights& w, const ModelConfig& c, int64_t n_ctx);

class Forward {
 public:
  // The model must outlive the Forward. Throws ModelError on bad options.
  Forward(const Model& model, const ForwardOptions& opt);
  ~Forward();
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;

  // Runs ids (n,) at positions n_past() .. n_past() + n - 1 and appends them to the cache.
  // logits: (n, n_vocab) when all_logits, else (n_vocab,) for the last token only; may be
  // null when no logits are wanted. Throws ModelError, before any work, when a token id is
  // out of range or the tokens do not fit in the context.
  void eval(const int32_t* ids, int64_t n, float* logits, bool all_logits = false);
  // Like eval, but writes the final-normed hidden states (n, n_embd) instead of logits (the
  // output matmul is skipped): what pooled decoder embeddings are made of.
  void eval_hidden(const int32_t* ids, int64_t n, float* hidden);

  int64_t n_past() const { return cache_.n_past(); }
  int64_t n_ctx() const { return cache_.n_ctx(); }
  int64_t n_vocab() const { return cfg_.n_vocab; }
  int64_t n_ubatch() const { return n_ubatch_; }  // tokens per prefill micro-batch
  // Forgets positions >= n (n <= n_past()): the next eval continues from position n. When a
  // sliding-window layer no longer holds the positions n attends to, forgets everything
  // instead (n_past() becomes 0 and the caller evaluates its tokens again); never for
  // n >= n_past() - max_rewind().
  void truncate(int64_t n);
  int64_t max_rewind() const { return cache_.max_rewind(); }
  void reset() { cache_.clear(); }
  // Times every op of later evals into p (wall time by op kind); null (the default) = off.
  void set_profiler(Profiler* p) { prof_ = p; }
  Profiler* profiler() const { return prof_; }

  const Model& model() const { return model_; }
  kernel::ThreadPool& pool() { return *pool_; }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }
  size_t kv_bytes() const { return cache_.bytes(); }
  size_t scratch_bytes() const { return scratch_bytes_; }

 private:
  // y_j = W_j @ x for each job: x (ntok, n) f32 rows, quantized once per vec_dot_type.
  void matmuls(const float* x, int64_t ntok, int64_t n, const MatJob* jobs, int n_jobs);
  void layer(int64_t il, int64_t ntok, int64_t pos0);
  void attention_block(int64_t il, int64_t ntok, int64_t pos0);
  void rope_and_store(int64_t il, int64_t ntok, int64_t pos0);
  void attend(int64_t il, int64_t ntok, int64_t pos0);
  void ffn_block(int64_t il, int64_t ntok);
  // What a micro-batch writes to out: nothing, the last token's logits, every token's logits,
  // or every token's final-normed hidden state.
  enum class Out { kNone, kLastLogits, kAllLogits, kHidden };
  void run(const int32_t* ids, int64_t n, float* out, Out what);
  void ubatch(const int32_t* ids, int64_t ntok, float* out, Out what);
  template <class F>
  void for_tokens(int64_t ntok, F&& f);  // f(t) for each token, in parallel when it pays

  const Model& model_;
  const ModelConfig& cfg_;
  const ModelWeights& w_;
  int64_t n_ubatch_;
  std::unique_ptr<kernel::ThreadPool> pool_;
  KvCache cache_;

  // Scratch, (n_ubatch, width) rows.
  std::vector<float> x_;              // residual stream (n_embd)
  std::vector<float> xn_;             // normed input / matmul input (max(n_embd, q_dim))
  std::vector<float> q_;              // (q_dim)
  std::vector<float> k_;              // (kv_dim)
  std::vector<float> v_;              // (kv_dim)
  std::vector<float> att_;            // attention output (q_dim)
  std::vector<float> proj_;           // attn_output / ffn_down output (n_embd)
  std::vector<float> gate_;           // (n_ff)
  std::vector<float> up_;             // (n_ff)
  std::unique_ptr<MatmulRunner> mm_;  // quantized activations + matmul dispatch
  std::vector<float> attn_scratch_;   // per thread: n_ctx floats
  size_t scratch_bytes_ = 0;
  const float* rope_factors_ = nullptr;  // rope_factors_for(n_ctx)
  Profiler* prof_ = nullptr;
};

}  // namespace hpl
