#include "engine/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernel/ops.h"

namespace hpl {

namespace {
struct KvTypeName {
  DType type;
  const char* name;
};
constexpr KvTypeName kKvTypes[] = {
    {DType::F32, "f32"}, {DType::F16, "f16"}, {DType::Q8_0, "q8_0"}, {DType::Q4_0, "q4_0"}};
}  // namespace

bool kv_type_from_name(const std::string& name, DType* type) {
  for (const KvTypeName& t : kKvTypes) {
    if (name == t.name) {
      *type = t.type;
      return true;
    }
  }
  return false;
}

const char* kv_type_name(DType type) {
  for (const KvTypeName& t : kKvTypes)
    if (t.type == type) return t.name;
  return type_name(type);
}

size_t KvLayout::row_bytes() const {
  return hpl::row_bytes(type, kv_dim);
}

size_t KvLayout::bytes() const {
  size_t rows = 0;
  for (int64_t c : capacity) rows += static_cast<size_t>(c);
  return 2 * rows * row_bytes();
}

KvLayout kv_layout(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch, DType type) {
  if (c.n_layer <= 0 || n_ctx <= 0 || c.kv_dim() <= 0 || n_ubatch <= 0) {
    throw std::invalid_argument("KvCache: n_layer, n_ctx, kv_dim and n_ubatch must be > 0 (got " +
                                std::to_string(c.n_layer) + ", " + std::to_string(n_ctx) + ", " +
                                std::to_string(c.kv_dim()) + ", " + std::to_string(n_ubatch) + ")");
  }
  if (!kernel::attn_kv_supported(type)) {
    throw std::invalid_argument(std::string("KV cache type ") + type_name(type) +
                                " is not supported (f32, f16, q8_0, q4_0)");
  }
  const int64_t blk = type_traits(type).block_elems;
  if (c.head_dim % blk != 0) {
    throw std::invalid_argument(std::string("KV cache type ") + kv_type_name(type) +
                                " needs head_dim a multiple of " + std::to_string(blk) +
                                " (this model: " + std::to_string(c.head_dim) + ")");
  }
  KvLayout l;
  l.n_ctx = n_ctx;
  l.kv_dim = c.kv_dim();
  l.type = type;
  for (int64_t il = 0; il < c.n_layer; ++il) {
    int64_t cap = n_ctx, keep = n_ctx;
    if (c.layer_is_swa(il)) {
      // The last of a micro-batch of B tokens at p sees keys back to p - W + 1: W - 1 kept plus
      // B new; as much slack again (at least 16) bounds the moves to one per B (or 16) tokens.
      keep = c.sliding_window - 1;
      const int64_t b = std::min(n_ubatch, n_ctx);
      cap = std::min(n_ctx, keep + b + std::max<int64_t>(b, 16));
    }
    l.capacity.push_back(cap);
    l.keep.push_back(std::min(keep, n_ctx));
  }
  return l;
}

KvCache::KvCache(const KvLayout& layout) : layout_(layout), row_(layout.row_bytes()) {
  size_t rows = 0;
  for (int64_t c : layout_.capacity) {
    base_.push_back(rows * row_);
    rows += static_cast<size_t>(c);
  }
  first_.assign(layout_.capacity.size(), 0);
  const size_t n = rows * row_;
  // Zero-filled: positions not yet written are never read (the softmax range excludes them).
  k_.assign(n, 0);
  v_.assign(n, 0);
}

void KvCache::clear() {
  n_past_ = 0;
  std::fill(first_.begin(), first_.end(), 0);
}

int64_t KvCache::needed_from(int64_t il) const {
  return std::max<int64_t>(0, n_past_ - layout_.keep[static_cast<size_t>(il)]);
}

bool can_rewind(const KvLayout& layout, std::span<const int64_t> first, int64_t n) {
  if (n == 0) return true;
  for (size_t il = 0; il < first.size(); ++il) {
    if (std::max<int64_t>(0, n - layout.keep[il]) < first[il]) return false;
  }
  return true;
}

bool KvCache::can_rewind_to(int64_t n) const {
  return can_rewind(layout_, first_, n);
}

void KvCache::reserve(int64_t il, int64_t pos0, int64_t n) {
  const size_t l = static_cast<size_t>(il);
  const int64_t cap = layout_.capacity[l];
  if (pos0 + n <= first_[l] + cap) return;
  // Move the kept positions [from, pos0) to rows 0.. (memmove: they may overlap).
  const int64_t from = std::max(first_[l], pos0 - layout_.keep[l]);
  if (pos0 - from + n > cap) {
    throw std::logic_error("KvCache: " + std::to_string(n) + " new positions do not fit layer " +
                           std::to_string(il) + " (capacity " + std::to_string(cap) + ")");
  }
  const size_t count = static_cast<size_t>(pos0 - from) * row_;
  if (count > 0) {
    std::memmove(k_.data() + base_[l], k(il, from), count);
    std::memmove(v_.data() + base_[l], v(il, from), count);
  }
  first_[l] = from;
}

size_t KvCache::offset(int64_t il, int64_t pos) const {
  const size_t l = static_cast<size_t>(il);
  return base_[l] + static_cast<size_t>(pos - first_[l]) * row_;
}

}  // namespace hpl
