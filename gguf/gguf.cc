// GGUF parsing and validation. File layout (little-endian):
//   "GGUF", u32 version, n_tensors, n_kv,
//   n_kv    x (string key, u32 value type, value),
//   n_tensors x (string name, u32 n_dims, dims[n_dims], u32 type, u64 offset),
//   padding to general.alignment (default 32), data section (tensor offsets are relative to it).
// A string is (length, bytes); an array is (u32 element type, count, elements). Counts,
// string lengths, array counts and dims are u64 in v2/v3 and u32 in v1.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace hpl {

static_assert(std::endian::native == std::endian::little, "GGUF files are little-endian");

namespace {

constexpr int kMaxArrayDepth = 8;  // arrays of arrays nest at most this deep
// Counts are bounded by the bytes left in the file, but a decoded entry is several times
// larger than its smallest encoding, so reserve at most this much up front and let real
// entries grow the vectors: a forged count then costs nothing before parsing fails.
constexpr uint64_t kMaxReserve = 1 << 16;

// A file-supplied name made safe for an error message: escaped and shortened.
std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 96; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 96) out += "...";
  return out;
}

bool valid_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufType::FLOAT64);
}

bool is_unsigned(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 ||
         t == GgufType::UINT64;
}
bool is_signed(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 ||
         t == GgufType::INT64;
}
bool is_float(GgufType t) {
  return t == GgufType::FLOAT32 || t == GgufType::FLOAT64;
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // the file gives no alignment guarantee
  return v;
}

// Decodes one scalar of type t stored at p (gguf_scalar_size(t) bytes).
GgufValue decode_scalar(GgufType t, const uint8_t* p) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::UINT8:
      v.num.u = load<uint8_t>(p);
      break;
    case GgufType::INT8:
      v.num.i = load<int8_t>(p);
      break;
    case GgufType::UINT16:
      v.num.u = load<uint16_t>(p);
      break;
    case GgufType::INT16:
      v.num.i = load<int16_t>(p);
      break;
    case GgufType::UINT32:
      v.num.u = load<uint32_t>(p);
      break;
    case GgufType::INT32:
      v.num.i = load<int32_t>(p);
      break;
    case GgufType::FLOAT32:
      v.num.f = load<float>(p);
      break;
    case GgufType::BOOL:
      v.num.u = load<uint8_t>(p) != 0;
      break;
    case GgufType::UINT64:
      v.num.u = load<uint64_t>(p);
      break;
    case GgufType::INT64:
      v.num.i = load<int64_t>(p);
      break;
    case GgufType::FLOAT64:
      v.num.f = load<double>(p);
      break;
    case GgufType::STRING:
    case GgufType::ARRAY:
      break;
  }
  return v;
}

}  // namespace

// Bounds-checked cursor over the image. Every failure names the file, the byte offset, the
// current item (`where`, e.g. "key 'general.name'" or "tensor 'output.weight'") and the field.
class GgufReader {
 public:
  GgufReader(const uint8_t* p, size_t n, const std::string& file) : p_(p), n_(n), file_(file) {}

  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  const uint8_t* here() const { return p_ + pos_; }
  void set_v1(bool v1) { v1_ = v1; }
  bool v1() const { return v1_; }
  size_t count_bytes() const { return v1_ ? 4 : 8; }
  std::string where;

  [[noreturn]] void fail(uint64_t off, const std::string& what) const {
    std::string msg = file_ + ": offset " + std::to_string(off) + ": ";
    if (!where.empty()) {
      msg += where;
      for (uint64_t i : index_) {
        msg += '[';
        msg += std::to_string(i);
        msg += ']';
      }
      msg += ": ";
    }
    throw GgufError(msg + what);
  }

