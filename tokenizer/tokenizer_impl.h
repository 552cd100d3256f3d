// Internal: the tokenizer kinds behind Tokenizer::create, and shared lookup helpers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace hpl {

// piece text -> id, keys viewing the Vocab's strings (which outlive the map).
using PieceMap = std::unordered_map<std::string_view, int32_t>;

// Adds tokens [0, n) for which keep(id) holds; on duplicates the lowest id wins.
template <typename Keep>
void build_piece_map(const std::vector<std::string>& tokens, Keep keep, PieceMap& map) {
  map.reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (keep(static_cast<int32_t>(i))) map.emplace(tokens[i], static_cast<int32_t>(i));
  }
}

inline int32_t lookup(const PieceMap& m, std::string_view s) {
  auto it = m.find(s);
  return it == m.end() ? -1 : it->second;
}

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_wpm_tokenizer(Vocab vocab);

// "<0x41>" -> 0x41; -1 if the text is not of that form.
int parse_byte_token(std::string_view text);

}  // namespace hpl
