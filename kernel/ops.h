// Compute ops: one signature (ops.inc), three bodies. `ref` is the scalar specification;
// `avx2` / `neon` exist when the target has them; `best` names the one to call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernel/isa.h"
#include "kernel/types.h"

namespace hpl::kernel {

enum class RopeLayout {
  kNormal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama GGUF layout
  kNeox,    // rotate (x[i], x[i + rot_dim/2]): qwen2, gemma3, HF rotate-half
};

struct AttnParams {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // n_heads % n_kv_heads == 0; query head h reads kv head h / group
  int64_t head_dim = 0;
  int64_t q_stride = 0;    // floats between consecutive tokens in q
  int64_t kv_stride = 0;   // f16 elements between consecutive positions in k and v
  int64_t out_stride = 0;  // floats between consecutive tokens in out
  float scale = 1.0f;      // usually 1/sqrt(head_dim)
  int64_t window = 0;      // sliding window: position p sees keys (p - window, p]; 0 = none
};

// Activation format that weights of type w are dotted with: Q8_K for K-quants, Q8_0 for the
// 32-element formats, F32 for F32/F16/BF16.
DType vec_dot_type(DType w);

// Whether matmul supports weights of type w.
bool matmul_supported(DType w);

namespace ref {
#include "kernel/ops.inc"
}  // namespace ref
#if HPL_HAVE_AVX2
namespace avx2 {
#include "kernel/ops.inc"
}  // namespace avx2
namespace best = avx2;
#elif HPL_HAVE_NEON
namespace neon {
#include "kernel/ops.inc"
}  // namespace neon
namespace best = neon;
#else
namespace best = ref;
#endif

}  // namespace hpl::kernel