  void need(size_t bytes, const char* field) const {
    if (bytes > left()) {
      fail(pos_, std::string(field) + ": needs " + std::to_string(bytes) + " bytes, only " +
                     std::to_string(left()) + " left in the file (truncated?)");
    }
  }
  template <class T>
  T get(const char* field) {
    need(sizeof(T), field);
    T v = load<T>(p_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  void skip(size_t bytes) { pos_ += bytes; }  // after need()
  // Counts, string lengths, array counts, dims: u32 in v1, u64 after.
  uint64_t count(const char* field) { return v1_ ? get<uint32_t>(field) : get<uint64_t>(field); }

  std::string_view string(const char* field) {
    size_t off = pos_;
    uint64_t len = count(field);
    if (len > left()) {
      fail(off, std::string(field) + ": string length " + std::to_string(len) + " exceeds the " +
                    std::to_string(left()) + " bytes left in the file");
    }
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }

  // Reads one metadata value of type t (the type tag itself already consumed).
  GgufValue value(uint32_t type_id, int depth) {
    size_t off = pos_;
    if (!valid_type(type_id)) fail(off, "unknown value type " + std::to_string(type_id));
    auto t = static_cast<GgufType>(type_id);
    GgufValue v;
    if (t == GgufType::STRING) {
      v.type = t;
      v.str = string("string value");
    } else if (t == GgufType::ARRAY) {
      v = array(depth);
    } else {
      size_t sz = gguf_scalar_size(t);
      need(sz, "value");
      if (t == GgufType::BOOL && *here() > 1) {
        fail(off, "bool value " + std::to_string(*here()) + " is neither 0 nor 1");
      }
      v = decode_scalar(t, here());
      skip(sz);
    }
    v.offset = off;
    return v;
  }

 private:
  GgufValue array(int depth) {
    size_t off = pos_;
    if (depth >= kMaxArrayDepth) {
      fail(off, "arrays nested deeper than " + std::to_string(kMaxArrayDepth));
    }
    uint32_t et = get<uint32_t>("array element type");
    if (!valid_type(et)) fail(off, "unknown array element type " + std::to_string(et));
    GgufValue v;
    v.type = GgufType::ARRAY;
    v.offset = off;
    v.elem_type = static_cast<GgufType>(et);
    size_t count_off = pos_;
    v.count = count("array count");
    // Smallest encoding of one element, to bound the count by the bytes left before any
    // allocation: a string is at least its length field, an array its type and count.
    size_t min_elem = gguf_scalar_size(v.elem_type);
    if (v.elem_type == GgufType::STRING) min_elem = count_bytes();
    if (v.elem_type == GgufType::ARRAY) min_elem = 4 + count_bytes();
    if (v.count > left() / min_elem) {
      fail(count_off, "array count " + std::to_string(v.count) + " of " +
                          gguf_type_name(v.elem_type) + " (at least " + std::to_string(min_elem) +
                          " bytes each) exceeds the " + std::to_string(left()) +
                          " bytes left in the file");
    }
    if (gguf_scalar_size(v.elem_type) != 0) {  // numbers: packed, decoded on access
      v.raw = here();
      if (v.elem_type == GgufType::BOOL) {
        for (uint64_t i = 0; i < v.count; ++i) {
          if (v.raw[i] > 1) {
            index_.push_back(i);
            fail(pos_ + i, "bool value " + std::to_string(v.raw[i]) + " is neither 0 nor 1");
          }
        }
      }
      skip(v.count * min_elem);
      return v;
    }
    v.items.reserve(std::min(v.count, kMaxReserve));
    index_.push_back(0);
    for (uint64_t i = 0; i < v.count; ++i) {
      index_.back() = i;
      if (v.elem_type == GgufType::STRING) {
        GgufValue s;
        s.type = GgufType::STRING;
        s.offset = pos_;
        s.str = string("string element");
        v.items.push_back(s);
      } else {
        v.items.push_back(array(depth + 1));
      }
    }
    index_.pop_back();
    return v;
  }

  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool v1_ = false;
  const std::string& file_;
  std::vector<uint64_t> index_;  // element indices of the array being read, for messages
};

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
      return "uint8";
    case GgufType::INT8:
      return "int8";
    case GgufType::UINT16:
      return "uint16";
    case GgufType::INT16:
      return "int16";
    case GgufType::UINT32:
      return "uint32";
    case GgufType::INT32:
      return "int32";
    case GgufType::FLOAT32:
      return "float32";
    case GgufType::BOOL:
      return "bool";
    case GgufType::STRING:
      return "string";
    case GgufType::ARRAY:
      return "array";
    case GgufType::UINT64:
      return "uint64";
    case GgufType::INT64:
      return "int64";
    case GgufType::FLOAT64:
      return "float64";
  }
  return "unknown";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64:
      return 8;
    case GgufType::STRING:
    case GgufType::ARRAY:
      return 0;
  }
  return 0;
}

