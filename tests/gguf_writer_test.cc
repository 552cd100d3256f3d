// GGUF writer: every metadata type, string and nested arrays, tensors of several types and
// alignments, streamed in pieces, read back with the GGUF reader; misuse gives clear errors.
// Also the quantize mixes' per-tensor type rules (plan_tensor, important_layer).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tools/quantize_model.h"

namespace hpl {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() /
          ("hpl_gguf_writer_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TEST(GgufWriter, RoundTripsEveryTypeAndTensorData) {
  for (size_t alignment : {size_t{32}, size_t{64}, size_t{4096}}) {
    const std::string path = temp_path("rt" + std::to_string(alignment) + ".gguf");
    std::vector<uint8_t> a_data(row_bytes(DType::Q8_0, 64) * 3);
    for (size_t i = 0; i < a_data.size(); ++i) a_data[i] = static_cast<uint8_t>(i * 7);
    std::vector<float> b_data(5);
    for (int i = 0; i < 5; ++i) b_data[i] = 0.5f * i;
    {
      GgufWriter w(path, alignment);
      w.set_u8("k.u8", 200);
      w.set_i8("k.i8", -100);
      w.set_u16("k.u16", 60000);
      w.set_i16("k.i16", -30000);
      w.set_u32("k.u32", 4000000000u);
      w.set_i32("k.i32", -2000000000);
      w.set_u64("k.u64", 1ull << 60);
      w.set_i64("k.i64", -(1ll << 60));
      w.set_f32("k.f32", 1.5f);
      w.set_f64("k.f64", -2.25);
      w.set_bool("k.bool", true);
      w.set_str("general.architecture", "llama");
      w.set_str("k.str", "héllo");
      w.set_str_array("k.strs", {"a", "", "ccc"});
      const int32_t ints[3] = {1, -2, 3};
      w.set_array("k.ints", GgufType::INT32, ints, 3);
      w.set_u32("k.replaced", 1);
      w.set_u32("k.replaced", 2);  // replaced in place
      const int64_t ne_a[4] = {64, 3, 1, 1}, ne_b[4] = {5, 1, 1, 1};
      w.add_tensor("a", DType::Q8_0, 2, ne_a);
      w.add_tensor("b", DType::F32, 1, ne_b);
      w.write_header();
      w.write_data(a_data.data(), 10);  // in pieces, across the tensor boundary
      std::vector<uint8_t> rest(a_data.begin() + 10, a_data.end());
      rest.resize(rest.size() + b_data.size() * 4);
      std::memcpy(rest.data() + (a_data.size() - 10), b_data.data(), b_data.size() * 4);
      w.write_data(rest.data(), rest.size());
      w.finish();
    }
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->u32("k.u8"), 200u);
    EXPECT_EQ(f->i64("k.i8"), -100);
    EXPECT_EQ(f->u32("k.u16"), 60000u);
    EXPECT_EQ(f->i64("k.i16"), -30000);
    EXPECT_EQ(f->u32("k.u32"), 4000000000u);
    EXPECT_EQ(f->i64("k.i32"), -2000000000);
    EXPECT_EQ(f->u64("k.u64"), 1ull << 60);
    EXPECT_EQ(f->i64("k.i64"), -(1ll << 60));
    EXPECT_EQ(f->f32("k.f32"), 1.5f);
    EXPECT_EQ(f->find("k.f64")->num.f, -2.25);
    EXPECT_TRUE(f->boolean("k.bool"));
    EXPECT_EQ(f->str("k.str"), "héllo");
    EXPECT_EQ(f->str_array("k.strs"), (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(f->int_array("k.ints"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(f->u32("k.replaced"), 2u);
    ASSERT_EQ(f->tensors().size(), 2u);
    const GgufTensor* a = f->tensor("a");
    const GgufTensor* b = f->tensor("b");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->type, DType::Q8_0);
    EXPECT_EQ(a->ne[0], 64);
    EXPECT_EQ(a->ne[1], 3);
    EXPECT_EQ(b->offset % alignment, 0u);
    EXPECT_EQ(std::memcmp(a->data, a_data.data(), a_data.size()), 0);
    EXPECT_EQ(std::memcmp(b->data, b_data.data(), b_data.size() * 4), 0);
    EXPECT_EQ(f->file_size() % alignment, 0u);  // data section padded
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    fs::remove(path);
  }
}

TEST(GgufWriter, CopiesReaderValuesIncludingNestedArrays) {
  // Build a file with a nested array by copying values from a first file's reader.
  const std::string p1 = temp_path("src.gguf"), p2 = temp_path("copy.gguf");
  {
    GgufWriter w(p1);
    w.set_str_array("s", {"x", "yy"});
    const float fl[2] = {1.f, 2.f};
    w.set_array("f", GgufType::FLOAT32, fl, 2);
    w.set_f32("g", 3.f);
    w.finish();
  }
  auto f1 = GgufFile::open(p1);
  GgufValue nested;  // array of two arrays: [["x","yy"], ["x","yy"]]
  nested.type = GgufType::ARRAY;
  nested.elem_type = GgufType::ARRAY;
  nested.count = 2;
  nested.items = {*f1->find("s"), *f1->find("s")};
  {
    GgufWriter w(p2);
    for (const GgufKV& kv : f1->metadata()) w.set(kv.key, kv.value);
    w.set("nested", nested);
    w.finish();
  }
  auto f2 = GgufFile::open(p2);
  EXPECT_EQ(f2->str_array("s"), (std::vector<std::string>{"x", "yy"}));
  EXPECT_EQ(f2->f32_array("f"), (std::vector<float>{1.f, 2.f}));
  EXPECT_EQ(f2->f32("g"), 3.f);
  const GgufValue* n = f2->find("nested");
  ASSERT_TRUE(n);
  ASSERT_EQ(n->count, 2u);
  ASSERT_EQ(n->items.size(), 2u);
  EXPECT_EQ(n->items[1].items[1].str, "yy");
  fs::remove(p1);
  fs::remove(p2);
}

TEST(GgufWriter, MisuseIsAClearError) {
  const std::string path = temp_path("bad.gguf");
  EXPECT_THROW(GgufWriter(path, 48), GgufError);  // not a power of two
  {
    GgufWriter w(path);
    const int64_t ne[4] = {40, 2, 1, 1};
    EXPECT_THROW(w.add_tensor("q", DType::Q8_0, 2, ne), GgufError);  // 40 % 32 != 0
    w.add_tensor("t", DType::F32, 2, ne);
    EXPECT_THROW(w.add_tensor("t", DType::F32, 2, ne), GgufError);  // duplicate
    w.write_header();
    std::vector<float> x(80);
    w.write_data(x.data(), 40 * 4);
    EXPECT_THROW(w.finish(), GgufError);  // half the tensor missing
    try {
      w.finish();
    } catch (const GgufError& e) {
      EXPECT_NE(std::string(e.what()).find("'t' has 160 of 320 bytes"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(path));           // never renamed
  EXPECT_FALSE(fs::exists(path + ".tmp"));  // removed by the destructor
}

// Packed tensors (hpl pack): 2-D, rows in groups of 8, and only with hpl.packed_layout set;
// the file reads back with the packed type.
TEST(GgufWriter, PackedTensors) {
  const std::string path = temp_path("packed.gguf");
  const int64_t ne[4] = {256, 16, 1, 1}, ne12[4] = {256, 12, 1, 1};
  {
    GgufWriter w(path);
    EXPECT_THROW(w.add_tensor("odd", DType::Q4_K_X8, 2, ne12), GgufError);  // 12 rows
    EXPECT_THROW(w.add_tensor("flat", DType::Q4_K_X8, 1, ne), GgufError);   // 1-D
    w.add_tensor("w", DType::Q4_K_X8, 2, ne);
    EXPECT_THROW(w.write_header(), GgufError);  // no hpl.packed_layout
  }
  EXPECT_FALSE(fs::exists(path));
  {
    GgufWriter w(path);
    w.set_u32(kPackedLayoutKey, kPackedLayoutVersion);
    w.add_tensor("w", DType::Q4_K_X8, 2, ne);
    w.write_header();
    std::vector<uint8_t> data(w.tensor_bytes(0), 7);
    w.write_data(data.data(), data.size());
    w.finish();
  }
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->packed_layout(), kPackedLayoutVersion);
  EXPECT_EQ(f->tensor("w")->type, DType::Q4_K_X8);
  EXPECT_EQ(f->tensor("w")->n_bytes, 16u * 144);
  f.reset();
  fs::remove(path);
}

GgufTensor tensor(const std::string& name, int64_t ne0, int64_t ne1, int n_dims = 2) {
  GgufTensor t;
  t.name = name;
  t.type = DType::F16;
  t.n_dims = n_dims;
  t.ne[0] = ne0;
  t.ne[1] = ne1;
  return t;
}

TEST(QuantizePlan, ImportantLayers) {
  std::vector<int> got;
  for (int i = 0; i < 22; ++i)
    if (important_layer(i, 22)) got.push_back(i);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 5, 8, 11, 14, 17, 19, 20, 21}));
  EXPECT_TRUE(important_layer(0, 2));
  EXPECT_TRUE(important_layer(1, 2));
  EXPECT_FALSE(important_layer(-1, 2));
  // The block count comes from the file: the largest one must not overflow (UBSan).
  const int64_t huge = std::numeric_limits<int64_t>::max();
  EXPECT_TRUE(important_layer(0, huge));
  EXPECT_TRUE(important_layer(huge - 1, huge));
  EXPECT_FALSE(important_layer(huge / 8 + 1 + 3, huge));  // e = ceil(huge / 8); (i - e) % 3 == 0
}

TEST(QuantizePlan, RolesAndFallbacks) {
  const int64_t L = 16;  // e = 2: important 0, 1, 4, 7, 10, 13, 14, 15
  auto type = [&](QuantMix m, const GgufTensor& t, bool has_output = true) {
    return plan_tensor(m, t, has_output, L).type;
  };
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("blk.3.attn_q.weight", 512, 512)), DType::Q4_K);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("blk.4.attn_v.weight", 512, 128)), DType::Q6_K);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("blk.5.attn_v.weight", 512, 128)), DType::Q4_K);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("blk.15.ffn_down.weight", 1024, 512)), DType::Q6_K);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("output.weight", 512, 1000)), DType::Q6_K);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("token_embd.weight", 512, 1000)), DType::Q4_K);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("token_embd.weight", 512, 1000), false), DType::Q6_K);
  EXPECT_EQ(type(QuantMix::kQ5_K_M, tensor("blk.3.ffn_up.weight", 512, 1024)), DType::Q5_K);
  EXPECT_EQ(type(QuantMix::kQ5_K_M, tensor("blk.1.ffn_down.weight", 1024, 512)), DType::Q6_K);
  EXPECT_EQ(type(QuantMix::kQ6_K, tensor("blk.3.attn_q.weight", 512, 512)), DType::Q6_K);
  EXPECT_EQ(type(QuantMix::kQ8_0, tensor("output.weight", 512, 1000)), DType::Q8_0);
  EXPECT_EQ(type(QuantMix::kQ4_0, tensor("output.weight", 512, 1000)), DType::Q4_0);
  // 1-D, not *.weight, small: f32
  EXPECT_EQ(type(QuantMix::kQ4_0, tensor("blk.0.attn_norm.weight", 512, 1, 1)), DType::F32);
  EXPECT_EQ(type(QuantMix::kQ4_0, tensor("blk.0.attn_q.bias", 512, 512)), DType::F32);
  EXPECT_EQ(type(QuantMix::kQ4_0, tensor("blk.0.attn_q.weight", 32, 64)), DType::F32);
  // fallbacks by row length, with a note
  TensorPlan p = plan_tensor(QuantMix::kQ4_K_M, tensor("blk.3.attn_q.weight", 384, 512), true, L);
  EXPECT_EQ(p.type, DType::Q5_0);
  EXPECT_NE(p.note.find("fallback"), std::string::npos);
  EXPECT_EQ(type(QuantMix::kQ5_K_M, tensor("blk.3.attn_q.weight", 384, 512)), DType::Q5_0);
  EXPECT_EQ(type(QuantMix::kQ6_K, tensor("blk.3.attn_q.weight", 384, 512)), DType::Q8_0);
  EXPECT_EQ(type(QuantMix::kQ4_K_M, tensor("blk.3.attn_q.weight", 200, 512)), DType::F16);
  EXPECT_EQ(type(QuantMix::kQ8_0, tensor("blk.3.attn_q.weight", 200, 512)), DType::F16);
}

TEST(QuantizePlan, ParseNamesAndFileTypes) {
  QuantMix m;
  EXPECT_TRUE(parse_quant_mix("Q4_K_M", &m));
  EXPECT_EQ(quant_mix_file_type(m), 15u);
  EXPECT_TRUE(parse_quant_mix("q5_k_m", &m));
  EXPECT_EQ(quant_mix_file_type(m), 17u);
  EXPECT_TRUE(parse_quant_mix("q6_k", &m));
  EXPECT_EQ(quant_mix_file_type(m), 18u);
  EXPECT_TRUE(parse_quant_mix("q8_0", &m));
  EXPECT_EQ(quant_mix_file_type(m), 7u);
  EXPECT_TRUE(parse_quant_mix("q4_0", &m));
  EXPECT_EQ(quant_mix_file_type(m), 2u);
  EXPECT_FALSE(parse_quant_mix("q3_k_s", &m));
  EXPECT_FALSE(parse_quant_mix("", &m));
}

}  // namespace
}  // namespace hpl
