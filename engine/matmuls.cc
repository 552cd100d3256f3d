// MatmulRunner: the batched weight matmuls of engine/matmuls.h.
#include "engine/matmuls.h"

#include <string>

#include "kernel/ops.h"
#include "kernel/quant.h"
#include "kernel/row_chunks.h"

namespace hpl {

namespace k = kernel::best;

namespace {
constexpr int64_t kRowGrain = 8;  // matmul row ranges start at multiples of this
}  // namespace

size_t act_q8_0_bytes(int64_t ntok, int64_t n) {
  return static_cast<size_t>(ntok) * static_cast<size_t>((n + kQK8_0 - 1) / kQK8_0) *
         sizeof(BlockQ8_0);
}
size_t act_q8_k_bytes(int64_t ntok, int64_t n) {
  return static_cast<size_t>(ntok) * static_cast<size_t>((n + kQKK - 1) / kQKK) * sizeof(BlockQ8_K);
}

MatmulRunner::MatmulRunner(kernel::ThreadPool& pool, int64_t max_tok, int64_t max_n)
    : pool_(pool),
      xq8_0_(act_q8_0_bytes(max_tok, max_n), 0),
      xq8_k_(act_q8_k_bytes(max_tok, max_n), 0) {}

void MatmulRunner::run(const float* x, int64_t ntok, int64_t n, const MatJob* jobs, int n_jobs,
                       int64_t width_hint, Profiler* prof) {
  // Quantize x once for each activation format the jobs need (F32 is used as is).
  bool need8_0 = false, need8_k = false;
  int64_t total_rows = 0;
  for (int j = 0; j < n_jobs; ++j) {
    DType vt = kernel::vec_dot_type(jobs[j].w->type);
    need8_0 |= vt == DType::Q8_0;
    need8_k |= vt == DType::Q8_K;
    total_rows += jobs[j].w->rows;
  }
  const size_t s8_0 = row_bytes(DType::Q8_0, n - n % kQK8_0);
  const size_t s8_k = row_bytes(DType::Q8_K, n - n % kQKK);
  auto quantize = [&](int64_t t) {
    if (need8_0) k::quantize_act_row(DType::Q8_0, x + t * n, xq8_0_.data() + t * s8_0, n);
    if (need8_k) k::quantize_act_row(DType::Q8_K, x + t * n, xq8_k_.data() + t * s8_k, n);
  };
  if (need8_0 || need8_k) {
    ProfScope ps(prof, ProfOp::kQuantizeAct);
    for_rows(pool_, ntok, width_hint, quantize);
  }

  // The jobs' rows in chunks, sized by weight bytes, that threads claim one at a time (see
  // ThreadPool and RowChunks): a slow or preempted core costs at most one chunk.
  ProfSection sec(prof);
  if (n_jobs > kernel::RowChunks::kMaxJobs) throw ModelError("matmuls: too many jobs");
  int64_t rows[kernel::RowChunks::kMaxJobs];
  size_t strides[kernel::RowChunks::kMaxJobs];
  for (int j = 0; j < n_jobs; ++j) {
    rows[j] = jobs[j].w->rows;
    strides[j] = jobs[j].w->row_stride;
  }
  // Too small to pay for a dispatch: one chunk per job, on this thread.
  const bool serial = pool_.size() == 1 || total_rows * n * ntok < kInlineWork;
  const kernel::RowChunks chunks(
      rows, strides, n_jobs, kRowGrain,
      serial ? 1 : int64_t{pool_.size()} * kernel::ThreadPool::kChunksPerThread);
  auto chunk = [&](int64_t c, int) {
    const auto [j, r0, r1] = chunks[c];
    const Matrix& W = *jobs[j].w;
    const DType vt = kernel::vec_dot_type(W.type);
    const void* xq = x;
    size_t xs = static_cast<size_t>(n) * sizeof(float);
    if (vt == DType::Q8_0) {
      xq = xq8_0_.data();
      xs = s8_0;
    } else if (vt == DType::Q8_K) {
      xq = xq8_k_.data();
      xs = s8_k;
    }
    sec.part(jobs[j].op,
             [&] {
               k::matmul(W.type, W.data, W.row_stride, xq, xs, jobs[j].y,
                         static_cast<size_t>(W.rows), n, r0, r1, ntok);
             },
             {type_name(W.type), W.rows, n, ntok, r0, r1});
  };
  if (serial) {
    for (int64_t c = 0; c < chunks.count(); ++c) chunk(c, 0);
  } else {
    pool_.for_chunks(chunks.count(), chunk);
  }
}

}  // namespace hpl
