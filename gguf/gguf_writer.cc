// GGUF v3 writer; see gguf_writer.h for the layout.
#include "gguf/gguf_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace hpl {
namespace {

constexpr uint32_t kVersion = 3;
constexpr int kMaxDepth = 8;  // arrays of arrays, as the reader accepts

template <typename T>
void append(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, arm64)
  out.append(b, sizeof(T));
}

void append_str(std::string& out, std::string_view s) {
  append<uint64_t>(out, s.size());
  out.append(s.data(), s.size());
}

// Encodes a value (without its type id) as GGUF stores it.
void encode_value(std::string& out, const GgufValue& v, int depth) {
  switch (v.type) {
    case GgufType::UINT8:
    case GgufType::BOOL:
      append<uint8_t>(out, static_cast<uint8_t>(v.num.u));
      return;
    case GgufType::INT8:
      append<int8_t>(out, static_cast<int8_t>(v.num.i));
      return;
    case GgufType::UINT16:
      append<uint16_t>(out, static_cast<uint16_t>(v.num.u));
      return;
    case GgufType::INT16:
      append<int16_t>(out, static_cast<int16_t>(v.num.i));
      return;
    case GgufType::UINT32:
      append<uint32_t>(out, static_cast<uint32_t>(v.num.u));
      return;
    case GgufType::INT32:
      append<int32_t>(out, static_cast<int32_t>(v.num.i));
      return;
    case GgufType::UINT64:
      append<uint64_t>(out, v.num.u);
      return;
    case GgufType::INT64:
      append<int64_t>(out, v.num.i);
      return;
    case GgufType::FLOAT32:
      append<float>(out, static_cast<float>(v.num.f));
      return;
    case GgufType::FLOAT64:
      append<double>(out, v.num.f);
      return;
    case GgufType::STRING:
      append_str(out, v.str);
      return;
    case GgufType::ARRAY: {
      if (depth >= kMaxDepth) throw GgufError("gguf writer: arrays nested deeper than 8");
      append<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      append<uint64_t>(out, v.count);
      const size_t es = gguf_scalar_size(v.elem_type);
      if (es != 0) {  // numbers: packed bytes as stored
        if (v.count && !v.raw) throw GgufError("gguf writer: numeric array without data");
        out.append(reinterpret_cast<const char*>(v.raw), static_cast<size_t>(v.count) * es);
        return;
      }
      if (v.items.size() != v.count)
        throw GgufError("gguf writer: array count " + std::to_string(v.count) + " but " +
                        std::to_string(v.items.size()) + " items");
      for (const GgufValue& it : v.items) {
        if (it.type != v.elem_type)
          throw GgufError(std::string("gguf writer: array of ") + gguf_type_name(v.elem_type) +
                          " has an item of type " + gguf_type_name(it.type));
        encode_value(out, it, depth + 1);
      }
      return;
    }
  }
  throw GgufError("gguf writer: unknown value type " +
                  std::to_string(static_cast<uint32_t>(v.type)));
}

std::string typed(GgufType t, const std::string& body) {
  std::string out;
  append<uint32_t>(out, static_cast<uint32_t>(t));
  return out + body;
}

template <typename T>
std::string scalar(GgufType t, T v) {
  std::string out;
  append<uint32_t>(out, static_cast<uint32_t>(t));
  append<T>(out, v);
  return out;
}

}  // namespace

GgufWriter::GgufWriter(std::string path, size_t alignment)
    : path_(std::move(path)), tmp_path_(temp_path(path_)), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
    throw GgufError(path_ + ": alignment " + std::to_string(alignment_) + " is not a power of two");
  if (alignment_ != 32) set_u32("general.alignment", static_cast<uint32_t>(alignment_));
}

GgufWriter::~GgufWriter() {
  if (f_) std::fclose(f_);
  if (header_done_ && !finished_) std::remove(tmp_path_.c_str());
}

void GgufWriter::fail(const std::string& what) const {
  throw GgufError(path_ + ": " + what);
}

