// Speculative decoding (Leviathan et al. 2023, Chen et al. 2023): a cheap source drafts the
// next k tokens, the target evaluates the last sampled token and the k drafts in one batch
// (all_logits: k + 1 rows), and the generation loop (engine/generate.cc) keeps the drafts the
// target agrees with plus one token of its own, rolling its KV cache back past the first
// rejected draft. Greedy output is the target's own, token for token; with sampling, the
// acceptance rule below keeps the target's distribution.
//
// Draft sources: a smaller model with the same vocabulary (DraftModel), or prompt lookup
// (PromptLookup: the tokens that followed the latest earlier occurrence of the context's
// last n tokens; no second model, no memory).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

struct Draft {
  std::vector<int32_t> tokens;
  // q[i]: the distribution tokens[i] was drawn from (the candidates of the draft's sampler
  // chain); empty: a point mass on tokens[i] (prompt lookup, greedy drafting).
  std::vector<std::vector<Candidate>> q;
  void clear() {
    tokens.clear();
    q.clear();
  }
};

class DraftSource {
 public:
  virtual ~DraftSource() = default;
  // Drafts up to max_n (>= 1) tokens to follow ctx, the whole context so far (its last token
  // is the one the target evaluates next). target: the sampler the target samples with (its
  // parameters, for a drafting model's own chain). May draft none.
  virtual void propose(std::span<const int32_t> ctx, int32_t max_n, const Sampler& target,
                       Draft& out) = 0;
  // A drafting model's forward pass (its KV cache and scratch, for memory reports); null for
  // sources without one.
  virtual const Forward* forward() const { return nullptr; }
};

// The tokens that followed the latest earlier match of the context's last n tokens, for n
// from max_ngram down to 1 (the first n that matches wins).
class PromptLookup : public DraftSource {
 public:
  explicit PromptLookup(int32_t max_ngram);  // throws ModelError unless >= 1
  void propose(std::span<const int32_t> ctx, int32_t max_n, const Sampler& target,
               Draft& out) override;

 private:
  int32_t max_ngram_;
};

// Throws ModelError, naming the first difference, unless draft's vocabulary is target's: the
// same token texts and types, the same special ids that generation uses (bos, eos, eot,
// eom; converters differ in pad and unk, which it never samples).
void check_same_vocab(const Vocab& target, const Vocab& draft);

// A smaller model drafting with its own forward pass and KV cache. It remembers the tokens its
// cache holds; each propose() rolls back to the longest common prefix with ctx and evaluates
// the rest (rejected drafts, and a context the target continued alone, are handled alike).
// Drafts are drawn through the target's sampler chain (same parameters, its own seed) so q
// is close to p; greedy when the target is greedy.
class DraftModel : public DraftSource {
 public:
  // Checks the vocabularies (check_same_vocab) and the logit width; opt.n_rewind should be
  // at least the largest draft. The models and tokenizers must outlive the DraftModel.
  DraftModel(const Model& target, const Tokenizer& target_tok, const Model& draft,
             const Tokenizer& draft_tok, const ForwardOptions& opt);
  void propose(std::span<const int32_t> ctx, int32_t max_n, const Sampler& target,
               Draft& out) override;
  Forward& forward() { return fwd_; }
  const Forward* forward() const override { return &fwd_; }

 private:
  Forward fwd_;
  std::vector<int32_t> held_;  // the tokens in fwd_'s cache
  std::vector<float> logits_;  // (n_vocab,)
};

// What --draft / --lookup (and the C API and server options) ask for.
struct SpecOptions {
  std::string draft_path;  // a draft model file ("": none)
  int32_t lookup = 0;      // prompt lookup with n-grams up to this size (0: off)
  int32_t draft_max = 16;  // drafts per evaluation at most
  int32_t draft_min = 0;   // fewer than this: not verified
  bool enabled() const { return !draft_path.empty() || lookup > 0; }
  // Throws ModelError on contradictory or out-of-range values (both a draft and lookup,
  // draft_max < 1, draft_min outside [0, draft_max], lookup < 0).
  void check() const;
  // A forward pass must keep draft_max positions of rewind slack to roll drafts back.
  void apply(ForwardOptions& fo) const;
};

// The draft source o describes, owning a loaded draft model (checked against the target as
// DraftModel does; its forward pass gets opt with the rewind slack); null when off.
std::unique_ptr<DraftSource> make_draft_source(const SpecOptions& o, const Model& target,
                                               const Tokenizer& target_tok,
                                               const ForwardOptions& opt);

// The same with the draft model already loaded (a model registry's, which counts it in its
// memory budget): keep holds it (and draft_tok) for as long as the source lives.
std::unique_ptr<DraftSource> make_draft_source(const SpecOptions& o, const Model& target,
                                               const Tokenizer& target_tok,
                                               const ForwardOptions& opt,
                                               std::shared_ptr<const void> keep, const Model& draft,
                                               const Tokenizer& draft_tok);

// Throws ModelError naming draft's file unless it can draft for target (check_same_vocab and
// the same logit width).
void check_draft_model(const Model& target, const Tokenizer& target_tok, const Model& draft,
                       const Tokenizer& draft_tok);

// Loads o's draft model (if any) and checks it against the target as DraftModel does, without
// allocating a forward pass: for failing at load time. Throws ModelError / GgufError.
void check_draft_model(const SpecOptions& o, const Model& target, const Tokenizer& target_tok);

// Chooses the token at a verified position from the target's logits row, given that draft
// token d was drawn from q (empty: a point mass). The standard rule: p is the distribution
// of target's chain (Sampler::distribution); accept d with probability min(1, p(d) / q(d)),
// else draw from norm(max(0, p - q)). The result is distributed as p whatever q is. With a
// point mass it is a plain draw from p (which equals the rule: accept with p(d), else draw
// from p without d); greedy is the argmax.
class DraftVerifier {
 public:
  explicit DraftVerifier(int64_t n_vocab);
  int32_t sample(Sampler& target, const float* logits, int32_t d, const std::vector<Candidate>& q);

 private:
  std::vector<Candidate> p_;
  std::vector<float> q_dense_;  // (n_vocab,) q by id; zero between calls
};

}  // namespace hpl
