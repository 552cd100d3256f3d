// GGUF reader: valid images built in memory, every kind of corruption (truncation, flips,
// absurd counts, bad tensors), typed getters, and the real files in tests/data.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf.h"

namespace hpl {
namespace {

namespace fs = std::filesystem;
using T = GgufType;

// ---- a small GGUF writer for tests -------------------------------------------------------

class Bytes {
 public:
  explicit Bytes(uint32_t version) : v1_(version == 1) {}
  template <class V>
  void put(V v) {
    size_t n = b.size();
    b.resize(n + sizeof v);
    std::memcpy(b.data() + n, &v, sizeof v);
  }
  void count(uint64_t n) {  // counts, lengths, dims: u32 in v1, u64 after
    if (v1_) {
      put(static_cast<uint32_t>(n));
    } else {
      put(n);
    }
  }
  void str(std::string_view s) {
    count(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> b;

 private:
  bool v1_;
};

struct TensorSpec {
  std::string name;
  uint32_t type;
  std::vector<uint64_t> dims;
  std::optional<uint64_t> offset;  // none: next aligned free offset
  uint64_t n_bytes = 0;            // bytes of data to reserve (computed when valid)
};

// Builds a GGUF image: call the kv_* / tensor methods, then build().
class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version), kv_(version) {}

  // Raw key and value type tag; the caller appends the value with `kv_bytes()`.
  Bytes& kv_raw(std::string_view key, T type) {
    ++n_kv_;
    kv_.str(key);
    kv_.put(static_cast<uint32_t>(type));
    return kv_;
  }
  Bytes& kv_bytes() { return kv_; }
  template <class V>
  void kv(std::string_view key, T type, V v) {
    kv_raw(key, type).put(v);
  }
  void kv_u32(std::string_view key, uint32_t v) { kv(key, T::UINT32, v); }
  void kv_str(std::string_view key, std::string_view v) { kv_raw(key, T::STRING).str(v); }
  void kv_f32(std::string_view key, float v) { kv(key, T::FLOAT32, v); }
  template <class V>
  void kv_array(std::string_view key, T elem, const std::vector<V>& vs) {
    kv_raw(key, T::ARRAY).put(static_cast<uint32_t>(elem));
    kv_.count(vs.size());
    for (V v : vs) kv_.put(v);
  }
  void kv_str_array(std::string_view key, const std::vector<std::string>& vs) {
    kv_raw(key, T::ARRAY).put(static_cast<uint32_t>(T::STRING));
    kv_.count(vs.size());
    for (const auto& s : vs) kv_.str(s);
  }

  void tensor(std::string name, DType type, std::vector<uint64_t> dims,
              std::optional<uint64_t> offset = std::nullopt) {
    tensor_raw(std::move(name), static_cast<uint32_t>(type), std::move(dims), offset);
  }
  void tensor_raw(std::string name, uint32_t type, std::vector<uint64_t> dims,
                  std::optional<uint64_t> offset = std::nullopt) {
    TensorSpec t{std::move(name), type, std::move(dims), offset, 0};
    TypeTraits tr = type_traits(type);
    long double n = 1;
    for (uint64_t d : t.dims) n *= static_cast<long double>(d);
    if ((tr.known || is_packed_type(type)) && n > 0 && n < 1e7) {
      t.n_bytes = static_cast<uint64_t>(n) / tr.block_elems * tr.block_bytes;
    }
    tensors_.push_back(std::move(t));
  }
  void set_alignment(uint64_t a) { alignment_ = a; }  // only used for layout

