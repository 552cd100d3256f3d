// Pushdown matcher of a Grammar over bytes. A state is a set of stacks of grammar positions;
// each stack's top is a character set to match next (the empty stack: the grammar is
// complete). Stacks are hash-consed nodes {position, parent} in an arena that lives as long
// as the matcher, so equal stacks have equal ids and a state is a sorted id list.
//
// Bytes come in one at a time: a UTF-8 lead byte is held (with the range of code points it
// can still become, checked against the stacks' character sets) until its character is
// complete, so tokens that split a character are handled.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "grammar/gbnf.h"
#include "grammar/utf8.h"

namespace hpl::grammar {

struct MatchState {
  std::vector<uint32_t> stacks;  // sorted ids of the possible stacks; 0: the empty stack
  uint32_t cp = 0;               // the code point's bits so far
  uint8_t u8 = 0;                // utf8::State: 0 at a character boundary

  bool operator==(const MatchState&) const = default;
};

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> g);

  const Grammar& grammar() const { return *g_; }
  const MatchState& state() const { return state_; }
  void reset();

  // Consumes bytes if the grammar allows them all; false (state unchanged) otherwise.
  bool accept(std::string_view bytes);
  // The input so far is a whole sentence of the grammar.
  bool complete() const { return is_complete(state_); }
  // Something more may follow (a stack other than the empty one).
  bool can_continue() const { return can_continue(state_); }

  // The state after byte b from `in`, into `out`; false when b is not allowed.
  bool step(const MatchState& in, uint8_t b, MatchState& out);
  bool is_complete(const MatchState& s) const;
  bool can_continue(const MatchState& s) const;
  // The character set the stack's top must match next (s != 0).
  const Elem& top(uint32_t stack) const { return g_->elems[nodes_[stack].pos]; }

 private:
  struct Node {
    uint32_t pos, parent;
  };
  uint32_t intern(uint32_t pos, uint32_t parent);
  // Adds to out the ready stacks reachable from position pos over stack parent.
  void expand(uint32_t pos, uint32_t parent, std::vector<uint32_t>& out);
  void advance(const MatchState& in, uint32_t cp, MatchState& out);

  std::shared_ptr<const Grammar> g_;
  std::vector<Node> nodes_;                          // 0: the empty stack
  std::unordered_map<uint64_t, uint32_t> node_ids_;  // (pos, parent) -> id
  std::unordered_set<uint64_t> seen_;                // (pos, parent) expanded this step
  MatchState state_, scratch_;
};

}  // namespace hpl::grammar
