#include "runtime/runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <new>

#include "engine/sampler.h"
#include "runtime/request_checks.h"
#include "runtime/session_file.h"

namespace hpl {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The terminal event of a request stopped before it ran.
Event stopped_done(RequestId id, Clock::time_point submitted) {
  Event ev;
  ev.type = EventType::kDone;
  ev.id = id;
  ev.stats.finish = FinishReason::kStopped;
  ev.stats.truncated = is_truncation(FinishReason::kStopped);
  ev.stats.queue_ms = ms_between(submitted, Clock::now());
  return ev;
}

}  // namespace

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kInvalidArgument:
      return "invalid argument";
    case Status::kIo:
      return "i/o error";
    case Status::kModel:
      return "model error";
    case Status::kContextFull:
      return "context full";
    case Status::kOutOfMemory:
      return "out of memory";
    case Status::kFailedState:
      return "failed state";
    case Status::kSessionMismatch:
      return "session mismatch";
    case Status::kBusy:
      return "busy";
    case Status::kWouldDeadlock:
      return "would deadlock";
    case Status::kInternal:
      return "internal error";
    case Status::kNotFound:
      return "not found";
    case Status::kTimeout:
      return "timeout";
  }
  return "unknown status";
}

struct Runtime::Job {
  enum class Kind { kRequest, kControl };
  enum class State { kQueued, kRunning, kFinished };
  Kind kind = Kind::kRequest;
  RequestKind request = RequestKind::kGenerate;
  RequestId id = 0;
  RequestParams params;  // generate
  // Embed: each input's ids (with the model's special tokens); rerank: each document's ids and
  // the query's (without: the embedder adds them).
  std::vector<std::vector<int32_t>> inputs;
  std::vector<int32_t> query;
  EmbedParams embed;  // rerank: only truncate
  SessionId session_id = 0;
  std::shared_ptr<Session> session;  // null: stateless
  EventCallback cb;
  Clock::time_point submitted;
  std::atomic<bool> stop{false};
  // Guarded by Runtime::mu_:
  State state = State::kQueued;
  bool announced = false;     // the queued event was delivered; the worker may start it
  bool uses_scratch = false;  // a stateless request the worker runs on scratch_
  bool over_budget = false;   // its model could not be loaded under the memory budget
  // Control jobs: the work, its outcome.
  std::function<void(Session&)> control;
  std::exception_ptr control_error;
};

// A stateless embed / rerank request's embedder, with the lease that keeps its model loaded
// (declared first: destroyed last).
struct Runtime::CachedEmbedder {
  std::shared_ptr<const LoadedModel> lease;
  std::unique_ptr<Embedder> embedder;
  CachedEmbedder(std::shared_ptr<const LoadedModel> l, const ForwardOptions& opt)
      : lease(std::move(l)) {
    try {
      embedder = std::make_unique<Embedder>(*lease->model, opt);
    } catch (const ModelError& e) {
      throw RuntimeError(Status::kModel, e.what());
    }
  }
};

