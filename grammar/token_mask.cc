#include "grammar/token_mask.h"

#include <algorithm>

namespace hpl::grammar {

VocabTrie::VocabTrie(const std::vector<std::string>& pieces) {
  offsets_.reserve(pieces.size() + 1);
  for (const std::string& p : pieces) {
    offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
    bytes_ += p;
  }
  offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
  for (size_t id = 0; id < pieces.size(); ++id)
    if (!pieces[id].empty()) order_.push_back(static_cast<int32_t>(id));
  std::stable_sort(order_.begin(), order_.end(),
                   [&](int32_t a, int32_t b) { return piece(a) < piece(b); });
  nodes_.emplace_back();
  build(0, static_cast<uint32_t>(order_.size()), 0, 0);
  edge_set_ids_.clear();
  nodes_.shrink_to_fit();
}

size_t VocabTrie::memory_bytes() const {
  return nodes_.capacity() * sizeof(Node) + edge_sets_.capacity() * sizeof(EdgeSet) +
         order_.capacity() * sizeof(int32_t) + offsets_.capacity() * sizeof(uint32_t) +
         bytes_.capacity();
}

uint32_t VocabTrie::intern(const EdgeSet& e) {
  const uint64_t h = e.ascii[0] * 0x9E3779B97F4A7C15ull ^ (e.ascii[1] + e.high);
  std::vector<uint32_t>& ids = edge_set_ids_[h];
  for (uint32_t id : ids)
    if (edge_sets_[id] == e) return id;
  ids.push_back(static_cast<uint32_t>(edge_sets_.size()));
  edge_sets_.push_back(e);
  return ids.back();
}

// Fills node `self` for tokens order_[lo, hi), which share their first `depth` bytes; returns
// the bytes on the edges below it.
VocabTrie::EdgeSet VocabTrie::build(uint32_t lo, uint32_t hi, size_t depth, uint32_t self) {
  uint32_t own = lo;
  while (own < hi && piece(order_[own]).size() == depth) ++own;
  nodes_[self].tok_begin = lo;
  nodes_[self].tok_own = own;
  nodes_[self].tok_end = hi;
  // One child per distinct next byte, allocated together so they are contiguous.
  std::vector<uint32_t> starts;
  for (uint32_t i = own; i < hi; ++i)
    if (i == own || piece(order_[i])[depth] != piece(order_[i - 1])[depth]) starts.push_back(i);
  const uint32_t first = static_cast<uint32_t>(nodes_.size());
  nodes_[self].child_begin = first;
  nodes_[self].child_end = first + static_cast<uint32_t>(starts.size());
  nodes_.resize(nodes_.size() + starts.size());
  EdgeSet below;
  uint8_t ok = 0xFF;
  for (size_t c = 0; c < starts.size(); ++c) {
    const uint32_t child = first + static_cast<uint32_t>(c);
    const uint32_t end = c + 1 < starts.size() ? starts[c + 1] : hi;
    const uint8_t b = static_cast<uint8_t>(piece(order_[starts[c]])[depth]);
    nodes_[child].byte = b;
    const EdgeSet sub = build(starts[c], end, depth + 1, child);
    for (int i = 0; i < 2; ++i) below.ascii[i] |= sub.ascii[i];
    below.high |= sub.high;
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
  nodes_[self].below = intern(below);
  return below;
}

TokenMasker::TokenMasker(std::shared_ptr<const VocabTrie> trie, Matcher& m)
    : trie_(std::move(trie)), m_(m) {}

size_t TokenMasker::StateHash::operator()(const MatchState& s) const {
  uint64_t h = 1469598103934665603ull ^ (uint64_t{s.cp} << 8 | s.u8);
  for (uint32_t x : s.stacks) h = (h ^ x) * 1099511628211ull;
  return static_cast<size_t>(h);
}

int32_t TokenMasker::id_of(const MatchState& s) {
  auto [it, added] = ids_.emplace(s, static_cast<int32_t>(states_.size()));
  if (added) {
    states_.push_back(s);
    loops_.emplace_back();
  }
  return it->second;
}

int32_t TokenMasker::next(int32_t state, uint8_t b) {
  const uint64_t key = (static_cast<uint64_t>(state) << 8) | b;
  auto it = trans_.find(key);
  if (it != trans_.end()) return it->second;
  const int32_t n =
      m_.step(states_[static_cast<size_t>(state)], b, scratch_) ? id_of(scratch_) : kDead;
  trans_.emplace(key, n);
  return n;
}

void TokenMasker::mark(uint32_t from, uint32_t to, std::vector<uint8_t>& allowed) const {
  for (uint32_t i = from; i < to; ++i) allowed[static_cast<size_t>(trie_->order_[i])] = 1;
}

void TokenMasker::fill(const MatchState& s, std::vector<uint8_t>& allowed) {
  allowed.assign(static_cast<size_t>(trie_->n_tokens()), 0);
  visited_ = 0;
  if (trans_.size() > kMaxCached) {  // bound the caches over a long generation
    trans_.clear();
    ids_.clear();
    states_.clear();
    loops_.clear();
  }
  const int32_t start = id_of(s);
  walk(0, start, start, allowed);
}

void TokenMasker::walk(uint32_t node, int32_t state, int32_t origin,
                       std::vector<uint8_t>& allowed) {
  const VocabTrie::Node& n = trie_->nodes_[node];
  for (uint32_t c = n.child_begin; c < n.child_end; ++c) {
    const VocabTrie::Node& ch = trie_->nodes_[c];
    ++visited_;
    const int32_t ns = next(state, ch.byte);
    if (ns == kDead) continue;
    const int32_t no = states_[static_cast<size_t>(ns)].u8 == utf8::kBoundary ? ns : origin;
    if (ch.child_begin < ch.child_end && bulk_ok(ch, ns, no)) {
      mark(ch.tok_begin, ch.tok_end, allowed);
      continue;
    }
    mark(ch.tok_begin, ch.tok_own, allowed);
    if (ch.child_begin < ch.child_end) walk(c, ns, no, allowed);
  }
}

// Every token below n is allowed when every byte below keeps the walk at origin: ASCII bytes
// that are fixed points of origin, and whole non-ASCII characters when all of them are (a
// partial character at state completes back to origin then).
bool TokenMasker::bulk_ok(const VocabTrie::Node& n, int32_t state, int32_t origin) {
  const uint8_t u8 = states_[static_cast<size_t>(state)].u8;
  const VocabTrie::EdgeSet& b = trie_->edge_sets_[n.below];
  const Loop& l = loop_of(origin);
  if ((b.ascii[0] & ~l.ascii[0]) || (b.ascii[1] & ~l.ascii[1])) return false;
  if (u8 == utf8::kBoundary && !b.high) return true;
  return l.high && ((n.utf8_ok >> u8) & 1);  // every path below is valid UTF-8 from u8
}

const TokenMasker::Loop& TokenMasker::loop_of(int32_t state) {
  if (loops_[static_cast<size_t>(state)].known) return loops_[static_cast<size_t>(state)];
  Loop l;
  l.known = true;
  for (uint32_t b = 0; b < 0x80; ++b)
    if (next(state, static_cast<uint8_t>(b)) == state) l.ascii[b >> 6] |= uint64_t{1} << (b & 63);
  // Non-ASCII: the same next state for every such character when every stack's set takes
  // all of them or none; then one character tells whether that state is s.
  const MatchState& s = states_[static_cast<size_t>(state)];
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
    const int32_t mid = next(state, 0xC2);
    l.high = mid != kDead && next(mid, 0x80) == state;
  }
  loops_[static_cast<size_t>(state)] = l;
  return loops_[static_cast<size_t>(state)];
}

}  // namespace hpl::grammar
