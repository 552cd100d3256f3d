// Forward pass. Per layer, for a micro-batch of ntok tokens at positions pos0.. (shapes are
// per token; E = n_embd, Q = q_dim, KV = kv_dim, F = n_ff):
//   xn = rmsnorm(x) ; q, k, v = Wq, Wk, Wv @ xn (+ bias) ; [q, k = rmsnorm per head]
//   rope(q, k) ; K/V cache[pos] = f16(k, v) ; att = attention(q, K, V)
//   o = Wo @ att ; [o = rmsnorm(o)] ; x += o
//   xn = rmsnorm(x) ; h = act(Wgate @ xn) * (Wup @ xn) ; f = Wdown @ h ; [f = rmsnorm(f)] ; x += f
// then logits = Wout @ rmsnorm(x). [..] are gemma3's QK-norm and post-norms.
#include "engine/forward.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernel/cpu_topology.h"
#include "kernel/kv_store.h"
#include "kernel/ops.h"
#include "kernel/quant.h"

namespace hpl {

namespace k = kernel::best;

const float* rope_factors_for(const ModelWeights& w, const ModelConfig& c, int64_t n_ctx) {
  if (w.rope_freqs.data) return w.rope_freqs.data;
  // Like llama.cpp (HF switches per sequence length): one choice for the whole context.
  if (w.rope_long.data) return n_ctx > c.n_ctx_orig ? w.rope_long.data : w.rope_short.data;
  return nullptr;
}

size_t ScratchSizes::bytes() const {
  return (x + xn + q + k + v + att + proj + gate + up + attn) * sizeof(float) + xq8_0 + xq8_k;
}

ScratchSizes scratch_sizes(const ModelConfig& c, const ForwardOptions& opt) {
  const size_t B = static_cast<size_t>(opt.n_ubatch);
  const int64_t E = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff;
  const int64_t wide = std::max({E, Q, F});
  ScratchSizes s;
  s.n_threads = opt.n_threads > 0 ? opt.n_threads : kernel::default_thread_count(opt.cpus);
  s.x = B * E;
  s.xn = B * std::max(E, Q);
  s.q = s.att = B * Q;
  s.k = s.v = B * KV;
  s.proj = B * E;
  s.gate = s.up = B * F;
  s.xq8_0 = act_q8_0_bytes(opt.n_ubatch, wide);
  s.xq8_k = act_q8_k_bytes(opt.n_ubatch, wide);
  s.attn = static_cast<size_t>(s.n_threads) * opt.n_ctx;  // one score row per thread
  return s;
}

namespace {
// kv_layout's refusals (unsupported cache type, head_dim) are bad options: ModelError.
KvLayout checked_kv_layout(const ModelConfig& c, const ForwardOptions& opt) {
  try {
    return kv_layout(c, opt.n_ctx, opt.n_ubatch, opt.cache_type, opt.n_rewind);
  } catch (const std::invalid_argument& e) {
    throw ModelError(e.what());
  }
}
}  // namespace

Forward::Forward(const Model& model, const ForwardOptions& opt)
    : model_(model),
      cfg_(model.config),
      w_(model.weights),
      n_ubatch_(opt.n_ubatch),
      pool_(std::make_unique<kernel::ThreadPool>(
          opt.n_threads > 0 ? opt.n_threads : kernel::default_thread_count(opt.cpus),
          kernel::ThreadPool::kDefaultSpinUs, opt.cpus)),
      cache_(checked_kv_layout(model.config, opt)) {
  if (opt.n_ubatch < 1) throw ModelError("micro-batch size must be >= 1");
  if (cfg_.encoder) {
    throw ModelError(model.file->path() + " is an encoder (" + arch_name(cfg_.arch) +
                     "): it embeds or reranks, it cannot generate (use hpl embed / hpl rerank)");
  }
  rope_factors_ = rope_factors_for(model.weights, cfg_, opt.n_ctx);
  const ScratchSizes s = scratch_sizes(cfg_, opt);
  if (pool_->size() != s.n_threads) throw std::logic_error("Forward: thread count mismatch");
  x_.assign(s.x, 0.0f);
  xn_.assign(s.xn, 0.0f);
  q_.assign(s.q, 0.0f);
  k_.assign(s.k, 0.0f);
  v_.assign(s.v, 0.0f);
  att_.assign(s.att, 0.0f);
  proj_.assign(s.proj, 0.0f);
  gate_.assign(s.gate, 0.0f);
  up_.assign(s.up, 0.0f);
  mm_ = std::make_unique<MatmulRunner>(*pool_, opt.n_ubatch,
                                       std::max({cfg_.n_embd, cfg_.q_dim(), cfg_.n_ff}));
  if (mm_->scratch_bytes() != s.xq8_0 + s.xq8_k)
    throw std::logic_error("Forward: scratch size mismatch");
  attn_scratch_.assign(s.attn, 0.0f);
  scratch_bytes_ = s.bytes();
}

Forward::~Forward() = default;

void Forward::truncate(int64_t n) {
  if (n < 0 || n > cache_.n_past()) {
    throw ModelError("truncate: position " + std::to_string(n) + " is outside [0, " +
                     std::to_string(cache_.n_past()) + "]");
  }
  if (n > 0 && cache_.can_rewind_to(n)) {
    cache_.set_n_past(n);
  } else {
    // Nothing kept (sliding-window rings back at row 0), or a sliding-window layer no longer
    // holds what position n attends to.
    cache_.clear();
  }
}

template <class F>
void Forward::for_tokens(int64_t ntok, F&& f) {
  for_rows(*pool_, ntok, cfg_.n_embd, f);  // per-token work is O(n_embd)
}

void Forward::matmuls(const float* x, int64_t ntok, int64_t n, const MatJob* jobs, int n_jobs) {
  mm_->run(x, ntok, n, jobs, n_jobs, cfg_.n_embd, prof_);
}

// q, k, v of ntok tokens from position pos0 (rows in q_, k_, v_): biases, per-head q/k norms,
// RoPE; k and v stored into the cache.
void Forward::rope_and_store(int64_t il, int64_t ntok, int64_t pos0) {
  const LayerWeights& L = w_.layers[static_cast<size_t>(il)];
  const int64_t Q = cfg_.q_dim(), KV = cfg_.kv_dim();
  const int64_t H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim;
  const float eps = cfg_.rms_eps;
  float* q = q_.data();
  float* kk = k_.data();
  float* v = v_.data();
  const float base = cfg_.layer_rope_base(il), fscale = cfg_.layer_rope_scale(il);
  cache_.reserve(il, pos0, ntok);
  const auto layout = cfg_.neox_rope ? kernel::RopeLayout::kNeox : kernel::RopeLayout::kNormal;
  {
    ProfSection sec(prof_);
    for_tokens(ntok, [&](int64_t t) {
      float* qt = q + t * Q;
      float* kt = kk + t * KV;
      float* vt = v + t * KV;
      if (L.bq.data || L.bk.data || L.bv.data) {
        sec.part(ProfOp::kAdd, [&] {
          if (L.bq.data) k::add(qt, L.bq.data, qt, Q);
          if (L.bk.data) k::add(kt, L.bk.data, kt, KV);
          if (L.bv.data) k::add(vt, L.bv.data, vt, KV);
        });
      }
      if (L.q_norm.data) {
        sec.part(ProfOp::kNorm, [&] {
          for (int64_t h = 0; h < H; ++h)
            k::rmsnorm(qt + h * D, L.q_norm.data, qt + h * D, D, eps, 0.0f);
          for (int64_t h = 0; h < Hkv; ++h)
            k::rmsnorm(kt + h * D, L.k_norm.data, kt + h * D, D, eps, 0.0f);
        });
      }
      sec.part(ProfOp::kRope, [&] {
        k::rope(qt, H, D, cfg_.rot_dim, pos0 + t, base, fscale, layout, rope_factors_);
        k::rope(kt, Hkv, D, cfg_.rot_dim, pos0 + t, base, fscale, layout, rope_factors_);
        if (cfg_.rope_attn_factor != 1.0f) {  // LongRoPE scales the rotated dims (cos, sin)
          for (int64_t h = 0; h < H; ++h)
            k::scale(qt + h * D, cfg_.rope_attn_factor, qt + h * D, cfg_.rot_dim);
          for (int64_t h = 0; h < Hkv; ++h)
            k::scale(kt + h * D, cfg_.rope_attn_factor, kt + h * D, cfg_.rot_dim);
        }
      });
      sec.part(ProfOp::kKvStore, [&] {  // cache_.reserve(il, pos0, ntok) was called above
        kernel::kv_store_row(cache_.type(), kt, cache_.k(il, pos0 + t), KV);
        kernel::kv_store_row(cache_.type(), vt, cache_.v(il, pos0 + t), KV);
      });
    });
  }
}

// att_ (ntok, q_dim) = attention of q_ over layer il's cached positions, heads split across the
// pool.
void Forward::attend(int64_t il, int64_t ntok, int64_t pos0) {
  const int64_t Q = cfg_.q_dim(), KV = cfg_.kv_dim();
  const int64_t H = cfg_.n_head, Hkv = cfg_.n_head_kv, D = cfg_.head_dim;
  const float* q = q_.data();
  kernel::AttnParams ap;
  ap.n_heads = H;
  ap.n_kv_heads = Hkv;
  ap.head_dim = D;
  ap.q_stride = Q;
  ap.kv_stride = KV;
  ap.kv_type = cache_.type();
  ap.out_stride = Q;
  ap.scale = cfg_.attn_scale;
  ap.window = cfg_.layer_is_swa(il) ? cfg_.sliding_window : 0;
  // Positions relative to the first one the layer holds (0 except on sliding-window layers).
  const int64_t first = cache_.first_pos(il);
  const uint8_t* kc = cache_.k(il, first);
  const uint8_t* vc = cache_.v(il, first);
  float* att = att_.data();
  float* ascratch = attn_scratch_.data();
  const int64_t n_ctx = cache_.n_ctx();
  {
    ProfScope ps(prof_, ProfOp::kAttention);
    // Chunks of whole GQA groups (K/V converted once per group) when there are enough groups
    // for the threads, else single heads; ith picks the running thread's scratch. Positions
    // are relative to the first one the layer holds.
    const int64_t n_chunks = Hkv >= pool_->size() ? Hkv : H;
    const int64_t rel0 = pos0 - first;
    auto heads = [&](int64_t c, int ith) {
      k::attention(ap, q, kc, vc, att, ntok, rel0, H * c / n_chunks, H * (c + 1) / n_chunks,
                   ascratch + ith * n_ctx);
    };
    if (pool_->size() == 1 || 2 * ntok * (rel0 + ntok) * H * D < kInlineWork) {
      k::attention(ap, q, kc, vc, att, ntok, rel0, 0, H, ascratch);
    } else {
      pool_->for_chunks(n_chunks, heads);
    }
  }
}

// x += attention(norm(x)); then xn = ffn_norm(x).
void Forward::attention_block(int64_t il, int64_t ntok, int64_t pos0) {
  const LayerWeights& L = w_.layers[static_cast<size_t>(il)];
  const int64_t E = cfg_.n_embd, Q = cfg_.q_dim();
  const float eps = cfg_.rms_eps;
  float* x = x_.data();
  float* xn = xn_.data();
  {
    ProfScope ps(prof_, ProfOp::kNorm);
    for_tokens(ntok, [&](int64_t t) {
      k::rmsnorm(x + t * E, L.attn_norm.data, xn + t * E, E, eps, 0.0f);
    });
  }
  const MatJob qkv[] = {{&L.wq, q_.data(), ProfOp::kAttnQ},
                        {&L.wk, k_.data(), ProfOp::kAttnK},
                        {&L.wv, v_.data(), ProfOp::kAttnV}};
  matmuls(xn, ntok, E, qkv, 3);
  rope_and_store(il, ntok, pos0);
  attend(il, ntok, pos0);
  float* att = att_.data();
  float* proj = proj_.data();
  const MatJob o[] = {{&L.wo, proj, ProfOp::kAttnOutput}};
  matmuls(att, ntok, Q, o, 1);
  {
    ProfSection sec(prof_);
    for_tokens(ntok, [&](int64_t t) {
      float* pt = proj + t * E;
      if (L.post_attn_norm.data) {
        sec.part(ProfOp::kNorm, [&] { k::rmsnorm(pt, L.post_attn_norm.data, pt, E, eps, 0.0f); });
      }
      sec.part(ProfOp::kAdd, [&] { k::add(x + t * E, pt, x + t * E, E); });
      sec.part(ProfOp::kNorm,
               [&] { k::rmsnorm(x + t * E, L.ffn_norm.data, xn + t * E, E, eps, 0.0f); });
    });
  }
}

// x += down(act(gate(xn), up(xn))).
void Forward::ffn_block(int64_t il, int64_t ntok) {
  const LayerWeights& L = w_.layers[static_cast<size_t>(il)];
  const int64_t E = cfg_.n_embd, F = cfg_.n_ff;
  const float eps = cfg_.rms_eps;
  float* x = x_.data();
  float* xn = xn_.data();
  float* proj = proj_.data();
  float* gate = gate_.data();
  float* up = up_.data();
  const MatJob gu[] = {{&L.gate, gate, ProfOp::kFfnGate}, {&L.up, up, ProfOp::kFfnUp}};
  matmuls(xn, ntok, E, gu, 2);
  {
    ProfScope ps(prof_, ProfOp::kActivation);
    for_tokens(ntok, [&](int64_t t) {
      if (cfg_.gelu) {
        k::geglu(gate + t * F, up + t * F, gate + t * F, F);
      } else {
        k::swiglu(gate + t * F, up + t * F, gate + t * F, F);
      }
    });
  }
  const MatJob d[] = {{&L.down, proj, ProfOp::kFfnDown}};
  matmuls(gate, ntok, F, d, 1);
  {
    ProfSection sec(prof_);
    for_tokens(ntok, [&](int64_t t) {
      float* pt = proj + t * E;
      if (L.post_ffn_norm.data) {
        sec.part(ProfOp::kNorm, [&] { k::rmsnorm(pt, L.post_ffn_norm.data, pt, E, eps, 0.0f); });
      }
      sec.part(ProfOp::kAdd, [&] { k::add(x + t * E, pt, x + t * E, E); });
    });
  }
}

void Forward::layer(int64_t il, int64_t ntok, int64_t pos0) {
  attention_block(il, ntok, pos0);
  ffn_block(il, ntok);
}

void Forward::ubatch(const int32_t* ids, int64_t ntok, float* out, Out what) {
  const int64_t E = cfg_.n_embd;
  const int64_t pos0 = cache_.n_past();
  const Matrix& emb = w_.token_embd;
  float* x = x_.data();
  {
    ProfScope ps(prof_, ProfOp::kEmbedding);
    for_tokens(ntok, [&](int64_t t) {
      matrix_row_f32(emb, ids[t], x + t * E);
      if (cfg_.embd_scale != 1.0f) k::scale(x + t * E, cfg_.embd_scale, x + t * E, E);
    });
  }
  for (int64_t il = 0; il < cfg_.n_layer; ++il) {
    ProfLayer pl(prof_, static_cast<int>(il));
    layer(il, ntok, pos0);
  }
  cache_.set_n_past(pos0 + ntok);
  if (what == Out::kNone) return;
  // Only the rows whose logits are wanted go through the (large) output matmul; hidden
  // states are the normed rows themselves.
  const int64_t first = what == Out::kLastLogits ? ntok - 1 : 0;
  const int64_t nout = ntok - first;
  float* xn = what == Out::kHidden ? out : xn_.data();
  {
    ProfScope ps(prof_, ProfOp::kNorm);
    for_tokens(nout, [&](int64_t t) {
      k::rmsnorm(x + (first + t) * E, w_.output_norm.data, xn + t * E, E, cfg_.rms_eps, 0.0f);
    });
  }
  if (what == Out::kHidden) return;
  const MatJob o[] = {{&w_.output, out, ProfOp::kOutput}};
  matmuls(xn, nout, E, o, 1);
}

void Forward::eval(const int32_t* ids, int64_t n, float* logits, bool all_logits) {
  run(ids, n, logits, !logits ? Out::kNone : all_logits ? Out::kAllLogits : Out::kLastLogits);
}

void Forward::eval_hidden(const int32_t* ids, int64_t n, float* hidden) {
  run(ids, n, hidden, hidden ? Out::kHidden : Out::kNone);
}

void Forward::run(const int32_t* ids, int64_t n, float* out, Out what) {
  if (n <= 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= cfg_.n_vocab) {
      throw ModelError("token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                       " is outside the vocabulary [0, " + std::to_string(cfg_.n_vocab) + ")");
    }
  }
  const int64_t need = cache_.n_past() + n;
  if (need > cache_.n_ctx()) {
    throw ModelError("context full: need " + std::to_string(need) + " positions, have " +
                     std::to_string(cache_.n_ctx()) + " (context size)");
  }
  // Rows each token writes to out: every token's for all-logits / hidden, else only the last
  // micro-batch writes (its last token).
  const int64_t width = what == Out::kHidden ? cfg_.n_embd : cfg_.n_vocab;
  for (int64_t i = 0; i < n; i += n_ubatch_) {
    const int64_t nb = std::min(n_ubatch_, n - i);
    const bool last = i + nb == n;
    if (what == Out::kAllLogits || what == Out::kHidden) {
      ubatch(ids + i, nb, out + i * width, what);
    } else if (what == Out::kLastLogits && last) {
      ubatch(ids + i, nb, out, what);
    } else {
      ubatch(ids + i, nb, nullptr, Out::kNone);
    }
  }
}

}  // namespace hpl