Runtime::Runtime(RuntimeOptions opt)
    : opt_(std::move(opt)), breaker_(opt_.max_consecutive_failures) {
  registry_ = opt_.registry ? opt_.registry : std::make_shared<ModelRegistry>();
  if (opt_.session.n_ctx < 1 || opt_.session.n_ubatch < 1 || opt_.session.n_threads < 0)
    throw RuntimeError(Status::kInvalidArgument,
                       "context and batch must be >= 1, threads >= 0 (got " +
                           std::to_string(opt_.session.n_ctx) + ", " +
                           std::to_string(opt_.session.n_ubatch) + ", " +
                           std::to_string(opt_.session.n_threads) + ")");
  {
    // Load now so a bad file fails here (the draft model with it, under the budget).
    auto leases = registry_->acquire(model_paths(true));
    auto lease = leases[0];
    const Model& m = *lease->model;
    model_desc_ = opt_.model_path + " (" + arch_name(m.config.arch) + ")";
    try {
      kind_ = hpl::model_kind(m);
    } catch (const ModelError& e) {
      throw RuntimeError(Status::kModel, e.what());
    }
    try {  // and a bad draft model
      opt_.session.spec.check();
      if (leases.size() > 1) {
        check_draft_model(m, *lease->tokenizer, *leases[1]->model, *leases[1]->tokenizer);
      }
    } catch (const std::bad_alloc&) {
      throw RuntimeError(Status::kOutOfMemory, "out of memory while loading the draft model");
    } catch (const std::exception& e) {  // a vocabulary mismatch, a bad or missing file
      throw RuntimeError(Status::kModel, e.what());
    }
    tokenizer_ = lease->tokenizer;
    n_embd_ = m.config.n_embd;
    embed_n_ctx_ = opt_.session.n_ctx;    // a decoder's embedder has the session's context
    if (kind_ != ModelKind::kGenerate) {  // an encoder's may be shorter: ask it
      embedder_ = std::make_shared<CachedEmbedder>(std::move(lease), opt_.session);
      embed_n_ctx_ = embedder_->embedder->n_ctx();
    }
  }
  prompt_cache_ = std::make_unique<PromptCache>(
      opt_.prompt_cache_options, [this](size_t b) { return registry_->charge(opt_.model_path, b); },
      [this](size_t b) { registry_->discharge(opt_.model_path, b); });
  for (const auto& path : model_paths(true)) {  // the draft's holder is our cached session
    if (path == opt_.model_path && !releasers_.empty()) continue;  // a self-draft
    releasers_.push_back(registry_->add_releaser(path, [this] { release_idle_scratch(); }));
  }
  try {
    worker_ = std::thread([this] {
      worker_id_ = std::this_thread::get_id();
      worker_loop();
    });
  } catch (...) {
    for (uint64_t r : releasers_) registry_->remove_releaser(r);
    throw;
  }
}

Runtime::~Runtime() {
  for (uint64_t r : releasers_) registry_->remove_releaser(r);
  std::vector<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
    for (auto& j : queue_) {
      j->state = Job::State::kFinished;
      if (j->kind == Job::Kind::kControl)
        j->control_error =
            std::make_exception_ptr(RuntimeError(Status::kBusy, "the runtime is shutting down"));
      dropped.push_back(j);
    }
    queue_.clear();
    if (active_) active_->stop = true;
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  for (auto& j : dropped)
    if (j->kind == Job::Kind::kRequest) emit(*j, stopped_done(j->id, j->submitted));
  if (worker_.joinable()) worker_.join();
}

void Runtime::emit(Job& job, const Event& ev) {
  if (!job.cb) return;
  try {
    job.cb(ev);
  } catch (...) {
    // Documented: callbacks must not throw; the request goes on.
  }
}

RequestId Runtime::submit(RequestParams p, EventCallback cb) {
  if (auto problem = check_request(p))
    throw RuntimeError(Status::kInvalidArgument, problem->message);
  if (kind_ != ModelKind::kGenerate)
    throw RuntimeError(
        Status::kInvalidArgument,
        model_desc_ + (kind_ == ModelKind::kEmbed
                           ? " is an embedding model: it does not generate text (embed with it)"
                           : " is a reranker: it does not generate text (rerank with it)"));
  auto job = std::make_shared<Job>();
  job->params = std::move(p);
  job->cb = std::move(cb);
  job->session_id = job->params.session;
  return enqueue(std::move(job));
}

namespace {

std::string too_long(const std::string& what, size_t n, int64_t limit) {
  return what + " is " + std::to_string(n) + " tokens, more than the context of " +
         std::to_string(limit) + " tokens (shorten it, or ask for truncation)";
}

}  // namespace

