// F16 key/value cache: per layer, K and V of (n_ctx, n_head_kv * head_dim), sized by the
// context length the caller asks for (not the model's training context).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernel/types.h"

namespace hpl {

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim);

  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }  // f16 elements per position (the kv_stride)
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(f16_t); }

  // Positions [0, n_past) hold valid entries; the forward pass appends after them.
  int64_t n_past() const { return n_past_; }
  void set_n_past(int64_t n) { n_past_ = n; }
  void clear() { n_past_ = 0; }

  // K or V of layer il at position pos: kv_dim() f16 values.
  f16_t* k(int64_t il, int64_t pos) { return k_.data() + offset(il, pos); }
  f16_t* v(int64_t il, int64_t pos) { return v_.data() + offset(il, pos); }

 private:
  size_t offset(int64_t il, int64_t pos) const {
    return (static_cast<size_t>(il) * n_ctx_ + pos) * kv_dim_;
  }
  int64_t n_layer_, n_ctx_, kv_dim_;
  int64_t n_past_ = 0;
  std::vector<f16_t> k_, v_;
};

}  // namespace hpl