GgufValue gguf_array_elem(const GgufValue& arr, uint64_t i) {
  if (arr.type != GgufType::ARRAY || i >= arr.count) {
    throw GgufError("gguf_array_elem: index " + std::to_string(i) + " out of range");
  }
  if (arr.raw) {
    GgufValue v = decode_scalar(arr.elem_type, arr.raw + i * gguf_scalar_size(arr.elem_type));
    v.offset = arr.offset;
    return v;
  }
  return arr.items[i];
}

// ---- open / map ----------------------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw GgufError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw GgufError(path + ": not a regular file");
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw GgufError(path + ": mmap failed: " + std::strerror(err));
    f->base_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  } else {
    ::close(fd);
  }
  f->parse();  // on throw, ~GgufFile unmaps
  return f;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const uint8_t* data, size_t size,
                                                const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->base_ = data;
  f->size_ = size;
  f->parse();
  return f;
}

GgufFile::~GgufFile() {
  if (mapped_) munmap(const_cast<uint8_t*>(base_), size_);
}

// ---- parse ---------------------------------------------------------------------------------

// The file's sections in order; each step fails with the file, offset and item.
void GgufFile::parse() {
  GgufReader r(base_, size_, path_);
  const Counts n = parse_header(r);
  parse_metadata(r, n.kv);
  read_general_keys(r);
  parse_tensor_table(r, n.tensors);
  place_tensor_data(r);
  index_tensors(r);
}

// "GGUF", version, tensor count, metadata count; counts bounded by the bytes left.
GgufFile::Counts GgufFile::parse_header(GgufReader& r) {
  r.need(4, "magic");
  if (std::memcmp(base_, "GGUF", 4) != 0) {
    r.fail(0, "magic: expected 'GGUF', found '" +
                  printable({reinterpret_cast<const char*>(base_), 4}) + "' (not a GGUF file)");
  }
  r.skip(4);
  version_ = r.get<uint32_t>("version");
  if (version_ < 1 || version_ > 3) {
    std::string hint = (version_ & 0xffff) == 0 && version_ != 0 ? " (a big-endian file?)" : "";
    r.fail(4, "version " + std::to_string(version_) + " is not supported (1, 2 or 3)" + hint);
  }
  r.set_v1(version_ == 1);

  Counts n;
  size_t off = r.pos();
  n.tensors = r.count("tensor count");
  // Lower bound of an entry's size: name length, n_dims, one dim, type, offset.
  const size_t min_tensor = r.count_bytes() + 4 + r.count_bytes() + 4 + 8;
  if (n.tensors > r.left() / min_tensor) {
    r.fail(off, "tensor count " + std::to_string(n.tensors) + " (at least " +
                    std::to_string(min_tensor) + " bytes each) exceeds the " +
                    std::to_string(r.left()) + " bytes left in the file");
  }
  off = r.pos();
  n.kv = r.count("metadata count");
  // Lower bound of a key/value: key length, type, a 1-byte value.
  const size_t min_kv = r.count_bytes() + 4 + 1;
  if (n.kv > r.left() / min_kv) {
    r.fail(off, "metadata count " + std::to_string(n.kv) + " (at least " + std::to_string(min_kv) +
                    " bytes each) exceeds the " + std::to_string(r.left()) +
                    " bytes left in the file");
  }
  return n;
}