RequestId Runtime::submit_embed(EmbedRequest r, EventCallback cb) {
  if (auto problem = check_embed_request(r))
    throw RuntimeError(Status::kInvalidArgument, problem->message);
  if (kind_ == ModelKind::kRerank)
    throw RuntimeError(Status::kInvalidArgument,
                       model_desc_ +
                           " is a reranker: it gives relevance scores (rerank with it), "
                           "not embeddings");
  auto job = std::make_shared<Job>();
  job->request = RequestKind::kEmbed;
  job->embed = r.params;
  const bool tokens = !r.token_inputs.empty();
  const char* field = tokens ? "token_inputs" : "inputs";
  if (tokens) {
    const int32_t n_vocab = tokenizer_->n_vocab();
    for (size_t i = 0; i < r.token_inputs.size(); ++i)
      for (size_t j = 0; j < r.token_inputs[i].size(); ++j)
        if (r.token_inputs[i][j] < 0 || r.token_inputs[i][j] >= n_vocab)
          throw RuntimeError(Status::kInvalidArgument,
                             "token_inputs[" + std::to_string(i) + "][" + std::to_string(j) +
                                 "] is " + std::to_string(r.token_inputs[i][j]) +
                                 ", outside the vocab [0, " + std::to_string(n_vocab) + ")");
    job->inputs = std::move(r.token_inputs);
  } else {
    for (const std::string& text : r.inputs) job->inputs.push_back(embed_tokens(*tokenizer_, text));
  }
  for (size_t i = 0; i < job->inputs.size(); ++i) {
    const std::string what = std::string(field) + "[" + std::to_string(i) + "]";
    if (job->inputs[i].empty())
      throw RuntimeError(Status::kInvalidArgument, what + " gives no tokens");
    if (static_cast<int64_t>(job->inputs[i].size()) > embed_n_ctx_ && !r.params.truncate)
      throw RuntimeError(Status::kInvalidArgument,
                         too_long(what, job->inputs[i].size(), embed_n_ctx_));
  }
  job->cb = std::move(cb);
  return enqueue(std::move(job));
}

RequestId Runtime::submit_rerank(RerankRequest r, EventCallback cb) {
  if (auto problem = check_rerank_request(r))
    throw RuntimeError(Status::kInvalidArgument, problem->message);
  if (kind_ != ModelKind::kRerank)
    throw RuntimeError(Status::kInvalidArgument,
                       model_desc_ + " is " +
                           (kind_ == ModelKind::kGenerate ? "a generation" : "an embedding") +
                           " model with no classification head: it cannot rerank (load a "
                           "reranker, e.g. a BertForSequenceClassification GGUF)");
  auto job = std::make_shared<Job>();
  job->request = RequestKind::kRerank;
  job->embed.truncate = r.truncate;
  // The pair is [CLS] query [SEP] document [SEP]: 3 special tokens.
  job->query = tokenizer_->encode(r.query, false, false);
  const int64_t room = embed_n_ctx_ - 3 - static_cast<int64_t>(job->query.size());
  if (room < 1)
    throw RuntimeError(Status::kInvalidArgument,
                       "query is " + std::to_string(job->query.size()) +
                           " tokens: with 3 special tokens it leaves no room for a document "
                           "in the context of " +
                           std::to_string(embed_n_ctx_) + " tokens");
  for (size_t i = 0; i < r.documents.size(); ++i) {
    job->inputs.push_back(tokenizer_->encode(r.documents[i], false, false));
    const std::string what = "documents[" + std::to_string(i) + "]";
    const int64_t n = static_cast<int64_t>(job->inputs.back().size());
    if (n == 0) throw RuntimeError(Status::kInvalidArgument, what + " gives no tokens");
    if (n > room && !r.truncate)
      throw RuntimeError(Status::kInvalidArgument,
                         what + " is " + std::to_string(n) + " tokens; with the query's " +
                             std::to_string(job->query.size()) +
                             " and 3 special tokens that is more than the context of " +
                             std::to_string(embed_n_ctx_) +
                             " tokens (shorten it, or ask for truncation)");
  }
  job->cb = std::move(cb);
  return enqueue(std::move(job));
}

RequestId Runtime::enqueue(std::shared_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (quit_) throw RuntimeError(Status::kBusy, "the runtime is shutting down");
    if (breaker_.is_open()) throw RuntimeError(Status::kFailedState, breaker_.open_reason());
    if (job->session_id != 0) {
      auto it = sessions_.find(job->session_id);
      if (it == sessions_.end())
        throw RuntimeError(Status::kInvalidArgument,
                           "unknown session " + std::to_string(job->session_id));
      job->session = it->second.session;
      ++it->second.pending;
    }
    job->id = next_request_++;
    job->submitted = Clock::now();
    live_[job->id] = job;
    queue_.push_back(job);  // in id order; the worker waits for `announced`
  }
  Event ev;
  ev.type = EventType::kQueued;
  ev.id = job->id;
  emit(*job, ev);
  bool stopped_meanwhile;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job->announced = true;
    stopped_meanwhile = job->state == Job::State::kFinished;  // stop() removed it
  }
  if (stopped_meanwhile) {
    finish(job, stopped_done(job->id, job->submitted), false);
  } else {
    work_cv_.notify_one();
  }
  return job->id;
}

