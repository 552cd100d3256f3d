// Row interleaving for the packed layouts (kernel/repack.h): plain byte copies, once at load.
#include "kernel/repack.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel/ops.h"

namespace hpl::kernel {
namespace {

// A packed block of 8 rows is a list of fields; field f holds `pieces` runs of `len` bytes
// taken from offset `off` of each row's source block, run p of all 8 rows before run p + 1.
struct Field {
  size_t off, len;
  int pieces;
};
struct Layout {
  size_t block_bytes;  // of the source block
  int block_elems;
  Field fields[5];
  int n_fields;
};

Layout layout_of(DType packed) {
  switch (packed) {
    case DType::Q4_0_X8:  // d | qs
      return {sizeof(BlockQ4_0), 32, {{0, 2, 1}, {offsetof(BlockQ4_0, qs), 8, 2}}, 2};
    case DType::Q5_0_X8:  // d | qs | qh
      return {sizeof(BlockQ5_0),
              32,
              {{0, 2, 1}, {offsetof(BlockQ5_0, qs), 8, 2}, {offsetof(BlockQ5_0, qh), 4, 1}},
              3};
    case DType::Q8_0_X8:  // d | qs
      return {sizeof(BlockQ8_0), 32, {{0, 2, 1}, {offsetof(BlockQ8_0, qs), 8, 4}}, 2};
    case DType::Q4_K_X8:  // d | dmin | scales | qs
      return {sizeof(BlockQ4_K),
              kQKK,
              {{0, 2, 1},
               {2, 2, 1},
               {offsetof(BlockQ4_K, scales), 12, 1},
               {offsetof(BlockQ4_K, qs), 8, 16}},
              4};
    case DType::Q5_K_X8:  // as Q4_K_X8 | qh
      return {sizeof(BlockQ5_K),
              kQKK,
              {{0, 2, 1},
               {2, 2, 1},
               {offsetof(BlockQ5_K, scales), 12, 1},
               {offsetof(BlockQ5_K, qs), 8, 16},
               {offsetof(BlockQ5_K, qh), 8, 4}},
              5};
    case DType::Q6_K_X8:  // d | scales | ql | qh
      return {sizeof(BlockQ6_K),
              kQKK,
              {{offsetof(BlockQ6_K, d), 2, 1},
               {offsetof(BlockQ6_K, scales), 8, 2},
               {offsetof(BlockQ6_K, ql), 8, 16},
               {offsetof(BlockQ6_K, qh), 8, 8}},
              4};
    default:
      throw std::invalid_argument(std::string("repack: no packed layout ") + type_name(packed));
  }
}

void check(DType packed, const Layout& L, int64_t rows, int64_t n) {
  if (rows < 0 || rows % kPackRows != 0 || n <= 0 || n % L.block_elems != 0) {
    throw std::invalid_argument(std::string("repack ") + type_name(packed) + ": rows " +
                                std::to_string(rows) + " must be a multiple of 8 and n " +
                                std::to_string(n) + " a positive multiple of " +
                                std::to_string(L.block_elems));
  }
}

// Copies between one packed block of 8 rows (p) and the 8 source blocks (row r at src_row(r);
// rows whose src_row is null are skipped).
template <bool kPack, class RowAt>
void move_block(const Layout& L, uint8_t* p, RowAt src_row) {
  for (int f = 0; f < L.n_fields; ++f) {
    const Field& F = L.fields[f];
    for (int piece = 0; piece < F.pieces; ++piece) {
      for (int r = 0; r < kPackRows; ++r, p += F.len) {
        uint8_t* row = src_row(r);
        if (row == nullptr) continue;  // unpack_row: a row not wanted
        uint8_t* plain = row + F.off + piece * F.len;
        if (kPack) {
          std::memcpy(p, plain, F.len);
        } else {
          std::memcpy(plain, p, F.len);
        }
      }
    }
  }
}

}  // namespace

DType packed_type(DType t) {
  switch (t) {
    case DType::Q4_0:
      return DType::Q4_0_X8;
    case DType::Q5_0:
      return DType::Q5_0_X8;
    case DType::Q8_0:
      return DType::Q8_0_X8;
    case DType::Q4_K:
      return DType::Q4_K_X8;
    case DType::Q5_K:
      return DType::Q5_K_X8;
    case DType::Q6_K:
      return DType::Q6_K_X8;
    default:
      return t;
  }
}

DType unpacked_type(DType t) {
  switch (t) {
    case DType::Q4_0_X8:
      return DType::Q4_0;
    case DType::Q5_0_X8:
      return DType::Q5_0;
    case DType::Q8_0_X8:
      return DType::Q8_0;
    case DType::Q4_K_X8:
      return DType::Q4_K;
    case DType::Q5_K_X8:
      return DType::Q5_K;
    case DType::Q6_K_X8:
      return DType::Q6_K;
    default:
      return t;
  }
}

void repack_rows(DType t, const void* src, size_t src_stride, int64_t rows, int64_t n, void* dst) {
  const DType packed = packed_type(t);
  const Layout L = layout_of(packed);
  check(packed, L, rows, n);
  const int64_t nb = n / L.block_elems;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < rows / kPackRows; ++g) {
    for (int64_t b = 0; b < nb; ++b, out += kPackRows * L.block_bytes) {
      move_block<true>(L, out, [&](int r) {
        return const_cast<uint8_t*>(static_cast<const uint8_t*>(src)) +
               (g * kPackRows + r) * src_stride + b * L.block_bytes;
      });
    }
  }
}

