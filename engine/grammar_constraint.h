// Grammar-constrained sampling: what a request asks its output to be (a GBNF grammar, a JSON
// Schema, any JSON object), compiled to a grammar, and the TokenConstraint that masks the
// tokens the grammar does not allow next. End-of-generation tokens are allowed only when the
// output so far is a complete sentence of the grammar.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "grammar/gbnf.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

// At most one of the three is set.
struct OutputFormat {
  std::string grammar;      // GBNF text (start rule "root")
  std::string json_schema;  // JSON Schema text
  bool json = false;        // any JSON object
  bool empty() const { return grammar.empty() && json_schema.empty() && !json; }
};

// Throws grammar::GrammarError ("line L, column C: ..."), grammar::SchemaError ("schema at
// #/pointer: ...") or std::runtime_error (schema JSON that does not parse, two formats set).
std::shared_ptr<const grammar::Grammar> compile_output_format(const OutputFormat& f);

// The raw bytes of every token that is text (control tokens: ""), for the vocabulary trie.
std::shared_ptr<const grammar::VocabTrie> build_vocab_trie(const Tokenizer& tok);

// One trie per loaded model, built on first use (thread-safe).
class VocabTrieCache {
 public:
  std::shared_ptr<const grammar::VocabTrie> get(const Tokenizer& tok) const;

 private:
  mutable std::mutex mu_;
  mutable std::shared_ptr<const grammar::VocabTrie> trie_;
};

class GrammarConstraint : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const grammar::Grammar> g,
                    std::shared_ptr<const grammar::VocabTrie> trie, const Tokenizer& tok);
  GrammarConstraint(const GrammarConstraint&) = delete;  // the masker points at the matcher
  GrammarConstraint& operator=(const GrammarConstraint&) = delete;

  // Throws ModelError when no token can continue the output (the grammar needs text
  // the vocabulary cannot spell).
  void mask(float* logits) override;
  // Throws std::logic_error for a token the grammar does not allow.
  void accept(int32_t id) override;

  bool complete() const { return matcher_.complete(); }
  double mask_ms() const { return mask_ms_; }  // total time in mask()
  int32_t masks() const { return masks_; }

 private:
  grammar::Matcher matcher_;
  grammar::TokenMasker masker_;
  std::shared_ptr<const grammar::VocabTrie> trie_;
  std::vector<int32_t> eog_;
  std::vector<uint8_t> allowed_;
  double mask_ms_ = 0;
  int32_t masks_ = 0;
};

}  // namespace hpl
