// Per-architecture hyperparameters from GGUF metadata, with llama.cpp's defaults where a key
// is optional.
#include "engine/model_config.h"

#include <cmath>
#include <string>

namespace hpl {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama:
      return "llama";
    case Arch::kQwen2:
      return "qwen2";
    case Arch::kQwen3:
      return "qwen3";
    case Arch::kGemma3:
      return "gemma3";
    case Arch::kPhi3:
      return "phi3";
    case Arch::kBert:
      return "bert";
  }
  return "?";
}

namespace {

[[noreturn]] void fail(const GgufFile& f, const std::string& what) {
  throw ModelError(f.path() + ": " + what);
}

int64_t positive(const GgufFile& f, const char* key, int64_t v, int64_t max = int64_t{1} << 24) {
  if (v <= 0 || v > max) {
    fail(f, f.resolve(key) + " = " + std::to_string(v) + " is out of range [1, " +
                std::to_string(max) + "]");
  }
  return v;
}

// Gemma 3: every swa_pattern-th layer is global, the rest slide. llama.cpp hard-codes 6; a
// file may say it as an integer or as one bool per layer (true = sliding), which must then
// follow such a pattern.
int64_t read_swa_pattern(const GgufFile& f, int64_t n_layer) {
  const GgufValue* v = f.find("{arch}.attention.sliding_window_pattern");
  if (!v) return 6;
  const std::string key = f.resolve("{arch}.attention.sliding_window_pattern");
  if (v->type != GgufType::ARRAY) {
    const int64_t p = f.i64("{arch}.attention.sliding_window_pattern");
    if (p < 1) fail(f, key + " = " + std::to_string(p) + " must be >= 1");
    return p;
  }
  if (static_cast<int64_t>(v->count) != n_layer || v->elem_type != GgufType::BOOL) {
    fail(f, key + " must be " + std::to_string(n_layer) + " bools (one per layer)");
  }
  for (int64_t p = 1; p <= n_layer + 1; ++p) {
    bool match = true;
    for (int64_t il = 0; il < n_layer && match; ++il) {
      match = (gguf_array_elem(*v, static_cast<uint64_t>(il)).num.u != 0) == ((il + 1) % p != 0);
    }
    if (match) return p;
  }
  fail(f, key +
              ": the sliding layers do not follow an every-N-th-layer-global pattern, the "
              "only one the engine implements");
}

// bert: an encoder whose hyperparameters share only the basic keys with the decoders.
ModelConfig read_bert_config(const GgufFile& f) {
  ModelConfig c;
  c.arch = Arch::kBert;
  c.encoder = true;
  try {
    c.n_embd = positive(f, "{arch}.embedding_length", f.i64("{arch}.embedding_length"));
    c.n_layer = positive(f, "{arch}.block_count", f.i64("{arch}.block_count"), 4096);
    c.n_ff = positive(f, "{arch}.feed_forward_length", f.i64("{arch}.feed_forward_length"));
    c.n_head =
        positive(f, "{arch}.attention.head_count", f.i64("{arch}.attention.head_count"), 4096);
    c.n_head_kv = positive(f, "{arch}.attention.head_count_kv",
                           f.i64_or("{arch}.attention.head_count_kv", c.n_head), 4096);
    c.n_ctx_train = positive(f, "{arch}.context_length", f.i64("{arch}.context_length"));
    c.rms_eps = f.f32_or("{arch}.attention.layer_norm_epsilon", 1e-12f);
    if (f.boolean_or("{arch}.attention.causal", false)) {
      fail(f, "bert.attention.causal is true: a causal bert is not implemented");
    }
    c.n_token_types = f.i64_or("tokenizer.ggml.token_type_count", 0);
  } catch (const GgufError& e) {
    throw ModelError(e.what());
  }
  if (c.n_head_kv != c.n_head) fail(f, "bert with head_count_kv != head_count is not supported");
  if (c.n_embd % c.n_head != 0) {
    fail(f, "embedding_length " + std::to_string(c.n_embd) + " is not a multiple of head_count " +
                std::to_string(c.n_head));
  }
  if (!(c.rms_eps > 0.0f)) fail(f, "bert.attention.layer_norm_epsilon must be > 0");
  c.head_dim = c.n_embd / c.n_head;
  c.rot_dim = c.head_dim;  // unused: positions are learned embeddings
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (const GgufTensor* t = f.tensor("cls.output.weight")) c.n_cls_out = t->n_rows();
  const GgufTensor* emb = f.tensor("token_embd.weight");
  if (!emb) fail(f, "tensor 'token_embd.weight' is missing");
  if (emb->ne[0] != c.n_embd) {
    fail(f, "token_embd.weight has rows of " + std::to_string(emb->ne[0]) +
                ", expected embedding_length " + std::to_string(c.n_embd));
  }
  c.n_vocab = emb->n_rows();
  if (c.n_vocab <= 0 || c.n_vocab > (int64_t{1} << 31) - 1) fail(f, "bad vocabulary size");
  return c;
}

}  // namespace

