#include "engine/kv_cache.h"

#include <stdexcept>
#include <string>

namespace hpl {

KvCache::KvCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim) {
  if (n_layer <= 0 || n_ctx <= 0 || kv_dim <= 0) {
    throw std::invalid_argument("KvCache: n_layer, n_ctx and kv_dim must be > 0 (got " +
                                std::to_string(n_layer) + ", " + std::to_string(n_ctx) + ", " +
                                std::to_string(kv_dim) + ")");
  }
  const size_t n = static_cast<size_t>(n_layer) * n_ctx * kv_dim;
  // Zero-filled: positions not yet written are never read (the softmax range excludes them).
  k_.assign(n, 0);
  v_.assign(n, 0);
}

}  // namespace hpl
