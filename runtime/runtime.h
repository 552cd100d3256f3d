// The runtime: one long-lived worker thread owns a model and runs requests strictly in
// submission order (FIFO); submit() only queues, so the caller never waits for inference.
// Requests generate text (submit), or give embeddings (submit_embed) or rerank scores
// (submit_rerank), as the model's kind allows (engine/embedding.h model_kind: a generation
// model generates and embeds, an embedding model embeds, a reranker reranks).
//
// Events of a request, in order: queued, processing (prompt evaluation starts), token...
// (UTF-8-complete pieces), then exactly one terminal event: done (end of generation, token
// limit, stop string, or stopped; with stats; for embed / rerank with the vectors or scores)
// or error (status + message). Embed and rerank requests have no token events; their inputs
// are evaluated together in groups of up to SessionOptions::n_ubatch tokens, and stop() takes
// effect between groups (done then carries the outputs of the inputs finished so far).
//
// Which thread calls the callback:
// - queued: the thread calling submit(), before submit() returns;
// - done for a request stopped while still queued: the thread calling stop() (or the
//   destructor), before it returns;
// - everything else: the worker thread.
// A request's events never overlap and arrive in the order above. No runtime lock is held
// during a callback: it may call submit(), stop() and create_session(), but not the
// blocking calls (wait(), wait_idle(), the other session calls including free_session(),
// the destructor), which throw Status::kWouldDeadlock on the worker thread. A callback must
// not throw (exceptions are swallowed) and should be quick: the worker waits for it.
//
// Stop: the active request stops after its current token, or after the current prefill
// micro-batch (SessionOptions::n_ubatch tokens) while the prompt is evaluated; what it
// generated is kept (in the events, and in the session) and done says kStopped/truncated.
// A stopped prompt evaluation is rolled back, leaving the session as before the turn.
//
// Sessions keep the KV cache between turns; session operations (reset, restart with the
// last K exchanges, save, restore) run on the worker in queue order and block the caller
// until done. A turn that does not fit (conversation + new tokens + max_tokens > n_ctx)
// fails before any work with Status::kContextFull.
//
// Prompt cache: a stateless request reuses the KV of the longest prefix of its prompt that
// the cached session, or one of the states saved from it, holds, and evaluates only the rest
// (runtime/prompt_cache.h; RequestParams::cache_prompt, RequestStats::cached_tokens). The
// saved states are charged to the model in the registry's budget.
//
// Memory: stateless requests run on a cached session (its KV cache is reused between them),
// which holds a lease on the model. It is idle from the moment the request's terminal event
// is about to be delivered; the registry may then release it to make room for another model
// (ModelRegistry::add_releaser), with the prompt cache's saved states, and the next
// stateless request allocates it again.
//
// Faults: an exception inside a request fails only that request (error event). After
// max_consecutive_failures failed requests in a row, the runtime enters a failed state:
// submit() throws Status::kFailedState naming the last error, and queued requests fail
// with it, until reset_failed_state(). A stateless request whose model is not loaded and
// does not fit the memory budget waits (still before its processing event) while other
// models' requests hold the room, and loads once they end; stop() ends the wait. When the
// room is held by live sessions (or the model is larger than the budget) it fails at once
// with kOutOfMemory, which is not counted: it says nothing about this model.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "runtime/circuit_breaker.h"
#include "runtime/model_registry.h"
#include "runtime/prompt_cache.h"
#include "runtime/runtime_types.h"
#include "runtime/session.h"

