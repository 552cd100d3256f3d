#include "grammar/token_mask.h"

#include <algorithm>

namespace hpl::grammar {

VocabTrie::VocabTrie(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
  for (size_t id = 0; id < pieces_.size(); ++id)
    if (!pieces_[id].empty()) order_.push_back(static_cast<int32_t>(id));
  std::stable_sort(order_.begin(), order_.end(),
                   [&](int32_t a, int32_t b) { return pieces_[a] < pieces_[b]; });
  nodes_.emplace_back();
  build(0, static_cast<uint32_t>(order_.size()), 0, 0);
}

size_t VocabTrie::memory_bytes() const {
  size_t n =
      nodes_.size() * sizeof(Node) + bulk_.size() * sizeof(Bulk) + order_.size() * sizeof(int32_t);
  for (const std::string& p : pieces_) n += sizeof(std::string) + p.capacity();
  return n;
}

// Fills node `self` for tokens order_[lo, hi), which share their first `depth` bytes; returns
// the bytes on the edges below it.
uint32_t VocabTrie::build(uint32_t lo, uint32_t hi, size_t depth, uint32_t self) {
  uint32_t own = lo;
  while (own < hi && pieces_[order_[own]].size() == depth) ++own;
  nodes_[self].tok_begin = lo;
  nodes_[self].tok_own = own;
  nodes_[self].tok_end = hi;
  // One child per distinct next byte, allocated together so they are contiguous.
  std::vector<uint32_t> starts;
  for (uint32_t i = own; i < hi; ++i)
    if (i == own || pieces_[order_[i]][depth] != pieces_[order_[i - 1]][depth]) starts.push_back(i);
  const uint32_t first = static_cast<uint32_t>(nodes_.size());
  nodes_[self].child_begin = first;
  nodes_[self].child_end = first + static_cast<uint32_t>(starts.size());
  nodes_.resize(nodes_.size() + starts.size());
  Bulk below;
  uint8_t ok = 0xFF;
  for (size_t c = 0; c < starts.size(); ++c) {
    const uint32_t child = first + static_cast<uint32_t>(c);
    const uint32_t end = c + 1 < starts.size() ? starts[c + 1] : hi;
    const uint8_t b = static_cast<uint8_t>(pieces_[order_[starts[c]]][depth]);
    nodes_[child].byte = b;
    const uint32_t sub = build(starts[c], end, depth + 1, child);
    const Bulk& s = sub == kNoBulk ? scratch_ : bulk_[sub];
    for (int i = 0; i < 2; ++i) below.ascii[i] |= s.ascii[i];
    below.high |= s.high;
    if (b < 0x80) {
      below.ascii[b >> 6] |= uint64_t{1} << (b & 63);
    } else {
      below.high = true;
    }
    for (int u = 0; u < utf8::kNumStates; ++u) {
      const utf8::State n = utf8::next(static_cast<utf8::State>(u), b);
      if (n == utf8::kReject || !((nodes_[child].utf8_ok >> n) & 1))
        ok &= static_cast<uint8_t>(~(1u << u));
    }
  }
  nodes_[self].utf8_ok = ok;
  if (hi - lo >= kBulkMin || self == 0) {
    nodes_[self].bulk = static_cast<uint32_t>(bulk_.size());
    bulk_.push_back(below);
    return nodes_[self].bulk;
  }
  scratch_ = below;
  return kNoBulk;
}

TokenMasker::TokenMasker(std::shared_ptr<const VocabTrie> trie, Matcher& m)
    : trie_(std::move(trie)), m_(m) {}

size_t TokenMasker::VecHash::operator()(const std::vector<uint32_t>& v) const {
  uint64_t h = 1469598103934665603ull;
  for (uint32_t x : v) h = (h ^ x) * 1099511628211ull;
  return static_cast<size_t>(h);
}

void TokenMasker::mark(uint32_t from, uint32_t to, std::vector<uint8_t>& allowed) const {
  for (uint32_t i = from; i < to; ++i) allowed[static_cast<size_t>(trie_->order_[i])] = 1;
}

void TokenMasker::fill(const MatchState& s, std::vector<uint8_t>& allowed) {
  allowed.assign(static_cast<size_t>(trie_->n_tokens()), 0);
  visited_ = 0;
  if (states_.empty()) states_.resize(1);
  states_[0] = s;
  walk(0, 0, allowed);
}

void TokenMasker::walk(uint32_t node, size_t depth, std::vector<uint8_t>& allowed) {
  const VocabTrie::Node& n = trie_->nodes_[node];
  if (states_.size() <= depth + 1) states_.resize(depth + 2);
  for (uint32_t c = n.child_begin; c < n.child_end; ++c) {
    const VocabTrie::Node& ch = trie_->nodes_[c];
    ++visited_;
    if (!m_.step(states_[depth], ch.byte, states_[depth + 1])) continue;
    const MatchState& next = states_[depth + 1];
    if (ch.bulk != VocabTrie::kNoBulk && bulk_ok(ch, next)) {
      mark(ch.tok_begin, ch.tok_end, allowed);
      continue;
    }
    mark(ch.tok_begin, ch.tok_own, allowed);
    if (ch.child_begin < ch.child_end) walk(c, depth + 1, allowed);
  }
}

bool TokenMasker::bulk_ok(const VocabTrie::Node& n, const MatchState& s) {
  if (s.u8 != utf8::kBoundary) return false;
  const VocabTrie::Bulk& b = trie_->bulk_[n.bulk];
  const Loop& l = loop_of(s);
  if ((b.ascii[0] & ~l.ascii[0]) || (b.ascii[1] & ~l.ascii[1])) return false;
  return !b.high || (l.high && (n.utf8_ok & 1));
}

const TokenMasker::Loop& TokenMasker::loop_of(const MatchState& s) {
  auto it = loops_.find(s.stacks);
  if (it != loops_.end()) return it->second;
  Loop l;
  MatchState next;
  for (uint32_t b = 0; b < 0x80; ++b)
    if (m_.step(s, static_cast<uint8_t>(b), next) && next.stacks == s.stacks)
      l.ascii[b >> 6] |= uint64_t{1} << (b & 63);
  // Non-ASCII: the same next state for every such character when every stack's set takes
  // all of them or none; then one character tells whether that state is s.
  const Grammar& g = m_.grammar();
  bool uniform = true;
  for (uint32_t st : s.stacks) {
    if (st == 0) continue;
    Elem e = m_.top(st);
    const bool some = g.matches_any(e, 0x80, 0x10FFFF);
    e.negated = !e.negated;
    const bool all = !g.matches_any(e, 0x80, 0x10FFFF);
    if (some != all) uniform = false;
  }
  if (uniform) {
    MatchState mid;
    l.high = m_.step(s, 0xC2, mid) && m_.step(mid, 0x80, next) && next.stacks == s.stacks;
  }
  return loops_.emplace(s.stacks, l).first->second;
}

}  // namespace hpl::grammar