  std::vector<uint8_t> build() {
    Bytes out(version_);
    out.b.assign({'G', 'G', 'U', 'F'});  // (insert at end() of the empty vector: GCC 12
                                         // -Wstringop-overflow false positive under TSan)
    out.put(version_);
    out.count(tensors_.size());
    out.count(n_kv_);
    out.b.insert(out.b.end(), kv_.b.begin(), kv_.b.end());
    kv_end = out.b.size();
    uint64_t next = 0;
    for (TensorSpec& t : tensors_) {
      if (!t.offset) {
        t.offset = next;
        next = (next + t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
      }
      tensor_info_offsets.push_back(out.b.size());
      out.str(t.name);
      out.put(static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) out.count(d);
      out.put(t.type);
      out.put(*t.offset);
    }
    table_end = out.b.size();
    size_t data = (out.b.size() + alignment_ - 1) / alignment_ * alignment_;
    size_t end = data;
    for (const TensorSpec& t : tensors_) {
      if (t.n_bytes < (1u << 24) && *t.offset < (1u << 24)) {
        end = std::max<size_t>(end, data + *t.offset + t.n_bytes);
      }
    }
    out.b.resize(end);
    for (size_t i = data; i < end; ++i) out.b[i] = static_cast<uint8_t>(i * 7 + 1);
    return out.b;
  }

  size_t kv_end = 0, table_end = 0;
  std::vector<size_t> tensor_info_offsets;

 private:
  uint32_t version_;
  Bytes kv_;
  uint64_t n_kv_ = 0;
  uint64_t alignment_ = 32;
  std::vector<TensorSpec> tensors_;
};

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& img) {
  return GgufFile::from_memory(img.data(), img.size(), "test.gguf");
}

// Parses img, expecting a GgufError whose message contains every one of `parts`.
void expect_error(const std::vector<uint8_t>& img, std::vector<std::string> parts) {
  try {
    parse(img);
    ADD_FAILURE() << "no error; expected one containing '" << parts[0] << "'";
  } catch (const GgufError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << msg << "\n  lacks: " << p;
  }
}

// A model-like image with every metadata type and a few tensors of several types.
GgufBuilder rich_builder(uint32_t version = 3) {
  GgufBuilder g(version);
  g.kv_str("general.architecture", "llama");
  g.kv_str("general.name", "tiny \"test\"");
  g.kv_u32("llama.block_count", 5);
  g.kv_u32("llama.embedding_length", 64);
  g.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.kv("k.u8", T::UINT8, uint8_t{200});
  g.kv("k.i8", T::INT8, int8_t{-100});
  g.kv("k.u16", T::UINT16, uint16_t{60000});
  g.kv("k.i16", T::INT16, int16_t{-30000});
  g.kv("k.i32", T::INT32, int32_t{-7});
  g.kv("k.u64", T::UINT64, uint64_t{1} << 40);
  g.kv("k.i64", T::INT64, int64_t{-(int64_t{1} << 40)});
  g.kv("k.f64", T::FLOAT64, 2.5);
  g.kv("k.bool", T::BOOL, uint8_t{1});
  g.kv_array("k.arr_i32", T::INT32, std::vector<int32_t>{1, -2, 3});
  g.kv_array("k.arr_f32", T::FLOAT32, std::vector<float>{0.5f, -1.25f});
  g.kv_array("k.arr_u8", T::UINT8, std::vector<uint8_t>{});
  g.kv_str_array("tokenizer.ggml.tokens", {"<unk>", "a",
                                           "\xe2\x96\x81"
                                           "b",
                                           ""});
  // Array of arrays: [[1, 2], [3]] of uint16, then [["x"], []] of strings.
  Bytes& b = g.kv_raw("k.nested", T::ARRAY);
  b.put(static_cast<uint32_t>(T::ARRAY));
  b.count(2);
  b.put(static_cast<uint32_t>(T::UINT16));
  b.count(2);
  b.put(uint16_t{1});
  b.put(uint16_t{2});
  b.put(static_cast<uint32_t>(T::UINT16));
  b.count(1);
  b.put(uint16_t{3});
  Bytes& s = g.kv_raw("k.nested_str", T::ARRAY);
  s.put(static_cast<uint32_t>(T::ARRAY));
  s.count(2);
  s.put(static_cast<uint32_t>(T::STRING));
  s.count(1);
  s.str("x");
  s.put(static_cast<uint32_t>(T::STRING));
  s.count(0);
  g.tensor("token_embd.weight", DType::F32, {8, 4});
  g.tensor("blk.0.attn_q.weight", DType::Q8_0, {64, 3});
  g.tensor("blk.0.ffn_down.weight", DType::Q4_K, {256, 2});
  g.tensor("output_norm.weight", DType::F16, {8});
  return g;
}

// ---- valid images ------------------------------------------------------------------------

void check_rich(const GgufFile& f) {
  EXPECT_EQ(f.architecture(), "llama");
  EXPECT_EQ(f.str("general.name"), "tiny \"test\"");
  EXPECT_EQ(f.u32("llama.block_count"), 5u);
  EXPECT_EQ(f.u32("{arch}.block_count"), 5u);
  EXPECT_EQ(f.resolve("{arch}.embedding_length"), "llama.embedding_length");
  EXPECT_FLOAT_EQ(f.f32("{arch}.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.u32("k.u8"), 200u);
  EXPECT_EQ(f.i64("k.i8"), -100);
  EXPECT_EQ(f.u32("k.u16"), 60000u);
  EXPECT_EQ(f.i64("k.i16"), -30000);
  EXPECT_EQ(f.i64("k.i32"), -7);
  EXPECT_EQ(f.u64("k.u64"), uint64_t{1} << 40);
  EXPECT_EQ(f.i64("k.i64"), -(int64_t{1} << 40));
  EXPECT_FLOAT_EQ(f.f32("k.f64"), 2.5f);
  EXPECT_TRUE(f.boolean("k.bool"));
  EXPECT_EQ(f.int_array("k.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.f32_array("k.arr_f32"), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_TRUE(f.int_array("k.arr_u8").empty());
  EXPECT_EQ(f.str_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"<unk>", "a",
                                                                            "\xe2\x96\x81"
                                                                            "b",
                                                                            ""}));

  const GgufValue* n = f.find("k.nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->type, T::ARRAY);
  ASSERT_EQ(n->elem_type, T::ARRAY);
  ASSERT_EQ(n->count, 2u);
  ASSERT_EQ(n->items.size(), 2u);
  EXPECT_EQ(n->items[0].elem_type, T::UINT16);
  EXPECT_EQ(n->items[0].count, 2u);
  EXPECT_EQ(gguf_array_elem(n->items[0], 1).num.u, 2u);
  EXPECT_EQ(gguf_array_elem(gguf_array_elem(*n, 1), 0).num.u, 3u);
  const GgufValue* ns = f.find("k.nested_str");
  ASSERT_NE(ns, nullptr);
  EXPECT_EQ(ns->items[0].items[0].str, "x");
  EXPECT_EQ(ns->items[1].count, 0u);

  ASSERT_EQ(f.tensors().size(), 4u);
  const GgufTensor* q = f.tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, DType::Q8_0);
  EXPECT_EQ(q->n_dims, 2);
  EXPECT_EQ(q->ne[0], 64);
  EXPECT_EQ(q->ne[1], 3);
  EXPECT_EQ(q->n_rows(), 3);
  EXPECT_EQ(q->n_bytes, 6u * 34);
  EXPECT_FALSE(q->rows_unaligned);
  EXPECT_EQ(q->offset % f.alignment(), 0u);
  EXPECT_EQ(q->data, f.base() + f.data_offset() + q->offset);
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight")->n_bytes, 2u * 144);
  EXPECT_EQ(f.tensor("output_norm.weight")->n_bytes, 16u);
  EXPECT_EQ(f.tensor("nope"), nullptr);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
}

TEST(Gguf, ParsesEveryTypeV3) {
  auto img = rich_builder(3).build();
  auto f = parse(img);
  EXPECT_EQ(f->version(), 3u);
  check_rich(*f);
}

TEST(Gguf, ParsesV1AndV2) {
  for (uint32_t v : {1u, 2u}) {
    auto img = rich_builder(v).build();
    auto f = parse(img);
    EXPECT_EQ(f->version(), v);
    check_rich(*f);
  }
}

TEST(Gguf, CustomAlignment) {
  GgufBuilder g;
  g.kv_u32("general.alignment", 64);
  g.set_alignment(64);
  g.tensor("a", DType::F32, {3});
  g.tensor("b", DType::F32, {5});
  auto img = g.build();
  auto f = parse(img);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->tensor("b")->offset, 64u);
}

TEST(Gguf, DefaultsAndMissingKeys) {
  auto img = rich_builder().build();
  auto f = parse(img);
  EXPECT_EQ(f->u32_or("llama.context_length", 77), 77u);
  EXPECT_EQ(f->u32_or("{arch}.block_count", 77), 5u);
  EXPECT_EQ(f->str_or("general.author", "x"), "x");
  EXPECT_FLOAT_EQ(f->f32_or("llama.rope.freq_base", 1e4f), 1e4f);
  EXPECT_TRUE(f->boolean_or("k.missing", true));
  EXPECT_EQ(f->i64_or("k.missing", -3), -3);
  EXPECT_FALSE(f->has("llama.context_length"));
  EXPECT_TRUE(f->has("{arch}.block_count"));
}

// ---- typed getter errors -----------------------------------------------------------------

void expect_key_error(const std::function<void()>& fn, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const GgufError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << " lacks " << p;
  }
}

TEST(Gguf, TypeMismatchAndMissingKeyNameTheKey) {
  auto img = rich_builder().build();
  auto f = parse(img);
  expect_key_error([&] { f->u32("general.name"); },
                   {"key 'general.name'", "type is string", "expected uint32"});
  expect_key_error([&] { f->str("{arch}.block_count"); },
                   {"key 'llama.block_count'", "type is uint32", "expected string"});
  expect_key_error([&] { f->u32("{arch}.context_length"); },
                   {"key 'llama.context_length'", "missing"});
  expect_key_error([&] { f->u32("k.i32"); }, {"key 'k.i32'", "-7 does not fit uint32"});
  expect_key_error([&] { f->u32("k.u64"); }, {"key 'k.u64'", "does not fit uint32"});
  expect_key_error([&] { f->boolean("k.u8"); }, {"key 'k.u8'", "expected bool"});
  expect_key_error([&] { f->str_array("k.arr_i32"); },
                   {"key 'k.arr_i32'", "array of int32", "expected array of string"});
  expect_key_error([&] { f->int_array("k.arr_f32"); }, {"key 'k.arr_f32'", "expected array"});
  expect_key_error([&] { f->f32_array("tokenizer.ggml.tokens"); }, {"key 'tokenizer.ggml.tokens'"});
  expect_key_error([&] { f->f32("general.name"); }, {"key 'general.name'"});
  // A type mismatch still throws through the *_or variants.
  expect_key_error([&] { f->u32_or("general.name", 1); }, {"key 'general.name'"});
  expect_key_error([&] { f->str_or("{arch}.block_count", "x"); }, {"key 'llama.block_count'"});
}

TEST(Gguf, ArchKeysWithoutArchitecture) {
  GgufBuilder g;
  g.kv_u32("llama.block_count", 2);
  auto img = g.build();
  auto f = parse(img);
  EXPECT_EQ(f->architecture(), "");
  EXPECT_FALSE(f->has("{arch}.block_count"));
  expect_key_error([&] { f->u32("{arch}.block_count"); }, {"general.architecture is not set"});
}

// Fuzzer finding (harness, not reader): a key literally named "{arch}..." is legal in the
// file, but lookups of "{arch}..." resolve to the architecture's key, never to it.
TEST(Gguf, LiteralArchPlaceholderKey) {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama");
  g.kv_str("{arch}l.name", "shadowed");
  g.kv_str("llamal.name", "real");
  auto img = g.build();
  auto f = parse(img);
  EXPECT_EQ(f->str("{arch}l.name"), "real");
  EXPECT_EQ(f->metadata()[1].key, "{arch}l.name");
}

// ---- corruption --------------------------------------------------------------------------

TEST(Gguf, TruncationAtEveryByteIsAnError) {
  for (uint32_t v : {1u, 3u}) {
    GgufBuilder g = rich_builder(v);
    auto img = g.build();
    ASSERT_NO_THROW(parse(img));
    for (size_t n = 0; n < img.size(); ++n) {
      std::vector<uint8_t> cut(img.begin(), img.begin() + n);
      try {
        parse(cut);
        ADD_FAILURE() << "v" << v << " truncated to " << n << " of " << img.size() << " parsed";
      } catch (const GgufError& e) {
        EXPECT_EQ(std::string(e.what()).rfind("test.gguf: ", 0), 0u) << e.what();
      }
    }
  }
}

TEST(Gguf, TruncationMessageSaysWhere) {
  auto img = rich_builder().build();
  img.resize(10);
  expect_error(img, {"offset 8", "tensor count", "needs 8 bytes, only 2 left"});
}

// Walks everything a parsed file exposes (ASan checks the tensor data pointers).
uint64_t touch_all(const GgufFile& f) {
  uint64_t h = 0;
  std::function<void(const GgufValue&)> walk = [&](const GgufValue& v) {
    h += v.str.size() + v.num.u;
    if (v.type == T::ARRAY) {
      for (uint64_t i = 0; i < v.count; ++i) walk(gguf_array_elem(v, i));
    }
  };
  for (const auto& kv : f.metadata()) walk(kv.value);
  for (const auto& t : f.tensors()) {
    for (size_t i = 0; i < t.n_bytes; ++i) h += t.data[i];
  }
  return h;
}

TEST(Gguf, RandomByteFlipsErrorOrParse) {
  for (uint32_t v : {1u, 3u}) {
    auto img = rich_builder(v).build();
    std::mt19937 rng(1234 + v);
    int ok = 0, errors = 0;
    for (int iter = 0; iter < 4000; ++iter) {
      std::vector<uint8_t> bad = img;
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) {
        size_t pos = rng() % bad.size();
        // Half the time bit flips, half the time a random byte (more likely absurd values).
        if (rng() & 1) {
          bad[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
        } else {
          bad[pos] = static_cast<uint8_t>(rng());
        }
      }
      try {
        auto f = parse(bad);
        touch_all(*f);
        ++ok;
      } catch (const GgufError&) {
        ++errors;
      }
    }
    EXPECT_GT(ok, 0);
    EXPECT_GT(errors, 0);
  }
}

TEST(Gguf, BadMagicAndVersion) {
  auto img = rich_builder().build();
  auto bad = img;
  bad[0] = 'X';
  expect_error(bad, {"offset 0", "magic", "not a GGUF file"});
  for (uint32_t v : {0u, 4u, 0x03000000u}) {
    bad = img;
    std::memcpy(bad.data() + 4, &v, 4);
    expect_error(bad, {"offset 4", "version " + std::to_string(v)});
  }
  bad = img;
  uint32_t be = 0x03000000u;
  std::memcpy(bad.data() + 4, &be, 4);
  expect_error(bad, {"big-endian"});
  expect_error({}, {"offset 0", "magic"});
}

// Header with absurd counts, to be filled by the caller.
std::vector<uint8_t> header(uint64_t n_tensors, uint64_t n_kv) {
  Bytes b(3);
  b.b = {'G', 'G', 'U', 'F'};
  b.put(uint32_t{3});
  b.put(n_tensors);
  b.put(n_kv);
  return b.b;
}

TEST(Gguf, AbsurdCountsFailBeforeAllocating) {
  const uint64_t huge = uint64_t{1} << 60;
  expect_error(header(huge, 0), {"offset 8", "tensor count 1152921504606846976"});
  expect_error(header(0, huge), {"offset 16", "metadata count 1152921504606846976"});
  expect_error(header(UINT64_MAX, UINT64_MAX), {"tensor count"});

  for (T elem : {T::UINT8, T::UINT64, T::STRING, T::ARRAY, T::BOOL}) {
    GgufBuilder g;
    Bytes& b = g.kv_raw("big", T::ARRAY);
    b.put(static_cast<uint32_t>(elem));
    b.put(huge);
    b.put(uint64_t{0});
    expect_error(g.build(), {"key 'big'", "array count 1152921504606846976", gguf_type_name(elem)});
  }
  {
    GgufBuilder g;  // key length
    g.kv_u32("x", 1);
    auto img = g.build();
    uint64_t len = huge;
    std::memcpy(img.data() + 24, &len, 8);
    expect_error(img, {"offset 24", "metadata #0", "key: string length 1152921504606846976"});
  }
  {
    GgufBuilder g;  // string value length
    g.kv_raw("s", T::STRING).put(huge);
    expect_error(g.build(), {"key 's'", "string length 1152921504606846976"});
  }
  {
    GgufBuilder g;  // string element length
    Bytes& b = g.kv_raw("toks", T::ARRAY);
    b.put(static_cast<uint32_t>(T::STRING));
    b.put(uint64_t{2});
    b.str("ok");
    b.put(uint64_t{UINT64_MAX});
    expect_error(g.build(), {"key 'toks'[1]", "string length 18446744073709551615"});
  }
  {
    GgufBuilder g;  // tensor name length
    g.tensor("w", DType::F32, {4});
    auto img = g.build();
    std::memcpy(img.data() + g.tensor_info_offsets[0], &huge, 8);
    expect_error(img, {"tensor #0", "name: string length"});
  }
}

TEST(Gguf, NestingDepthIsBounded) {
  GgufBuilder g;
  Bytes& b = g.kv_raw("deep", T::ARRAY);
  for (int i = 0; i < 100; ++i) {
    b.put(static_cast<uint32_t>(T::ARRAY));
    b.put(uint64_t{1});
  }
  expect_error(g.build(), {"key 'deep'", "nested deeper than"});
}

TEST(Gguf, BadValues) {
  {
    GgufBuilder g;
    g.kv("b", T::BOOL, uint8_t{2});
    expect_error(g.build(), {"key 'b'", "bool value 2"});
  }
  {
    GgufBuilder g;
    g.kv_raw("t", static_cast<T>(13)).put(uint32_t{0});
    expect_error(g.build(), {"key 't'", "unknown value type 13"});
  }
  {
    GgufBuilder g;
    g.kv_array("a", static_cast<T>(99), std::vector<uint8_t>{});
    expect_error(g.build(), {"key 'a'", "unknown array element type 99"});
  }
  {
    GgufBuilder g;
    g.kv_u32("dup", 1);
    g.kv_u32("dup", 2);
    expect_error(g.build(), {"key 'dup'", "duplicate key"});
  }
  {
    GgufBuilder g;
    g.kv_u32("", 1);
    expect_error(g.build(), {"empty key"});
  }
  for (uint32_t a : {0u, 3u, 48u}) {
    GgufBuilder g;
    g.kv_u32("general.alignment", a);
    expect_error(g.build(),
                 {"key 'general.alignment'", std::to_string(a) + " is not a power of two"});
  }
  {
    GgufBuilder g;
    g.kv_str("general.alignment", "32");
    expect_error(g.build(), {"key 'general.alignment'", "type is string"});
  }
  {
    GgufBuilder g;
    g.kv_u32("general.architecture", 1);
    expect_error(g.build(), {"key 'general.architecture'", "expected string"});
  }
}

TEST(Gguf, ZeroDimNamesTensorFieldAndOffset) {
  GgufBuilder g;
  g.tensor("blk.0.attn_q.weight", DType::F32, {4, 0});
  auto img = g.build();
  // Entry: name (8 + 19), n_dims (4), dims[0] (8), then dims[1].
  size_t off = g.tensor_info_offsets[0] + 8 + 19 + 4 + 8;
  try {
    parse(img);
    FAIL() << "no error";
  } catch (const GgufError& e) {
    EXPECT_EQ(std::string(e.what()), "test.gguf: offset " + std::to_string(off) +
                                         ": tensor 'blk.0.attn_q.weight': dims[1] = 0");
  }
}

TEST(Gguf, BadTensorShapes) {
  auto one = [](std::vector<uint64_t> dims, uint32_t type = 0) {
    GgufBuilder g;
    g.tensor_raw("w", type, std::move(dims));
    return g.build();
  };
  expect_error(one({}), {"tensor 'w'", "n_dims = 0"});
  expect_error(one({1, 1, 1, 1, 1}), {"tensor 'w'", "n_dims = 5"});
  expect_error(one({1u << 20, 0, 3}), {"dims[1] = 0"});
  expect_error(one({uint64_t{1} << 40, uint64_t{1} << 40}), {"dims[1]", "overflows"});
  expect_error(one({uint64_t{1} << 63}), {"dims[0]", "overflows"});
  expect_error(one({UINT64_MAX}), {"dims[0]", "overflows"});
  expect_error(one({1u << 31, 1u << 31, 1u << 31}), {"dims[2]", "overflows"});
  for (uint32_t t : {4u, 5u, 31u, 77u, 0xffffffffu}) {
    expect_error(one({32}, t), {"tensor 'w'", "type = " + std::to_string(t) + " is not a known"});
  }
  expect_error(one({33}, static_cast<uint32_t>(DType::Q8_0)), {"blocks of 32", "has 33"});
  expect_error(one({32, 3}, static_cast<uint32_t>(DType::Q4_K)), {"blocks of 256"});
  // Byte size that overflows uint64 even though the element count fits int64.
  expect_error(one({uint64_t{1} << 62}, static_cast<uint32_t>(DType::F64)), {"tensor 'w'"});
}

// hpl's packed types (gguf.h): only with the hpl.packed_layout key, 2-D, rows in groups of 8.
TEST(Gguf, PackedTensors) {
  auto packed = [](std::vector<uint64_t> dims, DType type = DType::Q4_K_X8, bool key = true,
                   uint32_t version = kPackedLayoutVersion) {
    GgufBuilder g;
    if (key) g.kv_u32(kPackedLayoutKey, version);
    g.tensor("blk.0.ffn_up.weight", type, std::move(dims));
    return g.build();
  };
  {
    auto img = packed({512, 16});
    auto f = parse(img);
    EXPECT_EQ(f->packed_layout(), kPackedLayoutVersion);
    const GgufTensor* t = f->tensor("blk.0.ffn_up.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, DType::Q4_K_X8);
    EXPECT_EQ(t->n_bytes, 16u * 2 * 144);  // as the q4_K source
  }
  for (DType t : {DType::Q4_0_X8, DType::Q5_0_X8, DType::Q8_0_X8, DType::Q4_K_X8, DType::Q5_K_X8,
                  DType::Q6_K_X8}) {
    auto img = packed({256, 8}, t);
    EXPECT_EQ(parse(img)->tensors()[0].type, t) << type_name(t);
    expect_error(packed({256, 8}, t, false),
                 {"tensor 'blk.0.ffn_up.weight'", std::string("packed type ") + type_name(t),
                  "no 'hpl.packed_layout' key"});
  }
  expect_error(packed({256, 12}), {"tensor 'blk.0.ffn_up.weight'", "12 rows, not a multiple of 8"});
  expect_error(packed({256}), {"tensor 'blk.0.ffn_up.weight'", "1 rows, not a multiple of 8"});
  expect_error(packed({256, 8, 2}), {"tensor 'blk.0.ffn_up.weight'", "must be 2-D"});
  expect_error(packed({128, 16}),
               {"tensor 'blk.0.ffn_up.weight'", "not a multiple of the block (256)"});
  expect_error(packed({32, 8}, DType::Q4_0_X8, true, 2),
               {"key 'hpl.packed_layout'", "packed layout version 2 is not supported"});
  {
    GgufBuilder g;  // the key must be a uint32
    g.kv_str(kPackedLayoutKey, "1");
    expect_error(g.build(), {"key 'hpl.packed_layout'", "expected uint32"});
  }
  // A plain file may carry the key (no packed tensor at all): it parses.
  auto none = [] {
    GgufBuilder g;
    g.kv_u32(kPackedLayoutKey, kPackedLayoutVersion);
    g.tensor("w", DType::Q4_0, {32, 3});
    return g.build();
  }();
  EXPECT_EQ(parse(none)->packed_layout(), kPackedLayoutVersion);
  // Ids next to the packed ones stay unknown.
  for (uint32_t id : {0x1000u, 0x1003u, 0x100Fu}) {
    GgufBuilder g;
    g.kv_u32(kPackedLayoutKey, kPackedLayoutVersion);
    g.tensor_raw("w", id, {256, 8});
    expect_error(g.build(), {"type = " + std::to_string(id) + " is not a known"});
  }
}

TEST(Gguf, RowsUnalignedButWholeBlocks) {
  GgufBuilder g;
  g.tensor("ffn_down", DType::Q8_0, {48, 2});  // 96 elements = 3 blocks across 2 rows
  auto img = g.build();
  auto f = parse(img);
  const GgufTensor* t = f->tensor("ffn_down");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->rows_unaligned);
  EXPECT_EQ(t->n_bytes, 3u * 34);
}

TEST(Gguf, TensorOffsets) {
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {8}, 4);
    expect_error(g.build(), {"tensor 'a'", "offset 4 is not a multiple of the alignment 32"});
  }
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {16}, 0);
    g.tensor("b", DType::F32, {8}, 32);  // a spans [0, 64)
    expect_error(g.build(), {"tensor 'b'", "overlaps tensor 'a' [0, 64)"});
  }
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {8}, 0);
    g.tensor("b", DType::F32, {8}, 0);
    expect_error(g.build(), {"overlaps"});
  }
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {8});
    g.tensor("a", DType::F32, {8});
    expect_error(g.build(), {"tensor 'a'", "duplicate tensor name"});
  }
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {8});
    auto img = g.build();
    img.resize(img.size() - 1);
    expect_error(img, {"tensor 'a'", "extends past the end of the file"});
  }
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {8}, uint64_t{1} << 62);
    expect_error(g.build(), {"tensor 'a'", "extends past the end"});
  }
  {
    GgufBuilder g;
    g.tensor("a", DType::F32, {8}, UINT64_MAX - 63);  // aligned; offset + size wraps
    expect_error(g.build(), {"tensor 'a'", "extends past the end"});
  }
}

