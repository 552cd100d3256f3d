#include "tools/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

namespace hpl {

namespace {
constexpr int64_t kLogitsBatch = 64;  // scored tokens evaluated per call: (64, n_vocab) floats
}  // namespace

int64_t perplexity_first_scored(int64_t n_ctx) {
  return n_ctx / 2 + 1;
}

double token_nll(const float* logits, int64_t n_vocab, int32_t target) {
  double mx = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return std::log(sum) + mx - static_cast<double>(logits[target]);
}

PerplexityResult perplexity(Forward& fwd, const std::vector<int32_t>& tokens, int64_t n_ctx,
                            int64_t max_chunks, int32_t bos,
                            const std::function<void(const PerplexityChunk&)>& on_chunk) {
  if (n_ctx < 4 || n_ctx > fwd.n_ctx()) {
    throw ModelError("perplexity: chunk size " + std::to_string(n_ctx) + " must be in [4, " +
                     std::to_string(fwd.n_ctx()) + "] (the context size)");
  }
  const int64_t n_tokens = static_cast<int64_t>(tokens.size());
  int64_t n_chunks = n_tokens / n_ctx;
  if (n_chunks == 0) {
    throw ModelError("perplexity: the text has " + std::to_string(n_tokens) +
                     " tokens, fewer than one chunk of " + std::to_string(n_ctx) +
                     " (use a longer text or a smaller -c)");
  }
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);

  const int64_t n_vocab = fwd.n_vocab();
  const int64_t first = perplexity_first_scored(n_ctx);
  std::vector<float> logits(static_cast<size_t>(kLogitsBatch * n_vocab));
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  PerplexityResult r;
  double sum = 0.0, sum2 = 0.0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const auto t0 = std::chrono::steady_clock::now();
    std::copy(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx, chunk.begin());
    if (bos >= 0) chunk[0] = bos;
    fwd.reset();
    // Positions 0 .. first - 2 need no logits; first - 1 .. n_ctx - 2 predict the scored ones.
    fwd.eval(chunk.data(), first - 1, nullptr);
    PerplexityChunk pc;
    pc.index = c;
    for (int64_t p = first - 1; p < n_ctx - 1; p += kLogitsBatch) {
      const int64_t n = std::min(kLogitsBatch, n_ctx - 1 - p);
      fwd.eval(chunk.data() + p, n, logits.data(), /*all_logits=*/true);
      for (int64_t i = 0; i < n; ++i) {
        const double nll = token_nll(logits.data() + i * n_vocab, n_vocab, chunk[p + i + 1]);
        pc.nll_sum += nll;
        sum2 += nll * nll;
      }
      pc.n_scored += n;
    }
    sum += pc.nll_sum;
    r.n_scored += pc.n_scored;
    pc.ppl_running = std::exp(sum / static_cast<double>(r.n_scored));
    pc.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.chunks.push_back(pc);
    if (on_chunk) on_chunk(pc);
  }
  const double n = static_cast<double>(r.n_scored);
  r.mean_nll = sum / n;
  const double var = std::max(0.0, sum2 / n - r.mean_nll * r.mean_nll);
  r.nll_stderr = n > 1 ? std::sqrt(var / (n - 1)) : 0.0;
  r.ppl = std::exp(r.mean_nll);
  r.ppl_stderr = r.ppl * r.nll_stderr;
  return r;
}

}  // namespace hpl