bool Runtime::stop(RequestId id) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return false;
    job = it->second;
    if (job->state == Job::State::kFinished) return false;  // its terminal event is on its way
    if (job->state != Job::State::kQueued) {
      job->stop = true;  // running: the worker ends it at the next token / micro-batch
      return true;
    }
    queue_.erase(std::find(queue_.begin(), queue_.end(), job));
    job->state = Job::State::kFinished;
    job->stop = true;
    if (!job->announced) return true;  // submit() delivers done after the queued event
  }
  finish(job, stopped_done(id, job->submitted), false);
  return true;
}

void Runtime::finish(const std::shared_ptr<Job>& job, const Event& ev, bool counts) {
  // Before the terminal event is seen, the runtime is already in its after-state: the
  // breaker has counted the request, stop() refuses it, its session is free again, and the
  // scratch session of a stateless request is idle (the registry may release it to load
  // another model). Only wait() still waits, until the callback has returned.
  bool released_scratch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job->state = Job::State::kFinished;
    released_scratch = job->uses_scratch;
    if (job->uses_scratch) scratch_busy_ = false;
    if (job->session_id != 0) {
      auto it = sessions_.find(job->session_id);
      if (it != sessions_.end()) --it->second.pending;
    }
    if (counts) {
      if (ev.type == EventType::kError)
        breaker_.record_failure(std::string(ev.text));
      else
        breaker_.record_success();
    }
  }
  if (released_scratch) registry_->notify_idle();  // a request waiting for room may go on
  emit(*job, ev);
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(job->id);
  }
  done_cv_.notify_all();
}

void Runtime::check_not_worker(const char* what) const {
  if (on_worker_thread())
    throw RuntimeError(Status::kWouldDeadlock,
                       std::string(what) + " called from a runtime callback (the worker thread)");
}

bool Runtime::wait(RequestId id, int64_t timeout_ms) {
  check_not_worker("wait()");
  std::unique_lock<std::mutex> lock(mu_);
  auto pred = [&] { return live_.find(id) == live_.end(); };
  if (timeout_ms < 0) {
    done_cv_.wait(lock, pred);
    return true;
  }
  return done_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), pred);
}

void Runtime::wait_idle() {
  check_not_worker("wait_idle()");
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return queue_.empty() && !active_ && live_.empty(); });
}

void Runtime::worker_loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    bool refuse = false;
    std::string refuse_reason;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return quit_ || (!queue_.empty() && queue_.front()->announced); });
      if (quit_) break;
      job = queue_.front();
      queue_.pop_front();
      job->state = Job::State::kRunning;
      active_ = job;
      if (breaker_.is_open() && job->kind == Job::Kind::kRequest) {
        refuse = true;
        refuse_reason = breaker_.open_reason();
      } else if (!job->session) {
        job->uses_scratch = scratch_busy_ = true;
      }
    }
    if (job->kind == Job::Kind::kControl) {
      try {
        std::shared_ptr<Session> s = job->session ? job->session : stateless_session(*job);
        if (!s) throw RuntimeError(Status::kBusy, "stopped while waiting for the model");
        job->control(*s);
      } catch (...) {
        job->control_error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (job->uses_scratch) scratch_busy_ = false;
      job->state = Job::State::kFinished;
    } else if (refuse) {
      Event ev;
      ev.type = EventType::kError;
      ev.id = job->id;
      ev.status = Status::kFailedState;
      ev.text = refuse_reason;
      finish(job, ev, false);
    } else {
      std::string error_text;      // an error event's text points here
      std::vector<float> outputs;  // and a done event's outputs here
      const Event ev = run_request(*job, error_text, outputs);
      // A budget refusal says nothing about this model's health: not counted by the breaker.
      finish(job, ev, !job->over_budget);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_.reset();
    }
    job.reset();
    done_cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  scratch_.reset();
  embedder_.reset();
  prompt_cache_->clear();
}

std::vector<std::string> Runtime::model_paths(bool generate) const {
  std::vector<std::string> paths = {opt_.model_path};
  if (generate && !opt_.session.spec.draft_path.empty())
    paths.push_back(opt_.session.spec.draft_path);
  return paths;
}

std::shared_ptr<Session> Runtime::make_session(
    std::vector<std::shared_ptr<const LoadedModel>> leases) {
  auto draft = leases.size() > 1 ? std::move(leases[1]) : nullptr;
  return std::make_shared<Session>(std::move(leases[0]), opt_.session, std::move(draft));
}

