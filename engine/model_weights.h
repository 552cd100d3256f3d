// Model tensors by role, shape-checked against the config. Weights are used in place from
// the GGUF mapping; only tensors the kernels cannot use directly (rows quantized flat across
// row boundaries, types matmul does not support, non-F32 norm vectors) are converted to F32
// once at load, and that memory is reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "gguf/gguf.h"
#include "kernel/types.h"

namespace hpl {

// W (rows, cols): rows of `type`, row_stride bytes apart.
struct Matrix {
  std::string name;
  DType type = DType::F32;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_stride; }
};

// v (n,) in F32: norm weights and biases.
struct Vector {
  const float* data = nullptr;
  int64_t n = 0;
};

struct LayerWeights {
  Vector attn_norm;       // (n_embd,)
  Matrix wq, wk, wv;      // (q_dim | kv_dim, n_embd); phi3: row ranges of one fused attn_qkv
  Vector bq, bk, bv;      // qwen2 biases, else empty
  Vector q_norm, k_norm;  // qwen3, gemma3 (head_dim,), else empty
  Matrix wo;              // (n_embd, q_dim)
  Vector post_attn_norm;  // gemma3 (n_embd,)
  Vector ffn_norm;        // (n_embd,)
  Matrix gate, up;        // (n_ff, n_embd); phi3: the two halves of one fused ffn_up
  Matrix down;            // (n_embd, n_ff)
  Vector post_ffn_norm;   // gemma3 (n_embd,)
  // bert: post-LN after attention (attn_output_norm) and after the FFN (layer_output_norm)
  // in post_attn_norm / post_ffn_norm with these biases; wo, up, down biases.
  Vector post_attn_norm_b, post_ffn_norm_b;
  Vector bo, b_up, b_down;
};

struct ModelWeights {
  Matrix token_embd;  // (n_vocab, n_embd)
  Vector output_norm;
  Matrix output;  // (n_vocab, n_embd); token_embd when tied
  bool tied_output = false;
  // RoPE frequency divisors (rot_dim / 2,), empty when absent: llama's rope_freqs (Llama 3.x
  // scaling), phi3's rope_factors_long / _short (LongRoPE; which one depends on the context).
  Vector rope_freqs, rope_long, rope_short;
  std::vector<LayerWeights> layers;
  // bert: learned positions (n_ctx_train, n_embd), token types (n_token_types, n_embd) or
  // empty, the LayerNorm of the summed embeddings, and the classification head: pooler dense
  // `cls` (n_embd, n_embd) + tanh, then `cls.output` (n_cls_out, n_embd); empty when absent.
  Matrix pos_embd, type_embd;
  Vector embd_norm, embd_norm_b;
  Matrix cls, cls_out;
  Vector cls_b, cls_out_b;

  size_t mapped_bytes = 0;                      // tensor bytes used in place from the mapping
  size_t converted_bytes = 0;                   // F32 copies made at load (see converted)
  std::vector<std::string> converted;           // names of the tensors copied, with the reason
  std::vector<std::unique_ptr<float[]>> owned;  // storage of the converted tensors
  std::vector<std::string> warnings;            // tensors present but not used (output may differ)
  // Matrices moved into a packed layout at load (engine/repack_weights.h); their mapped pages
  // were released.
  size_t packed_bytes = 0;
  std::vector<std::string> packed;  // "name (q4_0 -> q4_0x8)"
  std::vector<std::unique_ptr<uint8_t[]>> packed_storage;
  // A packed file (`hpl pack`): matrices stored packed and used in place from the mapping, and
  // those unpacked to the heap at load (HPL_REPACK=0, or a body without a kernel for the
  // type; their mapped pages were released; storage in packed_storage).
  size_t prepacked_bytes = 0;
  size_t unpacked_bytes = 0;
  std::vector<std::string> unpacked;  // "name (q4_Kx8 -> q4_K: why)"
};

// Row r of m as f32 (n = m.cols): dequantizes the row in place, or for a packed matrix
// gathers it from its interleaved group first (embedding lookups of a packed tied output).
void matrix_row_f32(const Matrix& m, int64_t r, float* out);

// Bytes of weights one decode token reads: every matmul weight (layers and output) and the
// norm vectors, plus one embedding row.
size_t weight_bytes_per_token(const ModelWeights& w);

// Looks every tensor up by role and checks its shape and type; throws ModelError naming the
// file and the tensor on a missing tensor, a wrong shape or an unsupported type.
// count_only: the same checks and byte counts (mapped_bytes, converted_bytes, converted) but
// nothing is converted, so converted tensors have no data: for memory estimates.
ModelWeights load_model_weights(const GgufFile& f, const ModelConfig& c, bool count_only = false);

}  // namespace hpl
