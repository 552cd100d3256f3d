#include "tools/compute_peak.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel/ops.h"
#include "kernel/types.h"

namespace hpl {

namespace {

constexpr int64_t kTok = 32;  // gemm width: weights reused across tokens, as in a prefill

// Ops per second of W (rows, n) of type wt @ X (kTok, n) on every pool thread.
double gemm_rate(kernel::ThreadPool& pool, DType wt, int64_t rows, int64_t n, double seconds,
                 int reps) {
  const size_t w_stride = row_bytes(wt, n);
  std::vector<uint8_t> w(w_stride * rows);
  if (wt == DType::Q8_0) {  // scale 1.0 (f16 0x3c00; no denormals), quants 1..7
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(1 + i % 7);
    for (size_t b = 0; b < w.size(); b += sizeof(BlockQ8_0)) {
      w[b] = 0x00;
      w[b + 1] = 0x3c;
    }
  } else {
    std::vector<float> f(w.size() / sizeof(float), 0.25f);
    std::memcpy(w.data(), f.data(), w.size());
  }
  const DType at = kernel::vec_dot_type(wt);
  const size_t x_stride = at == DType::F32 ? n * sizeof(float) : row_bytes(at, n);
  std::vector<float> xf(static_cast<size_t>(n), 0.5f);
  std::vector<uint8_t> xq(x_stride * kTok);
  for (int64_t t = 0; t < kTok; ++t) {
    if (at == DType::F32) {
      std::memcpy(xq.data() + t * x_stride, xf.data(), x_stride);
    } else {
      kernel::best::quantize_act_row(at, xf.data(), xq.data() + t * x_stride, n);
    }
  }
  const int nth = pool.size();
  std::vector<std::vector<float>> y(nth, std::vector<float>(static_cast<size_t>(kTok * rows)));
  auto pass = [&](int64_t iters) {
    pool.run([&](int ith, int) {
      for (int64_t i = 0; i < iters; ++i)
        kernel::best::matmul(wt, w.data(), w_stride, xq.data(), x_stride, y[ith].data(),
                             static_cast<size_t>(rows), n, 0, rows, kTok);
    });
  };
  using clk = std::chrono::steady_clock;
  auto time = [&](int64_t iters) {
    const auto t0 = clk::now();
    pass(iters);
    return std::chrono::duration<double>(clk::now() - t0).count();
  };
  // Calibrate the iteration count to about `seconds` per pass.
  int64_t iters = 1;
  double s = time(iters);
  while (s < seconds / 4 && iters < (int64_t{1} << 30)) {
    iters *= 2;
    s = time(iters);
  }
  iters = std::max<int64_t>(1, static_cast<int64_t>(iters * seconds / std::max(s, 1e-9)));
  const double ops = 2.0 * rows * n * kTok * iters * nth;
  double best = 0;
  for (int r = 0; r < std::max(1, reps); ++r) best = std::max(best, ops / time(iters));
  return best;
}

}  // namespace

ComputePeak measure_compute_peak(kernel::ThreadPool& pool, double seconds, int reps) {
  ComputePeak p;
  p.int8_ops_per_s = gemm_rate(pool, DType::Q8_0, 256, 1024, seconds, reps);  // 272 KiB
  p.f32_ops_per_s = gemm_rate(pool, DType::F32, 64, 1024, seconds, reps);     // 256 KiB
  return p;
}

}  // namespace hpl
