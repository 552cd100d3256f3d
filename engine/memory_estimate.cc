#include "engine/memory_estimate.h"

#include "engine/bert.h"
#include "engine/kv_cache.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"

#include <stdexcept>

namespace hpl {

namespace {

MemoryEstimate estimate(const GgufFile& f, const ModelConfig& c, const ForwardOptions& opt,
                        ModelKind kind) {
  if (opt.n_ctx < 1 || opt.n_ubatch < 1) {
    throw ModelError("context and micro-batch must be >= 1");
  }
  if (c.encoder && kind == ModelKind::kGenerate) {
    throw ModelError(f.path() + " is an encoder (" + arch_name(c.arch) +
                     "): it embeds or reranks, it cannot generate");
  }
  const ModelWeights w = load_model_weights(f, c, /*count_only=*/true);
  MemoryEstimate e;
  e.kind = kind;
  e.encoder = c.encoder;
  e.file_bytes = f.file_size();
  e.weights_mapped_bytes = w.mapped_bytes;
  e.weights_converted_bytes = w.converted_bytes;
  if (c.encoder) {
    e.scratch_bytes = bert_scratch_sizes(c, opt).bytes;
    return e;
  }
  KvLayout kv;
  try {
    kv = kv_layout(c, opt.n_ctx, opt.n_ubatch, opt.cache_type, opt.n_rewind);
  } catch (const std::invalid_argument& ex) {
    throw ModelError(ex.what());
  }
  e.kv_bytes = kv.bytes();
  e.kv_bytes_full =
      2 * static_cast<size_t>(c.n_layer) * static_cast<size_t>(opt.n_ctx) * kv.row_bytes();
  e.kv_bytes_f16 = kv.bytes() / kv.row_bytes() * row_bytes(DType::F16, kv.kv_dim);
  e.scratch_bytes = scratch_sizes(c, opt).bytes();
  if (kind != ModelKind::kGenerate) e.scratch_bytes += embedder_hidden_bytes(c, opt);
  return e;
}

}  // namespace

MemoryEstimate estimate_memory(const GgufFile& f, const ForwardOptions& opt) {
  const ModelConfig c = read_model_config(f);
  return estimate(f, c, opt, model_kind(f, c));
}

MemoryEstimate estimate_memory(const GgufFile& f, const ForwardOptions& opt, ModelKind kind) {
  return estimate(f, read_model_config(f), opt, kind);
}

}  // namespace hpl