TEST(Gguf, OpenErrorsNameThePath) {
  try {
    GgufFile::open("/nonexistent/x.gguf");
    FAIL();
  } catch (const GgufError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.gguf: cannot open"), std::string::npos);
  }
  EXPECT_THROW(GgufFile::open(HPL_TEST_DATA_DIR), GgufError);  // a directory
  fs::path empty = fs::temp_directory_path() / ("hpl_gguf_empty_" + std::to_string(getpid()));
  std::ofstream(empty).close();
  try {
    GgufFile::open(empty.string());
    ADD_FAILURE();
  } catch (const GgufError& e) {
    EXPECT_NE(std::string(e.what()).find(empty.string() + ": offset 0: magic"), std::string::npos)
        << e.what();
  }
  fs::remove(empty);
}

TEST(Gguf, OpenMapsAFile) {
  auto img = rich_builder().build();
  fs::path p = fs::temp_directory_path() / ("hpl_gguf_rich_" + std::to_string(getpid()));
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(img.data()), img.size());
  {
    auto f = GgufFile::open(p.string());
    EXPECT_EQ(f->path(), p.string());
    EXPECT_EQ(f->file_size(), img.size());
    check_rich(*f);
    const GgufTensor* t = f->tensor("token_embd.weight");
    EXPECT_EQ(std::memcmp(t->data, img.data() + f->data_offset() + t->offset, t->n_bytes), 0);
  }
  fs::remove(p);
}