// n_kv x (key, type, value), then the by-key index (duplicate keys fail).
void GgufFile::parse_metadata(GgufReader& r, uint64_t n_kv) {
  kvs_.reserve(std::min(n_kv, kMaxReserve));
  for (uint64_t i = 0; i < n_kv; ++i) {
    r.where = "metadata #" + std::to_string(i);
    std::string_view key = r.string("key");
    r.where = "key '" + printable(key) + "'";
    if (key.empty()) r.fail(r.pos(), "empty key");
    uint32_t type = r.get<uint32_t>("value type");
    GgufKV kv{std::string(key), r.value(type, 0)};
    kvs_.push_back(std::move(kv));
  }
  r.where.clear();

  kv_order_.resize(kvs_.size());
  for (size_t i = 0; i < kv_order_.size(); ++i) kv_order_[i] = i;
  std::sort(kv_order_.begin(), kv_order_.end(),
            [&](size_t a, size_t b) { return kvs_[a].key < kvs_[b].key; });
  for (size_t i = 1; i < kv_order_.size(); ++i) {
    const GgufKV& a = kvs_[kv_order_[i - 1]];
    const GgufKV& b = kvs_[kv_order_[i]];
    if (a.key == b.key) {
      r.where = "key '" + printable(b.key) + "'";
      r.fail(std::max(a.value.offset, b.value.offset), "duplicate key");
    }
  }
}

// general.architecture (a string) and general.alignment (a power of two) shape the rest.
void GgufFile::read_general_keys(GgufReader& r) {
  if (const GgufValue* v = find("general.architecture")) {
    if (v->type != GgufType::STRING) {
      r.where = "key 'general.architecture'";
      r.fail(v->offset, std::string("type is ") + gguf_type_name(v->type) + ", expected string");
    }
    arch_ = std::string(v->str);
  }
  if (const GgufValue* v = find("general.alignment")) {
    uint64_t a = u64("general.alignment");  // throws on a non-integer
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 30)) {
      r.where = "key 'general.alignment'";
      r.fail(v->offset, std::to_string(a) + " is not a power of two in [1, 2^30]");
    }
    alignment_ = static_cast<size_t>(a);
  }
  if (const GgufValue* v = find(kPackedLayoutKey)) {
    r.where = std::string("key '") + kPackedLayoutKey + "'";
    if (v->type != GgufType::UINT32) {
      r.fail(v->offset, std::string("type is ") + gguf_type_name(v->type) + ", expected uint32");
    }
    if (v->num.u != kPackedLayoutVersion) {
      r.fail(v->offset, "packed layout version " + std::to_string(v->num.u) +
                            " is not supported (this build reads " +
                            std::to_string(kPackedLayoutVersion) +
                            "; run hpl pack on the plain GGUF again)");
    }
    packed_layout_ = static_cast<uint32_t>(v->num.u);
    r.where.clear();
  }
}

void GgufFile::parse_tensor_table(GgufReader& r, uint64_t n_tensors) {
  tensors_.reserve(std::min(n_tensors, kMaxReserve));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    r.where = "tensor #" + std::to_string(i);
    tensors_.push_back(parse_tensor_info(r));
  }
  r.where.clear();
}

