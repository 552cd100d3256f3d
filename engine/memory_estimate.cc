#include "engine/memory_estimate.h"

#include "engine/kv_cache.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"

#include <stdexcept>

namespace hpl {

MemoryEstimate estimate_memory(const GgufFile& f, const ForwardOptions& opt) {
  if (opt.n_ctx < 1 || opt.n_ubatch < 1) {
    throw ModelError("context and micro-batch must be >= 1");
  }
  const ModelConfig c = read_model_config(f);
  const ModelWeights w = load_model_weights(f, c, /*count_only=*/true);
  MemoryEstimate e;
  e.file_bytes = f.file_size();
  e.weights_mapped_bytes = w.mapped_bytes;
  e.weights_converted_bytes = w.converted_bytes;
  KvLayout kv;
  try {
    kv = kv_layout(c, opt.n_ctx, opt.n_ubatch, opt.cache_type);
  } catch (const std::invalid_argument& ex) {
    throw ModelError(ex.what());
  }
  e.kv_bytes = kv.bytes();
  e.kv_bytes_full =
      2 * static_cast<size_t>(c.n_layer) * static_cast<size_t>(opt.n_ctx) * kv.row_bytes();
  e.kv_bytes_f16 = kv.bytes() / kv.row_bytes() * row_bytes(DType::F16, kv.kv_dim);
  e.scratch_bytes = scratch_sizes(c, opt).bytes();
  return e;
}

}  // namespace hpl