namespace hpl {

struct RuntimeOptions {
  std::string model_path;
  SessionOptions session;  // context, micro-batch, threads of every session of this runtime
  int max_consecutive_failures = 3;
  // Where the model is loaded; shared registries enforce one memory budget across runtimes.
  // Null: a private registry without a budget.
  std::shared_ptr<ModelRegistry> registry;
  // Saved KV states of stateless requests besides the live one (runtime/prompt_cache.h).
  // prompt_cache = false: stateless requests never reuse a prefix.
  bool prompt_cache = true;
  PromptCacheOptions prompt_cache_options;
};

struct SessionInfo {
  int64_t n_ctx = 0;
  int64_t n_past = 0;    // tokens in the KV cache
  int64_t n_tokens = 0;  // tokens in the conversation
  int64_t n_exchanges = 0;
};

struct RuntimeMemory {
  size_t model_bytes = 0;         // this runtime's model and draft model (mapped weights) if loaded
  size_t kv_bytes = 0;            // KV caches of live sessions (and a decoder embedder's)
  size_t scratch_bytes = 0;       // forward-pass scratch of live sessions and the embedder
  size_t prompt_cache_bytes = 0;  // saved prompt-cache states (also in the registry's budget)
  size_t prompt_cache_states = 0;
};

class Runtime {
 public:
  // Loads the model through the registry (to fail early on a bad file) and starts the
  // worker. Throws RuntimeError.
  explicit Runtime(RuntimeOptions opt);
  // Queued requests get done(kStopped), the active one is stopped; joins the worker.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Queues a request; returns its id (increasing). Throws RuntimeError: kInvalidArgument
  // (bad parameters, unknown session, a model that does not generate), kFailedState (circuit
  // breaker open).
  RequestId submit(RequestParams p, EventCallback cb);
  // Queues an embedding request (not for a reranker) / a rerank request (a reranker only).
  // The inputs are checked and tokenized here, on the calling thread: an empty list or text,
  // invalid UTF-8, a token id outside the vocab, an input longer than embed_n_ctx() without
  // truncate, or the wrong model kind throw kInvalidArgument naming the input and the limit.
  RequestId submit_embed(EmbedRequest r, EventCallback cb);
  RequestId submit_rerank(RerankRequest r, EventCallback cb);
  ModelKind model_kind() const { return kind_; }
  int64_t n_embd() const { return n_embd_; }                  // embedding size
  int64_t embed_n_ctx() const { return embed_n_ctx_; }        // longest embed / rerank input
  const Tokenizer& tokenizer() const { return *tokenizer_; }  // kept while unloaded
  // Stops a queued or active request. False when the id is unknown or already finished.
  bool stop(RequestId id);
  // Waits until the request's terminal event has been delivered (at once for a finished or
  // unknown id). timeout_ms < 0: no timeout. False on timeout.
  bool wait(RequestId id, int64_t timeout_ms = -1);
  // Waits until nothing is queued or active.
  void wait_idle();

  SessionId create_session();
  // Throws kBusy while the session has queued or active requests, kInvalidArgument if unknown,
  // kWouldDeadlock on the worker thread.
  void free_session(SessionId id);
  void reset_session(SessionId id);                   // a new conversation
  void restart_session(SessionId id, int keep_last);  // keep the last K exchanges
  void save_session(SessionId id, const std::string& path);
  void restore_session(SessionId id, const std::string& path);
  SessionInfo session_info(SessionId id);

  // A persistent prompt prefix (a long system prompt, a few-shot preamble): save_prefix()
  // evaluates p's prompt as a stateless request would (chat messages formatted, nothing
  // generated) and writes its tokens and KV to path (the session-file format, sliding-window
  // layers whole). load_prefix() reads such a file into the stateless requests' session, so
  // the next stateless requests whose prompts start with its tokens evaluate only the rest.
  // Throws RuntimeError: kIo (cannot read / corrupt), kSessionMismatch (another model, more
  // than the context, or, with expect, other tokens than expect's prompt). Returns the
  // prefix's length. Both run on the worker in queue order and block the caller.
  void save_prefix(const RequestParams& p, const std::string& path);
  int64_t load_prefix(const std::string& path, const RequestParams* expect = nullptr);

  bool failed() const;
  std::string failed_reason() const;  // "" when not failed
  void reset_failed_state();