// A tensor of a packed layout (see gguf.h): only in a file with hpl.packed_layout, 2-D, rows
// a multiple of 8 (whole interleaved groups), rows of whole blocks.
void GgufFile::check_packed_tensor(GgufReader& r, size_t off, const GgufTensor& t,
                                   const TypeTraits& tr) const {
  const std::string type = std::string("packed type ") + tr.name;
  if (packed_layout_ == 0) {
    r.fail(off, type + " but the file has no '" + kPackedLayoutKey +
                    "' key (only `hpl pack` writes these ids)");
  }
  if (t.ne[2] != 1 || t.ne[3] != 1) {
    r.fail(off, type + ": must be 2-D, has dims[2] = " + std::to_string(t.ne[2]) +
                    ", dims[3] = " + std::to_string(t.ne[3]));
  }
  if (t.ne[1] % kPackRows != 0) {
    r.fail(off, type + ": " + std::to_string(t.ne[1]) + " rows, not a multiple of " +
                    std::to_string(kPackRows));
  }
  if (t.ne[0] % tr.block_elems != 0) {
    r.fail(off, type + ": rows of " + std::to_string(t.ne[0]) +
                    " elements, not a multiple of the block (" + std::to_string(tr.block_elems) +
                    ")");
  }
}

// One entry: name, n_dims, dims, type, offset; sizes checked for overflow and block fit.
GgufTensor GgufFile::parse_tensor_info(GgufReader& r) const {
  GgufTensor t;
  t.info_offset = r.pos();
  t.name = std::string(r.string("name"));
  r.where = "tensor '" + printable(t.name) + "'";
  if (t.name.empty()) r.fail(t.info_offset, "empty name");
  size_t off = r.pos();
  uint32_t n_dims = r.get<uint32_t>("n_dims");
  if (n_dims < 1 || n_dims > 4) {
    r.fail(off, "n_dims = " + std::to_string(n_dims) + " (must be 1..4)");
  }
  t.n_dims = static_cast<int>(n_dims);
  int64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    off = r.pos();
    uint64_t dim = r.count("dims");
    std::string field = "dims[" + std::to_string(d) + "] = " + std::to_string(dim);
    if (dim == 0) r.fail(off, field);
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(n_elements, static_cast<int64_t>(dim), &n_elements)) {
      r.fail(off, field + ": element count overflows int64");
    }
    t.ne[d] = static_cast<int64_t>(dim);
  }
  off = r.pos();
  uint32_t type_id = r.get<uint32_t>("type");
  TypeTraits tr = type_traits(type_id);
  if (is_packed_type(type_id)) {
    check_packed_tensor(r, off, t, tr);
  } else if (!tr.known || tr.block_bytes == 0 || tr.block_elems <= 0) {
    r.fail(off, "type = " + std::to_string(type_id) + " is not a known ggml type");
  }
  t.type = static_cast<DType>(type_id);
  if (t.ne[0] % tr.block_elems != 0) {
    if (n_elements % tr.block_elems != 0) {
      r.fail(off, std::string("type ") + tr.name + " has blocks of " +
                      std::to_string(tr.block_elems) + " elements but the tensor has " +
                      std::to_string(n_elements) + " (rows of " + std::to_string(t.ne[0]) + ")");
    }
    t.rows_unaligned = true;  // quantized flat across rows; see gguf.h
  }
  uint64_t n_bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(n_elements / tr.block_elems),
                             static_cast<uint64_t>(tr.block_bytes), &n_bytes)) {
    r.fail(off, "byte size overflows");
  }
  t.n_bytes = n_bytes;
  off = r.pos();
  t.offset = r.get<uint64_t>("offset");
  if (t.offset % alignment_ != 0) {
    r.fail(off, "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                    std::to_string(alignment_));
  }
  return t;
}

// The data section starts at the next multiple of the alignment after the tensor table;
// every tensor's bytes must lie inside the file.
void GgufFile::place_tensor_data(GgufReader& r) {
  uint64_t table_end = r.pos();
  data_offset_ = static_cast<size_t>((table_end + alignment_ - 1) / alignment_ * alignment_);

  const uint64_t data_size = data_offset_ <= size_ ? size_ - data_offset_ : 0;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      r.where = "tensor '" + printable(t.name) + "'";
      r.fail(t.info_offset, "data [" + std::to_string(data_offset_ + t.offset) + ", " +
                                std::to_string(data_offset_ + t.offset + t.n_bytes) +
                                ") extends past the end of the file (" + std::to_string(size_) +
                                " bytes)");
    }
    t.data = base_ + data_offset_ + t.offset;
  }
}

