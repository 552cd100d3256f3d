// The prompt cache of stateless requests: KV states of earlier requests, keyed by the exact
// tokens they hold, so a request that repeats a prefix (a chat client resending its whole
// conversation, a shared system prompt) evaluates only the tokens after it.
//
// The runtime's stateless session holds the live state (what its last request left in the
// KV cache); this cache holds up to max_states more, copied out of it (K and V rows of every
// position each layer still holds: sliding-window layers only their window). A request is
// served from the state whose tokens share the longest *usable* prefix with its prompt: at
// most all but the prompt's last token (whose logits must be fresh), and only as far back as
// every sliding-window layer still holds what the next position attends to (a state that
// cannot be rewound that far is worth nothing; another, shorter one may be). When a saved
// state beats the live one they are swapped: the live state is saved (least recently used
// states evicted to stay within max_states and max_bytes), the chosen one copied into the
// session. When the live one wins but the request would cut it back by 16 tokens or more, it
// is saved first too (a chat client's next turn only drops the reply's unevaluated tail). Nothing
// but KV rows of the very same token prefix is reused, so one client's request never sees another's
// text.
//
// Memory: the saved states' bytes are charged to the model in the registry's budget
// (ModelRegistry::charge); a state that does not fit is not saved. clear() gives them back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "kernel/types.h"

namespace hpl {

class Session;

struct PromptCacheOptions {
  int max_states = 4;                   // saved states besides the live one; 0: only the live one
  size_t max_bytes = size_t{64} << 20;  // K and V bytes of the saved states
};

// The longest prefix of prompt, at most max_keep tokens, that a KV state holding `held`
// (layers from `first` on, positions [0, held.size())) can be rewound to; 0 when none.
int64_t reusable_prefix(const KvLayout& layout, std::span<const int64_t> first,
                        std::span<const int32_t> held, std::span<const int32_t> prompt,
                        int64_t max_keep);

class PromptCache {
 public:
  // charge(bytes): may the cache keep `bytes` more (the registry's budget)? discharge(bytes)
  // gives them back.
  PromptCache(PromptCacheOptions opt, std::function<bool(size_t)> charge,
              std::function<void(size_t)> discharge);
  ~PromptCache();
  PromptCache(const PromptCache&) = delete;
  PromptCache& operator=(const PromptCache&) = delete;

  // Makes s's KV cache hold the best state for prompt: its own, or a saved one that shares a
  // longer usable prefix (then swapped in as described above). The caller then keeps the
  // prefix (Session::start_conversation). Returns the usable prefix length.
  int64_t select(Session& s, std::span<const int32_t> prompt);
  void clear();  // drops every saved state
  // Saves s's state (when it holds tokens and is not covered by a saved one) before it is
  // replaced by something else (a prefix file).
  void stash(Session& s);

  size_t bytes() const;
  size_t states() const;

 private:
  struct State {
    std::vector<int32_t> tokens;  // positions [0, tokens.size()) were evaluated
    std::vector<int64_t> first;   // per layer: the first position held
    std::vector<uint8_t>
        rows;  // per layer: K then V rows (the cache's type) of [first, tokens.size())
    uint64_t last_use = 0;
    size_t bytes() const { return rows.size(); }
  };
  void save(Session& s);  // the live state, deduplicated; caller holds mu_
  static void restore(const State& st, Session& s);
  void drop(size_t i);           // caller holds mu_
  bool make_room(size_t bytes);  // evicts LRU states; caller holds mu_

  PromptCacheOptions opt_;
  std::function<bool(size_t)> charge_;
  std::function<void(size_t)> discharge_;
  mutable std::mutex mu_;
  std::vector<State> states_;
  size_t bytes_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace hpl
