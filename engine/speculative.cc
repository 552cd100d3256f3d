#include "engine/speculative.h"

#include <algorithm>
#include <string>

#include "engine/generate.h"
#include "engine/vocab_loader.h"

namespace hpl {

PromptLookup::PromptLookup(int32_t max_ngram) : max_ngram_(max_ngram) {
  if (max_ngram < 1) {
    throw ModelError("prompt lookup n-gram size must be >= 1 (got " + std::to_string(max_ngram) +
                     ")");
  }
}

void PromptLookup::propose(std::span<const int32_t> ctx, int32_t max_n, const Sampler&,
                           Draft& out) {
  out.clear();
  const int64_t len = static_cast<int64_t>(ctx.size());
  for (int64_t n = std::min<int64_t>(max_ngram_, len - 1); n >= 1; --n) {
    const auto tail = ctx.last(static_cast<size_t>(n));
    // Latest earlier start i of the n-gram (i + n < len: it is not the tail itself).
    for (int64_t i = len - n - 1; i >= 0; --i) {
      if (!std::equal(tail.begin(), tail.end(), ctx.begin() + i)) continue;
      const int64_t from = i + n, to = std::min(len, from + max_n);
      out.tokens.assign(ctx.begin() + from, ctx.begin() + to);
      out.q.resize(out.tokens.size());  // point masses
      return;
    }
  }
}

void check_same_vocab(const Vocab& target, const Vocab& draft) {
  auto fail = [](const std::string& what) {
    throw ModelError("the draft model's vocabulary differs from the target's: " + what);
  };
  if (target.tokens.size() != draft.tokens.size()) {
    fail(std::to_string(draft.tokens.size()) + " tokens, target has " +
         std::to_string(target.tokens.size()));
  }
  for (size_t i = 0; i < target.tokens.size(); ++i) {
    if (target.tokens[i] != draft.tokens[i]) {
      fail("token " + std::to_string(i) + " is '" + draft.tokens[i] + "', target has '" +
           target.tokens[i] + "'");
    }
  }
  auto type_of = [](const Vocab& v, size_t i) {
    return i < v.token_types.size() ? v.token_types[i] : static_cast<int32_t>(TokenType::NORMAL);
  };
  for (size_t i = 0; i < target.tokens.size(); ++i) {
    if (type_of(target, i) != type_of(draft, i)) {
      fail("token " + std::to_string(i) + " has type " + std::to_string(type_of(draft, i)) +
           ", target has " + std::to_string(type_of(target, i)));
    }
  }
  const struct {
    const char* name;
    int32_t t, d;
  } ids[] = {{"bos", target.bos_id, draft.bos_id},
             {"eos", target.eos_id, draft.eos_id},
             {"eot", target.eot_id, draft.eot_id},
             {"eom", target.eom_id, draft.eom_id}};
  for (const auto& s : ids) {
    if (s.t != s.d) {
      fail(std::string(s.name) + " id is " + std::to_string(s.d) + ", target has " +
           std::to_string(s.t));
    }
  }
}

namespace {

// draft, after checking it can draft for target; errors name draft's file.
const Model& checked_draft(const Model& target, const Tokenizer& target_tok, const Model& draft,
                           const Tokenizer& draft_tok) {
  try {
    check_same_vocab(target_tok.vocab(), draft_tok.vocab());
    if (target.config.n_vocab != draft.config.n_vocab) {
      throw ModelError("the draft model has " + std::to_string(draft.config.n_vocab) +
                       " logits per token, the target " + std::to_string(target.config.n_vocab));
    }
  } catch (const ModelError& e) {
    throw ModelError((draft.file ? draft.file->path() : std::string("draft model")) + ": " +
                     e.what());
  }
  return draft;
}

struct LoadedDraft {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
};

LoadedDraft load_draft(const std::string& path) {
  LoadedDraft d;
  d.model = Model::load(path);
  d.tok = load_tokenizer(*d.model->file);
  return d;
}

}  // namespace

void check_draft_model(const Model& target, const Tokenizer& target_tok, const Model& draft,
                       const Tokenizer& draft_tok) {
  checked_draft(target, target_tok, draft, draft_tok);
}

DraftModel::DraftModel(const Model& target, const Tokenizer& target_tok, const Model& draft,
                       const Tokenizer& draft_tok, const ForwardOptions& opt)
    : fwd_(checked_draft(target, target_tok, draft, draft_tok), opt),
      logits_(static_cast<size_t>(draft.config.n_vocab)) {}

void DraftModel::propose(std::span<const int32_t> ctx, int32_t max_n, const Sampler& target,
                         Draft& out) {
  out.clear();
  if (ctx.empty() || max_n < 1) return;
  // Roll back to the common prefix (at least the last token is evaluated anew: its logits).
  size_t common = 0;
  const size_t limit = std::min(held_.size(), ctx.size() - 1);
  while (common < limit && held_[common] == ctx[common]) ++common;
  fwd_.truncate(static_cast<int64_t>(common));  // may forget all (sliding window): n_past 0
  held_.resize(static_cast<size_t>(fwd_.n_past()));
  const int64_t room = fwd_.n_ctx() - static_cast<int64_t>(ctx.size());
  if (room < 0) return;  // the context outgrew the draft's: no drafts
  const auto rest = ctx.subspan(held_.size());
  fwd_.eval(rest.data(), static_cast<int64_t>(rest.size()), logits_.data());
  held_.assign(ctx.begin(), ctx.end());

  // The target's chain with a seed of its own per context length (reproducible runs). Its
  // penalty window: the context's last tokens, then the drafts.
  SamplerParams sp = target.params();
  sp.seed = target.params().seed ^ (0x9E3779B97F4A7C15ull * (ctx.size() + 1));
  Sampler s(sp, fwd_.n_vocab());
  prime_sampler(s, ctx);
  const bool greedy = sp.temp <= 0.0f;
  const int32_t n = static_cast<int32_t>(std::min<int64_t>(max_n, room));
  for (int32_t i = 0; i < n; ++i) {
    int32_t d;
    if (greedy) {
      d = s.sample(logits_.data());
      out.q.emplace_back();
    } else {
      std::vector<Candidate>& q = out.q.emplace_back();
      s.distribution(logits_.data(), q);
      d = q[sampling::draw(q, s.uniform())].id;
    }
    out.tokens.push_back(d);
    s.accept(d);
    if (i + 1 == n || fwd_.n_past() >= fwd_.n_ctx()) break;
    fwd_.eval(&d, 1, logits_.data());
    held_.push_back(d);
  }
}

void SpecOptions::check() const {
  if (!draft_path.empty() && lookup > 0)
    throw ModelError("give a draft model or prompt lookup, not both");
  if (lookup < 0)
    throw ModelError("lookup n-gram size must be >= 0 (got " + std::to_string(lookup) + ")");
  if (draft_max < 1 || draft_min < 0 || draft_min > draft_max) {
    throw ModelError("draft sizes need 1 <= draft-max and 0 <= draft-min <= draft-max (got " +
                     std::to_string(draft_max) + ", " + std::to_string(draft_min) + ")");
  }
}

void SpecOptions::apply(ForwardOptions& fo) const {
  if (enabled()) fo.n_rewind = std::max<int64_t>(fo.n_rewind, draft_max);
}

namespace {

// A DraftModel that keeps its model and tokenizer alive (owned, or a registry's lease).
class KeptDraftModel : public DraftSource {
 public:
  KeptDraftModel(std::shared_ptr<const void> keep, const Model& draft, const Tokenizer& draft_tok,
                 const Model& target, const Tokenizer& target_tok, const ForwardOptions& opt)
      : keep_(std::move(keep)), draft_(target, target_tok, draft, draft_tok, opt) {}
  void propose(std::span<const int32_t> ctx, int32_t max_n, const Sampler& target,
               Draft& out) override {
    draft_.propose(ctx, max_n, target, out);
  }
  const Forward* forward() const override {
    return static_cast<const DraftSource&>(draft_).forward();
  }

