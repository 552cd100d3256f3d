// Repacked weight layouts: 8 rows interleaved 8 bytes at a time, the shape the int8 tile
// instructions want (x86 vpdpbusd on 8 rows x 8 bytes per zmm, ARM smmla on 2 rows x 8 bytes).
// A group of 8 packed rows takes exactly the bytes of the 8 rows it came from, so a packed
// tensor has the source tensor's size and group g starts at g * 8 * row_bytes(source, n).
//
// Per 32-element block b of a group (rows r = 0..7):
//   Q4_0_X8 (144 B): d[r] f16 x 8 | qs[r][0..7] x 8 | qs[r][8..15] x 8
//   Q5_0_X8 (176 B): d[r] f16 x 8 | qs as Q4_0_X8 | qh[r][0..3] x 8
//   Q8_0_X8 (272 B): d[r] f16 x 8 | qs[r][0..7] x 8 | qs[r][8..15] x 8 | [16..23] | [24..31]
// and per 256-element super-block:
//   Q4_K_X8 (1152 B): d[r] x 8 | dmin[r] x 8 | scales[r][0..11] x 8 | qs[r][8p..8p+7] x 8 for
//                     p = 0..15
//   Q5_K_X8 (1408 B): as Q4_K_X8 | qh[r][8j..8j+7] x 8 for j = 0..3 (qh run j lines up byte
//                     for byte with qs runs 4c + j: bit 2c is the 5th bit of the low nibble,
//                     2c + 1 of the high one)
//   Q6_K_X8 (1680 B): d[r] x 8 | scales[r][0..7] x 8 | scales[r][8..15] x 8 |
//                     ql[r][8p..8p+7] x 8 for p = 0..15 | qh[r][8p..8p+7] x 8 for p = 0..7
// (qs and qh bytes are the GGUF block's own: low nibble = element i, high = element i + 16.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernel/types.h"

namespace hpl::kernel {

using ::hpl::kPackRows;  // rows per interleaved group (kernel/types.h)

// The packed layout of type t (Q4_0 -> Q4_0_X8, Q5_0 -> Q5_0_X8, Q8_0 -> Q8_0_X8, Q4_K ->
// Q4_K_X8, Q5_K -> Q5_K_X8, Q6_K -> Q6_K_X8), or t when it has none.
DType packed_type(DType t);
// The GGUF type a packed layout came from (t itself when t is not packed).
DType unpacked_type(DType t);

// W (rows, n) of type t, rows src_stride bytes apart -> packed_type(t) at dst (rows * row_bytes
// bytes). Requires a packed layout, rows % kPackRows == 0 and n a multiple of the block size
// (else std::invalid_argument).
void repack_rows(DType t, const void* src, size_t src_stride, int64_t rows, int64_t n, void* dst);

// The inverse: packed rows -> rows of unpacked_type(t), dst_stride bytes apart.
void unpack_rows(DType t, const void* src, int64_t rows, int64_t n, void* dst, size_t dst_stride);

// Row r of a packed W (rows, n) of type t whose rows are row_stride bytes apart (as the
// unpacked rows: row_bytes(t, n)) -> one row of unpacked_type(t) at dst. For lookups of single
// rows (embeddings of a tied output) without unpacking the tensor.
void unpack_row(DType t, const void* w, size_t row_stride, int64_t r, int64_t n, void* dst);

// The scalar reference for a packed layout: W (rows, n) of packed type t, rows w_stride bytes
// apart (as the unpacked rows), rows [r0, r1) @ X (ntok, n) -> Y, as matmul's arguments. Each
// group of 8 rows is unpacked and goes through ref::matmul, so it equals the reference on the
// unpacked weights bit for bit. For tests; no body lists it (it would be slower than unpacked).
void matmul_packed_ref(DType t, const void* w, size_t w_stride, const void* xq, size_t x_stride,
                       float* y, size_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ntok);

}  // namespace hpl::kernel