void GgufWriter::put_kv(std::string_view key, std::string bytes) {
  if (header_done_) fail("metadata '" + std::string(key) + "' set after the header was written");
  if (key.empty()) fail("empty metadata key");
  for (Kv& kv : kvs_) {
    if (kv.key == key) {
      kv.bytes = std::move(bytes);
      return;
    }
  }
  kvs_.push_back({std::string(key), std::move(bytes)});
}

void GgufWriter::set(std::string_view key, const GgufValue& v) {
  if (key == "general.alignment") {  // the writer owns the alignment
    if (v.type == GgufType::ARRAY || v.type == GgufType::STRING || v.num.u != alignment_)
      fail("general.alignment differs from the writer's alignment " + std::to_string(alignment_));
  }
  std::string body;
  encode_value(body, v, 0);
  put_kv(key, typed(v.type, body));
}

void GgufWriter::set_u8(std::string_view k, uint8_t v) {
  put_kv(k, scalar(GgufType::UINT8, v));
}
void GgufWriter::set_i8(std::string_view k, int8_t v) {
  put_kv(k, scalar(GgufType::INT8, v));
}
void GgufWriter::set_u16(std::string_view k, uint16_t v) {
  put_kv(k, scalar(GgufType::UINT16, v));
}
void GgufWriter::set_i16(std::string_view k, int16_t v) {
  put_kv(k, scalar(GgufType::INT16, v));
}
void GgufWriter::set_u32(std::string_view k, uint32_t v) {
  put_kv(k, scalar(GgufType::UINT32, v));
}
void GgufWriter::set_i32(std::string_view k, int32_t v) {
  put_kv(k, scalar(GgufType::INT32, v));
}
void GgufWriter::set_u64(std::string_view k, uint64_t v) {
  put_kv(k, scalar(GgufType::UINT64, v));
}
void GgufWriter::set_i64(std::string_view k, int64_t v) {
  put_kv(k, scalar(GgufType::INT64, v));
}
void GgufWriter::set_f32(std::string_view k, float v) {
  put_kv(k, scalar(GgufType::FLOAT32, v));
}
void GgufWriter::set_f64(std::string_view k, double v) {
  put_kv(k, scalar(GgufType::FLOAT64, v));
}
void GgufWriter::set_bool(std::string_view k, bool v) {
  put_kv(k, scalar(GgufType::BOOL, static_cast<uint8_t>(v ? 1 : 0)));
}
void GgufWriter::set_str(std::string_view k, std::string_view v) {
  std::string body;
  append_str(body, v);
  put_kv(k, typed(GgufType::STRING, body));
}
void GgufWriter::set_str_array(std::string_view k, const std::vector<std::string>& v) {
  std::string body;
  append<uint32_t>(body, static_cast<uint32_t>(GgufType::STRING));
  append<uint64_t>(body, v.size());
  for (const std::string& s : v) append_str(body, s);
  put_kv(k, typed(GgufType::ARRAY, body));
}
void GgufWriter::set_array(std::string_view k, GgufType elem, const void* data, uint64_t count) {
  const size_t es = gguf_scalar_size(elem);
  if (es == 0) fail("set_array '" + std::string(k) + "': element type must be a number or bool");
  std::string body;
  append<uint32_t>(body, static_cast<uint32_t>(elem));
  append<uint64_t>(body, count);
  body.append(static_cast<const char*>(data), static_cast<size_t>(count) * es);
  put_kv(k, typed(GgufType::ARRAY, body));
}

bool GgufWriter::has(std::string_view key) const {
  for (const Kv& kv : kvs_)
    if (kv.key == key) return true;
  return false;
}

