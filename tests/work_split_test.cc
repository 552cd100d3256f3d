// The chunked work split (ThreadPool::for_chunks over RowChunks, attention by head chunks)
// gives bit-identical results to one call and to the old fixed split of one contiguous share
// per thread, for every weight type; RowChunks covers every row once; the forward pass gives
// the same logits bit for bit with 1, 2, 3 and 4 threads.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/model.h"
#include "kernel/ops.h"
#include "kernel/quant.h"
#include "kernel/row_chunks.h"
#include "kernel/thread_pool.h"
#include "kernel/types.h"

namespace hpl::kernel {
namespace {

const DType kWeightTypes[] = {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K,
                              DType::Q6_K, DType::F16,  DType::BF16, DType::F32};

TEST(RowChunks, CoverEveryRowOnceOnGrainBoundaries) {
  const int64_t rows_sets[][3] = {{77, 45, 130}, {8, 8, 8}, {1, 0, 3}, {1000, 7, 64}, {0, 0, 5}};
  const size_t bytes_sets[][3] = {{144, 144, 210}, {4, 4, 4}, {18, 18, 18}, {34, 1024, 34}};
  for (const auto& rows : rows_sets) {
    for (const auto& bytes : bytes_sets) {
      for (int64_t want : {1, 2, 5, 16, 64, 1000}) {
        const RowChunks rc(rows, bytes, 3, 8, want);
        std::vector<std::vector<int>> hits(3);
        for (int j = 0; j < 3; ++j) hits[j].assign(static_cast<size_t>(rows[j]), 0);
        for (int64_t c = 0; c < rc.count(); ++c) {
          const RowChunks::Range r = rc[c];
          ASSERT_GE(r.job, 0);
          ASSERT_LT(r.job, 3);
          ASSERT_LT(r.r0, r.r1) << "empty chunk " << c;
          ASSERT_EQ(r.r0 % 8, 0);
          ASSERT_TRUE(r.r1 == rows[r.job] || r.r1 % 8 == 0);
          for (int64_t i = r.r0; i < r.r1; ++i) hits[r.job][static_cast<size_t>(i)]++;
        }
        for (int j = 0; j < 3; ++j)
          for (int h : hits[j]) ASSERT_EQ(h, 1) << "job " << j << " want " << want;
        // No more chunks than blocks, at least one per non-empty job.
        int64_t blocks = 0, jobs = 0;
        for (int j = 0; j < 3; ++j) {
          blocks += (rows[j] + 7) / 8;
          jobs += rows[j] > 0;
        }
        EXPECT_LE(rc.count(), blocks);
        EXPECT_GE(rc.count(), jobs);
      }
    }
  }
}

TEST(RowChunks, ShareFollowsWeightBytes) {
  // Two jobs of equal rows, one with 4x the bytes per row, get about 4x the chunks.
  const int64_t rows[] = {4096, 4096};
  const size_t bytes[] = {100, 400};
  const RowChunks rc(rows, bytes, 2, 8, 50);
  int64_t n0 = 0, n1 = 0;
  for (int64_t c = 0; c < rc.count(); ++c) (rc[c].job == 0 ? n0 : n1)++;
  EXPECT_EQ(n0, 10);
  EXPECT_EQ(n1, 40);
}

std::vector<uint8_t> random_weights(std::mt19937& rng, DType t, int64_t rows, int64_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  const size_t rb = row_bytes(t, n);
  std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : x) v = d(rng);
    quantize_row(t, x.data(), w.data() + rb * r, n, nullptr);
  }
  return w;
}

// The split the engine used before chunks: thread ith of nth takes bytes [total * ith / nth,
// total * (ith + 1) / nth) of the concatenated jobs, rounded to grain rows in each job.
void fixed_split(const int64_t* rows, const size_t* bytes, int n_jobs, int64_t grain, int ith,
                 int nth, int64_t* r0, int64_t* r1) {
  double total = 0;
  for (int j = 0; j < n_jobs; ++j) total += double(bytes[j]) * rows[j];
  double base = 0;
  for (int j = 0; j < n_jobs; ++j) {
    auto boundary = [&](int i) {
      const double b = total * i / nth - base;
      const int64_t r = std::llround(b / double(bytes[j]) / grain) * grain;
      return std::clamp<int64_t>(r, 0, rows[j]);
    };
    r0[j] = ith == 0 ? 0 : boundary(ith);
    r1[j] = ith == nth - 1 ? rows[j] : boundary(ith + 1);
    base += double(bytes[j]) * rows[j];
  }
}

class ChunkedMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(ChunkedMatmul, SameBitsAsOneCallAndAsFixedSplit) {
  const DType t = GetParam();
  std::mt19937 rng(7);
  const int64_t n = 512;
  const int64_t rows[] = {77, 45, 130};  // like a fused q/k/v with ragged tails
  const DType act = vec_dot_type(t);
  const size_t ws = row_bytes(t, n), xs = row_bytes(act, n);
  const size_t bytes[] = {ws, ws, ws};
  std::vector<uint8_t> w[3];
  for (int j = 0; j < 3; ++j) w[j] = random_weights(rng, t, rows[j], n);
  for (int64_t ntok : {1, 3, 16}) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(ntok * n));
    for (float& v : x) v = d(rng);
    std::vector<uint8_t> xq(xs * static_cast<size_t>(ntok));
    const void* xin = x.data();
    size_t xstride = static_cast<size_t>(n) * sizeof(float);
    if (act != DType::F32) {
      for (int64_t i = 0; i < ntok; ++i)
        best::quantize_act_row(act, x.data() + i * n, xq.data() + xs * i, n);
      xin = xq.data();
      xstride = xs;
    }
    auto mm = [&](int j, std::vector<float>* y, int64_t r0, int64_t r1) {
      best::matmul(t, w[j].data(), ws, xin, xstride, y[j].data(), static_cast<size_t>(rows[j]), n,
                   r0, r1, ntok);
    };
    std::vector<float> one[3];
    for (int j = 0; j < 3; ++j) {
      one[j].assign(static_cast<size_t>(rows[j] * ntok), -1.0f);
      mm(j, one, 0, rows[j]);
    }
    for (int nth : {1, 2, 3, 4}) {
      ThreadPool pool(nth);
      std::vector<float> fixed[3], chunked[3];
      for (int j = 0; j < 3; ++j) {
        fixed[j].assign(one[j].size(), -2.0f);
        chunked[j].assign(one[j].size(), -3.0f);
      }
      pool.run([&](int ith, int nn) {
        int64_t r0[3], r1[3];
        fixed_split(rows, bytes, 3, 8, ith, nn, r0, r1);
        for (int j = 0; j < 3; ++j)
          if (r0[j] < r1[j]) mm(j, fixed, r0[j], r1[j]);
      });
      const RowChunks rc(rows, bytes, 3, 8, int64_t{nth} * ThreadPool::kChunksPerThread);
      pool.for_chunks(rc.count(), [&](int64_t c, int) {
        const RowChunks::Range r = rc[c];
        mm(r.job, chunked, r.r0, r.r1);
      });
      for (int j = 0; j < 3; ++j) {
        const size_t sz = one[j].size() * sizeof(float);
        EXPECT_EQ(0, std::memcmp(one[j].data(), fixed[j].data(), sz))
            << type_name(t) << " fixed split, job " << j << " ntok " << ntok << " nth " << nth;
        EXPECT_EQ(0, std::memcmp(one[j].data(), chunked[j].data(), sz))
            << type_name(t) << " chunks, job " << j << " ntok " << ntok << " nth " << nth;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, ChunkedMatmul, ::testing::ValuesIn(kWeightTypes),
                         [](const ::testing::TestParamInfo<DType>& i) {
                           return std::string(type_name(i.param));
                         });

TEST(ChunkedAttention, HeadAndGroupChunksSameBitsAsOneCall) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  AttnParams p;
  p.n_heads = 8;
  p.n_kv_heads = 2;
  p.head_dim = 64;
  p.q_stride = p.out_stride = p.n_heads * p.head_dim;
  p.kv_stride = p.n_kv_heads * p.head_dim;
  p.scale = 0.125f;
  const int64_t n_tok = 5, pos0 = 40, n_ctx = pos0 + n_tok;
  std::vector<float> q(static_cast<size_t>(n_tok * p.q_stride));
  for (float& v : q) v = d(rng);
  std::vector<f16_t> k(static_cast<size_t>(n_ctx * p.kv_stride)), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = fp32_to_fp16(d(rng));
    v[i] = fp32_to_fp16(d(rng));
  }
  std::vector<float> one(static_cast<size_t>(n_tok * p.out_stride)), scratch(n_ctx);
  best::attention(p, q.data(), k.data(), v.data(), one.data(), n_tok, pos0, 0, p.n_heads,
                  scratch.data());
  for (int nth : {2, 3, 4}) {
    ThreadPool pool(nth);
    std::vector<std::vector<float>> scr(nth, std::vector<float>(n_ctx));
    for (int64_t n_chunks : {p.n_kv_heads, p.n_heads}) {  // the engine's two choices
      std::vector<float> out(one.size(), -5.0f);
      pool.for_chunks(n_chunks, [&](int64_t c, int ith) {
        best::attention(p, q.data(), k.data(), v.data(), out.data(), n_tok, pos0,
                        p.n_heads * c / n_chunks, p.n_heads * (c + 1) / n_chunks, scr[ith].data());
      });
      EXPECT_EQ(0, std::memcmp(one.data(), out.data(), one.size() * sizeof(float)))
          << "nth " << nth << " chunks " << n_chunks;
    }
  }
}

// The whole forward pass: prefill (gemm, per-token ops in parallel) and decode (gemv) give the
// same logits with any thread count.
class ForwardThreads : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardThreads, SameLogitsForAnyThreadCount) {
  auto model = Model::load(std::string(HPL_TEST_DATA_DIR) + "/models/" + GetParam());
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(1 + (i * 37) % 500);
  auto logits = [&](int threads) {
    ForwardOptions fo;
    fo.n_ctx = 64;
    fo.n_ubatch = 16;
    fo.n_threads = threads;
    Forward fwd(*model, fo);
    const int64_t V = fwd.n_vocab();
    std::vector<float> out(ids.size() * V);
    fwd.eval(ids.data(), 32, out.data(), true);  // prefill, all logits
    for (size_t i = 32; i < ids.size(); ++i)     // decode, one token at a time
      fwd.eval(&ids[i], 1, out.data() + i * V);
    return out;
  };
  const std::vector<float> ref = logits(1);
  for (int threads : {2, 3, 4}) {
    const std::vector<float> got = logits(threads);
    ASSERT_EQ(ref.size(), got.size());
    EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * sizeof(float)))
        << GetParam() << " threads " << threads;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardThreads,
                         ::testing::Values("stories260K.gguf", "tinyllamas-stories-260k-q8_0.gguf"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           return i.param == "stories260K.gguf" ? std::string("F32")
                                                                : std::string("Q8_0");
                         });

}  // namespace
}  // namespace hpl::kernel
