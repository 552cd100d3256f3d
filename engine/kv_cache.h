// F16 key/value cache: per layer, K and V rows of kv_dim f16 values, one per position, sized by
// the context length the caller asks for (not the model's training context).
//
// A full-attention layer holds every position [0, n_ctx). A sliding-window layer (window W)
// only ever reads the last W positions, so it holds a window of positions
// [first_pos(il), first_pos(il) + capacity): W - 1 kept positions, room for a micro-batch,
// and slack so the kept positions are moved back to the front (one memmove of W - 1 rows) only
// once per max(micro-batch, 16) appended positions. A rewind slack R (speculative decoding's
// drafts) makes it hold R more, so a rewind of up to R positions stays within what it holds.
// Positions stay contiguous, so attention reads
// them as one array with positions relative to first_pos(il).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/model_config.h"
#include "kernel/types.h"

namespace hpl {

// Positions each layer holds for a context of n_ctx and micro-batches of n_ubatch tokens.
struct KvLayout {
  int64_t n_ctx = 0;
  int64_t kv_dim = 0;             // f16 elements per position (n_head_kv * head_dim)
  std::vector<int64_t> capacity;  // per layer: positions held (n_ctx for full attention)
  std::vector<int64_t> keep;      // per layer: positions before a new one it attends to
  std::vector<int64_t> hold;      // per layer: positions before a new one it holds (keep + R)
  int64_t n_rewind = 0;           // R: a rewind of up to R positions always succeeds
  size_t bytes() const;           // K and V of every layer
};
KvLayout kv_layout(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch, int64_t n_rewind = 0);

class KvCache {
 public:
  explicit KvCache(const KvLayout& layout);

  int64_t n_ctx() const { return layout_.n_ctx; }
  int64_t kv_dim() const { return layout_.kv_dim; }  // f16 elements per position (the kv_stride)
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(f16_t); }
  const KvLayout& layout() const { return layout_; }

  // Positions [0, n_past) have been evaluated; layer il still holds [first_pos(il), n_past).
  int64_t n_past() const { return n_past_; }
  void set_n_past(int64_t n) { n_past_ = n; }
  int64_t first_pos(int64_t il) const { return first_[static_cast<size_t>(il)]; }
  // The first position layer il must hold for position n_past() to be evaluated next.
  int64_t needed_from(int64_t il) const;
  // Restoring (session files): row 0 of layer il holds position first.
  void set_first_pos(int64_t il, int64_t first) { first_[static_cast<size_t>(il)] = first; }
  void clear();

  // Whether every layer still holds what position n (the next one after a rewind to n)
  // attends to. Always true for n >= n_past() - max_rewind().
  bool can_rewind_to(int64_t n) const;
  // Positions any rewind may go back: n_ctx without sliding-window layers, else the slack R.
  int64_t max_rewind() const;

  // Makes room in layer il for positions [pos0, pos0 + n) (pos0 = n_past()), keeping the
  // layer's `hold` positions before pos0; moves them to the front when the end is reached.
  void reserve(int64_t il, int64_t pos0, int64_t n);

  // K or V of layer il at position pos (first_pos(il) <= pos < first_pos(il) + capacity).
  f16_t* k(int64_t il, int64_t pos) { return k_.data() + offset(il, pos); }
  f16_t* v(int64_t il, int64_t pos) { return v_.data() + offset(il, pos); }

 private:
  size_t offset(int64_t il, int64_t pos) const;
  KvLayout layout_;
  std::vector<size_t> base_;    // per layer: first element of its rows
  std::vector<int64_t> first_;  // per layer: position held in row 0
  int64_t n_past_ = 0;
  std::vector<f16_t> k_, v_;
};

}  // namespace hpl