 private:
  std::shared_ptr<const void> keep_;  // declared first: outlives draft_
  DraftModel draft_;
};

}  // namespace

std::unique_ptr<DraftSource> make_draft_source(const SpecOptions& o, const Model& target,
                                               const Tokenizer& target_tok,
                                               const ForwardOptions& opt) {
  o.check();
  if (o.lookup > 0) return std::make_unique<PromptLookup>(o.lookup);
  if (o.draft_path.empty()) return nullptr;
  auto d = std::make_shared<LoadedDraft>(load_draft(o.draft_path));
  const Model& m = *d->model;
  const Tokenizer& t = *d->tok;
  return make_draft_source(o, target, target_tok, opt, std::move(d), m, t);
}

std::unique_ptr<DraftSource> make_draft_source(const SpecOptions& o, const Model& target,
                                               const Tokenizer& target_tok,
                                               const ForwardOptions& opt,
                                               std::shared_ptr<const void> keep, const Model& draft,
                                               const Tokenizer& draft_tok) {
  o.check();
  ForwardOptions fo = opt;
  o.apply(fo);
  return std::make_unique<KeptDraftModel>(std::move(keep), draft, draft_tok, target, target_tok,
                                          fo);
}

void check_draft_model(const SpecOptions& o, const Model& target, const Tokenizer& target_tok) {
  o.check();
  if (o.draft_path.empty()) return;
  const LoadedDraft d = load_draft(o.draft_path);
  check_draft_model(target, target_tok, *d.model, *d.tok);
}

DraftVerifier::DraftVerifier(int64_t n_vocab) : q_dense_(static_cast<size_t>(n_vocab), 0.0f) {}

int32_t DraftVerifier::sample(Sampler& target, const float* logits, int32_t d,
                              const std::vector<Candidate>& q) {
  if (q.empty() || target.params().temp <= 0.0f) return target.sample(logits);
  target.distribution(logits, p_);
  for (const Candidate& c : q) q_dense_[static_cast<size_t>(c.id)] = c.p;
  float pd = 0.0f;
  for (const Candidate& c : p_)
    if (c.id == d) pd = c.p;
  const double qd = q_dense_[static_cast<size_t>(d)];
  int32_t id = d;
  // Accept with probability min(1, p(d) / q(d)).
  if (!(target.uniform() * qd < pd)) {
    // Rejected (so p(d) < q(d)): draw from norm(max(0, p - q)), which is 0 at d.
    double sum = 0.0;
    for (Candidate& c : p_) {
      c.p = std::max(0.0f, c.p - q_dense_[static_cast<size_t>(c.id)]);
      sum += c.p;
    }
    if (sum > 0.0) {
      for (Candidate& c : p_) c.p = static_cast<float>(c.p / sum);
      id = p_[sampling::draw(p_, target.uniform())].id;
    } else {  // p == q up to rounding: the rule had to accept
      id = pd > 0.0f ? d : p_[0].id;
    }
  }
  for (const Candidate& c : q) q_dense_[static_cast<size_t>(c.id)] = 0.0f;
  return id;
}

}  // namespace hpl
