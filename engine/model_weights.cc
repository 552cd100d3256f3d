// Tensor lookup by role, shape checks, and the few load-time conversions to F32.
#include "engine/model_weights.h"

#include <cmath>
#include <set>
#include <string>

#include "kernel/ops.h"
#include "kernel/quant.h"
#include "kernel/repack.h"

namespace hpl {

namespace {

std::string shape_str(const GgufTensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.n_dims; ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
  return s + "]";
}

class Loader {
 public:
  Loader(const GgufFile& f, ModelWeights& w, bool count_only)
      : f_(f), w_(w), count_only_(count_only) {}

  [[noreturn]] void fail(const std::string& name, const std::string& what) const {
    throw ModelError(f_.path() + ": tensor '" + name + "': " + what);
  }

  const GgufTensor* find(const std::string& name, bool required) {
    const GgufTensor* t = f_.tensor(name);
    if (!t && required) throw ModelError(f_.path() + ": tensor '" + name + "' is missing");
    if (t) used_.insert(name);
    return t;
  }

  // A tensor the forward pass would not use means a computation it does not implement.
  void refuse_unused(const char* arch) const {
    for (const GgufTensor& t : f_.tensors()) {
      if (!used_.count(t.name)) {
        fail(t.name, std::string("present in the file, but the engine's ") + arch +
                         " forward pass has no use for it (not implemented)");
      }
    }
  }

  // W (rows, cols) of a 2-D tensor.
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols, bool required = true) {
    Matrix m;
    const GgufTensor* t = find(name, required);
    if (!t) return m;
    if (t->ne[0] != cols || t->n_rows() != rows || t->ne[2] != 1 || t->ne[3] != 1) {
      fail(name, "shape " + shape_str(*t) + ", expected [" + std::to_string(cols) + ", " +
                     std::to_string(rows) + "]");
    }
    m.name = name;
    m.rows = rows;
    m.cols = cols;
    std::string why;
    if (t->rows_unaligned) {
      why = "rows quantized flat across row boundaries";
    } else if (!kernel::matmul_supported(t->type)) {
      why = std::string("matmul does not support ") + type_name(t->type);
    }
    if (why.empty()) {
      m.type = t->type;
      m.data = t->data;
      m.row_stride = row_bytes(t->type, cols);
      count_mapped(*t);
    } else {
      float* p = convert(*t, why);
      m.type = DType::F32;
      m.data = reinterpret_cast<const uint8_t*>(p);
      m.row_stride = static_cast<size_t>(cols) * sizeof(float);
    }
    return m;
  }

  // v (n,) of a 1-D tensor, as F32.
  Vector vector(const std::string& name, int64_t n, bool required = true) {
    Vector v;
    const GgufTensor* t = find(name, required);
    if (!t) return v;
    if (t->n_elements() != n || t->ne[0] != n) {
      fail(name, "shape " + shape_str(*t) + ", expected [" + std::to_string(n) + "]");
    }
    v.n = n;
    if (t->type == DType::F32) {
      v.data = reinterpret_cast<const float*>(t->data);
      count_mapped(*t);
    } else {
      v.data = convert(*t, std::string(type_name(t->type)) + " vector");
    }
    return v;
  }

 private:
  void count_mapped(const GgufTensor& t) {
    if (seen_.insert(&t).second) w_.mapped_bytes += t.n_bytes;
  }

  float* convert(const GgufTensor& t, const std::string& why) {
    if (!kernel::dequantize_supported(t.type)) {
      fail(t.name, std::string("type ") + type_name(t.type) + " is not supported");
    }
    const int64_t n = t.n_elements();
    w_.converted_bytes += static_cast<size_t>(n) * sizeof(float);
    w_.converted.push_back(t.name + " (" + type_name(t.type) + " -> f32: " + why + ")");
    if (count_only_) return nullptr;
    auto buf = std::make_unique<float[]>(static_cast<size_t>(n));
    // Flat: blocks may run across rows, so the whole tensor is one long row.
    kernel::dequantize_row(t.type, t.data, buf.get(), n);
    float* p = buf.get();
    w_.owned.push_back(std::move(buf));
    return p;
  }

