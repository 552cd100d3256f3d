#include "engine/repack_weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernel/ops.h"
#include "kernel/repack.h"

namespace hpl {
namespace {

// Drops the whole pages of [p, p + bytes) from the process (a private read-only file mapping:
// they would be read from the file again if touched, which nothing does after the repack).
void release_mapped(const uint8_t* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

// Repacks m into a heap copy, kChunkRows rows at a time, releasing each chunk's mapped pages
// once copied, so the load's peak holds the whole matrix only once (plus one chunk).
void repack_matrix(Matrix& m, ModelWeights& w, const char* note = "") {
  const DType packed = kernel::packed_type(m.type);
  if (packed == m.type || m.data == nullptr) return;
  if (kernel::ops().weight_kernels(packed) == nullptr) return;  // the body has no tile for it
  if (m.rows % kernel::kPackRows != 0 || m.cols % 32 != 0 ||
      m.row_stride != row_bytes(m.type, m.cols)) {
    return;
  }
  constexpr int64_t kChunkRows = 1024;  // a multiple of kPackRows
  const size_t bytes = m.row_stride * static_cast<size_t>(m.rows);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[bytes]);
  for (int64_t r = 0; r < m.rows; r += kChunkRows) {
    const int64_t n = std::min(kChunkRows, m.rows - r);
    const size_t off = static_cast<size_t>(r) * m.row_stride;
    kernel::repack_rows(m.type, m.data + off, m.row_stride, n, m.cols, buf.get() + off);
    release_mapped(m.data + off, static_cast<size_t>(n) * m.row_stride);
  }
  w.packed.push_back(m.name + note + " (" + type_name(m.type) + " -> " + type_name(packed) + ")");
  w.packed_bytes += bytes;
  m.type = packed;
  m.data = buf.get();
  w.packed_storage.push_back(std::move(buf));
}

}  // namespace

void repack_weights(ModelWeights& w) {
  const char* env = std::getenv("HPL_REPACK");
  if (env != nullptr && std::strcmp(env, "0") == 0) return;
  for (LayerWeights& L : w.layers) {
    for (Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) repack_matrix(*m, w);
  }
  // Tied: output is a copy of token_embd's Matrix; only that copy is packed. Embedding lookups
  // keep reading token_embd's rows from the mapping, which re-faults just the pages of the
  // tokens looked up (a private read-only file mapping), while the output matmul (the whole
  // vocabulary, every decode step) reads the packed copy.
  repack_matrix(w.output, w, w.tied_output ? " as tied output" : "");
}

}  // namespace hpl
