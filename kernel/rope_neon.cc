// Rotary position embedding, NEON body: cos/sin tables per block of pairs (shared by all heads),
// then y0 = x0 c - x1 s, y1 = x0 s + x1 c on 4 lanes.
#include "kernel/isa.h"
#if HPL_HAVE_NEON
#include "kernel/op_checks.h"
#include "kernel/ops.h"
#include "kernel/rope_common.h"
#include "kernel/simd_neon.h"

namespace hpl::kernel::neon {
namespace {

struct RopeNeon {
  static constexpr int64_t kLanes = 4;
  // 4 pairs (x0[j], x1[j]).
  static void neox(float* x0, float* x1, const float* c, const float* s) {
    float32x4_t a = vld1q_f32(x0), b = vld1q_f32(x1);
    float32x4_t cv = vld1q_f32(c), sv = vld1q_f32(s);
    vst1q_f32(x0, vfmsq_f32(vmulq_f32(a, cv), b, sv));
    vst1q_f32(x1, vfmaq_f32(vmulq_f32(b, cv), a, sv));
  }
  // 2 adjacent pairs: x c + swap(x) (-s, +s).
  static void adjacent(float* xp, const float* cd, const float* sa) {
    float32x4_t v = vld1q_f32(xp);
    float32x4_t sw = vrev64q_f32(v);  // (x1, x0) in each pair
    vst1q_f32(xp, vfmaq_f32(vmulq_f32(v, vld1q_f32(cd)), sw, vld1q_f32(sa)));
  }
};

}  // namespace

// x (n_heads, head_dim) in place, first rot_dim dims of each head.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeLayout layout, const float* freq_factors) {
  check::rope(n_heads, head_dim, rot_dim);
  rope_detail::rope_blocks<RopeNeon>(x, n_heads, head_dim, rot_dim, pos, freq_base, freq_scale,
                                     layout, freq_factors);
}

}  // namespace hpl::kernel::neon
#endif  // HPL_HAVE_NEON
