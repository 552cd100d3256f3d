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
    case Arch::kGemma3:
      return "gemma3";
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

}  // namespace

// long-function: one flat list of hyperparameters, each read and range-checked in the order
// of the GGUF keys; splitting it would only scatter that list.
ModelConfig read_model_config(const GgufFile& f) {
  ModelConfig c;
  const std::string& a = f.architecture();
  if (a == "llama") {
    c.arch = Arch::kLlama;
  } else if (a == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (a == "gemma3") {
    c.arch = Arch::kGemma3;
  } else {
    fail(f, "unsupported architecture '" + a + "' (supported: llama, qwen2, gemma3)");
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
      fail(f, "rope.scaling.type '" + scaling + "' is not supported");
    }
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
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  switch (c.arch) {
    case Arch::kLlama:
      break;
    case Arch::kQwen2:
      c.neox_rope = true;
      break;
    case Arch::kGemma3:
      c.neox_rope = true;
      c.gelu = true;
      c.qk_norm = true;
      c.post_norms = true;
      c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
      c.sliding_window = f.i64_or("{arch}.attention.sliding_window", 0);
      if (c.sliding_window < 0) fail(f, "gemma3.attention.sliding_window must be >= 0");
      c.swa_pattern = 6;  // 5 sliding layers, then 1 global (Gemma 3)
      // Sliding layers keep the original base (llama.cpp: rope_freq_base_train_swa).
      c.rope_base_swa = f.f32_or("{arch}.rope.freq_base_swa", 10000.0f);
      if (!(c.rope_base_swa > 0.0f)) fail(f, "gemma3.rope.freq_base_swa must be > 0");
      // query_pre_attn_scalar is head_dim for every Gemma 3 size except 27B (n_embd / n_head).
      if (c.n_embd == 5376 && c.n_layer == 62) {
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
