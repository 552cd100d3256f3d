#include "runtime/prompt_cache.h"

#include <algorithm>
#include <cstring>

#include "runtime/session.h"

namespace hpl {

namespace {
constexpr int64_t kMinDroppedToSave = 16;
}  // namespace

int64_t reusable_prefix(const KvLayout& layout, std::span<const int64_t> first,
                        std::span<const int32_t> held, std::span<const int32_t> prompt,
                        int64_t max_keep) {
  const size_t limit =
      std::min({held.size(), prompt.size(), static_cast<size_t>(std::max<int64_t>(0, max_keep))});
  const auto n = static_cast<int64_t>(
      std::mismatch(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(limit), prompt.begin())
          .first -
      held.begin());
  // A sliding-window layer that moved past what position n attends to makes n unusable, and
  // so every shorter prefix too (each needs older positions still): nothing then.
  return can_rewind(layout, first, n) ? n : 0;
}

PromptCache::PromptCache(PromptCacheOptions opt, std::function<bool(size_t)> charge,
                         std::function<void(size_t)> discharge)
    : opt_(opt), charge_(std::move(charge)), discharge_(std::move(discharge)) {}

PromptCache::~PromptCache() {
  clear();
}

size_t PromptCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

size_t PromptCache::states() const {
  std::lock_guard<std::mutex> lock(mu_);
  return states_.size();
}

void PromptCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  while (!states_.empty()) drop(states_.size() - 1);
}

void PromptCache::stash(Session& s) {
  std::lock_guard<std::mutex> lock(mu_);
  save(s);
}

void PromptCache::drop(size_t i) {
  const size_t b = states_[i].bytes();
  states_.erase(states_.begin() + static_cast<std::ptrdiff_t>(i));
  bytes_ -= b;
  if (discharge_) discharge_(b);
}

bool PromptCache::make_room(size_t need) {
  if (opt_.max_states <= 0 || need > opt_.max_bytes) return false;
  for (;;) {
    const bool fits = states_.size() < static_cast<size_t>(opt_.max_states) &&
                      bytes_ + need <= opt_.max_bytes && (!charge_ || charge_(need));
    if (fits) return true;
    if (states_.empty()) return false;
    auto lru = std::min_element(states_.begin(), states_.end(),
                                [](auto& a, auto& b) { return a.last_use < b.last_use; });
    drop(static_cast<size_t>(lru - states_.begin()));
  }
}

int64_t PromptCache::select(Session& s, std::span<const int32_t> prompt) {
  const KvLayout& layout = s.kv_cache().layout();
  const int64_t max_keep = static_cast<int64_t>(prompt.size()) - 1;
  const int64_t live =
      reusable_prefix(layout, s.kv_cache().first_positions(), s.kv_tokens(), prompt, max_keep);
  std::lock_guard<std::mutex> lock(mu_);
  int64_t best = live;
  size_t best_i = states_.size();
  for (size_t i = 0; i < states_.size(); ++i) {
    const int64_t n =
        reusable_prefix(layout, states_[i].first, states_[i].tokens, prompt, max_keep);
    if (n > best) {
      best = n;
      best_i = i;
    }
  }
  if (best_i == states_.size()) {
    // The live state is about to be cut back to `live` tokens: worth saving when that drops
    // more than a few (a chat client's next turn drops only the reply's unevaluated tail).
    if (static_cast<int64_t>(s.kv_tokens().size()) - live >= kMinDroppedToSave) save(s);
    return live;
  }
  // Swap: the chosen state leaves the cache (it becomes the live one), the live one enters.
  State chosen = std::move(states_[best_i]);
  states_.erase(states_.begin() + static_cast<std::ptrdiff_t>(best_i));
  bytes_ -= chosen.bytes();
  if (discharge_) discharge_(chosen.bytes());
  save(s);
  restore(chosen, s);
  return best;
}

void PromptCache::save(Session& s) {
  const KvCache& kv = s.kv_cache();
  const std::span<const int32_t> toks = s.kv_tokens();
  const auto n = static_cast<int64_t>(toks.size());
  if (n == 0) return;
  const KvLayout& layout = kv.layout();
  // A state whose tokens extend another's and that can still be rewound to them serves every
  // request the other would: keep only the longer one.
  auto covers = [&](std::span<const int32_t> longer, std::span<const int64_t> first,
                    std::span<const int32_t> shorter) {
    return longer.size() >= shorter.size() &&
           std::equal(shorter.begin(), shorter.end(), longer.begin()) &&
           can_rewind(layout, first, static_cast<int64_t>(shorter.size()));
  };
  for (State& st : states_)
    if (covers(st.tokens, st.first, toks)) {
      st.last_use = ++clock_;
      return;
    }
  for (size_t i = states_.size(); i-- > 0;)
    if (covers(toks, kv.first_positions(), states_[i].tokens)) drop(i);

  const size_t row = kv.row_bytes();
  size_t rows = 0;
  for (size_t il = 0; il < layout.capacity.size(); ++il)
    rows += 2 * static_cast<size_t>(n - kv.first_pos(static_cast<int64_t>(il)));
  const size_t need = rows * row;
  if (!make_room(need)) return;  // does not fit: the live state is simply forgotten
  State st;
  st.tokens.assign(toks.begin(), toks.end());
  st.first.assign(kv.first_positions().begin(), kv.first_positions().end());
  st.rows.resize(rows * row);
  uint8_t* out = st.rows.data();
  KvCache& w = s.kv_cache();
  for (size_t il = 0; il < st.first.size(); ++il) {
    const auto l = static_cast<int64_t>(il);
    const size_t count =
        static_cast<size_t>(n - st.first[il]) * row;  // bytes: contiguous positions
    if (count == 0) continue;
    std::memcpy(out, w.k(l, st.first[il]), count);
    std::memcpy(out + count, w.v(l, st.first[il]), count);
    out += 2 * count;
  }
  st.last_use = ++clock_;
  bytes_ += need;
  states_.push_back(std::move(st));
}

void PromptCache::restore(const State& st, Session& s) {
  KvCache& kv = s.kv_cache();
  const auto n = static_cast<int64_t>(st.tokens.size());
  const size_t row = kv.row_bytes();
  kv.clear();
  const uint8_t* in = st.rows.data();
  for (size_t il = 0; il < st.first.size(); ++il) {
    const auto l = static_cast<int64_t>(il);
    kv.set_first_pos(l, st.first[il]);
    const size_t count = static_cast<size_t>(n - st.first[il]) * row;
    if (count == 0) continue;
    std::memcpy(kv.k(l, st.first[il]), in, count);
    std::memcpy(kv.v(l, st.first[il]), in + count, count);
    in += 2 * count;
  }
  kv.set_n_past(n);
  s.tokens() = st.tokens;
  s.exchanges().clear();
}

}  // namespace hpl
