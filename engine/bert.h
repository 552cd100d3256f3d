// The bert encoder (BERT, BGE, all-MiniLM, E5, cross-encoder rerankers): token + position +
// token-type embeddings and LayerNorm, then per layer bidirectional attention and a GELU FFN,
// each followed by residual add and LayerNorm (post-LN). Several sequences run as one packed
// batch: every matmul is one gemm over all their tokens, and attention keeps each sequence to
// its own tokens (the padding mask, without padding).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/forward.h"
#include "engine/matmuls.h"
#include "engine/model.h"
#include "kernel/thread_pool.h"

namespace hpl {

// What a BertEncoder with these options is sized for and allocates: the longest sequence
// (n_ctx, at most the model's context_length), the largest batch (max_tok tokens), and the
// scratch bytes (the float buffers below and the matmuls' quantized activations). No KV cache.
struct BertScratchSizes {
  int64_t n_ctx = 0, max_tok = 0;
  int n_threads = 1;
  size_t bytes = 0;
};
BertScratchSizes bert_scratch_sizes(const ModelConfig& c, const ForwardOptions& opt);

class BertEncoder {
 public:
  // One sequence of a batch: ids (n,) and token types (n,) or null (all 0).
  struct Seq {
    const int32_t* ids = nullptr;
    const int32_t* types = nullptr;
    int64_t n = 0;
  };

  // The model must be a bert and outlive the encoder. Sequences may be up to
  // min(opt.n_ctx, context_length) tokens; a batch up to max(opt.n_ubatch, that) tokens.
  // Scratch is allocated here, once.
  BertEncoder(const Model& model, const ForwardOptions& opt);
  ~BertEncoder();
  BertEncoder(const BertEncoder&) = delete;
  BertEncoder& operator=(const BertEncoder&) = delete;

  int64_t n_ctx() const { return n_ctx_; }
  int64_t max_tokens() const { return max_tok_; }
  size_t scratch_bytes() const { return scratch_bytes_; }

  // Hidden states (sum of n, n_embd) of the last layer, the sequences' rows one after the
  // other; valid until the next call. Throws ModelError on a bad id / type, a sequence longer
  // than n_ctx() or a batch larger than max_tokens().
  const float* encode(const Seq* seqs, int n_seqs);

  // The classification head on rows (n, n_embd) (usually the CLS rows): out (n, n_cls_out) =
  // cls_out @ tanh(cls @ x + cls_b) + cls_out_b (the tanh layer only when the model has it).
  // Throws ModelError when the model has no head.
  void classify(const float* rows, int64_t n, float* out);

 private:
  void embed(const Seq* seqs, int n_seqs);
  void layer(int64_t il, const Seq* seqs, int n_seqs, int64_t ntok);
  void attention(const Seq* seqs, int n_seqs);
  template <class F>
  void for_tokens(int64_t ntok, F&& f) {
    for_rows(*pool_, ntok, cfg_.n_embd, f);
  }

  const Model& model_;
  const ModelConfig& cfg_;
  const ModelWeights& w_;
  int64_t n_ctx_ = 0, max_tok_ = 0;
  size_t scratch_bytes_ = 0;
  std::unique_ptr<kernel::ThreadPool> pool_;
  std::unique_ptr<MatmulRunner> mm_;
  // Scratch, (max_tok, width) rows.
  std::vector<float> x_;                       // hidden states (n_embd)
  std::vector<float> q_, k_, v_, att_, proj_;  // (n_embd)
  std::vector<float> ff_;                      // (n_ff)
  std::vector<float> attn_;  // per thread: scores (n_ctx, n_ctx) + V^T (head_dim, n_ctx)
};

}  // namespace hpl
