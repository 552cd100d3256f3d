// What a model needs in memory for a context, before loading it: weights used in place from
// the mapping, F32 copies made at load, the KV cache and the forward-pass scratch. Computed
// by the same code that allocates them (load_model_weights in counting mode, kv_layout,
// scratch_sizes, bert_scratch_sizes, embedder_hidden_bytes), so it equals what a loaded
// Forward (generation) or Embedder (embed / rerank models) reports.
#pragma once

#include <cstddef>

#include "engine/embedding.h"
#include "engine/forward.h"
#include "gguf/gguf.h"

namespace hpl {

struct MemoryEstimate {
  ModelKind kind = ModelKind::kGenerate;  // what the sizes are for: a Forward, or an Embedder
  bool encoder = false;                   // bert: no KV cache, scratch per batch of tokens
  size_t file_bytes = 0;                  // the whole GGUF mapping
  size_t weights_mapped_bytes = 0;        // tensor bytes used in place
  size_t weights_converted_bytes = 0;     // F32 copies made at load
  size_t kv_bytes = 0;
  size_t kv_bytes_full = 0;  // what the KV cache would be if every layer held the whole context
  size_t kv_bytes_f16 = 0;   // what the KV cache would be in f16 (same layers and context)
  size_t scratch_bytes = 0;
  size_t total() const {
    return weights_mapped_bytes + weights_converted_bytes + kv_bytes + scratch_bytes;
  }
};

// Reads only the metadata and tensor table (validating them as a load would); the KV cache is
// opt.cache_type. For the model's own kind (model_kind): a generation model's Forward, an
// embedding or rerank model's Embedder (an encoder: no KV cache, its batch scratch; a decoder:
// its Forward plus the hidden rows). Throws ModelError / GgufError on a bad file or option.
MemoryEstimate estimate_memory(const GgufFile& f, const ForwardOptions& opt);
// The same for an explicit use: kGenerate refuses encoders (they cannot generate); kEmbed /
// kRerank size an Embedder (hpl embed on a decoder).
MemoryEstimate estimate_memory(const GgufFile& f, const ForwardOptions& opt, ModelKind kind);

}  // namespace hpl