// The by-name index (duplicate names fail), and no two tensors' data overlap.
void GgufFile::index_tensors(GgufReader& r) {
  tensor_order_.resize(tensors_.size());
  for (size_t i = 0; i < tensor_order_.size(); ++i) tensor_order_[i] = i;
  std::vector<size_t> by_offset = tensor_order_;
  std::sort(tensor_order_.begin(), tensor_order_.end(),
            [&](size_t a, size_t b) { return tensors_[a].name < tensors_[b].name; });
  for (size_t i = 1; i < tensor_order_.size(); ++i) {
    const GgufTensor& b = tensors_[tensor_order_[i]];
    if (tensors_[tensor_order_[i - 1]].name == b.name) {
      r.where = "tensor '" + printable(b.name) + "'";
      r.fail(b.info_offset, "duplicate tensor name");
    }
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor& a = tensors_[by_offset[i - 1]];
    const GgufTensor& b = tensors_[by_offset[i]];
    if (a.offset + a.n_bytes > b.offset) {
      r.where = "tensor '" + printable(b.name) + "'";
      r.fail(b.info_offset, "data at offset " + std::to_string(b.offset) + " overlaps tensor '" +
                                printable(a.name) + "' [" + std::to_string(a.offset) + ", " +
                                std::to_string(a.offset + a.n_bytes) + ")");
    }
  }
}

// ---- lookup --------------------------------------------------------------------------------

std::string GgufFile::resolve(std::string_view key) const {
  constexpr std::string_view kArch = "{arch}";
  if (key.substr(0, kArch.size()) == kArch) {
    return arch_ + std::string(key.substr(kArch.size()));
  }
  return std::string(key);
}