// ---- real files --------------------------------------------------------------------------

std::string data(const std::string& rel) {
  return std::string(HPL_TEST_DATA_DIR) + "/" + rel;
}

TEST(GgufFiles, EveryTestFileLoads) {
  int n = 0;
  for (const char* dir : {"models", "tokenizer"}) {
    for (const auto& e : fs::directory_iterator(data(dir))) {
      if (e.path().extension() != ".gguf") continue;
      SCOPED_TRACE(e.path().string());
      auto f = GgufFile::open(e.path().string());
      EXPECT_FALSE(f->architecture().empty());
      EXPECT_GT(f->str_array("tokenizer.ggml.tokens").size(), 0u);
      touch_all(*f);
      ++n;
    }
  }
  EXPECT_GE(n, 13);
}

void check_stories260k(const GgufFile& f, uint32_t ctx) {
  EXPECT_EQ(f.architecture(), "llama");
  EXPECT_EQ(f.u32("{arch}.embedding_length"), 64u);
  EXPECT_EQ(f.u32("{arch}.block_count"), 5u);
  EXPECT_EQ(f.u32("{arch}.attention.head_count"), 8u);
  EXPECT_EQ(f.u32("{arch}.attention.head_count_kv"), 4u);
  EXPECT_EQ(f.u32("{arch}.feed_forward_length"), 172u);
  EXPECT_EQ(f.u32("{arch}.context_length"), ctx);
  EXPECT_FLOAT_EQ(f.f32("{arch}.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.str("tokenizer.ggml.model"), "llama");
  auto toks = f.str_array("tokenizer.ggml.tokens");
  ASSERT_EQ(toks.size(), 512u);
  EXPECT_EQ(toks[1], "<s>");
  EXPECT_EQ(f.f32_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.tensors().size(), 48u);
  const GgufTensor* emb = f.tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
  const GgufTensor* down = f.tensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne[0], 172);
  EXPECT_EQ(down->ne[1], 64);
  EXPECT_NE(f.tensor("output.weight"), nullptr);
}

TEST(GgufFiles, Stories260kAllVersions) {
  auto v3 = GgufFile::open(data("models/stories260K.gguf"));
  auto v2 = GgufFile::open(data("models/tinyllamas-stories-260k-q8_0.gguf"));
  auto v1 = GgufFile::open(data("models/tinyllamas-stories-260k-f32.gguf"));
  EXPECT_EQ(v3->version(), 3u);
  EXPECT_EQ(v2->version(), 2u);
  EXPECT_EQ(v1->version(), 1u);
  check_stories260k(*v3, 2048);
  check_stories260k(*v2, 512);
  check_stories260k(*v1, 512);
  EXPECT_EQ(v1->str_array("tokenizer.ggml.tokens"), v3->str_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(v1->f32_array("tokenizer.ggml.scores"), v2->f32_array("tokenizer.ggml.scores"));
  // The v2 file quantized ffn_down (rows of 172) flat across rows: accepted, marked.
  for (const GgufTensor& t : v2->tensors()) {
    bool is_down = t.name.find("ffn_down") != std::string::npos;
    EXPECT_EQ(t.rows_unaligned, is_down) << t.name;
    if (is_down) {
      EXPECT_EQ(t.type, DType::Q8_0);
      EXPECT_EQ(t.n_bytes, 172u * 64 / 32 * 34);
    }
  }
  // v1 and v3 hold the same F32 weights in the same layout.
  for (const GgufTensor& t : v1->tensors()) {
    const GgufTensor* u = v3->tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(t.type, DType::F32);
    EXPECT_EQ(t.n_bytes, u->n_bytes) << t.name;
    EXPECT_EQ(t.n_dims, u->n_dims) << t.name;
  }
}

TEST(GgufFiles, TinyStories656k) {
  for (const char* name :
       {"models/TinyStories-656K.f16.gguf", "models/tinystories-656k-q8_0.gguf"}) {
    SCOPED_TRACE(name);
    auto f = GgufFile::open(data(name));
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->u32("{arch}.embedding_length"), 128u);
    EXPECT_EQ(f->u32("{arch}.block_count"), 2u);
    EXPECT_EQ(f->u32("{arch}.attention.head_count"), 8u);
    EXPECT_EQ(f->u32("{arch}.attention.head_count_kv"), 4u);
    EXPECT_EQ(f->u32("{arch}.feed_forward_length"), 384u);
    EXPECT_EQ(f->str_array("tokenizer.ggml.tokens").size(), 2048u);
    EXPECT_EQ(f->tensors().size(), 20u);
    EXPECT_EQ(f->tensor("output.weight"), nullptr);  // tied embeddings
  }
}

TEST(GgufFiles, TinyLlamaV0Quantized) {
  struct Case {
    const char* file;
    DType down;
  };
  for (Case c : {Case{"models/TinyLLama-v0.Q4_0.from-ggmlv3.gguf", DType::Q4_0},
                 Case{"models/TinyLLama-v0.Q8_0.requant.gguf", DType::Q8_0},
                 Case{"models/TinyLLama-v0.Q4_K_M.requant.gguf", DType::Q4_K},
                 Case{"models/TinyLLama-v0.Q6_K.requant.gguf", DType::Q6_K}}) {
    SCOPED_TRACE(c.file);
    auto f = GgufFile::open(data(c.file));
    EXPECT_EQ(f->u32("{arch}.embedding_length"), 64u);
    EXPECT_EQ(f->u32("{arch}.block_count"), 8u);
    EXPECT_EQ(f->u32("{arch}.attention.head_count"), 16u);
    EXPECT_EQ(f->u32("{arch}.feed_forward_length"), 256u);
    EXPECT_EQ(f->str_array("tokenizer.ggml.tokens").size(), 32000u);
    EXPECT_EQ(f->tensors().size(), 75u);
    // Q4_K_M gives some ffn_down layers Q6_K, so look for the type in any layer.
    int found = 0;
    for (int l = 0; l < 8; ++l) {
      const GgufTensor* down = f->tensor("blk." + std::to_string(l) + ".ffn_down.weight");
      ASSERT_NE(down, nullptr);
      EXPECT_EQ(down->ne[0], 256);
      EXPECT_EQ(down->ne[1], 64);
      EXPECT_EQ(down->n_bytes, row_bytes(down->type, 256) * 64);
      found += down->type == c.down;
    }
    EXPECT_GT(found, 0);
    for (const GgufTensor& t : f->tensors()) EXPECT_FALSE(t.rows_unaligned) << t.name;
  }
}

TEST(GgufFiles, VocabOnlyFiles) {
  auto gpt2 = GgufFile::open(data("tokenizer/ggml-vocab-gpt-2.gguf"));
  EXPECT_EQ(gpt2->architecture(), "gpt2");
  EXPECT_EQ(gpt2->str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(gpt2->str_array("tokenizer.ggml.tokens").size(), 50257u);
  EXPECT_EQ(gpt2->str_array("tokenizer.ggml.merges").size(), 50000u);
  EXPECT_EQ(gpt2->u32("tokenizer.ggml.eos_token_id"), 50256u);
  EXPECT_TRUE(gpt2->tensors().empty());
  auto spm = GgufFile::open(data("tokenizer/ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(spm->str("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(spm->str_array("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(spm->int_array("tokenizer.ggml.token_type").size(), 32000u);
}

// Truncating a real file anywhere inside its header and tables is an error, never a crash.
TEST(GgufFiles, TruncatedRealHeader) {
  std::ifstream in(data("models/tinyllamas-stories-260k-q8_0.gguf"), std::ios::binary);
  std::vector<uint8_t> img((std::istreambuf_iterator<char>(in)), {});
  auto f = parse(img);
  size_t step = 7;
  for (size_t n = 0; n < f->data_offset() + 64; n += step) {
    std::vector<uint8_t> cut(img.begin(), img.begin() + n);
    EXPECT_THROW(parse(cut), GgufError) << n;
  }
}

}  // namespace
}  // namespace hpl