  const GgufFile& f_;
  ModelWeights& w_;
  bool count_only_;
  std::set<const GgufTensor*> seen_;
  std::set<std::string> used_;
};

// bert (llama.cpp's tensor names): embeddings, post-LN layers with biases, optional head.
void load_bert(Loader& ld, const ModelConfig& c, ModelWeights& w) {
  const int64_t E = c.n_embd, F = c.n_ff;
  w.pos_embd = ld.matrix("position_embd.weight", c.n_ctx_train, E);
  if (c.n_token_types > 0) {
    w.type_embd = ld.matrix("token_types.weight", c.n_token_types, E, /*required=*/false);
  }
  for (const Matrix* m : {&w.pos_embd, &w.type_embd}) {
    if (m->data && !kernel::dequantize_supported(m->type)) {
      ld.fail(m->name, std::string("rows of type ") + type_name(m->type) + " cannot be read");
    }
  }
  w.embd_norm = ld.vector("token_embd_norm.weight", E);
  w.embd_norm_b = ld.vector("token_embd_norm.bias", E);
  w.cls = ld.matrix("cls.weight", E, E, /*required=*/false);
  w.cls_b = ld.vector("cls.bias", E, /*required=*/false);
  if (c.n_cls_out > 0) {
    w.cls_out = ld.matrix("cls.output.weight", c.n_cls_out, E);
    w.cls_out_b = ld.vector("cls.output.bias", c.n_cls_out, /*required=*/false);
  }
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const std::string p = "blk." + std::to_string(il) + ".";
    L.wq = ld.matrix(p + "attn_q.weight", E, E);
    L.wk = ld.matrix(p + "attn_k.weight", E, E);
    L.wv = ld.matrix(p + "attn_v.weight", E, E);
    L.bq = ld.vector(p + "attn_q.bias", E, false);
    L.bk = ld.vector(p + "attn_k.bias", E, false);
    L.bv = ld.vector(p + "attn_v.bias", E, false);
    L.wo = ld.matrix(p + "attn_output.weight", E, E);
    L.bo = ld.vector(p + "attn_output.bias", E, false);
    L.post_attn_norm = ld.vector(p + "attn_output_norm.weight", E);
    L.post_attn_norm_b = ld.vector(p + "attn_output_norm.bias", E);
    L.up = ld.matrix(p + "ffn_up.weight", F, E);
    L.b_up = ld.vector(p + "ffn_up.bias", F, false);
    L.down = ld.matrix(p + "ffn_down.weight", E, F);
    L.b_down = ld.vector(p + "ffn_down.bias", E, false);
    L.post_ffn_norm = ld.vector(p + "layer_output_norm.weight", E);
    L.post_ffn_norm_b = ld.vector(p + "layer_output_norm.bias", E);
  }
}

}  // namespace

void matrix_row_f32(const Matrix& m, int64_t r, float* out) {
  if (!is_packed_type(m.type)) {
    kernel::dequantize_row(m.type, m.row(r), out, m.cols);
    return;
  }
  thread_local std::vector<uint8_t> row;
  row.resize(m.row_stride);
  kernel::unpack_row(m.type, m.data, m.row_stride, r, m.cols, row.data());
  kernel::dequantize_row(kernel::unpacked_type(m.type), row.data(), out, m.cols);
}

size_t weight_bytes_per_token(const ModelWeights& w) {
  auto m = [](const Matrix& x) { return x.data ? x.row_stride * static_cast<size_t>(x.rows) : 0; };
  auto v = [](const Vector& x) { return static_cast<size_t>(x.n) * sizeof(float); };
  size_t b = m(w.output) + v(w.output_norm) + w.token_embd.row_stride;
  for (const LayerWeights& L : w.layers) {
    b += m(L.wq) + m(L.wk) + m(L.wv) + m(L.wo) + m(L.gate) + m(L.up) + m(L.down);
    b += v(L.attn_norm) + v(L.ffn_norm) + v(L.bq) + v(L.bk) + v(L.bv) + v(L.q_norm) + v(L.k_norm) +
         v(L.post_attn_norm) + v(L.post_ffn_norm);
  }
  return b;
}