const GgufValue* GgufFile::find(std::string_view key) const {
  std::string k = resolve(key);
  auto it = std::lower_bound(kv_order_.begin(), kv_order_.end(), k,
                             [&](size_t i, const std::string& s) { return kvs_[i].key < s; });
  if (it == kv_order_.end() || kvs_[*it].key != k) return nullptr;
  return &kvs_[*it].value;
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = std::lower_bound(tensor_order_.begin(), tensor_order_.end(), name,
                             [&](size_t i, std::string_view s) { return tensors_[i].name < s; });
  if (it == tensor_order_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

namespace {

[[noreturn]] void key_error(const std::string& file, const GgufValue* v, const std::string& key,
                            const std::string& what) {
  std::string msg = file + ": ";
  if (v) msg += "offset " + std::to_string(v->offset) + ": ";
  throw GgufError(msg + "key '" + printable(key) + "': " + what);
}

[[noreturn]] void type_error(const std::string& file, const GgufValue& v, const std::string& key,
                             const char* expected) {
  std::string got = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) got += std::string(" of ") + gguf_type_name(v.elem_type);
  key_error(file, &v, key, "type is " + got + ", expected " + expected);
}

// Integer value as (negative?, magnitude); false when v is not an integer.
bool int_parts(const GgufValue& v, bool& neg, uint64_t& mag) {
  if (is_unsigned(v.type)) {
    neg = false;
    mag = v.num.u;
    return true;
  }
  if (is_signed(v.type)) {
    neg = v.num.i < 0;
    mag = neg ? 0 - static_cast<uint64_t>(v.num.i) : static_cast<uint64_t>(v.num.i);
    return true;
  }
  return false;
}

std::string int_text(bool neg, uint64_t mag) {
  return (neg ? "-" : "") + std::to_string(mag);
}

uint64_t to_unsigned(const std::string& file, const GgufValue& v, const std::string& key,
                     uint64_t max, const char* tname) {
  bool neg;
  uint64_t mag;
  if (!int_parts(v, neg, mag)) type_error(file, v, key, tname);
  if (neg || mag > max)
    key_error(file, &v, key, "value " + int_text(neg, mag) + " does not fit " + tname);
  return mag;
}

int64_t to_signed(const std::string& file, const GgufValue& v, const std::string& key) {
  bool neg;
  uint64_t mag;
  if (!int_parts(v, neg, mag)) type_error(file, v, key, "int64");
  if (neg) return v.num.i;
  if (mag > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    key_error(file, &v, key, "value " + int_text(neg, mag) + " does not fit int64");
  }
  return static_cast<int64_t>(mag);
}

float to_float(const std::string& file, const GgufValue& v, const std::string& key) {
  if (is_float(v.type)) return static_cast<float>(v.num.f);
  if (is_unsigned(v.type)) return static_cast<float>(v.num.u);
  if (is_signed(v.type)) return static_cast<float>(v.num.i);
  type_error(file, v, key, "float32");
}

}  // namespace

#define HPL_GGUF_LOOKUP(key)                                    \
  std::string k = resolve(key);                                 \
  const GgufValue* v = find(k);                                 \
  if (!v) {                                                     \
    key_error(path_, nullptr, k,                                \
              arch_.empty() && key.substr(0, 6) == "{arch}"     \
                  ? "missing (general.architecture is not set)" \
                  : "missing");                                 \
  }

uint32_t GgufFile::u32(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  return static_cast<uint32_t>(to_unsigned(path_, *v, k, UINT32_MAX, "uint32"));
}

uint64_t GgufFile::u64(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  return to_unsigned(path_, *v, k, UINT64_MAX, "uint64");
}

int64_t GgufFile::i64(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  return to_signed(path_, *v, k);
}

float GgufFile::f32(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  return to_float(path_, *v, k);
}

bool GgufFile::boolean(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  if (v->type != GgufType::BOOL) type_error(path_, *v, k, "bool");
  return v->num.u != 0;
}

std::string GgufFile::str(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  if (v->type != GgufType::STRING) type_error(path_, *v, k, "string");
  return std::string(v->str);
}

std::vector<std::string> GgufFile::str_array(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) {
    type_error(path_, *v, k, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (const GgufValue& s : v->items) out.emplace_back(s.str);
  return out;
}

std::vector<float> GgufFile::f32_array(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  if (v->type != GgufType::ARRAY || !v->raw || v->elem_type == GgufType::BOOL) {
    type_error(path_, *v, k, "array of float32");
  }
  std::vector<float> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = to_float(path_, gguf_array_elem(*v, i), k);
  return out;
}

std::vector<int64_t> GgufFile::int_array(std::string_view key) const {
  HPL_GGUF_LOOKUP(key);
  if (v->type != GgufType::ARRAY || !(is_signed(v->elem_type) || is_unsigned(v->elem_type))) {
    type_error(path_, *v, k, "array of integers");
  }
  std::vector<int64_t> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = to_signed(path_, gguf_array_elem(*v, i), k);
  return out;
}

#undef HPL_GGUF_LOOKUP

uint32_t GgufFile::u32_or(std::string_view key, uint32_t dflt) const {
  return has(key) ? u32(key) : dflt;
}
uint64_t GgufFile::u64_or(std::string_view key, uint64_t dflt) const {
  return has(key) ? u64(key) : dflt;
}
int64_t GgufFile::i64_or(std::string_view key, int64_t dflt) const {
  return has(key) ? i64(key) : dflt;
}
float GgufFile::f32_or(std::string_view key, float dflt) const {
  return has(key) ? f32(key) : dflt;
}
bool GgufFile::boolean_or(std::string_view key, bool dflt) const {
  return has(key) ? boolean(key) : dflt;
}
std::string GgufFile::str_or(std::string_view key, const std::string& dflt) const {
  return has(key) ? str(key) : dflt;
}

}  // namespace hpl
