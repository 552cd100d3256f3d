// Splits the rows of a few matrices that one dispatch computes (e.g. fused q/k/v) into chunks
// for ThreadPool::for_chunks. Sized by weight bytes, not rows (rows of different types cost
// what they read): matrix j gets about its share of the bytes of `want` chunks, each a range of
// whole grain-row blocks (grain: a multiple of the matmul kernels' row tile), never crossing
// matrices. Any split gives the same bits, since a row's result does not depend on the range
// it is computed in. No allocation: at most kMaxJobs matrices.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace hpl::kernel {

class RowChunks {
 public:
  static constexpr int kMaxJobs = 4;
  struct Range {
    int job;
    int64_t r0, r1;  // rows [r0, r1) of matrix job; never empty
  };

  // rows[j], row_bytes[j]: matrix j's row count and bytes per row (j < n_jobs <= kMaxJobs).
  RowChunks(const int64_t* rows, const size_t* row_bytes, int n_jobs, int64_t grain, int64_t want)
      : n_jobs_(std::clamp(n_jobs, 0, kMaxJobs)), grain_(grain < 1 ? 1 : grain) {
    double total = 0;
    for (int j = 0; j < n_jobs_; ++j) total += double(row_bytes[j]) * double(rows[j]);
    first_[0] = 0;
    for (int j = 0; j < n_jobs_; ++j) {
      rows_[j] = rows[j] < 0 ? 0 : rows[j];
      blocks_[j] = (rows_[j] + grain_ - 1) / grain_;
      const double share = total > 0 ? double(row_bytes[j]) * double(rows_[j]) / total : 1.0;
      const int64_t nc = std::clamp<int64_t>(std::llround(share * double(want)), 1,
                                             blocks_[j] > 0 ? blocks_[j] : 1);
      first_[j + 1] = first_[j] + (blocks_[j] > 0 ? nc : 0);
    }
  }

  int64_t count() const { return first_[n_jobs_]; }

  Range operator[](int64_t c) const {
    int j = 0;
    while (c >= first_[j + 1]) ++j;
    const int64_t nc = first_[j + 1] - first_[j], i = c - first_[j];
    const int64_t r0 = blocks_[j] * i / nc * grain_;
    const int64_t r1 = std::min(rows_[j], blocks_[j] * (i + 1) / nc * grain_);
    return {j, r0, r1};
  }

 private:
  int n_jobs_;
  int64_t grain_;
  int64_t rows_[kMaxJobs] = {};
  int64_t blocks_[kMaxJobs] = {};
  int64_t first_[kMaxJobs + 1] = {};
};

}  // namespace hpl::kernel
