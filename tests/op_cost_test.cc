// Modelled bytes and ops per op kind equal hand-computed values for the shapes of the test
// models: stories260K (F32; n_embd 64, 8 heads, 4 kv heads, head_dim 8, rot_dim 8, n_ff 172,
// vocab 512, 5 layers) and its Q8_0 twin (34-byte blocks of 32).
#include "engine/op_cost.h"

#include <gtest/gtest.h>

#include <string>

namespace hpl {
namespace {

const std::string kDir = std::string(HPL_TEST_DATA_DIR) + "/models/";

const OpCost& at(const OpCosts& c, ProfOp op) {
  return c[static_cast<size_t>(op)];
}

TEST(OpCost, DecodeTokenF32) {
  auto m = Model::load(kDir + "stories260K.gguf");
  OpCosts c{};
  add_eval_cost(*m, 1, 5, 256, 1, c);  // one token at position 5 (6 keys)
  // attn_q: W 64x64 f32 (16384 B) + x (256 B) + y (256 B), 5 layers; 2*64*64 ops.
  EXPECT_EQ(at(c, ProfOp::kAttnQ).bytes, 5 * (16384 + 256 + 256));
  EXPECT_EQ(at(c, ProfOp::kAttnQ).ops, 5 * 2 * 64 * 64);
  EXPECT_FALSE(at(c, ProfOp::kAttnQ).int8);
  EXPECT_EQ(at(c, ProfOp::kAttnK).bytes, 5 * (8192 + 256 + 128));
  // ffn_down: W 64x172 (44032 B) + x 172 f32 + y 64 f32.
  EXPECT_EQ(at(c, ProfOp::kFfnDown).bytes, 5 * (44032 + 688 + 256));
  EXPECT_EQ(at(c, ProfOp::kFfnDown).ops, 5 * 2 * 64 * 172);
  // output: W 512x64 + x + 512 logits, once.
  EXPECT_EQ(at(c, ProfOp::kOutput).bytes, 131072 + 256 + 2048);
  EXPECT_EQ(at(c, ProfOp::kOutput).ops, 2 * 512 * 64);
  // attention: 6 cache rows of K and V (32 f16 each) + q in and out; 4 * 8 heads * 8 * 6 ops.
  EXPECT_EQ(at(c, ProfOp::kAttention).bytes, 5 * (6 * 2 * 32 * 2 + 2 * 64 * 4));
  EXPECT_EQ(at(c, ProfOp::kAttention).ops, 5 * 4 * 8 * 8 * 6);
  // kv_store: 64 floats read, 64 halves written.
  EXPECT_EQ(at(c, ProfOp::kKvStore).bytes, 5 * 64 * 6);
  EXPECT_EQ(at(c, ProfOp::kKvStore).ops, 5 * 64);
  // rope: q (64) and k (32) read + written; 6 ops per pair, 4 pairs per head, 12 heads.
  EXPECT_EQ(at(c, ProfOp::kRope).bytes, 5 * 96 * 8);
  EXPECT_EQ(at(c, ProfOp::kRope).ops, 5 * 6 * 4 * 12);
  // norm: attn_norm + ffn_norm per layer and output_norm: 64 in, 64 out, 64 weights.
  EXPECT_EQ(at(c, ProfOp::kNorm).bytes, 11 * 768);
  EXPECT_EQ(at(c, ProfOp::kNorm).ops, 11 * 4 * 64);
  EXPECT_EQ(at(c, ProfOp::kAdd).bytes, 10 * 768);  // two residual adds per layer
  EXPECT_EQ(at(c, ProfOp::kAdd).ops, 10 * 64);
  EXPECT_EQ(at(c, ProfOp::kActivation).bytes, 5 * 172 * 12);
  EXPECT_EQ(at(c, ProfOp::kActivation).ops, 5 * 4 * 172);
  EXPECT_EQ(at(c, ProfOp::kEmbedding).bytes, 256 + 256);
  EXPECT_EQ(at(c, ProfOp::kEmbedding).ops, 64);
  EXPECT_EQ(at(c, ProfOp::kQuantizeAct).bytes, 0);  // f32 weights take f32 activations
  EXPECT_EQ(at(c, ProfOp::kSampling).bytes, 0);
  EXPECT_EQ(at(c, ProfOp::kOther).ops, 0);
}

TEST(OpCost, PrefillInMicroBatches) {
  auto m = Model::load(kDir + "stories260K.gguf");
  OpCosts c{};
  add_eval_cost(*m, 5, 0, 3, 1, c);  // micro-batches of 3 (positions 0..2) and 2 (3..4)
  // Weights once per micro-batch, activations per token.
  EXPECT_EQ(at(c, ProfOp::kAttnQ).bytes, 5 * (2 * 16384 + 5 * 256 + 5 * 256));
  EXPECT_EQ(at(c, ProfOp::kAttnQ).ops, 5 * 2 * 64 * 64 * 5);
  // Keys seen: 1+2+3 and 4+5; cache rows read: 3, then 5.
  EXPECT_EQ(at(c, ProfOp::kAttention).ops, 5 * 256 * (6 + 9));
  EXPECT_EQ(at(c, ProfOp::kAttention).bytes, 5 * ((3 + 5) * 128 + 5 * 512));
  // Logits of the last token only.
  EXPECT_EQ(at(c, ProfOp::kOutput).bytes, 131072 + 256 + 2048);
  // Norm weights are read once per micro-batch too.
  EXPECT_EQ(at(c, ProfOp::kNorm).bytes, 5 * 2 * (5 * 512 + 2 * 256) + 768);
}

TEST(OpCost, DecodeTokenQ8_0) {
  auto m = Model::load(kDir + "tinyllamas-stories-260k-q8_0.gguf");
  OpCosts c{};
  add_eval_cost(*m, 1, 0, 256, 1, c);
  // attn_q: 64 rows of 2 blocks (68 B) + x as Q8_0 (68 B) + y (256 B).
  EXPECT_EQ(at(c, ProfOp::kAttnQ).bytes, 5 * (4352 + 68 + 256));
  EXPECT_TRUE(at(c, ProfOp::kAttnQ).int8);
  // ffn_down (172 wide, blocks across rows) is converted to F32 at load: f32 activations.
  EXPECT_EQ(at(c, ProfOp::kFfnDown).bytes, 5 * (44032 + 688 + 256));
  EXPECT_FALSE(at(c, ProfOp::kFfnDown).int8);
  // Quantization once per matmul group that needs Q8_0: qkv, wo, gate/up and output, 64 wide
  // (256 B in, 2 blocks = 68 B out); 3 ops per element.
  EXPECT_EQ(at(c, ProfOp::kQuantizeAct).bytes, 5 * 3 * 324 + 324);
  EXPECT_EQ(at(c, ProfOp::kQuantizeAct).ops, 3 * 64 * (5 * 3 + 1));
  EXPECT_EQ(at(c, ProfOp::kOutput).bytes, 34816 + 68 + 2048);
  EXPECT_EQ(at(c, ProfOp::kEmbedding).bytes, 68 + 256);  // a Q8_0 row of 64 -> f32
}

}  // namespace
}  // namespace hpl
