// Key/value cache: per layer, K and V rows of kv_dim values, one per position, sized by the
// context length the caller asks for (not the model's training context). Rows are stored as
// F16 (the default), F32, or Q8_0 / Q4_0 blocks of 32 (kernel/kv_store.h writes them, the
// attention bodies read them).
//
// A full-attention layer holds every position [0, n_ctx). A sliding-window layer (window W)
// only ever reads the last W positions, so it holds a window of positions
// [first_pos(il), first_pos(il) + capacity): W - 1 kept positions, room for a micro-batch,
// and slack so the kept positions are moved back to the front (one memmove of W - 1 rows) only
// once per max(micro-batch, 16) appended positions. Positions stay contiguous, so attention reads
// them as one array with positions relative to first_pos(il).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "kernel/types.h"

namespace hpl {

// Positions each layer holds for a context of n_ctx and micro-batches of n_ubatch tokens.
struct KvLayout {
  int64_t n_ctx = 0;
  int64_t kv_dim = 0;             // elements per position (n_head_kv * head_dim)
  DType type = DType::F16;        // row format
  size_t row_bytes() const;       // bytes of one position's K (or V) row
  std::vector<int64_t> capacity;  // per layer: positions held (n_ctx for full attention)
  std::vector<int64_t> keep;      // per layer: positions before a new one it must keep
  size_t bytes() const;           // K and V of every layer
};
// type: F16, F32, Q8_0 or Q4_0 (the quantized ones need head_dim a multiple of 32); another
// type or shape throws std::invalid_argument naming it.
KvLayout kv_layout(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch, DType type = DType::F16);

// The cache types by name ("f32", "f16", "q8_0", "q4_0"), for options; false when unknown.
bool kv_type_from_name(const std::string& name, DType* type);
// "f32", "f16", "q8_0", "q4_0".
const char* kv_type_name(DType type);

// Whether a cache of this layout whose layers hold positions from first[il] on still holds
// everything position n attends to (so it can be rewound to n). Always true for n == 0.
bool can_rewind(const KvLayout& layout, std::span<const int64_t> first, int64_t n);

class KvCache {
 public:
  explicit KvCache(const KvLayout& layout);

  int64_t n_ctx() const { return layout_.n_ctx; }
  int64_t kv_dim() const { return layout_.kv_dim; }  // elements per position (the kv_stride)
  DType type() const { return layout_.type; }
  size_t row_bytes() const { return row_; }
  size_t bytes() const { return k_.size() + v_.size(); }
  const KvLayout& layout() const { return layout_; }

  // Positions [0, n_past) have been evaluated; layer il still holds [first_pos(il), n_past).
  int64_t n_past() const { return n_past_; }
  void set_n_past(int64_t n) { n_past_ = n; }
  int64_t first_pos(int64_t il) const { return first_[static_cast<size_t>(il)]; }
  std::span<const int64_t> first_positions() const { return first_; }  // per layer
  // The first position layer il must hold for position n_past() to be evaluated next.
  int64_t needed_from(int64_t il) const;
  // Restoring (session files): row 0 of layer il holds position first.
  void set_first_pos(int64_t il, int64_t first) { first_[static_cast<size_t>(il)] = first; }
  void clear();

  // Whether every layer still holds what position n (the next one after a rewind to n)
  // attends to.
  bool can_rewind_to(int64_t n) const;

  // Makes room in layer il for positions [pos0, pos0 + n) (pos0 = n_past()), keeping the
  // layer's `keep` positions before pos0; moves them to the front when the end is reached.
  void reserve(int64_t il, int64_t pos0, int64_t n);

  // K or V row (row_bytes()) of layer il at position pos (first_pos(il) <= pos < first_pos(il)
  // + capacity).
  uint8_t* k(int64_t il, int64_t pos) { return k_.data() + offset(il, pos); }
  uint8_t* v(int64_t il, int64_t pos) { return v_.data() + offset(il, pos); }

 private:
  size_t offset(int64_t il, int64_t pos) const;
  KvLayout layout_;
  size_t row_;                  // layout_.row_bytes()
  std::vector<size_t> base_;    // per layer: first byte of its rows
  std::vector<int64_t> first_;  // per layer: position held in row 0
  int64_t n_past_ = 0;
  std::vector<uint8_t> k_, v_;
};

}  // namespace hpl
