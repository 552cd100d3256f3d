// fp16/bf16 scalar conversions are the reference every SIMD path is checked against.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernel/types.h"

namespace hpl {
namespace {

TEST(Fp16, RoundTripsEveryHalfValue) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = fp16_to_fp32(static_cast<f16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
      continue;
    }
    EXPECT_EQ(fp32_to_fp16(f), h) << "half bits " << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048), fp32_to_fp16(1.0f));                // tie -> even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048), fp32_to_fp16(1.0f + 4.0f / 2048));  // tie -> even
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);                                      // overflow -> inf
  EXPECT_EQ(fp32_to_fp16(5.9604645e-8f), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(2.9802322e-8f), 0x0000);  // tie -> even (0)
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_FLOAT_EQ(bf16_to_fp32(fp32_to_bf16(3.140625f)), 3.140625f);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
}

TEST(TypeTraits, BlockSizesMatchGguf) {
  EXPECT_EQ(type_traits(DType::Q4_K).block_bytes, sizeof(BlockQ4_K));
  EXPECT_EQ(type_traits(DType::Q6_K).block_bytes, sizeof(BlockQ6_K));
  EXPECT_EQ(type_traits(DType::Q8_0).block_bytes, sizeof(BlockQ8_0));
  EXPECT_EQ(row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_FALSE(type_traits(4u).known);  // ids 4 and 5 were removed from ggml
  EXPECT_FALSE(type_traits(1000u).known);
}

}  // namespace
}  // namespace hpl
