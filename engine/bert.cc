// bert forward. Per layer, for the packed batch (shapes per token; E = n_embd, F = n_ff):
//   q, k, v = Wq, Wk, Wv @ x + b ; att = softmax(q k^T / sqrt(D)) v within each sequence
//   x = LN(x + Wo @ att + bo) ; x = LN(x + Wdown @ gelu(Wup @ x + bup) + bdown)
// with x = LN(tok[id] + pos[p] + type[t]) at the start (p counts from 0 in each sequence).
#include "engine/bert.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernel/cpu_topology.h"
#include "kernel/ops.h"
#include "kernel/quant.h"

namespace hpl {

namespace k = kernel::best;

BertScratchSizes bert_scratch_sizes(const ModelConfig& c, const ForwardOptions& opt) {
  if (opt.n_ctx < 1 || opt.n_ubatch < 1) throw ModelError("n_ctx and n_ubatch must be >= 1");
  BertScratchSizes s;
  s.n_ctx = std::min(opt.n_ctx, c.n_ctx_train);
  s.max_tok = std::max(opt.n_ubatch, s.n_ctx);
  s.n_threads = opt.n_threads > 0 ? opt.n_threads : kernel::default_thread_count(opt.cpus);
  const auto T = static_cast<size_t>(s.max_tok), n = static_cast<size_t>(s.n_ctx);
  const auto E = static_cast<size_t>(c.n_embd), F = static_cast<size_t>(c.n_ff);
  const auto D = static_cast<size_t>(c.head_dim);
  // x, q, k, v, att, proj (T, E); ff (T, F); per thread scores (n, n) + V^T (D, n).
  const size_t floats = 6 * T * E + T * F + static_cast<size_t>(s.n_threads) * (n * n + D * n);
  const int64_t wide = std::max(c.n_embd, c.n_ff);
  s.bytes =
      floats * sizeof(float) + act_q8_0_bytes(s.max_tok, wide) + act_q8_k_bytes(s.max_tok, wide);
  return s;
}

BertEncoder::BertEncoder(const Model& model, const ForwardOptions& opt)
    : model_(model), cfg_(model.config), w_(model.weights) {
  if (cfg_.arch != Arch::kBert) {
    throw ModelError(std::string("BertEncoder: the model is a ") + arch_name(cfg_.arch) +
                     ", not a bert");
  }
  const BertScratchSizes s = bert_scratch_sizes(cfg_, opt);
  n_ctx_ = s.n_ctx;
  max_tok_ = s.max_tok;
  pool_ = std::make_unique<kernel::ThreadPool>(s.n_threads, kernel::ThreadPool::kDefaultSpinUs,
                                               opt.cpus);
  const int64_t E = cfg_.n_embd, F = cfg_.n_ff, D = cfg_.head_dim;
  mm_ = std::make_unique<MatmulRunner>(*pool_, max_tok_, std::max(E, F));
  const auto rows = static_cast<size_t>(max_tok_);
  for (auto* b : {&x_, &q_, &k_, &v_, &att_, &proj_}) b->assign(rows * E, 0.0f);
  ff_.assign(rows * F, 0.0f);
  attn_.assign(static_cast<size_t>(pool_->size()) * (n_ctx_ * n_ctx_ + D * n_ctx_), 0.0f);
  size_t floats = 0;
  for (const auto* b : {&x_, &q_, &k_, &v_, &att_, &proj_, &ff_, &attn_}) floats += b->size();
  scratch_bytes_ = floats * sizeof(float) + mm_->scratch_bytes();
  if (scratch_bytes_ != s.bytes) throw std::logic_error("BertEncoder: scratch size mismatch");
}

BertEncoder::~BertEncoder() = default;

void BertEncoder::embed(const Seq* seqs, int n_seqs) {
  const int64_t E = cfg_.n_embd;
  float* x = x_.data();
  std::vector<float> row(static_cast<size_t>(E));
  int64_t t = 0;
  for (int s = 0; s < n_seqs; ++s) {
    for (int64_t p = 0; p < seqs[s].n; ++p, ++t) {
      float* xt = x + t * E;
      matrix_row_f32(w_.token_embd, seqs[s].ids[p], xt);
      kernel::dequantize_row(w_.pos_embd.type, w_.pos_embd.row(p), row.data(), E);
      k::add(xt, row.data(), xt, E);
      if (w_.type_embd.data) {
        const int32_t ty = seqs[s].types ? seqs[s].types[p] : 0;
        kernel::dequantize_row(w_.type_embd.type, w_.type_embd.row(ty), row.data(), E);
        k::add(xt, row.data(), xt, E);
      }
    }
  }
  for_tokens(t, [&](int64_t i) {
    k::layernorm(x + i * E, w_.embd_norm.data, w_.embd_norm_b.data, x + i * E, E, cfg_.rms_eps);
  });
}

// Each (sequence, head) on its own: scores = K q (as a gemm with K as the weight), softmax
// over the sequence's keys, out = V^T p (a gemm with V^T as the weight).
void BertEncoder::attention(const Seq* seqs, int n_seqs) {
  const int64_t E = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim;
  std::vector<int64_t> offset(static_cast<size_t>(n_seqs) + 1, 0);
  for (int s = 0; s < n_seqs; ++s) offset[s + 1] = offset[s] + seqs[s].n;
  const size_t per_thread = static_cast<size_t>(n_ctx_ * n_ctx_ + D * n_ctx_);
  const size_t row = static_cast<size_t>(E) * sizeof(float);
  auto job = [&](int64_t c, int ith) {
    const int64_t s = c / H, h = c % H, L = seqs[s].n, o = offset[s];
    float* scores = attn_.data() + ith * per_thread;  // (L, L)
    float* vt = scores + n_ctx_ * n_ctx_;             // (D, L)
    const float* q = q_.data() + o * E + h * D;
    const float* kk = k_.data() + o * E + h * D;
    const float* v = v_.data() + o * E + h * D;
    // K (L, D) @ q (L, D) -> scores (L, L): row i holds q_i . k_j
    k::matmul(DType::F32, kk, row, q, row, scores, static_cast<size_t>(L), D, 0, L, L);
    for (int64_t i = 0; i < L; ++i) k::softmax(scores + i * L, L, cfg_.attn_scale, 0, L);
    for (int64_t j = 0; j < L; ++j) {
      for (int64_t d = 0; d < D; ++d) vt[d * L + j] = v[j * E + d];
    }
    // V^T (D, L) @ p (L, L) -> out (L, D) with rows E apart
    k::matmul(DType::F32, vt, static_cast<size_t>(L) * sizeof(float), scores,
              static_cast<size_t>(L) * sizeof(float), att_.data() + o * E + h * D,
              static_cast<size_t>(E), L, 0, D, L);
  };
  const int64_t n_jobs = int64_t{n_seqs} * H;
  if (pool_->size() == 1 || 2 * offset[n_seqs] * n_ctx_ * E < kInlineWork) {
    for (int64_t c = 0; c < n_jobs; ++c) job(c, 0);
  } else {
    pool_->for_chunks(n_jobs, job);
  }
}

void BertEncoder::layer(int64_t il, const Seq* seqs, int n_seqs, int64_t ntok) {
  const LayerWeights& L = w_.layers[static_cast<size_t>(il)];
  const int64_t E = cfg_.n_embd, F = cfg_.n_ff;
  const float eps = cfg_.rms_eps;
  float *x = x_.data(), *q = q_.data(), *kk = k_.data(), *v = v_.data();
  float *proj = proj_.data(), *ff = ff_.data();
  auto add_bias = [&](float* y, const Vector& b, int64_t n) {
    if (!b.data) return;
    for_tokens(ntok, [&](int64_t t) { k::add(y + t * n, b.data, y + t * n, n); });
  };

  const MatJob qkv[] = {
      {&L.wq, q, ProfOp::kAttnQ}, {&L.wk, kk, ProfOp::kAttnK}, {&L.wv, v, ProfOp::kAttnV}};
  mm_->run(x, ntok, E, qkv, 3, E, nullptr);
  add_bias(q, L.bq, E);
  add_bias(kk, L.bk, E);
  add_bias(v, L.bv, E);
  attention(seqs, n_seqs);
  const MatJob o[] = {{&L.wo, proj, ProfOp::kAttnOutput}};
  mm_->run(att_.data(), ntok, E, o, 1, E, nullptr);
  for_tokens(ntok, [&](int64_t t) {
    float* pt = proj + t * E;
    float* xt = x + t * E;
    if (L.bo.data) k::add(pt, L.bo.data, pt, E);
    k::add(xt, pt, xt, E);
    k::layernorm(xt, L.post_attn_norm.data, L.post_attn_norm_b.data, xt, E, eps);
  });

  const MatJob up[] = {{&L.up, ff, ProfOp::kFfnUp}};
  mm_->run(x, ntok, E, up, 1, E, nullptr);
  for_tokens(ntok, [&](int64_t t) {
    float* ft = ff + t * F;
    if (L.b_up.data) k::add(ft, L.b_up.data, ft, F);
    k::gelu_erf(ft, ft, F);
  });
  const MatJob down[] = {{&L.down, proj, ProfOp::kFfnDown}};
  mm_->run(ff, ntok, F, down, 1, E, nullptr);
  for_tokens(ntok, [&](int64_t t) {
    float* pt = proj + t * E;
    float* xt = x + t * E;
    if (L.b_down.data) k::add(pt, L.b_down.data, pt, E);
    k::add(xt, pt, xt, E);
    k::layernorm(xt, L.post_ffn_norm.data, L.post_ffn_norm_b.data, xt, E, eps);
  });
}

const float* BertEncoder::encode(const Seq* seqs, int n_seqs) {
  int64_t ntok = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const Seq& q = seqs[s];
    if (q.n < 1 || q.n > n_ctx_) {
      throw ModelError("bert: sequence " + std::to_string(s) + " has " + std::to_string(q.n) +
                       " tokens, need 1 .. " + std::to_string(n_ctx_) + " (context size)");
    }
    for (int64_t p = 0; p < q.n; ++p) {
      if (q.ids[p] < 0 || q.ids[p] >= cfg_.n_vocab) {
        throw ModelError("token id " + std::to_string(q.ids[p]) + " at index " + std::to_string(p) +
                         " of sequence " + std::to_string(s) + " is outside the vocabulary [0, " +
                         std::to_string(cfg_.n_vocab) + ")");
      }
      const int64_t n_types = w_.type_embd.data ? w_.type_embd.rows : 1;
      if (q.types && (q.types[p] < 0 || q.types[p] >= n_types)) {
        throw ModelError("token type " + std::to_string(q.types[p]) + " at index " +
                         std::to_string(p) + " is outside [0, " + std::to_string(n_types) + ")");
      }
    }
    ntok += q.n;
  }
  if (ntok > max_tok_) {
    throw ModelError("bert: batch of " + std::to_string(ntok) + " tokens, more than " +
                     std::to_string(max_tok_));
  }
  if (ntok == 0) return x_.data();
  embed(seqs, n_seqs);
  for (int64_t il = 0; il < cfg_.n_layer; ++il) layer(il, seqs, n_seqs, ntok);
  return x_.data();
}

void BertEncoder::classify(const float* rows, int64_t n, float* out) {
  if (!w_.cls_out.data) {
    throw ModelError(model_.file->path() + " has no classification head (cls.output.weight)");
  }
  const int64_t E = cfg_.n_embd, C = w_.cls_out.rows;
  if (n > max_tok_) throw ModelError("bert: too many rows to classify");
  float* h = proj_.data();  // (n, E)
  std::copy(rows, rows + n * E, h);
  if (w_.cls.data) {
    float* t = q_.data();
    const MatJob d[] = {{&w_.cls, t, ProfOp::kOther}};
    mm_->run(h, n, E, d, 1, E, nullptr);
    for (int64_t i = 0; i < n * E; ++i) {
      h[i] = std::tanh(t[i] + (w_.cls_b.data ? w_.cls_b.data[i % E] : 0.0f));
    }
  }
  const MatJob c[] = {{&w_.cls_out, out, ProfOp::kOther}};
  mm_->run(h, n, E, c, 1, E, nullptr);
  if (w_.cls_out_b.data) {
    for (int64_t i = 0; i < n; ++i) k::add(out + i * C, w_.cls_out_b.data, out + i * C, C);
  }
}

}  // namespace hpl
