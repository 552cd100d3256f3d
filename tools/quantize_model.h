// Whole-model quantization GGUF -> GGUF (`hpl quantize`): per-tensor type choice by role
// (the K-quant "_M" mixes), requantization of any dequantizable input type, row-range
// threading, streaming output through GgufWriter.
//
// Type choice for a tensor (plan_tensor):
//   - 1-D tensors (norms, biases), tensors not named *.weight, and small matrices
//     (< kMinQuantElems elements) stay / become F32;
//   - q8_0, q4_0: that type for every other tensor;
//   - q6_k: Q6_K everywhere;
//   - q4_k_m (q5_k_m): Q6_K for output.weight (token_embd.weight when there is no
//     output.weight, i.e. tied embeddings), Q6_K for attn_v and ffn_down of the "more
//     important" layers (important_layer), Q4_K (Q5_K) for everything else;
//   - rows (ne[0]) not a multiple of 256 cannot hold K-quant super-blocks: Q4_K -> Q5_0,
//     Q5_K -> Q5_0, Q6_K -> Q8_0 (32-element blocks, at least as many bits); rows not a
//     multiple of 32 -> F16. Each fallback is reported in the plan's note.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "kernel/types.h"

namespace hpl {

enum class QuantMix { kQ8_0, kQ4_0, kQ4_K_M, kQ5_K_M, kQ6_K };

// "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k" (case-insensitive); false when unknown.
bool parse_quant_mix(std::string_view s, QuantMix* out);
const char* quant_mix_name(QuantMix m);
// general.file_type as llama.cpp numbers it (LLAMA_FTYPE_MOSTLY_*).
uint32_t quant_mix_file_type(QuantMix m);

constexpr int64_t kMinQuantElems = 4096;  // smaller matrices are not worth block scales

// Layers that get more bits in the _M mixes: the first and last ceil(n/8) layers (where
// quantization error is least absorbed by the rest of the network), and every third layer of
// the middle starting with the third one: i < e || i >= n - e || (i - e) % 3 == 2 with
// e = ceil(n / 8). n = 22: 0-2, 5, 8, 11, 14, 17, 19-21. (llama.cpp's use_more_bits uses
// floor(n / 8) and 7n/8; same idea.)
bool important_layer(int64_t layer, int64_t n_layers);

struct TensorPlan {
  DType type;        // output type
  std::string note;  // why, when it is not the mix's base choice ("" otherwise)
};
// n_layers: the model's block count (for important_layer).
TensorPlan plan_tensor(QuantMix mix, const GgufTensor& t, bool has_output, int64_t n_layers);

struct QuantizeOptions {
  int n_threads = 1;
  // One line per tensor, and the summary (stderr in the CLI). May be empty.
  std::function<void(const std::string&)> log;
};

struct QuantizeResult {
  uint64_t in_file_bytes = 0, out_file_bytes = 0;
  uint64_t in_tensor_bytes = 0, out_tensor_bytes = 0;
  int n_quantized = 0, n_fallback = 0, n_kept = 0;
  double seconds = 0;
};

// Reads in_path, writes out_path (via out_path.tmp, renamed at the end: a failure leaves no
// output). Throws GgufError / std::runtime_error naming the file and tensor on bad input, and
// before any work when out_path (or out_path.tmp) is the input file by identity (device +
// inode: "./x", "d//x", absolute paths, symlinks, hard links) or is a directory.
QuantizeResult quantize_model(const std::string& in_path, const std::string& out_path, QuantMix mix,
                              const QuantizeOptions& opt);

// Throws std::runtime_error when out_path (or out_path.tmp) is the input file by identity, or
// is a directory: the checks every GGUF -> GGUF tool makes before any work.
void check_output_path(const std::string& in_path, const std::string& out_path);

}  // namespace hpl
