// GGUF v1/v2/v3 reader over a read-only mmap. Everything is validated at open(); tensor
// data are pointers into the mapping (no copy). Errors throw GgufError naming the file,
// the byte offset and the field ("model.gguf: offset 1234: tensor 'x': dims[1] = 0").
//
// v1 differs from v2/v3 only in widths: uint32 tensor/kv counts, string lengths, array
// counts and tensor dims (v2 made them uint64); v3 added big-endian files, which we reject
// (their version reads byte-swapped; the error says so).
//
// Limits beyond the format: n_dims 1..4, arrays of arrays nest at most 8 deep, bool values are
// 0 or 1, keys and tensor names are unique and non-empty, tensor data are aligned, inside the
// file and disjoint. Strings are bytes as stored (not checked to be UTF-8).
//
// Packed files (`hpl pack`): tensors of hpl's packed layouts (kernel/repack.h; type ids
// 0x1002 q4_0x8, 0x1006 q5_0x8, 0x1008 q8_0x8, 0x100C q4_Kx8, 0x100D q5_Kx8, 0x100E q6_Kx8)
// are accepted only in a file whose key hpl.packed_layout (uint32) is a layout version this
// build reads (kPackedLayoutVersion), only as 2-D tensors (ne[2] = ne[3] = 1) whose row
// count is a multiple of 8 and whose rows are whole blocks. A packed tensor takes the bytes
// of its unpacked source, so sizes are computed as for the source type.
//
// Rows that do not fill whole blocks: old converters quantized some tensors flat across row
// boundaries (tinyllamas-stories-260k-q8_0.gguf: ffn_down rows of 172 elements in Q8_0).
// Such a tensor is accepted when its TOTAL element count is a multiple of the block size,
// and marked rows_unaligned: its rows cannot be addressed block-wise, so the engine must
// dequantize it flat (all n_elements() as one long row). llama.cpp refuses these files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/types.h"

namespace hpl {

// Metadata key marking a file with packed tensors, and the layout version this build reads
// (1: kernel/repack.h's X8 layouts). Bump the version when a layout's bytes change.
constexpr const char* kPackedLayoutKey = "hpl.packed_layout";
constexpr uint32_t kPackedLayoutVersion = 1;

class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Metadata value types (gguf_type). Values are part of the file format.
enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars are decoded; strings and arrays are views into the mapping.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  union {
    uint64_t u;  // UINT8..UINT64, BOOL
    int64_t i;   // INT8..INT64
    double f;    // FLOAT32, FLOAT64
  } num{};
  std::string_view str;                  // STRING
  GgufType elem_type = GgufType::UINT8;  // ARRAY: element type
  uint64_t count = 0;                    // ARRAY: element count
  std::vector<GgufValue> items;          // ARRAY of STRING or ARRAY: decoded elements
  const uint8_t* raw = nullptr;          // ARRAY of numbers: packed little-endian elements
  uint64_t offset = 0;                   // file offset of the value (for error messages)
};

// Bytes of one scalar of type t as stored (0 for STRING and ARRAY).
size_t gguf_scalar_size(GgufType t);
// Element i (< arr.count) of an array: a decoded scalar for numeric arrays, else items[i].
GgufValue gguf_array_elem(const GgufValue& arr, uint64_t i);

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensor {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the row length (contiguous), as in ggml
  uint64_t offset = 0;           // relative to the data section
  size_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping
  bool rows_unaligned = false;    // ne[0] % block_elems != 0: blocks run across rows
  uint64_t info_offset = 0;       // file offset of the tensor's entry in the table
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufReader;  // gguf.cc: the bounds-checked cursor parse() uses

class GgufFile {
 public:
  // Maps and validates the file; throws GgufError.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses an in-memory image (tests, fuzzer); `name` is used in error messages. The image
  // is not copied: it must outlive the GgufFile.
  static std::unique_ptr<GgufFile> from_memory(const uint8_t* data, size_t size,
                                               const std::string& name);
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t file_size() const { return size_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }
  const uint8_t* base() const { return base_; }

  // hpl.packed_layout, or 0 when absent (a plain GGUF file).
  uint32_t packed_layout() const { return packed_layout_; }

  // general.architecture, or "" when absent.
  const std::string& architecture() const { return arch_; }

  // Keys starting with "{arch}." are resolved with general.architecture,
  // e.g. u32("{arch}.block_count") reads "llama.block_count" (so a key stored literally as
  // "{arch}..." is reachable only through metadata()).
  std::string resolve(std::string_view key) const;
  const GgufValue* find(std::string_view key) const;  // null when missing
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed access: throws GgufError naming the key on a missing key, a type mismatch, or an
  // integer value out of the requested range (integer types convert when the value fits).
  uint32_t u32(std::string_view key) const;
  uint64_t u64(std::string_view key) const;
  int64_t i64(std::string_view key) const;
  float f32(std::string_view key) const;
  bool boolean(std::string_view key) const;
  std::string str(std::string_view key) const;
  std::vector<std::string> str_array(std::string_view key) const;
  std::vector<float> f32_array(std::string_view key) const;
  std::vector<int64_t> int_array(std::string_view key) const;

  // The same, with a default when the key is missing (a type mismatch still throws).
  uint32_t u32_or(std::string_view key, uint32_t dflt) const;
  uint64_t u64_or(std::string_view key, uint64_t dflt) const;
  int64_t i64_or(std::string_view key, int64_t dflt) const;
  float f32_or(std::string_view key, float dflt) const;
  bool boolean_or(std::string_view key, bool dflt) const;
  std::string str_or(std::string_view key, const std::string& dflt) const;

  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const;  // null when missing

 private:
  struct Counts {
    uint64_t tensors = 0, kv = 0;
  };
  GgufFile() = default;
  // parse() reads the sections in order with a GgufReader (gguf.cc): a bounds-checked cursor
  // whose failures name the file, offset, item and field.
  void parse();
  Counts parse_header(GgufReader& r);
  void parse_metadata(GgufReader& r, uint64_t n_kv);
  void read_general_keys(GgufReader& r);
  void parse_tensor_table(GgufReader& r, uint64_t n_tensors);
  GgufTensor parse_tensor_info(GgufReader& r) const;
  void check_packed_tensor(GgufReader& r, size_t off, const GgufTensor& t,
                           const TypeTraits& tr) const;
  void place_tensor_data(GgufReader& r);
  void index_tensors(GgufReader& r);

  std::string path_;
  uint32_t version_ = 0;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::string arch_;
  uint32_t packed_layout_ = 0;
  std::vector<GgufKV> kvs_;
  std::vector<size_t> kv_order_;  // kvs_ indices sorted by key, for find()
  std::vector<GgufTensor> tensors_;
  std::vector<size_t> tensor_order_;  // tensors_ indices sorted by name, for tensor()
};

}  // namespace hpl
