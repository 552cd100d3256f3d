// GGUF v3 writer (little-endian) that streams tensor data: the caller declares metadata and
// the tensor table, writes the header once, then appends each tensor's bytes in table order.
// No whole-model buffer; each tensor is padded to the alignment as it is written.
//
// Layout written: "GGUF", version 3, n_tensors (u64), n_kv (u64), key/values, tensor infos
// (name, n_dims, ne[0..n_dims), type, offset), zero padding to the alignment, data section.
// The file is written to PATH.tmp and renamed to PATH by finish(), so a failed run never
// leaves a truncated PATH behind (the destructor removes an unfinished .tmp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "kernel/types.h"

namespace hpl {

class GgufWriter {
 public:
  // alignment: data-section alignment (a power of two); written as general.alignment when it
  // is not the default 32.
  explicit GgufWriter(std::string path, size_t alignment = 32);
  // The temporary file written before the rename: PATH.tmp.
  static std::string temp_path(const std::string& path) { return path + ".tmp"; }
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // --- metadata (before write_header). Setting an existing key replaces its value in place.
  // Any value the reader decodes (scalars, strings, arrays of numbers/strings/arrays).
  void set(std::string_view key, const GgufValue& v);
  void set_u8(std::string_view key, uint8_t v);
  void set_i8(std::string_view key, int8_t v);
  void set_u16(std::string_view key, uint16_t v);
  void set_i16(std::string_view key, int16_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_i64(std::string_view key, int64_t v);
  void set_f32(std::string_view key, float v);
  void set_f64(std::string_view key, double v);
  void set_bool(std::string_view key, bool v);
  void set_str(std::string_view key, std::string_view v);
  void set_str_array(std::string_view key, const std::vector<std::string>& v);
  // count packed little-endian scalars of elem (not STRING/ARRAY); bools as 0/1 bytes.
  void set_array(std::string_view key, GgufType elem, const void* data, uint64_t count);
  bool has(std::string_view key) const;
  void erase(std::string_view key);

  // --- tensor table (before write_header). ne[0] is the row length; ne[0] must be a multiple
  // of the type's block size. Returns the tensor's index.
  size_t add_tensor(std::string_view name, DType type, int n_dims, const int64_t ne[4]);
  size_t n_tensors() const { return tensors_.size(); }
  size_t tensor_bytes(size_t i) const { return tensors_[i].n_bytes; }

  // Writes magic, counts, metadata, the tensor table and the padding before the data.
  void write_header();
  // Appends part of the current tensor's data (tensors in add order; a tensor may be written
  // in several calls). Pads to the alignment once the tensor is complete.
  void write_data(const void* data, size_t n);
  // Checks every tensor was written in full, flushes, closes, renames PATH.tmp -> PATH.
  void finish();

  uint64_t bytes_written() const { return pos_; }

 private:
  struct Kv {
    std::string key;
    std::string bytes;  // type id + encoded value
  };
  struct Tensor {
    std::string name;
    DType type;
    int n_dims;
    int64_t ne[4];
    uint64_t offset;
    size_t n_bytes;
  };
  void put_kv(std::string_view key, std::string bytes);
  void write_raw(const void* p, size_t n);
  void pad();
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_, tmp_path_;
  size_t alignment_;
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  uint64_t data_size_ = 0;  // running offset of the next tensor in the data section
  FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  size_t cur_ = 0;          // tensor being written
  size_t cur_written_ = 0;  // bytes of it written so far
  bool header_done_ = false, finished_ = false;
};

}  // namespace hpl
