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
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "runtime/model_registry.h"
#include "runtime/runtime_types.h"

namespace hpl {

struct SessionOptions {
  int64_t n_ctx = 512;    // KV cache positions
  int64_t n_ubatch = 64;  // prefill micro-batch; also the stop granularity during prefill
  int n_threads = 1;      // 0: the CPU topology's default
  std::vector<int> cpus;  // pin the compute threads to these CPUs (empty: no pinning)
};

// One turn of a conversation, as submitted, with the text generated for it.
struct Exchange {
  std::string prompt;                 // raw-prompt turn
  std::vector<ChatMessage> messages;  // chat turn: the new messages
  std::string response;
  bool closed = false;  // the reply ended with an end-of-generation token (now in the cache)
};

class Session {
 public:
  // Allocates the KV cache and scratch; holds a lease on the model. Throws RuntimeError.
  Session(std::shared_ptr<const LoadedModel> model, const SessionOptions& opt);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const LoadedModel& model() const { return *model_; }
  const SessionOptions& options() const { return opt_; }
  Forward& forward() { return *fwd_; }
  int64_t n_ctx() const { return fwd_->n_ctx(); }
  int64_t n_past() const { return fwd_->n_past(); }

  std::vector<int32_t>& tokens() { return tokens_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  std::vector<Exchange>& exchanges() { return exchanges_; }
  const std::vector<Exchange>& exchanges() const { return exchanges_; }

  // The tokens a new turn adds: the raw prompt, or the new chat messages formatted
  // incrementally (only what follows the conversation so far, ending with the assistant
  // prompt). BOS is added at the start of a conversation when the vocab asks for it.
  std::vector<int32_t> turn_tokens(const RequestParams& p) const;

  // Starts a new conversation: no tokens, no exchanges, empty cache.
  void clear();
  // Rolls the conversation back to n_tokens tokens (cache too). For undoing a failed turn.
  void rollback(size_t n_tokens);
  // Replaces the conversation with its last k exchanges, re-tokenized; they are evaluated at
  // the next turn. k <= 0 is clear().
  void keep_last_exchanges(int k);

  KvCache& kv_cache() { return fwd_->cache(); }  // for save/restore

 private:
  std::string format_chat(const std::vector<ChatMessage>& msgs, bool add_assistant) const;
  std::vector<ChatMessage> chat_history() const;
  // The new messages' text after the conversation so far (incremental formatting).
  std::string chat_turn_text(const std::vector<ChatMessage>& fresh) const;

  std::shared_ptr<const LoadedModel> model_;
  SessionOptions opt_;
  std::unique_ptr<Forward> fwd_;
  std::vector<int32_t> tokens_;
  std::vector<Exchange> exchanges_;
  std::optional<ChatTemplate> tmpl_;  // none: the model's chat format is unknown
};

}  // namespace hpl
