#include "engine/grammar_constraint.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/model_config.h"
#include "grammar/json_schema.h"

namespace hpl {

std::shared_ptr<const grammar::Grammar> compile_output_format(const OutputFormat& f) {
  const int n = !f.grammar.empty() + !f.json_schema.empty() + f.json;
  if (n > 1) throw std::runtime_error("give only one of a grammar, a JSON schema and JSON mode");
  std::string gbnf = f.grammar;
  if (!f.json_schema.empty()) gbnf = grammar::json_schema_to_gbnf(f.json_schema);
  if (f.json) gbnf = grammar::json_any_gbnf(true);
  return std::make_shared<const grammar::Grammar>(grammar::parse_gbnf(gbnf));
}

std::shared_ptr<const grammar::VocabTrie> build_vocab_trie(const Tokenizer& tok) {
  std::vector<std::string> pieces(static_cast<size_t>(tok.n_vocab()));
  for (int32_t id = 0; id < tok.n_vocab(); ++id)
    if (!tok.is_control(id) && !tok.is_eog(id))
      pieces[static_cast<size_t>(id)] = tok.token_to_piece(id);
  return std::make_shared<const grammar::VocabTrie>(std::move(pieces));
}

std::shared_ptr<const grammar::VocabTrie> VocabTrieCache::get(const Tokenizer& tok) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!trie_) trie_ = build_vocab_trie(tok);
  return trie_;
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<const grammar::Grammar> g,
                                     std::shared_ptr<const grammar::VocabTrie> trie,
                                     const Tokenizer& tok)
    : matcher_(std::move(g)), masker_(trie, matcher_), trie_(std::move(trie)), eog_(tok.eog_ids()) {
  if (trie_->n_tokens() != tok.n_vocab())
    throw std::invalid_argument("grammar: the vocabulary trie is of another tokenizer");
}

void GrammarConstraint::mask(float* logits) {
  const auto t0 = std::chrono::steady_clock::now();
  masker_.fill(matcher_.state(), allowed_);
  const bool done = matcher_.complete();
  for (int32_t id : eog_) allowed_[static_cast<size_t>(id)] = done;
  bool any = false;
  constexpr float kOff = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < allowed_.size(); ++i) {
    if (allowed_[i]) {
      any = true;
    } else {
      logits[i] = kOff;
    }
  }
  mask_ms_ +=
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ++masks_;
  if (!any)
    throw ModelError(
        done ? "grammar: the output is complete but the vocabulary has no end-of-generation token"
             : "grammar: no token of the vocabulary can continue the output here");
}

void GrammarConstraint::accept(int32_t id) {
  for (int32_t e : eog_)
    if (id == e) {
      if (!matcher_.complete())
        throw std::logic_error("grammar: end of generation before the output is complete");
      return;
    }
  if (id < 0 || id >= trie_->n_tokens() || trie_->piece(id).empty() ||
      !matcher_.accept(trie_->piece(id)))
    throw std::logic_error("grammar: token " + std::to_string(id) + " is not allowed here");
}

}  // namespace hpl