// long-function: one flat list of hyperparameters, each read and range-checked in the order
// of the GGUF keys; splitting it would only scatter that list.
ModelConfig read_model_config(const GgufFile& f) {
  ModelConfig c;
  const std::string& a = f.architecture();
  if (a == "bert") return read_bert_config(f);
  if (a == "llama") {
    c.arch = Arch::kLlama;
  } else if (a == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (a == "qwen3") {
    c.arch = Arch::kQwen3;
  } else if (a == "gemma3") {
    c.arch = Arch::kGemma3;
  } else if (a == "phi3") {
    c.arch = Arch::kPhi3;
  } else {
    fail(f, "unsupported architecture '" + a +
                "' (supported: llama, qwen2, qwen3, gemma3, phi3, bert)");
  }
  // Keys that change the computation in ways the forward pass does not implement: refused
  // rather than run wrong.
  for (const char* key :
       {"{arch}.attn_logit_softcapping", "{arch}.final_logit_softcapping", "{arch}.expert_count",
        "{arch}.rope.scaling.yarn_log_multiplier", "{arch}.attention.layer_norm_epsilon",
        "{arch}.residual_scale", "{arch}.embedding_scale", "{arch}.logit_scale",
        "{arch}.attention.temperature_length"}) {
    if (f.has(key)) fail(f, f.resolve(key) + " is set, and the engine does not implement it");
  }
  try {
    c.n_embd = positive(f, "{arch}.embedding_length", f.i64("{arch}.embedding_length"));
    c.n_layer = positive(f, "{arch}.block_count", f.i64("{arch}.block_count"), 4096);
    c.n_ff = positive(f, "{arch}.feed_forward_length", f.i64("{arch}.feed_forward_length"));
    c.n_head =
        positive(f, "{arch}.attention.head_count", f.i64("{arch}.attention.head_count"), 4096);
    c.n_head_kv = positive(f, "{arch}.attention.head_count_kv",
                           f.i64_or("{arch}.attention.head_count_kv", c.n_head), 4096);
    if (c.n_embd % c.n_head != 0 && !f.has("{arch}.attention.key_length")) {
      fail(f, "embedding_length " + std::to_string(c.n_embd) + " is not a multiple of head_count " +
                  std::to_string(c.n_head));
    }
    c.head_dim = positive(f, "{arch}.attention.key_length",
                          f.i64_or("{arch}.attention.key_length", c.n_embd / c.n_head), 65536);
    int64_t v_len = f.i64_or("{arch}.attention.value_length", c.head_dim);
    if (v_len != c.head_dim) {
      fail(f, "attention.value_length " + std::to_string(v_len) + " != key_length " +
                  std::to_string(c.head_dim) + " is not supported");
    }
    c.n_ctx_train = f.i64_or("{arch}.context_length", 2048);
    c.rms_eps = f.f32_or("{arch}.attention.layer_norm_rms_epsilon",
                         c.arch == Arch::kGemma3 ? 1e-6f : 1e-5f);
    c.rot_dim = f.i64_or("{arch}.rope.dimension_count", c.head_dim);
    c.rope_base = f.f32_or("{arch}.rope.freq_base", c.arch == Arch::kGemma3 ? 1e6f : 10000.0f);
    std::string scaling = f.str_or("{arch}.rope.scaling.type", "none");
    if (scaling == "linear") {
      float factor = f.f32_or("{arch}.rope.scaling.factor", 1.0f);
      if (!(factor > 0.0f)) fail(f, "rope.scaling.factor must be > 0");
      c.rope_freq_scale = 1.0f / factor;
    } else if (scaling != "none") {
      fail(f, "rope.scaling.type '" + scaling + "' is not supported (none, linear)");
    }
    // llama.cpp's query scale key (Granite, Gemma 3 conversions of ours); default 1/sqrt(hd).
    c.attn_scale =
        f.f32_or("{arch}.attention.scale", 1.0f / std::sqrt(static_cast<float>(c.head_dim)));
    if (!(c.attn_scale > 0.0f)) fail(f, f.resolve("{arch}.attention.scale") + " must be > 0");
    c.rope_attn_factor = f.f32_or("{arch}.rope.scaling.attn_factor", 1.0f);
    if (!(c.rope_attn_factor > 0.0f)) fail(f, "rope.scaling.attn_factor must be > 0");
    c.n_ctx_orig = f.i64_or("{arch}.rope.scaling.original_context_length", c.n_ctx_train);
  } catch (const GgufError& e) {
    throw ModelError(e.what());
  }
  if (c.n_head % c.n_head_kv != 0) {
    fail(f, "head_count " + std::to_string(c.n_head) + " is not a multiple of head_count_kv " +
                std::to_string(c.n_head_kv));
  }
  if (c.rot_dim <= 0 || c.rot_dim > c.head_dim || c.rot_dim % 2 != 0) {
    fail(f, "rope.dimension_count " + std::to_string(c.rot_dim) +
                " must be even and in [2, head_dim = " + std::to_string(c.head_dim) + "]");
  }
  if (!(c.rms_eps > 0.0f) || !(c.rope_base > 0.0f)) {
    fail(f, "layer_norm_rms_epsilon and rope.freq_base must be > 0");
  }
  if (c.arch != Arch::kGemma3) {
    for (const char* key :
         {"{arch}.attention.sliding_window", "{arch}.attention.sliding_window_pattern"}) {
      if (f.has(key))
        fail(f, f.resolve(key) +
                    ": sliding-window attention is only implemented for gemma3 (and phi3, every "
                    "layer)");
    }
  }
  if (c.rope_attn_factor != 1.0f && c.arch != Arch::kPhi3) {
    fail(f, "rope.scaling.attn_factor is only implemented for phi3");
  }

  switch (c.arch) {
    case Arch::kLlama:
    case Arch::kBert:  // read by read_bert_config
      break;
    case Arch::kQwen2:
      c.neox_rope = true;
      c.qkv_bias = true;
      break;
    case Arch::kQwen3:
      c.neox_rope = true;
      c.qk_norm = true;
      break;
    case Arch::kPhi3:
      c.neox_rope = true;
      // Phi-3 slides every layer when a window is set (Phi-3-mini-4k: 2047), same RoPE.
      c.sliding_window = f.i64_or("{arch}.attention.sliding_window", 0);
      if (c.sliding_window < 0) fail(f, "phi3.attention.sliding_window must be >= 0");
      c.swa_pattern = c.n_layer + 1;
      c.rope_base_swa = c.rope_base;
      break;
    case Arch::kGemma3:
      c.neox_rope = true;
      c.gelu = true;
      c.qk_norm = true;
      c.post_norms = true;
      c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
      c.sliding_window = f.i64_or("{arch}.attention.sliding_window", 0);
      if (c.sliding_window < 0) fail(f, "gemma3.attention.sliding_window must be >= 0");
      c.swa_pattern = read_swa_pattern(f, c.n_layer);
      // Sliding layers keep the original base (llama.cpp: rope_freq_base_train_swa).
      c.rope_base_swa = f.f32_or("{arch}.rope.freq_base_swa", 10000.0f);
      if (!(c.rope_base_swa > 0.0f)) fail(f, "gemma3.rope.freq_base_swa must be > 0");
      // query_pre_attn_scalar is head_dim for every Gemma 3 size except 27B (n_embd / n_head);
      // llama.cpp's files carry no key for it, ours write gemma3.attention.scale.
      if (!f.has("{arch}.attention.scale") && c.n_embd == 5376 && c.n_layer == 62) {
        c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.n_embd / c.n_head));
      }
      break;
  }

  const GgufTensor* emb = f.tensor("token_embd.weight");
  if (!emb) fail(f, "tensor 'token_embd.weight' is missing");
  if (emb->ne[0] != c.n_embd) {
    fail(f, "token_embd.weight has rows of " + std::to_string(emb->ne[0]) +
                ", expected embedding_length " + std::to_string(c.n_embd));
  }
  c.n_vocab = emb->n_rows();
  if (c.n_vocab <= 0 || c.n_vocab > (int64_t{1} << 31) - 1) fail(f, "bad vocabulary size");
  return c;
}

}  // namespace hpl
