// Compute ops: one signature (matmul.inc, ops.inc), a body per ISA (kernel/isa.h). `ref` is
// the scalar specification; `best` calls the body chosen at load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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
  int64_t q_stride = 0;        // floats between consecutive tokens in q
  int64_t kv_stride = 0;       // elements between consecutive positions in k and v
  DType kv_type = DType::F16;  // K/V row format: F32, F16, Q8_0 or Q4_0 (attn_kv_supported)
  int64_t out_stride = 0;      // floats between consecutive tokens in out
  float scale = 1.0f;          // usually 1/sqrt(head_dim)
  int64_t window = 0;          // sliding window: position p sees keys (p - window, p]; 0 = none
};

// Activation format that weights of type w are dotted with: Q8_K for K-quants, Q8_0 for the
// 32-element formats, F32 for F32/F16/BF16.
DType vec_dot_type(DType w);

// Whether attention reads K/V rows of type t (F32, F16, Q8_0, Q4_0).
bool attn_kv_supported(DType t);

// Whether matmul supports weights of type w.
bool matmul_supported(DType w);

// W rows [r0, r1) @ X (ntok, n) for one weight type (arguments as matmul's, checked by it).
using MatmulFn = void (*)(const void* w, size_t w_stride, const void* xq, size_t x_stride, float* y,
                          size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok);

// One weight type on one body: the table matmul dispatches through (no switch per function).
struct WeightKernels {
  DType type = DType::F32;
  DType act = DType::F32;      // activation format: vec_dot_type(type)
  MatmulFn gemv = nullptr;     // ntok == 1 (decode)
  MatmulFn gemm = nullptr;     // ntok >= 2 (prefill)
  const char* gemm_tile = "";  // what the gemm's register tile is, for `hpl info`
};

namespace ref {
#include "kernel/matmul.inc"
#include "kernel/ops.inc"
}  // namespace ref
#if HPL_X86_64
namespace avx2 {
#include "kernel/matmul.inc"
#include "kernel/ops.inc"
}  // namespace avx2
namespace avxvnni {
#include "kernel/matmul.inc"
}  // namespace avxvnni
namespace avx512vnni {
#include "kernel/matmul.inc"
}  // namespace avx512vnni
#endif
#if HPL_ARM64
namespace neon {
#include "kernel/matmul.inc"
#include "kernel/ops.inc"
}  // namespace neon
namespace dotprod {
#include "kernel/matmul.inc"
}  // namespace dotprod
namespace i8mm {
#include "kernel/matmul.inc"
}  // namespace i8mm
#endif

// Every op, once: the table of one body is an Ops, and `best` forwards to the active one.
// clang-format off
#define HPL_OPS(X) \
  X(quantize_act_row) \
  X(matmul) \
  X(weight_kernels) \
  X(rmsnorm) \
  X(rope) \
  X(softmax) \
  X(silu) \
  X(gelu_tanh) \
  X(swiglu) \
  X(geglu) \
  X(add) \
  X(mul) \
  X(scale) \
  X(fp32_to_fp16_row) \
  X(fp16_to_fp32_row) \
  X(attention) \
  X(layernorm) \
  X(gelu_erf)
// clang-format on

// The ops of one body; a body that only brings a matmul (avxvnni, dotprod, ...) takes the
// others from isa_parent.
struct Ops {
  Isa isa;
#define HPL_OPS_MEMBER(f) decltype(&ref::f) f;
  HPL_OPS(HPL_OPS_MEMBER)
#undef HPL_OPS_MEMBER
};

// The table of body `isa` (std::invalid_argument when this binary does not hold it).
const Ops& ops(Isa isa);
// The table of active_isa().
const Ops& ops();

// What matmul runs for weights of type wt on the active body, for `hpl info` / --verbose:
// e.g. "avx512vnni (gemv 1 row x 4 tokens, gemm 1 row x 4 tokens)"; "" when unsupported.
std::string matmul_path(DType wt);

// The body chosen at load (kernel/isa.h): every call goes through ops().
namespace best {
#define HPL_OPS_FORWARD(f)                  \
  template <typename... A>                  \
  inline auto f(A&&... a) {                 \
    return ops().f(static_cast<A&&>(a)...); \
  }
HPL_OPS(HPL_OPS_FORWARD)
#undef HPL_OPS_FORWARD
}  // namespace best

}  // namespace hpl::kernel