std::vector<std::shared_ptr<const LoadedModel>> Runtime::lease_for(Job& job, bool generate) {
  try {
    // Waits while other models' requests hold the room; stop() ends the wait.
    return registry_->acquire_waiting(model_paths(generate), [&job] { return job.stop.load(); });
  } catch (const RuntimeError& e) {
    job.over_budget = e.status() == Status::kOutOfMemory;
    throw;
  }
}

Event Runtime::run_request(Job& job, std::string& error_text, std::vector<float>& outputs) {
  Event done;
  done.type = EventType::kDone;
  done.id = job.id;
  auto fail = [&](Status st, const std::string& msg) {
    Event e = done;
    e.type = EventType::kError;
    e.status = st;
    error_text = msg;
    e.text = error_text;
    return e;
  };
  auto stopped = [&] {  // stopped while waiting for the model
    done.stats = stopped_done(job.id, job.submitted).stats;
    return done;
  };
  Session* s = job.session.get();
  size_t turn_start = 0;
  auto undo = [&] {  // a failed turn leaves the session as before it
    if (s) s->rollback(turn_start);
  };
  try {
    if (job.request != RequestKind::kGenerate) {
      std::shared_ptr<CachedEmbedder> cached;  // busy: never released meanwhile
      {
        std::lock_guard<std::mutex> lock(mu_);
        cached = embedder_;
      }
      if (!cached) {
        auto leases = lease_for(job, false);
        if (leases.empty()) return stopped();
        cached = std::make_shared<CachedEmbedder>(std::move(leases[0]), opt_.session);
        std::lock_guard<std::mutex> lock(mu_);
        embedder_ = cached;
      }
      embed(job, *cached->embedder, done, outputs);
      return done;
    }
    std::shared_ptr<Session> scratch;  // stateless: the cached session (busy: never released)
    if (!s) {
      scratch = stateless_session(job);
      if (!scratch) return stopped();
      s = scratch.get();
    }
    turn_start = s->tokens().size();
    generate(job, *s, !job.session, done);
    return done;
  } catch (const RuntimeError& e) {
    undo();
    return fail(e.status(), e.what());
  } catch (const std::bad_alloc&) {
    undo();
    return fail(Status::kOutOfMemory, "out of memory while running the request");
  } catch (const ModelError& e) {
    undo();
    return fail(Status::kInvalidArgument, e.what());
  } catch (const std::exception& e) {
    undo();
    return fail(Status::kInternal, e.what());
  }
}

std::shared_ptr<Session> Runtime::stateless_session(Job& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (scratch_) return scratch_;
  }
  auto leases = lease_for(job, true);
  if (leases.empty()) return nullptr;  // stopped while waiting for the model
  auto scratch = make_session(std::move(leases));
  std::lock_guard<std::mutex> lock(mu_);
  scratch_ = scratch;
  return scratch;
}

// An embed / rerank request: its inputs in groups of up to n_ubatch tokens (at least one input
// each), evaluated together; stop() is honoured between groups.
void Runtime::embed(Job& job, Embedder& e, Event& done, std::vector<float>& outputs) {
  RequestStats& st = done.stats;
  const auto t0 = Clock::now();
  st.queue_ms = ms_between(job.submitted, t0);
  Event ev;
  ev.id = job.id;
  ev.type = EventType::kProcessing;
  emit(job, ev);

  const bool rerank = job.request == RequestKind::kRerank;
  const int64_t dim = rerank ? 1 : e.n_embd();
  // Tokens an input costs: its own (cut to the context), plus the query and 3 specials.
  auto cost = [&](size_t i) {
    const int64_t n = static_cast<int64_t>(job.inputs[i].size()) +
                      (rerank ? static_cast<int64_t>(job.query.size()) + 3 : 0);
    return std::min(n, embed_n_ctx_);
  };
  outputs.clear();
  outputs.reserve(job.inputs.size() * static_cast<size_t>(dim));
  int64_t tokens = 0;
  std::vector<std::vector<int32_t>> group;
  for (size_t i = 0; i < job.inputs.size();) {
    if (job.stop.load(std::memory_order_relaxed)) {
      st.finish = FinishReason::kStopped;
      st.truncated = is_truncation(st.finish);
      break;
    }
    group.clear();
    for (int64_t n = 0;
         i < job.inputs.size() && (group.empty() || n + cost(i) <= opt_.session.n_ubatch); ++i) {
      n += cost(i);
      tokens += cost(i);
      group.push_back(std::move(job.inputs[i]));
    }
    if (rerank) {
      const std::vector<float> scores = e.rerank(job.query, group, job.embed.truncate);
      outputs.insert(outputs.end(), scores.begin(), scores.end());
    } else {
      for (const std::vector<float>& v : e.embed(group, job.embed))
        outputs.insert(outputs.end(), v.begin(), v.end());
    }
  }
  st.prompt_tokens = static_cast<int32_t>(std::min<int64_t>(tokens, INT32_MAX));
  st.total_ms = st.prefill_ms = ms_between(t0, Clock::now());
  st.prefill_tokens_per_s = GenerateStats::rate(st.prompt_tokens, st.prefill_ms);
  done.outputs = outputs;
  done.n_outputs = static_cast<int32_t>(outputs.size() / static_cast<size_t>(dim));
  done.dim = static_cast<int32_t>(dim);
}

