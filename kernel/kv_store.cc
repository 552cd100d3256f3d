#include "kernel/kv_store.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernel/ops.h"

namespace hpl::kernel {
namespace {

// Q4_0 as ggml rounds it: the element of largest magnitude maps to -8, d = it / -8,
// q = round(x / d) + 8 clamped to [0, 15].
void quantize_q4_0_nearest(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK4_0) {
    float amax = 0.0f, m = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        m = x[j];
      }
    }
    const f16_t dh = fp32_to_fp16(m / -8.0f);
    const float d = fp16_to_fp32(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
    auto q = [&](float v) {
      const int r = static_cast<int>(std::lround(v * id)) + 8;
      return static_cast<uint8_t>(r < 0 ? 0 : r > 15 ? 15 : r);
    };
    y[i].d = dh;
    for (int j = 0; j < kQK4_0 / 2; ++j)
      y[i].qs[j] = static_cast<uint8_t>(q(x[j]) | q(x[j + kQK4_0 / 2]) << 4);
  }
}

}  // namespace

void kv_store_row(DType t, const float* x, void* y, int64_t n) {
  const int64_t blk = attn_kv_supported(t) ? type_traits(t).block_elems : 0;
  if (blk == 0 || n < 0 || n % blk != 0) {
    throw std::invalid_argument(std::string("kv_store_row: type ") + type_name(t) + ", n = " +
                                std::to_string(n) + " (f32, f16, q8_0, q4_0; n a block multiple)");
  }
  switch (t) {
    case DType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::F16:
      best::fp32_to_fp16_row(x, static_cast<f16_t*>(y), n);
      break;
    case DType::Q8_0:
      best::quantize_act_row(DType::Q8_0, x, y, n);
      break;
    default:
      quantize_q4_0_nearest(x, static_cast<BlockQ4_0*>(y), n / kQK4_0);
      break;
  }
}

}  // namespace hpl::kernel