namespace {

// LongRoPE factors (phi3) and Llama 3.x rope_freqs: read where the architecture has them,
// refused elsewhere; every factor a positive finite number.
void load_rope_factors(Loader& ld, const GgufFile& f, const ModelConfig& c, ModelWeights& w) {
  const int64_t half_rot = c.rot_dim / 2;
  if (c.arch == Arch::kPhi3) {
    w.rope_long = ld.vector("rope_factors_long.weight", half_rot, false);
    w.rope_short = ld.vector("rope_factors_short.weight", half_rot, false);
    if (!w.rope_long.data != !w.rope_short.data) {
      ld.fail(w.rope_long.data ? "rope_factors_short.weight" : "rope_factors_long.weight",
              "missing while its long/short partner is present");
    }
  } else {
    for (const char* name : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
      if (f.tensor(name)) ld.fail(name, "LongRoPE factors are only implemented for phi3");
    }
  }
  if (f.tensor("rope_freqs.weight")) {
    if (c.arch != Arch::kLlama) {
      ld.fail("rope_freqs.weight",
              std::string("RoPE frequency factors are not implemented for ") + arch_name(c.arch));
    }
    w.rope_freqs = ld.vector("rope_freqs.weight", half_rot);
  }
  auto check_factors = [&](const Vector& v, const char* name) {
    for (int64_t i = 0; v.data && i < v.n; ++i) {
      if (!(v.data[i] > 0.0f) || !std::isfinite(v.data[i])) {
        ld.fail(name, "factor " + std::to_string(i) + " = " + std::to_string(v.data[i]) +
                          " is not a positive finite number");
      }
    }
  };
  check_factors(w.rope_freqs, "rope_freqs.weight");
  check_factors(w.rope_long, "rope_factors_long.weight");
  check_factors(w.rope_short, "rope_factors_short.weight");
}

// Row ranges [r0, r0 + n) of a fused matrix, as a matrix of its own; a packed one only in
// whole groups of 8 rows.
Matrix rows_of(Loader& ld, const Matrix& m, int64_t r0, int64_t n) {
  if (is_packed_type(m.type) && (r0 % kernel::kPackRows != 0 || n % kernel::kPackRows != 0)) {
    ld.fail(m.name, std::string("packed ") + type_name(m.type) + ": rows [" + std::to_string(r0) +
                        ", " + std::to_string(r0 + n) + ") split off it are not whole groups of " +
                        std::to_string(kernel::kPackRows));
  }
  Matrix v = m;
  v.data = m.data ? m.row(r0) : nullptr;  // null when counting only
  v.rows = n;
  return v;
}

// Decoder layer il's tensors (fused phi3 qkv and gate/up split into row ranges).
void load_decoder_layer(Loader& ld, const GgufFile& f, const ModelConfig& c, int64_t il,
                        LayerWeights& L) {
  const int64_t E = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, D = c.head_dim;
  const std::string p = "blk." + std::to_string(il) + ".";
  L.attn_norm = ld.vector(p + "attn_norm.weight", E);
  if (f.tensor(p + "attn_qkv.weight")) {  // phi3: rows q, then k, then v
    Matrix qkv = ld.matrix(p + "attn_qkv.weight", Q + 2 * KV, E);
    L.wq = rows_of(ld, qkv, 0, Q);
    L.wk = rows_of(ld, qkv, Q, KV);
    L.wv = rows_of(ld, qkv, Q + KV, KV);
  } else {
    L.wq = ld.matrix(p + "attn_q.weight", Q, E);
    L.wk = ld.matrix(p + "attn_k.weight", KV, E);
    L.wv = ld.matrix(p + "attn_v.weight", KV, E);
  }
  if (c.qkv_bias) {
    L.bq = ld.vector(p + "attn_q.bias", Q, false);
    L.bk = ld.vector(p + "attn_k.bias", KV, false);
    L.bv = ld.vector(p + "attn_v.bias", KV, false);
  }
  if (c.qk_norm) {
    L.q_norm = ld.vector(p + "attn_q_norm.weight", D);
    L.k_norm = ld.vector(p + "attn_k_norm.weight", D);
  }
  L.wo = ld.matrix(p + "attn_output.weight", E, Q);
  L.ffn_norm = ld.vector(p + "ffn_norm.weight", E);
  if (c.arch == Arch::kPhi3 && !f.tensor(p + "ffn_gate.weight")) {
    Matrix gu = ld.matrix(p + "ffn_up.weight", 2 * F, E);  // phi3: rows gate, then up
    L.gate = rows_of(ld, gu, 0, F);
    L.up = rows_of(ld, gu, F, F);
  } else {
    L.gate = ld.matrix(p + "ffn_gate.weight", F, E);
    L.up = ld.matrix(p + "ffn_up.weight", F, E);
  }
  L.down = ld.matrix(p + "ffn_down.weight", E, F);
  if (c.post_norms) {
    L.post_attn_norm = ld.vector(p + "post_attention_norm.weight", E);
    L.post_ffn_norm = ld.vector(p + "post_ffw_norm.weight", E);
  }
}

}  // namespace

ModelWeights load_model_weights(const GgufFile& f, const ModelConfig& c, bool count_only) {
  ModelWeights w;
  Loader ld(f, w, count_only);
  const int64_t E = c.n_embd;
  w.token_embd = ld.matrix("token_embd.weight", c.n_vocab, E);
  if (!kernel::dequantize_supported(kernel::unpacked_type(w.token_embd.type))) {
    ld.fail("token_embd.weight",
            std::string("rows of type ") + type_name(w.token_embd.type) + " cannot be read");
  }
  if (c.arch == Arch::kBert) {
    load_bert(ld, c, w);
    ld.refuse_unused(arch_name(c.arch));
    return w;
  }
  w.output_norm = ld.vector("output_norm.weight", E);
  w.output = ld.matrix("output.weight", c.n_vocab, E, /*required=*/false);
  if (!f.tensor("output.weight")) {
    w.output = w.token_embd;
    w.tied_output = true;
  }
  load_rope_factors(ld, f, c, w);
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il)
    load_decoder_layer(ld, f, c, il, w.layers[static_cast<size_t>(il)]);
  ld.refuse_unused(arch_name(c.arch));
  return w;
}

}  // namespace hpl
