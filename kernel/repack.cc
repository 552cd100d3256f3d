// Row interleaving for the packed layouts (kernel/repack.h): plain byte copies, once at load.
#include "kernel/repack.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace hpl::kernel {
namespace {

// Byte ranges of one source block and where they go in the packed block of 8 rows: the f16
// scale first (8 x 2 bytes), then `chunks` runs of 8 quant bytes per row, then (Q5_0) the 4 qh
// bytes per row.
struct Layout {
  size_t block_bytes;  // source block
  size_t qs_offset;    // of qs in the source block
  int chunks;          // 8-byte runs of qs per row
  size_t qh_offset;    // of qh in the source block; 0 = none
};

Layout layout_of(DType packed) {
  switch (packed) {
    case DType::Q4_0_X8:
      return {sizeof(BlockQ4_0), offsetof(BlockQ4_0, qs), 2, 0};
    case DType::Q5_0_X8:
      return {sizeof(BlockQ5_0), offsetof(BlockQ5_0, qs), 2, offsetof(BlockQ5_0, qh)};
    case DType::Q8_0_X8:
      return {sizeof(BlockQ8_0), offsetof(BlockQ8_0, qs), 4, 0};
    default:
      throw std::invalid_argument(std::string("repack: no packed layout ") + type_name(packed));
  }
}

void check(DType packed, int64_t rows, int64_t n) {
  if (rows < 0 || rows % kPackRows != 0 || n <= 0 || n % 32 != 0) {
    throw std::invalid_argument(std::string("repack ") + type_name(packed) + ": rows " +
                                std::to_string(rows) + " must be a multiple of 8 and n " +
                                std::to_string(n) + " a positive multiple of 32");
  }
}

// Copies between one packed block of 8 rows (p) and the 8 source blocks (row r at src_row(r)).
template <bool kPack, class RowAt>
void move_block(const Layout& L, uint8_t* p, RowAt src_row) {
  auto mv = [](uint8_t* packed, uint8_t* plain, size_t bytes) {
    if (kPack) {
      std::memcpy(packed, plain, bytes);
    } else {
      std::memcpy(plain, packed, bytes);
    }
  };
  for (int r = 0; r < kPackRows; ++r) mv(p + 2 * r, src_row(r), 2);  // d is the first field
  uint8_t* q = p + 2 * kPackRows;
  for (int c = 0; c < L.chunks; ++c)
    for (int r = 0; r < kPackRows; ++r, q += 8) mv(q, src_row(r) + L.qs_offset + 8 * c, 8);
  if (L.qh_offset != 0)
    for (int r = 0; r < kPackRows; ++r, q += 4) mv(q, src_row(r) + L.qh_offset, 4);
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
    default:
      return t;
  }
}

void repack_rows(DType t, const void* src, size_t src_stride, int64_t rows, int64_t n, void* dst) {
  const DType packed = packed_type(t);
  const Layout L = layout_of(packed);
  check(packed, rows, n);
  const int64_t nb = n / 32;
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
  check(t, rows, n);
  const int64_t nb = n / 32;
  auto* in = const_cast<uint8_t*>(static_cast<const uint8_t*>(src));
  for (int64_t g = 0; g < rows / kPackRows; ++g) {
    for (int64_t b = 0; b < nb; ++b, in += kPackRows * L.block_bytes) {
      move_block<false>(L, in, [&](int r) {
        return static_cast<uint8_t*>(dst) + (g * kPackRows + r) * dst_stride + b * L.block_bytes;
      });
    }
  }
}

}  // namespace hpl::kernel
