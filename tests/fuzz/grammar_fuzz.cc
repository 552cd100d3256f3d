// libFuzzer target: arbitrary bytes as a GBNF grammar (first byte even) or as a JSON Schema
// (first byte odd). Checks: no crash/UB/hang; a schema that converts gives GBNF that parses;
// on a grammar that parses, the matcher consumes the input's own bytes and the trie mask over
// a small vocabulary equals stepping through every token alone, at each step. Built by
// tests/fuzz/run-fuzz.sh grammar.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace {

using namespace hpl::grammar;

const std::vector<std::string>& vocab() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> out = {
        "",      "{",   "}",   "\"",   "\\",      "a",        "ab",           "abc",      " ",
        "\n",    "0",   "12",  "-",    ".",       "e",        "true",         "null",     "[",
        "]",     ",",   ":",   "\xC3", "\xA9",    "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F", "x",
        "\"a\"", "{\"", "\":", "\xFF", "\xED\xA0"};
    for (int b = 0; b < 128; b += 7) out.push_back(std::string(1, static_cast<char>(b)));
    return out;
  }();
  return v;
}

void check_mask(Matcher& m, TokenMasker& masker, const VocabTrie& trie) {
  std::vector<uint8_t> allowed;
  masker.fill(m.state(), allowed);
  for (int32_t id = 0; id < trie.n_tokens(); ++id) {
    bool want = !trie.piece(id).empty();
    MatchState cur = m.state(), next;
    for (char c : trie.piece(id)) {
      if (!want) break;
      want = m.step(cur, static_cast<uint8_t>(c), next);
      std::swap(cur, next);
    }
    if (want != (allowed[static_cast<size_t>(id)] != 0)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string gbnf = text;
  if (data[0] & 1) {
    try {
      gbnf = json_schema_to_gbnf(text);
    } catch (const std::runtime_error&) {
      return 0;  // SchemaError or bad JSON
    }
  }
  std::shared_ptr<const Grammar> g;
  try {
    g = std::make_shared<const Grammar>(parse_gbnf(gbnf));
  } catch (const GrammarError&) {
    if (data[0] & 1) std::abort();  // the converter wrote GBNF that does not parse
    return 0;
  }
  static const auto trie = std::make_shared<const VocabTrie>(vocab());
  Matcher m(g);
  TokenMasker masker(trie, m);
  check_mask(m, masker, *trie);
  // Walk: the input's bytes, as far as the grammar takes them, checking the mask at each step.
  for (size_t i = 1, steps = 0; i < size && steps < 64; ++i, ++steps) {
    if (!m.accept(std::string(1, static_cast<char>(data[i])))) break;
    check_mask(m, masker, *trie);
  }
  return 0;
}