// One request through the session's turn, which runs the generation loop
// (engine/generate.h); this only turns its callbacks and result into events and stats.
void Runtime::generate(Job& job, Session& s, bool stateless, Event& done) {
  const RequestParams& p = job.params;
  RequestStats& st = done.stats;
  st.queue_ms = ms_between(job.submitted, Clock::now());

  // Everything that can fail on input is checked before any work. A stateless request starts
  // a new conversation on the cached session, reusing what it can of an earlier prompt.
  std::vector<int32_t> fresh;
  if (stateless) {
    PromptCache* cache = opt_.prompt_cache && p.cache_prompt ? prompt_cache_.get() : nullptr;
    st.cached_tokens = static_cast<int32_t>(s.begin_stateless_turn(p, p.max_tokens, cache));
  } else {
    fresh = s.prepare_turn(p, p.max_tokens);
  }
  Event ev;
  ev.id = job.id;
  ev.type = EventType::kProcessing;
  emit(job, ev);

  ev.type = EventType::kToken;
  auto on_text = [&](std::string_view text) {
    ev.text = text;
    emit(job, ev);
  };
  auto should_stop = [&] { return job.stop.load(std::memory_order_relaxed); };
  const GenerateResult r = s.run_turn(p, fresh, on_text, should_stop);
  const GenerateStats& g = r.stats;
  st.prompt_tokens = g.prompt_tokens;
  st.completion_tokens = g.completion_tokens;
  st.finish = r.finish;
  st.truncated = is_truncation(r.finish);
  st.time_to_first_token_ms = g.first_token_ms;
  st.prefill_tokens_per_s = g.prompt_tokens_per_s();
  st.decode_tokens_per_s = GenerateStats::rate(g.completion_tokens, g.total_ms - g.prompt_ms);
  st.total_ms = g.total_ms;
  st.prefill_ms = g.prompt_ms;
  st.decode_ms = g.decode_ms;
  st.sampling_ms = g.sample_ms;
  st.drafted = g.drafted;
  st.accepted = g.accepted;
}

void Runtime::run_control(SessionId id, std::function<void(Session&)> fn) {
  check_not_worker("a session call");
  auto job = std::make_shared<Job>();
  job->kind = Job::Kind::kControl;
  job->control = std::move(fn);
  job->announced = true;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (quit_) throw RuntimeError(Status::kBusy, "the runtime is shutting down");
    if (id != 0) {  // 0: the stateless requests' session
      auto it = sessions_.find(id);
      if (it == sessions_.end())
        throw RuntimeError(Status::kInvalidArgument, "unknown session " + std::to_string(id));
      job->session = it->second.session;
    }
    queue_.push_back(job);
    work_cv_.notify_one();
    done_cv_.wait(lock, [&] { return job->state == Job::State::kFinished; });
  }
  if (job->control_error) std::rethrow_exception(job->control_error);
}

SessionId Runtime::create_session() {
  auto s = make_session(registry_->acquire(model_paths(true), Hold::kPinned));
  std::lock_guard<std::mutex> lock(mu_);
  if (quit_) throw RuntimeError(Status::kBusy, "the runtime is shutting down");
  const SessionId id = next_session_++;
  sessions_[id].session = std::move(s);
  return id;
}

