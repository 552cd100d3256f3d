// Perplexity over non-overlapping chunks, the way llama.cpp's `llama-perplexity` does it:
// the token stream is cut into chunks of n_ctx tokens; each chunk is evaluated from an empty
// cache (its first token replaced by BOS when the vocab adds one), and only the second half
// is scored: the tokens at positions n_ctx/2 + 1 .. n_ctx - 1, each predicted from all the
// chunk's tokens before it, so every scored token has at least n_ctx/2 tokens of context.
// PPL = exp(mean NLL over all scored tokens); its uncertainty is PPL x the standard error of
// that mean (as llama.cpp reports it).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/forward.h"

namespace hpl {

struct PerplexityChunk {
  int64_t index = 0;       // 0-based
  int64_t n_scored = 0;    // tokens scored in this chunk
  double nll_sum = 0.0;    // their summed negative log-likelihood (nats)
  double ppl_running = 0;  // exp(mean NLL) over chunks 0..index
  double seconds = 0.0;    // evaluation wall time
};

struct PerplexityResult {
  std::vector<PerplexityChunk> chunks;
  int64_t n_scored = 0;
  double mean_nll = 0.0;
  double nll_stderr = 0.0;  // standard error of mean_nll
  double ppl = 0.0;
  double ppl_stderr = 0.0;  // ppl * nll_stderr
};

// First scored position of a chunk of n_ctx tokens (the prediction at position p - 1 of the
// token at position p is scored for p in [first_scored(n_ctx), n_ctx)).
int64_t perplexity_first_scored(int64_t n_ctx);

// -log softmax(logits)[target], in double: logits (n_vocab,).
double token_nll(const float* logits, int64_t n_vocab, int32_t target);

// Scores tokens in chunks of n_ctx (<= fwd.n_ctx(), >= 4) tokens; max_chunks <= 0: all
// complete chunks. bos < 0: keep each chunk's first token. on_chunk (may be empty) is called
// after each chunk. Throws ModelError when the text has fewer than n_ctx tokens. The forward
// pass's cache is reset before each chunk and left holding the last one.
PerplexityResult perplexity(Forward& fwd, const std::vector<int32_t>& tokens, int64_t n_ctx,
                            int64_t max_chunks, int32_t bos,
                            const std::function<void(const PerplexityChunk&)>& on_chunk);

}  // namespace hpl
