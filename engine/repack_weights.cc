#include "engine/repack_weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include "kernel/isa.h"
#include "kernel/ops.h"
#include "kernel/repack.h"

namespace hpl {
namespace {

constexpr int64_t kChunkRows = 1024;  // rows moved per step; a multiple of kPackRows

// Drops the whole pages of [p, p + bytes) from the process (a private read-only file mapping:
// they would be read from the file again if touched, which nothing does after the repack).
void release_mapped(const uint8_t* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

// m's rows moved into a heap copy of type `to` by move(src, rows, dst), kChunkRows rows at a
// time, releasing each chunk's mapped pages once copied, so the load's peak holds the whole
// matrix only once (plus one chunk). Returns the bytes copied.
template <class Move>
size_t move_to_heap(Matrix& m, ModelWeights& w, DType to, Move move) {
  const size_t bytes = m.row_stride * static_cast<size_t>(m.rows);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[bytes]);
  for (int64_t r = 0; r < m.rows; r += kChunkRows) {
    const int64_t n = std::min(kChunkRows, m.rows - r);
    const size_t off = static_cast<size_t>(r) * m.row_stride;
    move(m.data + off, n, buf.get() + off);
    release_mapped(m.data + off, static_cast<size_t>(n) * m.row_stride);
  }
  m.type = to;
  m.data = buf.get();
  w.packed_storage.push_back(std::move(buf));
  return bytes;
}

// A plain matrix the body has a packed kernel for -> its packed layout on the heap.
void repack_matrix(Matrix& m, ModelWeights& w, const char* note) {
  const DType packed = kernel::packed_type(m.type);
  if (packed == m.type || m.data == nullptr) return;
  if (kernel::ops().weight_kernels(packed) == nullptr) return;  // the body has no tile for it
  if (m.rows % kernel::kPackRows != 0 || m.cols % 32 != 0 ||
      m.row_stride != row_bytes(m.type, m.cols)) {
    return;
  }
  const DType from = m.type;
  w.packed_bytes += move_to_heap(m, w, packed, [&](const uint8_t* src, int64_t n, uint8_t* dst) {
    kernel::repack_rows(from, src, m.row_stride, n, m.cols, dst);
  });
  w.packed.push_back(m.name + note + " (" + type_name(from) + " -> " + type_name(packed) + ")");
}

// A matrix stored packed in the file: used in place when the body has its kernel and
// repacking is on, else unpacked to the heap (the GGUF layout, as HPL_REPACK=0 asks).
void place_packed_matrix(Matrix& m, ModelWeights& w, bool repack_off, const char* note) {
  if (!is_packed_type(m.type) || m.data == nullptr) return;
  std::string why;
  if (repack_off) {
    why = "HPL_REPACK=0";
  } else if (kernel::ops().weight_kernels(m.type) == nullptr) {
    why = std::string("the ") + kernel::isa_name(kernel::active_isa()) + " body has no " +
          type_name(m.type) + " kernel";
  } else {
    w.prepacked_bytes += m.row_stride * static_cast<size_t>(m.rows);
    return;
  }
  const DType from = m.type, plain = kernel::unpacked_type(m.type);
  w.unpacked_bytes += move_to_heap(m, w, plain, [&](const uint8_t* src, int64_t n, uint8_t* dst) {
    kernel::unpack_rows(from, src, n, m.cols, dst, m.row_stride);
  });
  w.unpacked.push_back(m.name + note + " (" + type_name(from) + " -> " + type_name(plain) + ": " +
                       why + ")");
}

}  // namespace

void repack_weights(ModelWeights& w) {
  const char* env = std::getenv("HPL_REPACK");
  const bool off = env != nullptr && std::strcmp(env, "0") == 0;
  auto place = [&](Matrix& m, const char* note = "") {
    if (is_packed_type(m.type)) {
      place_packed_matrix(m, w, off, note);
    } else if (!off) {
      repack_matrix(m, w, note);
    }
  };
  for (LayerWeights& L : w.layers) {
    for (Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) place(*m);
  }
  for (Matrix* m : {&w.cls, &w.cls_out}) {
    if (is_packed_type(m->type)) place(*m);  // plain ones stay (one row per input)
  }
  // Tied: output is a copy of token_embd's Matrix. When plain, only that copy is packed:
  // embedding lookups keep reading token_embd's rows from the mapping, which re-faults just the
  // pages of the tokens looked up (a private read-only file mapping), while the output matmul
  // (the whole vocabulary, every decode step) reads the packed copy. When stored packed and
  // kept, lookups gather their row from its group (matrix_row_f32); when unpacked, both read
  // the one heap copy.
  const uint8_t* emb = w.token_embd.data;
  place(w.output, w.tied_output ? " as tied output" : "");
  if (w.tied_output && is_packed_type(w.token_embd.type) && w.output.data != emb) {
    w.token_embd.type = w.output.type;
    w.token_embd.data = w.output.data;
  }
}

std::set<std::string> packable_tensors(const ModelWeights& w) {
  std::set<std::string> ok, bad;
  auto consider = [&](const Matrix& m) {
    if (m.name.empty()) return;
    const DType packed = kernel::packed_type(m.type);
    const bool fits = packed != m.type && m.rows % kernel::kPackRows == 0 &&
                      m.cols % type_traits(m.type).block_elems == 0 &&
                      m.row_stride == row_bytes(m.type, m.cols);
    (fits ? ok : bad).insert(m.name);
  };
  for (const LayerWeights& L : w.layers) {
    for (const Matrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) consider(*m);
  }
  consider(w.output);
  for (const std::string& name : bad) ok.erase(name);  // every row range of a fused tensor fits
  return ok;
}

}  // namespace hpl