void Runtime::free_session(SessionId id) {
  check_not_worker("free_session()");
  std::shared_ptr<Session> doomed;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end())
    throw RuntimeError(Status::kInvalidArgument, "unknown session " + std::to_string(id));
  if (it->second.pending > 0)
    throw RuntimeError(Status::kBusy, "session " + std::to_string(id) + " has " +
                                          std::to_string(it->second.pending) +
                                          " queued or active requests: stop and wait first");
  doomed = std::move(it->second.session);
  sessions_.erase(it);
}

void Runtime::reset_session(SessionId id) {
  run_control(id, [](Session& s) { s.clear(); });
}

void Runtime::restart_session(SessionId id, int keep_last) {
  run_control(id, [keep_last](Session& s) { s.keep_last_exchanges(keep_last); });
}

void Runtime::save_session(SessionId id, const std::string& path) {
  run_control(id, [&path](Session& s) { save_session_file(s, path); });
}

void Runtime::restore_session(SessionId id, const std::string& path) {
  run_control(id, [&path](Session& s) { load_session_file(s, path); });
}

SessionInfo Runtime::session_info(SessionId id) {
  SessionInfo info;
  run_control(id, [&info](Session& s) {
    info.n_ctx = s.n_ctx();
    info.n_past = s.n_past();
    info.n_tokens = static_cast<int64_t>(s.tokens().size());
    info.n_exchanges = static_cast<int64_t>(s.exchanges().size());
  });
  return info;
}

void Runtime::save_prefix(const RequestParams& p, const std::string& path) {
  if (auto problem = check_request(p))
    throw RuntimeError(Status::kInvalidArgument, problem->message);
  run_control(0, [&](Session& s) {
    PromptCache* cache = opt_.prompt_cache ? prompt_cache_.get() : nullptr;
    s.begin_stateless_turn(p, 0, cache);
    s.evaluate_pending();
    const LoadedModel& m = s.model();
    save_state_file(s.kv_cache(), {m.model->config, m.identity, m.path}, s.kv_tokens(), {},
                    /*whole_window=*/true, path);
  });
}

int64_t Runtime::load_prefix(const std::string& path, const RequestParams* expect) {
  if (expect)
    if (auto problem = check_request(*expect))
      throw RuntimeError(Status::kInvalidArgument, problem->message);
  int64_t n = 0;
  run_control(0, [&](Session& s) {
    if (opt_.prompt_cache) prompt_cache_->stash(s);  // the live state stays reusable
    s.load_prefix_file(path, expect);
    n = s.n_past();
  });
  return n;
}

void Runtime::release_idle_scratch() {
  std::shared_ptr<Session> doomed;  // destroyed outside the lock (joins its threads)
  std::shared_ptr<CachedEmbedder> doomed_embedder;
  std::lock_guard<std::mutex> lock(mu_);
  if (scratch_busy_) return;
  doomed = std::move(scratch_);
  doomed_embedder = std::move(embedder_);
  prompt_cache_->clear();
}

bool Runtime::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return breaker_.is_open();
}

std::string Runtime::failed_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return breaker_.is_open() ? breaker_.open_reason() : std::string();
}

void Runtime::reset_failed_state() {
  std::lock_guard<std::mutex> lock(mu_);
  breaker_.reset();
}

size_t Runtime::queue_length() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

RuntimeMemory Runtime::memory() const {
  RuntimeMemory m;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, e] : sessions_) {
    m.kv_bytes += e.session->kv_bytes();
    m.scratch_bytes += e.session->scratch_bytes();
  }
  if (scratch_) {
    m.kv_bytes += scratch_->kv_bytes();
    m.scratch_bytes += scratch_->scratch_bytes();
  }
  if (embedder_) {
    m.kv_bytes += embedder_->embedder->kv_bytes();
    m.scratch_bytes += embedder_->embedder->scratch_bytes();
  }
  m.prompt_cache_bytes = prompt_cache_->bytes();
  m.prompt_cache_states = prompt_cache_->states();
  auto mine = model_paths(true);
  mine.erase(std::unique(mine.begin(), mine.end()), mine.end());  // a self-draft
  for (const auto& path : registry_->loaded_paths())
    if (std::find(mine.begin(), mine.end(), path) != mine.end())
      m.model_bytes += std::filesystem::file_size(path);
  return m;
}

}  // namespace hpl
