// Tensor lookup by role, shape checks, and the few load-time conversions to F32.
#include "engine/model_weights.h"

#include <set>
#include <string>

#include "kernel/ops.h"
#include "kernel/quant.h"

namespace hpl {

namespace {

std::string shape_str(const GgufTensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.n_dims; ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
  return s + "]";
}

class Loader {
 public:
  Loader(const GgufFile& f, ModelWeights& w) : f_(f), w_(w) {}

  [[noreturn]] void fail(const std::string& name, const std::string& what) const {
    throw ModelError(f_.path() + ": tensor '" + name + "': " + what);
  }

  const GgufTensor* find(const std::string& name, bool required) const {
    const GgufTensor* t = f_.tensor(name);
    if (!t && required) throw ModelError(f_.path() + ": tensor '" + name + "' is missing");
    return t;
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
    auto buf = std::make_unique<float[]>(static_cast<size_t>(n));
    // Flat: blocks may run across rows, so the whole tensor is one long row.
    kernel::dequantize_row(t.type, t.data, buf.get(), n);
    float* p = buf.get();
    w_.owned.push_back(std::move(buf));
    w_.converted_bytes += static_cast<size_t>(n) * sizeof(float);
    w_.converted.push_back(t.name + " (" + type_name(t.type) + " -> f32: " + why + ")");
    return p;
  }

  const GgufFile& f_;
  ModelWeights& w_;
  std::set<const GgufTensor*> seen_;
};

}  // namespace

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

ModelWeights load_model_weights(const GgufFile& f, const ModelConfig& c) {
  ModelWeights w;
  Loader ld(f, w);
  const int64_t E = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, D = c.head_dim;
  w.token_embd = ld.matrix("token_embd.weight", c.n_vocab, E);
  if (!kernel::dequantize_supported(w.token_embd.type)) {
    ld.fail("token_embd.weight",
            std::string("rows of type ") + type_name(w.token_embd.type) + " cannot be read");
  }
  w.output_norm = ld.vector("output_norm.weight", E);
  w.output = ld.matrix("output.weight", c.n_vocab, E, /*required=*/false);
  if (!w.output.data) {
    w.output = w.token_embd;
    w.tied_output = true;
  }
  if (f.tensor("rope_freqs.weight")) {
    w.warnings.push_back(
        "rope_freqs.weight (Llama 3 long-context RoPE frequency factors) is not applied: "
        "low-frequency RoPE dimensions differ from the reference model");
  }
  const bool bias = c.arch == Arch::kQwen2;
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const std::string p = "blk." + std::to_string(il) + ".";
    L.attn_norm = ld.vector(p + "attn_norm.weight", E);
    L.wq = ld.matrix(p + "attn_q.weight", Q, E);
    L.wk = ld.matrix(p + "attn_k.weight", KV, E);
    L.wv = ld.matrix(p + "attn_v.weight", KV, E);
    if (bias) {
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
    L.gate = ld.matrix(p + "ffn_gate.weight", F, E);
    L.up = ld.matrix(p + "ffn_up.weight", F, E);
    L.down = ld.matrix(p + "ffn_down.weight", E, F);
    if (c.post_norms) {
      L.post_attn_norm = ld.vector(p + "post_attention_norm.weight", E);
      L.post_ffn_norm = ld.vector(p + "post_ffw_norm.weight", E);
    }
  }
  return w;
}

}  // namespace hpl
