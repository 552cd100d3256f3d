#include "grammar/matcher.h"

#include <algorithm>

namespace hpl::grammar {

namespace {
uint64_t key(uint32_t pos, uint32_t parent) {
  return (uint64_t{pos} << 32) | parent;
}
}  // namespace

Matcher::Matcher(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {
  nodes_.push_back({0, 0});
  reset();
}

void Matcher::reset() {
  state_ = {};
  seen_.clear();
  for (uint32_t alt : g_->rule_alts[g_->root]) expand(alt, 0, state_.stacks);
  std::sort(state_.stacks.begin(), state_.stacks.end());
  state_.stacks.erase(std::unique(state_.stacks.begin(), state_.stacks.end()), state_.stacks.end());
}

uint32_t Matcher::intern(uint32_t pos, uint32_t parent) {
  auto [it, added] = node_ids_.emplace(key(pos, parent), static_cast<uint32_t>(nodes_.size()));
  if (added) nodes_.push_back({pos, parent});
  return it->second;
}

void Matcher::expand(uint32_t pos, uint32_t parent, std::vector<uint32_t>& out) {
  if (!seen_.insert(key(pos, parent)).second) return;  // nullable alternatives meet again
  const Elem& e = g_->elems[pos];
  switch (e.kind) {
    case Elem::kEnd:  // alternative done: continue with the caller
      if (parent == 0) {
        out.push_back(0);
      } else {
        const Node n = nodes_[parent];
        expand(n.pos, n.parent, out);
      }
      break;
    case Elem::kRef: {  // a reference last in its alternative returns straight to the caller
      const uint32_t ret = g_->elems[pos + 1].kind == Elem::kEnd ? parent : intern(pos + 1, parent);
      for (uint32_t alt : g_->rule_alts[e.arg]) expand(alt, ret, out);
      break;
    }
    case Elem::kChars:
      out.push_back(intern(pos, parent));
      break;
  }
}

void Matcher::advance(const MatchState& in, uint32_t cp, MatchState& out) {
  out.stacks.clear();
  out.cp = 0;
  out.u8 = utf8::kBoundary;
  seen_.clear();
  for (uint32_t s : in.stacks) {
    if (s == 0) continue;
    const Node n = nodes_[s];
    if (g_->matches(g_->elems[n.pos], cp)) expand(n.pos + 1, n.parent, out.stacks);
  }
  std::sort(out.stacks.begin(), out.stacks.end());
  out.stacks.erase(std::unique(out.stacks.begin(), out.stacks.end()), out.stacks.end());
}

bool Matcher::step(const MatchState& in, uint8_t b, MatchState& out) {
  const utf8::State u = utf8::next(static_cast<utf8::State>(in.u8), b);
  if (u == utf8::kReject) return false;
  const uint32_t cp = in.u8 == utf8::kBoundary ? utf8::lead_bits(b) : (in.cp << 6) | (b & 0x3Fu);
  if (u == utf8::kBoundary) {
    advance(in, cp, out);
    return !out.stacks.empty();
  }
  // Incomplete character: keep the stacks if one can match a code point it may become.
  uint32_t lo, hi;
  utf8::reachable(u, cp, lo, hi);
  bool any = false;
  for (uint32_t s : in.stacks)
    if (s != 0 && g_->matches_any(g_->elems[nodes_[s].pos], lo, hi)) {
      any = true;
      break;
    }
  if (!any) return false;
  out.stacks = in.stacks;
  out.cp = cp;
  out.u8 = u;
  return true;
}

bool Matcher::is_complete(const MatchState& s) const {
  return s.u8 == utf8::kBoundary && !s.stacks.empty() && s.stacks[0] == 0;
}

bool Matcher::can_continue(const MatchState& s) const {
  return !s.stacks.empty() && s.stacks.back() != 0;
}

bool Matcher::accept(std::string_view bytes) {
  MatchState cur = state_;
  for (char c : bytes) {
    if (!step(cur, static_cast<uint8_t>(c), scratch_)) return false;
    std::swap(cur, scratch_);
  }
  state_ = std::move(cur);
  return true;
}

}  // namespace hpl::grammar
