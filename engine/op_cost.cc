#include "engine/op_cost.h"

#include <algorithm>

#include "kernel/ops.h"

namespace hpl {

namespace {

constexpr double kF32 = 4, kF16 = 2;

// Bytes of one activation row of n elements in format t (whole blocks, the tail rounded up).
double act_row_bytes(DType t, int64_t n) {
  const TypeTraits tr = type_traits(t);
  return static_cast<double>((n + tr.block_elems - 1) / tr.block_elems) * tr.block_bytes;
}

// W @ x for b tokens; the activation quantization (once per format per matmul group) is
// added by the caller through quantize().
void matmul(const Matrix& W, int64_t b, OpCost& c) {
  const DType vt = kernel::vec_dot_type(W.type);
  c.bytes += static_cast<double>(W.row_stride) * W.rows + b * act_row_bytes(vt, W.cols) +
             b * W.rows * kF32;
  c.ops += 2.0 * W.rows * W.cols * b;
  c.int8 = vt != DType::F32;
}

// x (b, n) f32 -> each distinct int8 format the group's weights need: read f32, write blocks;
// 3 ops per element (abs-max, scale, round).
void quantize(std::initializer_list<const Matrix*> group, int64_t b, int64_t n, OpCost& c) {
  bool seen8_0 = false, seen8_k = false;
  for (const Matrix* W : group) {
    const DType vt = kernel::vec_dot_type(W->type);
    if (vt == DType::F32) continue;
    bool& seen = vt == DType::Q8_0 ? seen8_0 : seen8_k;
    if (seen) continue;
    seen = true;
    c.bytes += b * (n * kF32 + act_row_bytes(vt, n));
    c.ops += 3.0 * b * n;
  }
}

// rmsnorm of b rows of n: read + write, the weight once; 4 ops per element (square, sum,
// scale, weight).
void norm(int64_t b, int64_t n, OpCost& c) {
  c.bytes += b * n * 2 * kF32 + n * kF32;
  c.ops += 4.0 * b * n;
}

// y = a + b over b rows of n: 2 reads, 1 write, 1 op per element.
void add(int64_t b, int64_t n, OpCost& c) {
  c.bytes += b * n * 3 * kF32;
  c.ops += 1.0 * b * n;
}

void ubatch_cost(const Model& m, int64_t b, int64_t pos0, int64_t n_out, OpCosts& c) {
  const ModelConfig& cfg = m.config;
  const ModelWeights& w = m.weights;
  const int64_t E = cfg.n_embd, Q = cfg.q_dim(), KV = cfg.kv_dim(), F = cfg.n_ff;
  const int64_t H = cfg.n_head, Hkv = cfg.n_head_kv, D = cfg.head_dim;
  auto at = [&](ProfOp op) -> OpCost& { return c[static_cast<size_t>(op)]; };

  // Embedding: one weight row per token dequantized to f32 (1 op per element, 2 when scaled).
  at(ProfOp::kEmbedding).bytes += b * (static_cast<double>(w.token_embd.row_stride) + E * kF32);
  at(ProfOp::kEmbedding).ops += (cfg.embd_scale != 1.0f ? 2.0 : 1.0) * b * E;

  for (int64_t il = 0; il < cfg.n_layer; ++il) {
    const LayerWeights& L = w.layers[static_cast<size_t>(il)];
    norm(b, E, at(ProfOp::kNorm));  // attn_norm
    quantize({&L.wq, &L.wk, &L.wv}, b, E, at(ProfOp::kQuantizeAct));
    matmul(L.wq, b, at(ProfOp::kAttnQ));
    matmul(L.wk, b, at(ProfOp::kAttnK));
    matmul(L.wv, b, at(ProfOp::kAttnV));
    if (L.bq.data) add(b, Q, at(ProfOp::kAdd));
    if (L.bk.data) add(b, KV, at(ProfOp::kAdd));
    if (L.bv.data) add(b, KV, at(ProfOp::kAdd));
    if (L.q_norm.data) {  // per head, D-wide rows
      norm(b * H, D, at(ProfOp::kNorm));
      norm(b * Hkv, D, at(ProfOp::kNorm));
    }
    // rope: q and k read + written; 6 ops per rotated pair (4 mul, 2 add).
    at(ProfOp::kRope).bytes += b * (Q + KV) * 2 * kF32;
    at(ProfOp::kRope).ops += 3.0 * b * (H + Hkv) * cfg.rot_dim;
    // kv_store: k, v f32 -> f16 rows, 1 conversion per element.
    at(ProfOp::kKvStore).bytes += b * 2 * KV * (kF32 + kF16);
    at(ProfOp::kKvStore).ops += 2.0 * b * KV;
    // attention: token t at p = pos0 + t sees keys (p - window, p] (all of [0, p] without one).
    const int64_t window = cfg.layer_is_swa(il) ? cfg.sliding_window : 0;
    double keys = 0;
    for (int64_t t = 0; t < b; ++t) {
      const int64_t p = pos0 + t;
      keys += static_cast<double>(window > 0 ? std::min(p + 1, window) : p + 1);
    }
    const int64_t first = window > 0 ? std::max<int64_t>(0, pos0 - window + 1) : 0;
    const double rows = static_cast<double>(pos0 + b - first);  // cache rows read
    at(ProfOp::kAttention).bytes += rows * 2 * KV * kF16 + b * 2 * Q * kF32;
    at(ProfOp::kAttention).ops += 4.0 * H * D * keys;
    quantize({&L.wo}, b, Q, at(ProfOp::kQuantizeAct));
    matmul(L.wo, b, at(ProfOp::kAttnOutput));
    if (L.post_attn_norm.data) norm(b, E, at(ProfOp::kNorm));
    add(b, E, at(ProfOp::kAdd));
    norm(b, E, at(ProfOp::kNorm));  // ffn_norm
    quantize({&L.gate, &L.up}, b, E, at(ProfOp::kQuantizeAct));
    matmul(L.gate, b, at(ProfOp::kFfnGate));
    matmul(L.up, b, at(ProfOp::kFfnUp));
    // SwiGLU / GeGLU: gate and up read, one row written; 4 nominal ops per element.
    at(ProfOp::kActivation).bytes += b * F * 3 * kF32;
    at(ProfOp::kActivation).ops += 4.0 * b * F;
    quantize({&L.down}, b, F, at(ProfOp::kQuantizeAct));
    matmul(L.down, b, at(ProfOp::kFfnDown));
    if (L.post_ffn_norm.data) norm(b, E, at(ProfOp::kNorm));
    add(b, E, at(ProfOp::kAdd));
  }
  if (n_out <= 0) return;
  norm(n_out, E, at(ProfOp::kNorm));  // output_norm
  quantize({&w.output}, n_out, E, at(ProfOp::kQuantizeAct));
  matmul(w.output, n_out, at(ProfOp::kOutput));
}

}  // namespace

void add_eval_cost(const Model& m, int64_t ntok, int64_t pos0, int64_t n_ubatch, int64_t n_out,
                   OpCosts& c) {
  for (int64_t i = 0; i < ntok; i += n_ubatch) {
    const int64_t b = std::min(n_ubatch, ntok - i);
    // Logits rows of this micro-batch: those of the last n_out tokens of the eval.
    const int64_t out = std::clamp<int64_t>(i + b - (ntok - n_out), 0, b);
    ubatch_cost(m, b, pos0 + i, out, c);
  }
}

}  // namespace hpl
