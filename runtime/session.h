// One conversation on one model: the forward pass with its KV cache, the conversation's
// tokens, and its exchanges (for restarting with the last K). Used only by the runtime's
// worker thread (or by one thread at a time).
//
// tokens() is the whole conversation; its first n_past() tokens are in the KV cache. The
// rest (usually the last sampled token, which is never evaluated when a turn ends) are
// evaluated at the start of the next turn together with that turn's new tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/kv_cache.h"
#include "engine/speculative.h"
#include "runtime/model_registry.h"
#include "runtime/runtime_types.h"

namespace hpl {

class PromptCache;

// The forward pass's options (engine/forward.h: context, micro-batch, threads, with their
// defaults) plus the chat format.
struct SessionOptions : ForwardOptions {
  // A conversation resent by a stateless client usually parts from the cached state within a
  // few tokens of its end (end-of-turn markers, a stop string): this much rewind slack keeps a
  // sliding-window layer's state reusable even right after its ring moved (runtime/prompt_cache.h).
  static constexpr int64_t kRewindSlack = 16;
  SessionOptions() { n_rewind = kRewindSlack; }

  // Chat format name (gemma, chatml, llama2, ...); "": the model's own (its template, its
  // special tokens, else its architecture: gemma3 -> gemma, qwen2 -> chatml), or none.
  std::string chat_template;
  // Speculative decoding (engine/speculative.h): a draft model (the runtime leases it from its
  // registry, under the memory budget, beside the target; else the session loads it) or
  // prompt lookup over the conversation; off by default.
  SpecOptions spec;
};

// One turn of a conversation, as submitted, with the text generated for it.
struct Exchange {
  std::string prompt;                 // raw-prompt turn
  std::vector<ChatMessage> messages;  // chat turn: the new messages
  std::string response;
  bool closed = false;  // the reply ended its turn (end-of-generation token or end-of-turn
                        // text): it is in the conversation's tokens
};

class Session {
 public:
  // Allocates the KV cache and scratch; holds a lease on the model, and on draft (the model
  // at opt.spec.draft_path; null: the session loads that itself). Throws RuntimeError.
  Session(std::shared_ptr<const LoadedModel> model, const SessionOptions& opt,
          std::shared_ptr<const LoadedModel> draft = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const LoadedModel& model() const { return *model_; }
  const SessionOptions& options() const { return opt_; }
  Forward& forward() { return *fwd_; }
  int64_t n_ctx() const { return fwd_->n_ctx(); }
  // KV caches and scratch of its forward passes: the target's and a draft model's.
  size_t kv_bytes() const;
  size_t scratch_bytes() const;
  int64_t n_past() const { return fwd_->n_past(); }

  std::vector<int32_t>& tokens() { return tokens_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  std::vector<Exchange>& exchanges() { return exchanges_; }
  const std::vector<Exchange>& exchanges() const { return exchanges_; }

  // The model's chat format; null when unknown (chat turns are then "role: content" lines).
  const ChatTemplate* chat_template() const { return tmpl_ ? &*tmpl_ : nullptr; }
  // Tokens of the conversation not yet in the KV cache (evaluated at the next turn).
  int64_t n_pending() const { return static_cast<int64_t>(tokens_.size()) - n_past(); }

  // The tokens a new turn adds: the raw prompt, or the new chat messages formatted
  // incrementally (only what follows the conversation so far, ending with the assistant
  // prompt). BOS is added at the start of a conversation when the vocab asks for it.
  std::vector<int32_t> turn_tokens(const RequestParams& p) const;

  // A turn's tokens (turn_tokens), checked before any work. Throws RuntimeError:
  // kContextFull "context full: need N tokens (C in the conversation + T new + R for the
  // reply), have M" when C + T + reserve > n_ctx; kInvalidArgument when nothing is left to
  // evaluate or a token id is out of the model's range.
  std::vector<int32_t> prepare_turn(const RequestParams& p, int64_t reserve) const;
  // A stateless turn: p as the first turn of a new conversation, checked like prepare_turn.
  // The KV of the prompt's longest usable prefix (all but its last token at most) is kept:
  // from this session's own cache, or from `cache` when it holds a better state
  // (runtime/prompt_cache.h); null: nothing is reused. The prompt is then the conversation's
  // pending tokens: run_turn(p, {}) evaluates only what follows the prefix. Returns the
  // prompt tokens reused.
  int64_t begin_stateless_turn(const RequestParams& p, int64_t reserve, PromptCache* cache);
  // Evaluates the pending tokens (no logits): afterwards they are all in the KV cache.
  void evaluate_pending();
  // Replaces the conversation with a prefix file's tokens and KV (runtime/session_file.h; no
  // exchanges: the next stateless turn or first chat turn reuses what it shares). With
  // expect, the file's tokens must be the first turn tokens of expect's prompt minus at most
  // its last (kSessionMismatch naming the first difference otherwise; the session is then
  // empty).
  void load_prefix_file(const std::string& path, const RequestParams* expect);
  // Runs a prepared turn through the generation loop (engine/generate.h): the pending tokens
  // and `fresh` are evaluated, then the reply generated with p's sampling, max_tokens (< 0:
  // no limit) and stop strings (a chat turn also stops at the template's end-of-turn text).
  // The reply's tokens join the conversation and the turn is recorded as an exchange. A stop
  // during the prompt, or an exception, leaves the session as before the turn.
  GenerateResult run_turn(const RequestParams& p, const std::vector<int32_t>& fresh,
                          const TextFn& on_text, const StopFn& should_stop = {});
  // Makes room for turn p when it does not fit: restarts the conversation with the most of
  // its last max_keep exchanges that leave `reserve` tokens free (else none). The opening
  // system message is carried (into p when no exchange is kept); the KV of the shared prefix
  // is kept as by keep_last_exchanges. Returns the number kept, or
  // -1, changing nothing, when even alone the turn leaves no room for one reply token.
  int restart_to_fit(RequestParams& p, int max_keep, int64_t reserve);

  // Starts a new conversation: no tokens, no exchanges, empty cache.
  void clear();
  // Rolls the conversation back to n_tokens tokens (cache too). For undoing a failed turn.
  void rollback(size_t n_tokens);
  // Replaces the conversation with its last k exchanges (and the opening system message),
  // re-tokenized; the KV of the prefix they share with the old conversation (BOS, the system
  // message) is kept, the rest is evaluated at the next turn. k <= 0 is clear().
  void keep_last_exchanges(int k);

  KvCache& kv_cache() { return fwd_->cache(); }  // for save/restore
  // The tokens whose K and V are in the cache: tokens()[0, n_past()).
  std::span<const int32_t> kv_tokens() const {
    return std::span<const int32_t>(tokens_).first(static_cast<size_t>(n_past()));
  }

 private:
  std::string format_chat(const std::vector<ChatMessage>& msgs, bool add_assistant) const;
  // The chat messages of exchanges ex, replies included.
  static std::vector<ChatMessage> chat_history(const std::vector<Exchange>& ex);
  // Turn p's tokens after a conversation made of ex (incremental formatting); at_start: the
  // conversation has no tokens yet (BOS).
  std::vector<int32_t> turn_tokens_after(const std::vector<Exchange>& ex, bool at_start,
                                         const RequestParams& p) const;
  // The tokens of a conversation made of ex, replayed from the start.
  std::vector<int32_t> replay_tokens(const std::vector<Exchange>& ex) const;
  // The last k exchanges, the opening system message carried into the first kept one, marked
  // open (a replay ends with the last reply's text; the next turn writes its end of turn).
  std::vector<Exchange> last_exchanges(int k) const;
  const ChatMessage* opening_system() const;  // null: the conversation opened without one
  // Throws what prepare_turn documents for n_new tokens after `have`.
  void check_turn(int64_t have, const std::vector<int32_t>& fresh, int64_t reserve) const;
  // Replaces the conversation with `toks` (none evaluated yet) and `ex`, keeping the KV of
  // their longest prefix the cache holds and can rewind to, at most max_keep tokens (the one
  // place a KV state is reused for other tokens). Returns the tokens kept.
  int64_t start_conversation(std::vector<int32_t> toks, std::vector<Exchange> ex, int64_t max_keep);

  std::shared_ptr<const LoadedModel> model_;
  SessionOptions opt_;
  std::unique_ptr<Forward> fwd_;
  std::vector<int32_t> tokens_;
  std::vector<Exchange> exchanges_;
  std::optional<ChatTemplate> tmpl_;    // none: the model's chat format is unknown
  std::unique_ptr<DraftSource> draft_;  // null: no speculative decoding
};

}  // namespace hpl
