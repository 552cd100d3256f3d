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

bool repack_off() {
  const char* env = std::getenv("HPL_REPACK");
  return env != nullptr && std::strcmp(env, "0") == 0;
}

// Every matrix repack_weights places, with a note for the log: the layer matrices, packed
// cls / cls_out (plain ones stay: one row per input), and the output last (tied: token_embd's).
template <class W, class F>
void each_matrix(W& w, F f) {
  for (auto& L : w.layers) {
    for (auto* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) f(*m, "");
  }
  for (auto* m : {&w.cls, &w.cls_out}) {
    if (is_packed_type(m->type)) f(*m, "");
  }
  f(w.output, w.tied_output ? " as tied output" : "");
}

enum class Placement { kInPlace, kRepack, kUnpack };

// What load does with m on the active body. A plain matrix is repacked when the body has a
// kernel for its packed layout and it fits one (whole groups of 8 rows, rows of whole blocks);
// a packed one stays unless the body lacks its kernel or repacking is off (why says which).
Placement placement(const Matrix& m, bool off, std::string* why = nullptr) {
  if (is_packed_type(m.type)) {
    if (off) {
      if (why) *why = "HPL_REPACK=0";
      return Placement::kUnpack;
    }
    if (kernel::ops().weight_kernels(m.type) == nullptr) {
      if (why) {
        *why = std::string("the ") + kernel::isa_name(kernel::active_isa()) + " body has no " +
               type_name(m.type) + " kernel";
      }
      return Placement::kUnpack;
    }
    return Placement::kInPlace;
  }
  const DType packed = kernel::packed_type(m.type);
  if (off || packed == m.type || kernel::ops().weight_kernels(packed) == nullptr ||
      m.rows % kernel::kPackRows != 0 || m.cols % type_traits(m.type).block_elems != 0 ||
      m.row_stride != row_bytes(m.type, m.cols)) {
    return Placement::kInPlace;
  }
  return Placement::kRepack;
}

void place_matrix(Matrix& m, ModelWeights& w, bool off, const char* note) {
  if (m.data == nullptr) return;
  std::string why;
  const Placement p = placement(m, off, &why);
  const DType from = m.type;
  if (p == Placement::kRepack) {
    const DType packed = kernel::packed_type(from);
    w.packed_bytes += move_to_heap(m, w, packed, [&](const uint8_t* src, int64_t n, uint8_t* dst) {
      kernel::repack_rows(from, src, m.row_stride, n, m.cols, dst);
    });
    w.packed.push_back(m.name + note + " (" + type_name(from) + " -> " + type_name(packed) + ")");
  } else if (p == Placement::kUnpack) {
    const DType plain = kernel::unpacked_type(from);
    w.unpacked_bytes += move_to_heap(m, w, plain, [&](const uint8_t* src, int64_t n, uint8_t* dst) {
      kernel::unpack_rows(from, src, n, m.cols, dst, m.row_stride);
    });
    w.unpacked.push_back(m.name + note + " (" + type_name(from) + " -> " + type_name(plain) + ": " +
                         why + ")");
  } else if (is_packed_type(from)) {
    w.prepacked_bytes += m.row_stride * static_cast<size_t>(m.rows);
  }
}

}  // namespace

void repack_weights(ModelWeights& w) {
  const bool off = repack_off();
  // Tied: output is a copy of token_embd's Matrix. When plain, only that copy is packed:
  // embedding lookups keep reading token_embd's rows from the mapping, which re-faults just the
  // pages of the tokens looked up (a private read-only file mapping), while the output matmul
  // (the whole vocabulary, every decode step) reads the packed copy. When stored packed and
  // kept, lookups gather their row from its group (matrix_row_f32); when unpacked, both read
  // the one heap copy.
  const uint8_t* emb = w.token_embd.data;
  each_matrix(w, [&](Matrix& m, const char* note) { place_matrix(m, w, off, note); });
  if (w.tied_output && is_packed_type(w.token_embd.type) && w.output.data != emb) {
    w.token_embd.type = w.output.type;
    w.token_embd.data = w.output.data;
  }
}

size_t heap_bytes_at_load(const ModelWeights& w) {
  const bool off = repack_off();
  size_t bytes = 0;
  each_matrix(w, [&](const Matrix& m, const char*) {
    if (placement(m, off) != Placement::kInPlace)
      bytes += m.row_stride * static_cast<size_t>(m.rows);
  });
  return bytes;
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
