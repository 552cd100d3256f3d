// Which tokens of a vocabulary a grammar allows next, computed by walking a byte trie of the
// vocabulary once from the matcher's state (a token is allowed when the state survives all
// its bytes; a trie edge the state rejects prunes every token below it).
//
// Bulk acceptance: when the state after a trie node is a fixed point of every byte below that
// node (inside a JSON string, any byte but `"`, `\` and control characters leaves the state
// as it is), every token in the node's subtree is allowed without walking it. Each state's
// set of fixed-point bytes is computed once and cached.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/matcher.h"
#include "grammar/utf8.h"

namespace hpl::grammar {

class VocabTrie {
 public:
  // pieces[id]: the raw bytes of token id; "" for tokens that are never text (control tokens).
  explicit VocabTrie(std::vector<std::string> pieces);

  int32_t n_tokens() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  size_t n_nodes() const { return nodes_.size(); }
  size_t memory_bytes() const;

 private:
  friend class TokenMasker;
  static constexpr uint32_t kNoBulk = UINT32_MAX;
  static constexpr uint32_t kBulkMin = 16;  // subtrees with fewer tokens are just walked
  struct Node {
    uint32_t child_begin = 0, child_end = 0;           // children, contiguous in nodes_
    uint32_t tok_begin = 0, tok_own = 0, tok_end = 0;  // order_: [begin, own) end here,
                                                       // [begin, end) in the subtree
    uint32_t bulk = kNoBulk;  // index into bulk_ (subtrees of kBulkMin tokens or more)
    uint8_t byte = 0;         // the edge into this node
    uint8_t utf8_ok = 0;      // bit u: all paths below are valid UTF-8 from utf8::State u
                              // (a path may end inside a character)
  };
  struct Bulk {
    uint64_t ascii[2] = {0, 0};  // the ASCII bytes on edges below the node
    bool high = false;           // a byte >= 0x80 below
  };
  uint32_t build(uint32_t lo, uint32_t hi, size_t depth, uint32_t self);

  std::vector<std::string> pieces_;
  std::vector<int32_t> order_;  // token ids sorted by their bytes (the trie's DFS order)
  std::vector<Node> nodes_;     // 0: the root (the empty prefix)
  std::vector<Bulk> bulk_;
  Bulk scratch_;  // build(): the edge set of a small subtree, handed to its parent
};

// Computes masks for one matcher (its state ids); one per generation.
class TokenMasker {
 public:
  TokenMasker(std::shared_ptr<const VocabTrie> trie, Matcher& m);

  // allowed (n_tokens,): 1 where the token's bytes keep state s alive. End-of-generation is the
  // caller's business (Matcher::is_complete).
  void fill(const MatchState& s, std::vector<uint8_t>& allowed);
  size_t nodes_visited() const { return visited_; }  // in the last fill

 private:
  struct Loop {
    uint64_t ascii[2] = {0, 0};  // ASCII bytes b with step(s, b) == s
    bool high = false;           // every non-ASCII character leaves s as it is
  };
  struct VecHash {
    size_t operator()(const std::vector<uint32_t>& v) const;
  };
  void walk(uint32_t node, size_t depth, std::vector<uint8_t>& allowed);
  const Loop& loop_of(const MatchState& s);
  bool bulk_ok(const VocabTrie::Node& n, const MatchState& s);
  void mark(uint32_t from, uint32_t to, std::vector<uint8_t>& allowed) const;

  std::shared_ptr<const VocabTrie> trie_;
  Matcher& m_;
  std::vector<MatchState> states_;  // per trie depth, reused
  std::unordered_map<std::vector<uint32_t>, Loop, VecHash> loops_;
  size_t visited_ = 0;
};

}  // namespace hpl::grammar
