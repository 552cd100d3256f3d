// Hyperparameters of a model, read from GGUF metadata per architecture and validated, so the
// forward pass can trust every number in here.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "gguf/gguf.h"

namespace hpl {

class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Arch { kLlama, kQwen2, kQwen3, kGemma3, kPhi3, kBert };
const char* arch_name(Arch a);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // key_length; value_length must be equal
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;           // bert: the LayerNorm epsilon
  int64_t rot_dim = 0;             // rope.dimension_count (<= head_dim)
  float rope_base = 10000.0f;      // global layers
  float rope_base_swa = 10000.0f;  // sliding-window layers (gemma3)
  float rope_freq_scale = 1.0f;    // 1 / rope.scaling.factor (linear), global layers only
  float rope_attn_factor = 1.0f;   // phi3 LongRoPE: rotated dims of q and k are scaled by it
  int64_t n_ctx_orig = 0;          // phi3: contexts above it use rope_factors_long, else short
  int64_t sliding_window = 0;      // 0 = no sliding-window layers
  int64_t swa_pattern = 0;         // layer il is sliding when (il + 1) % swa_pattern != 0
  float attn_scale = 0.0f;         // q.k scale
  float embd_scale = 1.0f;         // token embedding multiplier (gemma3: sqrt(n_embd))
  bool neox_rope = false;          // qwen2, gemma3 rotate (x[i], x[i + d/2])
  bool gelu = false;               // GeGLU (gemma3) instead of SwiGLU
  bool qk_norm = false;            // RMSNorm of q and k per head (qwen3, gemma3)
  bool qkv_bias = false;           // q, k, v biases (qwen2)
  bool post_norms = false;         // post-attention and post-FFN RMSNorm (gemma3)
  // bert (an encoder: bidirectional attention, LayerNorm, GELU FFN, learned positions)
  bool encoder = false;
  int64_t n_token_types = 0;  // rows of token_types.weight (0: none)
  int64_t n_cls_out = 0;      // outputs of the classification head (0: no head)

  bool layer_is_swa(int64_t il) const {
    return sliding_window > 0 && swa_pattern > 0 && (il + 1) % swa_pattern != 0;
  }
  float layer_rope_base(int64_t il) const { return layer_is_swa(il) ? rope_base_swa : rope_base; }
  float layer_rope_scale(int64_t il) const { return layer_is_swa(il) ? 1.0f : rope_freq_scale; }
  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Reads and validates the hyperparameters; n_vocab comes from token_embd.weight. Throws
// ModelError naming the file and the key on a missing or inconsistent value.
ModelConfig read_model_config(const GgufFile& f);

}  // namespace hpl
