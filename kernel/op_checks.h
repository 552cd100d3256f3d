// Argument checks shared by the ref / avx2 / neon bodies of the compute ops: O(1) per call,
// throw std::invalid_argument naming the op and the bad value instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernel/ops.h"

namespace hpl::kernel::check {

[[noreturn]] inline void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string("hpl::kernel::") + op + ": " + what);
}

inline void rmsnorm(int64_t n) {
  if (n < 1) fail("rmsnorm", "n = " + std::to_string(n) + ", need n >= 1");
}

inline void rope(int64_t n_heads, int64_t head_dim, int64_t rot_dim) {
  if (n_heads < 0 || head_dim < 0)
    fail("rope", "negative shape n_heads=" + std::to_string(n_heads) +
                     " head_dim=" + std::to_string(head_dim));
  if (rot_dim < 0 || rot_dim > head_dim || rot_dim % 2 != 0)
    fail("rope", "rot_dim = " + std::to_string(rot_dim) +
                     " must be even and in [0, head_dim = " + std::to_string(head_dim) + "]");
}

inline void softmax(int64_t n, int64_t begin, int64_t end) {
  if (!(0 <= begin && begin < end && end <= n))
    fail("softmax", "range [" + std::to_string(begin) + ", " + std::to_string(end) +
                        ") must be non-empty and inside [0, " + std::to_string(n) + ")");
}

inline void attention(const AttnParams& p, int64_t n_tok, int64_t pos0, int64_t h0, int64_t h1) {
  auto s = [](int64_t v) { return std::to_string(v); };
  if (p.n_heads < 1 || p.n_kv_heads < 1 || p.n_heads % p.n_kv_heads != 0)
    fail("attention", "n_heads = " + s(p.n_heads) +
                          " must be a positive multiple of n_kv_heads = " + s(p.n_kv_heads));
  if (p.head_dim < 1) fail("attention", "head_dim = " + s(p.head_dim));
  if (p.q_stride < p.n_heads * p.head_dim || p.out_stride < p.n_heads * p.head_dim)
    fail("attention", "q_stride = " + s(p.q_stride) + " / out_stride = " + s(p.out_stride) +
                          " smaller than n_heads * head_dim = " + s(p.n_heads * p.head_dim));
  if (p.kv_stride < p.n_kv_heads * p.head_dim)
    fail("attention", "kv_stride = " + s(p.kv_stride) +
                          " smaller than n_kv_heads * head_dim = " + s(p.n_kv_heads * p.head_dim));
  if (!attn_kv_supported(p.kv_type))
    fail("attention", std::string("K/V type ") + type_name(p.kv_type) +
                          " is not supported (f32, f16, q8_0, q4_0)");
  const int64_t blk = type_traits(p.kv_type).block_elems;
  if (p.head_dim % blk != 0 || p.kv_stride % blk != 0)
    fail("attention", "head_dim = " + s(p.head_dim) + " and kv_stride = " + s(p.kv_stride) +
                          " must be multiples of the " + type_name(p.kv_type) + " block (" +
                          s(blk) + ")");
  if (p.window < 0) fail("attention", "window = " + s(p.window));
  if (n_tok < 0 || pos0 < 0) fail("attention", "n_tok = " + s(n_tok) + ", pos0 = " + s(pos0));
  if (!(0 <= h0 && h0 <= h1 && h1 <= p.n_heads))
    fail("attention",
         "head range [" + s(h0) + ", " + s(h1) + ") outside [0, " + s(p.n_heads) + ")");
}

// First key position that query position pos sees.
inline int64_t attn_first_key(int64_t pos, int64_t window) {
  return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

}  // namespace hpl::kernel::check
