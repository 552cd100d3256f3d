// Sampler chain, in llama.cpp's order: repetition penalty over the last N tokens, then
// greedy (temperature <= 0) or top-k -> top-p -> min-p -> temperature -> a seeded draw.
// Same seed, same logits, same accepted tokens -> same choices, on every platform (the
// uniform draw is built from mt19937_64 bits, not from an implementation-defined
// distribution).
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace hpl {

struct SamplerParams {
  float temp = 0.8f;            // <= 0: greedy (argmax after the penalty)
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; > 1 discourages tokens seen in the last N
  int32_t repeat_last_n = 64;   // N; 0: off
  uint64_t seed = 0;
};

struct Candidate {
  int32_t id;
  float logit;
  float p;  // probability, filled by softmax()
};

// The stages, on a candidate list (exposed for tests).
namespace sampling {
// Repetition penalty (llama.cpp / CTRL): for each distinct id in recent, logit / penalty when
// positive, logit * penalty otherwise.
void penalize(float* logits, int64_t n_vocab, const std::vector<int32_t>& recent, float penalty);
// Keeps the k highest logits, sorted descending (ties: lower id first).
void top_k(std::vector<Candidate>& c, int32_t k);
// Sorts descending if needed, computes p = softmax(logit / temp) over the list.
void softmax(std::vector<Candidate>& c, float temp = 1.0f);
// Keeps the shortest prefix of the sorted list whose probability reaches p (at least one).
void top_p(std::vector<Candidate>& c, float p);
// Keeps candidates with probability >= p * the highest probability.
void min_p(std::vector<Candidate>& c, float p);
// Index into c drawn with probabilities c[i].p (which sum to 1), u uniform in [0, 1).
size_t draw(const std::vector<Candidate>& c, double u);
}  // namespace sampling

// Restricts which tokens may come next (grammar-constrained output, engine/grammar_constraint.h).
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets the logits (n_vocab,) of the tokens not allowed next to -inf.
  virtual void mask(float* logits) = 0;
  // The token was chosen: advance past it.
  virtual void accept(int32_t id) = 0;
};

class Sampler {
 public:
  Sampler(const SamplerParams& p, int64_t n_vocab);

  // Chooses the next token from logits (n_vocab,); logits are not modified.
  int32_t sample(const float* logits);
  // The distribution sample() draws from: the candidates the chain keeps, by descending logit,
  // with their probabilities (greedy: the argmax alone, p = 1). For speculative decoding.
  void distribution(const float* logits, std::vector<Candidate>& out);
  // The next uniform number in [0, 1) of the generator sample() draws with.
  double uniform();
  // Records a token (prompt or generated) in the penalty window.
  void accept(int32_t id);
  // Records a generated token: the penalty window and the constraint, if any.
  void accept_generated(int32_t id);
  // Only tokens the constraint allows are sampled (it must outlive the sampler's use).
  void set_constraint(TokenConstraint* c) { constraint_ = c; }
  void reset();  // clears the window and reseeds

  const SamplerParams& params() const { return p_; }

 private:
  SamplerParams p_;
  int64_t n_vocab_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<float> work_;          // penalized logits
  std::vector<int32_t> recent_vec_;  // scratch copy of recent_
  std::vector<Candidate> cand_;
  TokenConstraint* constraint_ = nullptr;
};

}  // namespace hpl