void GgufWriter::erase(std::string_view key) {
  for (size_t i = 0; i < kvs_.size(); ++i) {
    if (kvs_[i].key == key) {
      kvs_.erase(kvs_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

size_t GgufWriter::add_tensor(std::string_view name, DType type, int n_dims, const int64_t ne[4]) {
  const std::string n(name);
  if (header_done_) fail("tensor '" + n + "' added after the header was written");
  if (n.empty()) fail("empty tensor name");
  for (const Tensor& t : tensors_)
    if (t.name == n) fail("duplicate tensor '" + n + "'");
  if (n_dims < 1 || n_dims > 4) fail("tensor '" + n + "': n_dims " + std::to_string(n_dims));
  const TypeTraits tr = type_traits(type);
  if (!tr.known && !is_packed_type(type)) fail("tensor '" + n + "': unknown type");
  if (is_packed_type(type) && (n_dims != 2 || ne[1] % kPackRows != 0))
    fail("tensor '" + n + "': a packed " + tr.name +
         " tensor must be 2-D with rows a multiple of " + std::to_string(kPackRows));
  Tensor t{n, type, n_dims, {1, 1, 1, 1}, data_size_, 0};
  for (int d = 0; d < n_dims; ++d) {
    if (ne[d] <= 0) fail("tensor '" + n + "': dims[" + std::to_string(d) + "] <= 0");
    t.ne[d] = ne[d];
  }
  if (t.ne[0] % tr.block_elems != 0)
    fail("tensor '" + n + "': row length " + std::to_string(t.ne[0]) +
         " is not a multiple of the " + tr.name + " block (" + std::to_string(tr.block_elems) +
         ")");
  t.n_bytes = row_bytes(type, t.ne[0]) * static_cast<size_t>(t.ne[1] * t.ne[2] * t.ne[3]);
  data_size_ += (t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
  tensors_.push_back(std::move(t));
  return tensors_.size() - 1;
}

void GgufWriter::write_raw(const void* p, size_t n) {
  if (n == 0) return;
  if (std::fwrite(p, 1, n, f_) != n) fail(std::string("write failed: ") + std::strerror(errno));
  pos_ += n;
}

void GgufWriter::pad() {
  static const char zeros[256] = {};
  size_t n = static_cast<size_t>((alignment_ - pos_ % alignment_) % alignment_);
  while (n > 0) {
    const size_t k = n < sizeof zeros ? n : sizeof zeros;
    write_raw(zeros, k);
    n -= k;
  }
}

void GgufWriter::write_header() {
  if (header_done_) fail("header written twice");
  for (const Tensor& t : tensors_)
    if (is_packed_type(t.type) && !has(kPackedLayoutKey))
      fail("tensor '" + t.name + "' is packed but the key " + kPackedLayoutKey + " is not set");
  f_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!f_) fail("cannot create " + tmp_path_ + ": " + std::strerror(errno));
  header_done_ = true;
  std::string h;
  h.append("GGUF", 4);
  append<uint32_t>(h, kVersion);
  append<uint64_t>(h, tensors_.size());
  append<uint64_t>(h, kvs_.size());
  for (const Kv& kv : kvs_) {
    append_str(h, kv.key);
    h += kv.bytes;
  }
  for (const Tensor& t : tensors_) {
    append_str(h, t.name);
    append<uint32_t>(h, static_cast<uint32_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) append<uint64_t>(h, static_cast<uint64_t>(t.ne[d]));
    append<uint32_t>(h, static_cast<uint32_t>(t.type));
    append<uint64_t>(h, t.offset);
  }
  write_raw(h.data(), h.size());
  pad();
  cur_ = 0;
  cur_written_ = 0;
  while (cur_ < tensors_.size() && tensors_[cur_].n_bytes == 0) ++cur_;
}

void GgufWriter::write_data(const void* data, size_t n) {
  if (!header_done_ || finished_) fail("tensor data written outside header..finish");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size())
      fail("more tensor data written than the table declares (" + std::to_string(n) +
           " bytes too many)");
    const Tensor& t = tensors_[cur_];
    const size_t k = std::min(n, t.n_bytes - cur_written_);
    write_raw(p, k);
    p += k;
    n -= k;
    cur_written_ += k;
    if (cur_written_ == t.n_bytes) {
      pad();
      cur_written_ = 0;
      ++cur_;
    }
  }
}

void GgufWriter::finish() {
  if (!header_done_) write_header();
  if (finished_) return;
  if (cur_ < tensors_.size())
    fail("tensor '" + tensors_[cur_].name + "' has " + std::to_string(cur_written_) + " of " +
         std::to_string(tensors_[cur_].n_bytes) + " bytes written");
  // On disk before the rename, so a crash cannot leave PATH renamed but empty.
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) fail(std::string("write failed: ") + std::strerror(errno));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    fail("cannot rename " + tmp_path_ + ": " + std::strerror(errno));
  finished_ = true;
}

}  // namespace hpl
