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
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/matcher.h"
#include "grammar/utf8.h"

namespace hpl::grammar {

class VocabTrie {
 public:
  // pieces[id]: the raw bytes of token id; "" for tokens that are never text (control tokens).
  explicit VocabTrie(const std::vector<std::string>& pieces);

  int32_t n_tokens() const { return static_cast<int32_t>(offsets_.size() - 1); }
  std::string_view piece(int32_t id) const {
    const size_t i = static_cast<size_t>(id);
    return std::string_view(bytes_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }
  size_t n_nodes() const { return nodes_.size(); }
  size_t memory_bytes() const;

 private:
  friend class TokenMasker;
  struct Node {
    uint32_t child_begin = 0, child_end = 0;           // children, contiguous in nodes_
    uint32_t tok_begin = 0, tok_own = 0, tok_end = 0;  // order_: [begin, own) end here,
                                                       // [begin, end) in the subtree
    uint32_t below = 0;   // index into edge_sets_: the bytes on the edges below
    uint8_t byte = 0;     // the edge into this node
    uint8_t utf8_ok = 0;  // bit u: all paths below are valid UTF-8 from utf8::State u
                          // (a path may end inside a character)
  };
  struct EdgeSet {
    uint64_t ascii[2] = {0, 0};  // ASCII bytes
    bool high = false;           // a byte >= 0x80
    bool operator==(const EdgeSet&) const = default;
  };
  EdgeSet build(uint32_t lo, uint32_t hi, size_t depth, uint32_t self);
  uint32_t intern(const EdgeSet& e);

  std::string bytes_;               // every piece, concatenated
  std::vector<uint32_t> offsets_;   // id -> start in bytes_ (n_tokens + 1)
  std::vector<int32_t> order_;      // token ids sorted by their bytes (the trie's DFS order)
  std::vector<Node> nodes_;         // 0: the root (the empty prefix)
  std::vector<EdgeSet> edge_sets_;  // distinct sets (few: most subtrees share one)
  std::unordered_map<uint64_t, std::vector<uint32_t>> edge_set_ids_;  // build only: hash -> ids
};

// Computes masks for one matcher (its stack ids); one per generation. States met in the walk
// get ids and their transitions are cached, so a state seen before (inside a string, the same
// one for every character) costs a table lookup per trie edge, not a matcher step.
class TokenMasker {
 public:
  TokenMasker(std::shared_ptr<const VocabTrie> trie, Matcher& m);

  // allowed (n_tokens,): 1 where the token's bytes keep state s alive. End-of-generation is the
  // caller's business (Matcher::is_complete).
  void fill(const MatchState& s, std::vector<uint8_t>& allowed);
  size_t nodes_visited() const { return visited_; }  // in the last fill

 private:
  static constexpr int32_t kDead = -1;
  static constexpr size_t kMaxCached = size_t{1} << 20;  // transitions; then start afresh
  struct Loop {
    bool known = false;
    uint64_t ascii[2] = {0, 0};  // ASCII bytes b with step(s, b) == s
    bool high = false;           // every non-ASCII character leaves s as it is
  };
  struct StateHash {
    size_t operator()(const MatchState& s) const;
  };
  int32_t id_of(const MatchState& s);
  int32_t next(int32_t state, uint8_t b);
  // origin: the last state at a character boundary on the path (state itself, or the one
  // before a partial character).
  void walk(uint32_t node, int32_t state, int32_t origin, std::vector<uint8_t>& allowed);
  const Loop& loop_of(int32_t state);
  bool bulk_ok(const VocabTrie::Node& n, int32_t state, int32_t origin);
  void mark(uint32_t from, uint32_t to, std::vector<uint8_t>& allowed) const;

  std::shared_ptr<const VocabTrie> trie_;
  Matcher& m_;
  std::deque<MatchState> states_;  // id -> state (a deque: references stay valid)
  std::vector<Loop> loops_;        // id -> its fixed-point bytes
  std::unordered_map<MatchState, int32_t, StateHash> ids_;
  std::unordered_map<uint64_t, int32_t> trans_;  // (id << 8 | byte) -> id or kDead
  MatchState scratch_;
  size_t visited_ = 0;
};

}  // namespace hpl::grammar