void unpack_rows(DType t, const void* src, int64_t rows, int64_t n, void* dst, size_t dst_stride) {
  const Layout L = layout_of(t);
  check(t, L, rows, n);
  const int64_t nb = n / L.block_elems;
  auto* in = const_cast<uint8_t*>(static_cast<const uint8_t*>(src));
  for (int64_t g = 0; g < rows / kPackRows; ++g) {
    for (int64_t b = 0; b < nb; ++b, in += kPackRows * L.block_bytes) {
      move_block<false>(L, in, [&](int r) {
        return static_cast<uint8_t*>(dst) + (g * kPackRows + r) * dst_stride + b * L.block_bytes;
      });
    }
  }
}

void unpack_row(DType t, const void* w, size_t row_stride, int64_t r, int64_t n, void* dst) {
  const Layout L = layout_of(t);
  check(t, L, kPackRows, n);
  const int64_t nb = n / L.block_elems;
  const int want = static_cast<int>(r % kPackRows);
  auto* in = const_cast<uint8_t*>(static_cast<const uint8_t*>(w)) +
             static_cast<size_t>(r / kPackRows) * kPackRows * row_stride;
  for (int64_t b = 0; b < nb; ++b, in += kPackRows * L.block_bytes) {
    move_block<false>(L, in, [&](int i) {
      return i == want ? static_cast<uint8_t*>(dst) + b * L.block_bytes : nullptr;
    });
  }
}

void matmul_packed_ref(DType t, const void* w, size_t w_stride, const void* xq, size_t x_stride,
                       float* y, size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok) {
  const DType plain = unpacked_type(t);
  if (plain == t) {
    throw std::invalid_argument(std::string("matmul_packed_ref: ") + type_name(t) +
                                " is not a packed layout");
  }
  std::vector<uint8_t> group(kPackRows * w_stride);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int64_t g = r0 / kPackRows; g * kPackRows < r1; ++g) {
    const int64_t base = g * kPackRows;
    unpack_rows(t, wb + base * w_stride, kPackRows, n, group.data(), w_stride);
    const int64_t ra = std::max(r0, base) - base, rb = std::min(r1, base + kPackRows) - base;
    ref::matmul(plain, group.data(), w_stride, xq, x_stride, y + base, y_stride, n, ra, rb, ntok);
  }
}

}  // namespace hpl::kernel