  size_t queue_length() const;  // queued requests, not counting the active one
  RuntimeMemory memory() const;
  const std::string& model_path() const { return opt_.model_path; }
  // True on the worker thread (inside a callback), where blocking calls would deadlock.
  bool on_worker_thread() const { return std::this_thread::get_id() == worker_id_.load(); }
  ModelRegistry& registry() { return *registry_; }

 private:
  struct Job;
  struct SessionEntry {
    std::shared_ptr<Session> session;
    int pending = 0;  // queued or active requests
  };

  struct CachedEmbedder;
  // Checks, queues and announces a request job; returns its id.
  RequestId enqueue(std::shared_ptr<Job> job);
  void worker_loop();
  // Runs a request to its terminal event; an error event's text is stored in error_text, an
  // embed / rerank request's outputs in outputs.
  Event run_request(Job& job, std::string& error_text, std::vector<float>& outputs);
  // The models a request or session uses: the model, and for generation a draft model
  // (leased together, under the memory budget).
  std::vector<std::string> model_paths(bool generate) const;
  // Those of a stateless request, waiting for room; empty when stopped meanwhile.
  std::vector<std::shared_ptr<const LoadedModel>> lease_for(Job& job, bool generate);
  // A session on leases (the model, then the draft model if any).
  std::shared_ptr<Session> make_session(std::vector<std::shared_ptr<const LoadedModel>> leases);
  void generate(Job& job, Session& s, bool stateless, Event& done);
  void embed(Job& job, Embedder& e, Event& done, std::vector<float>& outputs);
  // Delivers the terminal event and retires the job (wakes wait()).
  void finish(const std::shared_ptr<Job>& job, const Event& ev, bool counts_for_breaker);
  void emit(Job& job, const Event& ev);
  // Runs fn on session id (0: the stateless requests' session) on the worker, in queue order.
  void run_control(SessionId id, std::function<void(Session&)> fn);
  // The stateless requests' session, created (a lease on the model, waiting for room) when
  // there is none; null when stopped while waiting. Worker only, while job uses it
  // (scratch_busy_).
  std::shared_ptr<Session> stateless_session(Job& job);
  void check_not_worker(const char* what) const;
  // The registry's releaser: drops scratch_ and embedder_ unless a stateless request is
  // running on them.
  void release_idle_scratch();

  RuntimeOptions opt_;
  std::shared_ptr<ModelRegistry> registry_;
  // Of the model, read at construction:
  ModelKind kind_ = ModelKind::kGenerate;
  std::string model_desc_;  // "<file> (<arch>)", for errors
  std::shared_ptr<const Tokenizer> tokenizer_;
  int64_t n_embd_ = 0, embed_n_ctx_ = 0;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // worker: a job is ready / shutting down
  std::condition_variable done_cv_;  // waiters: a job finished
  std::deque<std::shared_ptr<Job>> queue_;
  std::unordered_map<RequestId, std::shared_ptr<Job>> live_;  // queued or active requests
  std::shared_ptr<Job> active_;
  std::map<SessionId, SessionEntry> sessions_;
  CircuitBreaker breaker_;
  RequestId next_request_ = 1;
  SessionId next_session_ = 1;
  bool quit_ = false;

  // Stateless requests' session and embedder. Set and cleared under mu_; while scratch_busy_
  // (a stateless request runs) only the worker uses them and nobody releases them.
  std::shared_ptr<Session> scratch_;
  std::shared_ptr<CachedEmbedder> embedder_;
  bool scratch_busy_ = false;
  // States saved from scratch_ for later stateless requests: used only by the worker while
  // scratch_busy_, cleared with scratch_.
  std::unique_ptr<PromptCache> prompt_cache_;
  std::vector<uint64_t> releasers_;  // our registrations with the registry (model, draft)
  std::thread worker_;
  std::atomic<std::thread::id> worker_id_{};
};

}  // namespace hpl
