// Pooled text embeddings and cross-encoder rerank scores, from an encoder (bert) or a decoder
// (llama / qwen2 / qwen3 / gemma3) model: what retrieval on the device needs beside generation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

// GGUF `<arch>.pooling_type` values (llama.cpp's numbering); kUnspecified: use the model's.
enum class Pooling : int {
  kUnspecified = -1,
  kNone = 0,
  kMean = 1,
  kCls = 2,
  kLast = 3,
  kRank = 4
};
enum class ModelKind { kGenerate, kEmbed, kRerank };

const char* pooling_name(Pooling p);             // "mean", "cls", ...
Pooling parse_pooling(const std::string& name);  // inverse; std::invalid_argument when unknown
const char* model_kind_name(ModelKind k);        // "generate", "embed", "rerank"

// bert with a classification head -> kRerank; bert -> kEmbed; a decoder whose GGUF sets a
// pooling_type (Qwen3-Embedding and the like) -> kEmbed; other decoders -> kGenerate.
// From the metadata alone (f, c) or a loaded model.
ModelKind model_kind(const GgufFile& f, const ModelConfig& c);
ModelKind model_kind(const Model& model);
// From the GGUF's <arch>.pooling_type, else kMean for bert, kLast for decoders.
Pooling model_pooling(const GgufFile& f, const ModelConfig& c);
Pooling model_pooling(const Model& model);

// Scratch bytes an Embedder with these options allocates beside a decoder's Forward (its KV
// cache and scratch_sizes): the hidden rows (n_ctx, n_embd). 0 for encoders, whose scratch is
// all bert_scratch_sizes.
size_t embedder_hidden_bytes(const ModelConfig& c, const ForwardOptions& opt);

struct EmbedParams {
  Pooling pooling = Pooling::kUnspecified;
  bool normalize = true;  // L2
  bool truncate = false;  // else a text longer than n_ctx throws naming the limit
};

// Pooled embeddings of an encoder (bert) or a decoder (llama/qwen2/qwen3/gemma3) model.
// One Embedder per thread of use; owns its scratch (and a Forward for decoders).
class Embedder {
 public:
  // The model must outlive the Embedder. opt.n_ctx is the longest text (bert: capped at the
  // model's context_length, its number of position embeddings).
  Embedder(const Model& model, const ForwardOptions& opt);
  ~Embedder();
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;

  int64_t n_embd() const;
  int64_t n_ctx() const;
  // What it allocated: a decoder's KV cache (0 for encoders), and scratch (encoder buffers,
  // or a decoder's Forward scratch plus the hidden rows).
  size_t kv_bytes() const;
  size_t scratch_bytes() const;
  // inputs: token ids of each text (with the model's special tokens already added, see
  // embed_tokens); returns one vector (n_embd) per text. Texts are evaluated together where
  // possible (bert: one padded batch). Throws ModelError on an empty list, an empty text, a
  // text longer than n_ctx() (unless p.truncate: then its first n_ctx() - 1 tokens and its
  // last one are kept), a bad token id, or pooling none / rank.
  std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& inputs,
                                        const EmbedParams& p);
  // Cross-encoder scores for (query, document) pairs, one per document; query and documents
  // are token ids WITHOUT special tokens (encode(text, false, false)): the pair is built as
  // [CLS] query [SEP] document [SEP] with type ids 0 then 1. Throws ModelError naming the model
  // when it has no classification head, and on inputs as embed does (truncate cuts the
  // document's end).
  std::vector<float> rerank(const std::vector<int32_t>& query,
                            const std::vector<std::vector<int32_t>>& documents, bool truncate);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Token ids for one text as the model's embedder wants them (bert: [CLS] text [SEP];
// decoders: BOS if the vocab adds it, + text, + EOS when the GGUF says add_eos): the vocab's
// encode with its special tokens.
std::vector<int32_t> embed_tokens(const Tokenizer& tok, const std::string& text);

// hidden (n, d) -> out (d,): the mean of the rows, the first (CLS) or the last.
void pool_rows(const float* hidden, int64_t n, int64_t d, Pooling p, float* out);
// x (n,) /= its L2 norm (a zero vector stays zero).
void l2_normalize(float* x, int64_t n);

}  // namespace hpl
