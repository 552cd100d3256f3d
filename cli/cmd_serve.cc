// hpl serve -m MODEL [options]: an OpenAI-compatible HTTP server (cli/server_http.h) over
// the runtime's FIFO queue. Each HTTP request becomes one stateless runtime request; handler
// threads wait for its events, so requests are answered in submission order.
//
// Beside the generation model it may serve an embedding model (--embedding-model: POST
// /v1/embeddings) and a reranker (--rerank-model: POST /v1/rerank), each with its runtime, all
// under one memory budget (--memory-budget): a request for a model unloaded to make room
// waits until the room is free, then loads it (runtime/model_registry.h).
//
// Client disconnects stop the runtime request: a streamed request notices a failed write (of
// a token, or of an SSE comment sent every 500 ms while queued); a non-streamed one polls
// its connection every 100 ms (HttpExchange::client_gone: a reset, or a close that did not
// come with the request; a half-close right after the request still gets its reply).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/server_http.h"
#include "cli/server_metrics.h"
#include "cli/server_openai.h"
#include "engine/memory_report.h"
#include "engine/model_config.h"
#include "kernel/cpu_topology.h"
#include "runtime/request_checks.h"
#include "runtime/runtime.h"
#include "tokenizer/chat_template.h"

namespace hpl::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The events of one runtime request, handed from the worker to the HTTP handler thread.
struct Pending {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  bool done = false, failed = false;
  Status status = Status::kOk;
  std::string error;
  RequestStats stats;
  std::vector<float> outputs;  // embed / rerank: the done event's
  int32_t n_outputs = 0, dim = 0;
  std::atomic<bool> client_gone{false};
  // Seconds since the server started: submitted, prompt evaluation started, finished.
  double submitted_s = 0, start_s = 0, end_s = 0;
};

// One served model: its id (the file's stem, as /v1/models lists it) and runtime.
struct Served {
  std::string id;
  std::unique_ptr<Runtime> rt;
};

struct Server {
  std::vector<Served> models;  // generation, embedding, rerank models, as given
  Runtime* rt = nullptr;       // the generation model (-m); null when none is served
  Runtime* embed_rt = nullptr;
  Runtime* rerank_rt = nullptr;
  std::optional<ChatTemplate> tmpl;
  std::string tmpl_note;  // why there is no template
  std::string model_id;
  int64_t n_ctx = 0;
  double load_ms = 0;
  int64_t created = 0;
  Clock::time_point started;
  ServerMetrics metrics;

  std::mutex live_mu;
  // Submitted, not finished: stopped on shutdown. Request ids are per runtime.
  std::set<std::pair<Runtime*, RequestId>> live;

  const std::string& id_of(const Runtime* r) const {
    for (const Served& m : models)
      if (m.rt.get() == r) return m.id;
    return model_id;
  }

  MetricsSnapshot snapshot() {
    MetricsSnapshot s;
    s.model_load_ms = load_ms;
    s.uptime_s = std::chrono::duration<double>(Clock::now() - started).count();
    for (const Served& sv : models) {
      s.queue_length += sv.rt->queue_length();
      const RuntimeMemory m = sv.rt->memory();
      s.weights_bytes += m.model_bytes;
      s.kv_bytes += m.kv_bytes;
      s.scratch_bytes += m.scratch_bytes;
      s.prompt_cache_bytes += m.prompt_cache_bytes;
      s.prompt_cache_states += m.prompt_cache_states;
    }
    s.rss_bytes = current_rss_bytes();
    s.peak_rss_bytes = peak_rss_bytes();
    s.n_ctx = n_ctx;
    s.model = model_id;
    return s;
  }
};

// Not OpenAI: when the request ran, in server seconds, and its speed (clients ignore it).
json timings_json(RequestId rid, const Pending& p) {
  return {{"request_id", rid},
          {"submitted_s", p.submitted_s},
          {"start_s", p.start_s},
          {"end_s", p.end_s},
          {"queue_ms", p.stats.queue_ms},
          {"cache_n", p.stats.cached_tokens},   // llama.cpp's names: prompt tokens reused
          {"prompt_n", p.stats.prompt_tokens},  // and evaluated
          {"prompt_ms", p.stats.prefill_ms},
          {"time_to_first_token_ms", p.stats.time_to_first_token_ms},
          {"prefill_tokens_per_s", p.stats.prefill_tokens_per_s},
          {"decode_tokens_per_s", p.stats.decode_tokens_per_s},
          {"draft_tokens", p.stats.drafted},
          {"draft_accepted", p.stats.accepted},
          {"draft_acceptance_rate",
           p.stats.drafted > 0 ? static_cast<double>(p.stats.accepted) / p.stats.drafted : 0.0}};
}

// A request stopped by the server (SIGINT/SIGTERM), not by its client.
ApiError shutdown_error(const RequestStats& st) {
  return ApiError(503,
                  "the server is shutting down; the request was stopped after " +
                      std::to_string(st.completion_tokens) + " tokens",
                  "", "shutting_down", "server_error");
}

void send_error(HttpExchange& ex, const ApiError& e) {
  ex.reply(e.http_status, "application/json", dump(error_body(e.what(), e.type, e.param, e.code)));
}

int http_status_of(Status s) {
  switch (s) {
    case Status::kInvalidArgument:
    case Status::kContextFull:
      return 400;
    case Status::kFailedState:
    case Status::kBusy:
      return 503;
    default:
      return 500;
  }
}

// Fills the prompt (chat: formatted with the template) and max_tokens; checks the context.
void prepare(Server& S, ApiRequest& r) {
  RequestParams& p = r.params;
  if (r.model.empty()) r.model = S.model_id;
  if (r.chat) {
    if (!S.tmpl)
      throw ApiError(400,
                     "this model has no chat template (" + S.tmpl_note +
                         "); restart hpl serve with --template NAME, or use /v1/completions",
                     "messages", "no_chat_template");
    r.family = S.tmpl->family();
    apply_tools(r.tools, r.family, p);
    if (auto e = check_format(p.format))  // the grammar built from the tools' parameters
      throw ApiError(400, "'tools': " + e->message, "tools", "invalid_value");
    try {
      p.prompt = S.tmpl->format(p.messages, /*add_generation_prompt=*/true);
    } catch (const std::invalid_argument& e) {
      throw ApiError(400, std::string("messages: ") + e.what(), "messages", "invalid_value");
    }
    p.messages.clear();
    const std::string eot = S.tmpl->end_of_turn();
    if (!eot.empty()) p.stop_strings.push_back(eot);
  }
  const std::string what = r.chat ? "messages" : "prompt";
  const int64_t n_prompt =
      static_cast<int64_t>(S.rt->tokenizer().encode(p.prompt, true, true).size());
  if (n_prompt >= S.n_ctx)
    throw ApiError(400,
                   "this model's maximum context length is " + std::to_string(S.n_ctx) +
                       " tokens, but the " + what + " is " + std::to_string(n_prompt) +
                       " tokens (start hpl serve with a larger -c, or shorten the " + what + ")",
                   what, "context_length_exceeded");
  if (r.max_tokens_given) {
    if (n_prompt + p.max_tokens > S.n_ctx)
      throw ApiError(
          400,
          "this model's maximum context length is " + std::to_string(S.n_ctx) + " tokens, but " +
              std::to_string(n_prompt) + " prompt tokens + " + std::to_string(p.max_tokens) +
              " max_tokens = " + std::to_string(n_prompt + p.max_tokens) + " tokens were requested",
          "max_tokens", "context_length_exceeded");
  } else {
    p.max_tokens = static_cast<int32_t>(S.n_ctx - n_prompt);  // the rest of the context
  }
  if (!r.seed_given) p.sampling.seed = std::random_device{}() | 1ull;
}

// Queues a request on rt with go(callback); its events go to `pend`. Lock order: S.live_mu
// before pend->mu, never the reverse (a finished request leaves S.live after its pend->mu is
// released).
RequestId submit(Server& S, Runtime& rt, const std::shared_ptr<Pending>& pend,
                 const std::function<RequestId(EventCallback)>& go) {
  S.metrics.on_submitted();
  Runtime* rtp = &rt;
  auto cb = [&S, rtp, pend](const Event& ev) {
    {
      std::lock_guard<std::mutex> lock(pend->mu);
      const double now = std::chrono::duration<double>(Clock::now() - S.started).count();
      switch (ev.type) {
        case EventType::kQueued:
          pend->submitted_s = now;
          return;
        case EventType::kProcessing:
          pend->start_s = now;
          return;
        case EventType::kToken:
          pend->pieces.emplace_back(ev.text);
          break;
        case EventType::kDone:
          pend->stats = ev.stats;
          pend->outputs.assign(ev.outputs.begin(), ev.outputs.end());
          pend->n_outputs = ev.n_outputs;
          pend->dim = ev.dim;
          pend->done = true;
          pend->end_s = now;
          S.metrics.on_done(ev.stats, pend->client_gone.load());
          break;
        case EventType::kError:
          pend->stats = ev.stats;
          pend->failed = pend->done = true;
          pend->end_s = now;
          pend->status = ev.status;
          pend->error = std::string(ev.text);
          S.metrics.on_failed();
          break;
        default:
          return;
      }
    }
    pend->cv.notify_all();
    if (ev.type == EventType::kDone || ev.type == EventType::kError) {
      std::lock_guard<std::mutex> l2(S.live_mu);
      S.live.erase({rtp, ev.id});
    }
  };
  RequestId id = 0;
  try {
    id = go(cb);
  } catch (const RuntimeError& e) {
    S.metrics.on_failed();
    throw ApiError(
        http_status_of(e.status()), e.what(), "",
        e.status() == Status::kFailedState ? "failed_state" : "",
        e.status() == Status::kInvalidArgument ? "invalid_request_error" : "server_error");
  }
  // Stopped on shutdown while live. A request that already finished left (or will not
  // enter) the set: its callback erases the id only after setting done.
  std::lock_guard<std::mutex> l2(S.live_mu);
  std::lock_guard<std::mutex> lock(pend->mu);
  if (!pend->done) S.live.insert({rtp, id});
  return id;
}

// Waits for a non-streamed request's end, polling the connection: a client that hung up
// stops its request. False when the client is gone (nobody to answer).
bool wait_done(HttpExchange& ex, Runtime& rt, RequestId rid, const std::shared_ptr<Pending>& pend) {
  std::unique_lock<std::mutex> lock(pend->mu);
  while (!pend->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return pend->done; })) {
    if (!pend->client_gone && ex.client_gone()) {
      lock.unlock();
      if (!pend->client_gone.exchange(true)) rt.stop(rid);
      lock.lock();
    }
  }
  return !pend->client_gone;
}

// The error reply of a finished request that failed or was stopped (not by its client: by
// shutdown); false when it succeeded.
bool reply_failure(HttpExchange& ex, const Pending& p) {
  if (p.failed) {
    send_error(ex, ApiError(http_status_of(p.status), p.error, "", "",
                            p.status == Status::kInvalidArgument ? "invalid_request_error"
                                                                 : "server_error"));
    return true;
  }
  if (p.stats.finish == FinishReason::kStopped) {
    send_error(ex, shutdown_error(p.stats));
    return true;
  }
  return false;
}

void handle_completion(Server& S, HttpExchange& ex, bool chat) {
  ApiRequest r;
  try {
    if (!S.rt)
      throw ApiError(400,
                     "this server has no generation model (start hpl serve with -m MODEL); "
                     "it serves " +
                         std::string(S.embed_rt ? "/v1/embeddings" : "") +
                         (S.embed_rt && S.rerank_rt ? " and " : "") +
                         (S.rerank_rt ? "/v1/rerank" : ""),
                     "model", "model_not_found");
    r = parse_request(ex.request().body, chat);
    prepare(S, r);
  } catch (const ApiError& e) {
    S.metrics.on_rejected();
    send_error(ex, e);
    return;
  }
  auto pend = std::make_shared<Pending>();
  RequestId rid = 0;
  try {
    rid = submit(S, *S.rt, pend, [&](EventCallback cb) { return S.rt->submit(r.params, cb); });
  } catch (const ApiError& e) {
    send_error(ex, e);
    return;
  }
  // The runtime's request id: increasing in queue order.
  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(rid);
  const int64_t created = unix_now();
  auto gone = [&S, pend, rid] {
    if (!pend->client_gone.exchange(true)) S.rt->stop(rid);
  };

  if (!r.stream) {
    if (!wait_done(ex, *S.rt, rid, pend)) return;  // nobody to answer
    if (reply_failure(ex, *pend)) return;
    std::string text;
    for (const std::string& s : pend->pieces) text += s;
    json body = completion_json(r, id, created, text, pend->stats);
    body["timings"] = timings_json(rid, *pend);
    ex.reply(200, "application/json", dump(body));
    return;
  }

  // Streamed: server-sent events, written from this thread as the worker hands them over.
  auto write = [&](const std::string& s) {
    if (ex.stream_write(s)) return true;
    gone();
    return false;
  };
  auto event = [&](const json& j) { return write("data: " + dump(j) + "\n\n"); };
  if (!ex.stream_begin(200, "text/event-stream", {{"Cache-Control", "no-cache"}})) return gone();
  if (r.chat && !event(chunk_json(r, id, created, "", /*role=*/true, nullptr))) return;
  // With tools, text that may be a call is held back and sent as tool_calls at the end.
  std::optional<ToolCallStream> calls_filter;
  if (r.chat && r.tools.active()) calls_filter.emplace(r.family);
  auto send_text = [&](const std::string& s) {
    const std::string out = calls_filter ? calls_filter->feed(s) : s;
    return out.empty() || event(chunk_json(r, id, created, out, false, nullptr));
  };
  std::unique_lock<std::mutex> lock(pend->mu);
  for (;;) {
    const bool ready = pend->cv.wait_for(lock, std::chrono::milliseconds(500),
                                         [&] { return pend->done || !pend->pieces.empty(); });
    std::deque<std::string> pieces;
    pieces.swap(pend->pieces);
    const bool done = pend->done;
    lock.unlock();
    // An SSE comment while waiting: clients ignore it; a dead connection fails it.
    if (!ready && !write(": waiting\n\n")) return;
    for (const std::string& s : pieces)
      if (!send_text(s)) return;
    if (done) break;
    lock.lock();
  }
  if (pend->failed || pend->stats.finish == FinishReason::kStopped) {
    const ApiError e =
        pend->failed ? ApiError(http_status_of(pend->status), pend->error, "", "", "server_error")
                     : shutdown_error(pend->stats);
    if (!event(error_body(e.what(), e.type, e.param, e.code))) return;
  } else {
    std::optional<json> calls;
    if (calls_filter) {
      std::string content;
      calls = calls_filter->finish(content);
      if (!content.empty() && !event(chunk_json(r, id, created, content, false, nullptr))) return;
      if (calls && !event(tool_calls_chunk_json(r, id, created, *calls))) return;
    }
    json last = chunk_json(r, id, created, "", false, &pend->stats);
    if (calls) last["choices"][0]["finish_reason"] = "tool_calls";
    last["timings"] = timings_json(rid, *pend);
    if (!event(last)) return;
  }
  if (write("data: [DONE]\n\n")) ex.stream_end();
}

// The served model a request names (model; "": fallback, whose absence says `missing`).
// 404 model_not_found for a name not served.
Runtime& pick(Server& S, const std::string& model, Runtime* fallback, const std::string& missing) {
  if (model.empty()) {
    if (!fallback) throw ApiError(400, missing, "model", "model_not_found");
    return *fallback;
  }
  std::string ids;
  for (Served& m : S.models) {
    if (m.id == model) return *m.rt;
    ids += (ids.empty() ? "" : ", ") + m.id;
  }
  throw ApiError(404, "model '" + model + "' is not served here (served: " + ids + ")", "model",
                 "model_not_found");
}

// The runtime names an embedding request's texts inputs[i] (token_inputs[i]); the API's field
// is input: the error says so, with its param and, for a text too long, OpenAI's code.
ApiError as_input_error(const ApiError& e) {
  std::string msg = e.what();
  for (const char* prefix : {"inputs[", "token_inputs["}) {
    if (msg.rfind(prefix, 0) != 0) continue;
    msg = "input[" + msg.substr(std::strlen(prefix));
    const std::string param = msg.substr(0, msg.find(']') + 1);
    const bool too_long = msg.find("more than the context") != std::string::npos;
    return ApiError(e.http_status, msg, param,
                    too_long ? "context_length_exceeded" : "invalid_value", e.type);
  }
  return e;
}

// POST /v1/embeddings: the embedding model (else the generation model's pooled embeddings),
// or the model the request names.
void handle_embeddings(Server& S, HttpExchange& ex) {
  EmbeddingsRequest r;
  Runtime* rt = nullptr;
  try {
    r = parse_embeddings_request(ex.request().body);
    rt = &pick(S, r.model, S.embed_rt ? S.embed_rt : S.rt,
               "this server has no model to embed with (start hpl serve with --embedding-model M)");
    if (r.dimensions != 0 && r.dimensions != rt->n_embd())
      throw ApiError(400,
                     "'dimensions' must be the model's embedding size, " +
                         std::to_string(rt->n_embd()) + " (embeddings are not shortened here)",
                     "dimensions", "invalid_value");
  } catch (const ApiError& e) {
    S.metrics.on_rejected();
    send_error(ex, e);
    return;
  }
  auto pend = std::make_shared<Pending>();
  RequestId rid = 0;
  try {  // wrong kinds and inputs too long: 400 from the runtime's checks
    rid = submit(S, *rt, pend, [&](EventCallback cb) { return rt->submit_embed(r.request, cb); });
  } catch (const ApiError& e) {
    send_error(ex, as_input_error(e));
    return;
  }
  if (!wait_done(ex, *rt, rid, pend) || reply_failure(ex, *pend)) return;
  ex.reply(200, "application/json",
           dump(embeddings_json(r, r.model.empty() ? S.id_of(rt) : r.model, pend->outputs.data(),
                                pend->n_outputs, pend->dim, pend->stats)));
}

// POST /v1/rerank: the reranker, or the model the request names (400 if it cannot rerank).
void handle_rerank(Server& S, HttpExchange& ex) {
  RerankApiRequest r;
  Runtime* rt = nullptr;
  try {
    r = parse_rerank_request(ex.request().body);
    rt = &pick(S, r.model, S.rerank_rt,
               "this server has no reranker (start hpl serve with --rerank-model M)");
  } catch (const ApiError& e) {
    S.metrics.on_rejected();
    send_error(ex, e);
    return;
  }
  auto pend = std::make_shared<Pending>();
  RequestId rid = 0;
  try {
    rid = submit(S, *rt, pend, [&](EventCallback cb) { return rt->submit_rerank(r.request, cb); });
  } catch (const ApiError& e) {
    send_error(ex, e);
    return;
  }
  if (!wait_done(ex, *rt, rid, pend) || reply_failure(ex, *pend)) return;
  ex.reply(200, "application/json",
           dump(rerank_json(r, r.model.empty() ? S.id_of(rt) : r.model, pend->outputs.data(),
                            pend->n_outputs, pend->stats)));
}

// "300M" -> bytes (K, M, G: powers of 1024).
size_t parse_bytes(const std::string& opt, const std::string& v) {
  std::string digits = v;
  size_t mult = 1;
  if (!v.empty() && std::strchr("KkMmGg", v.back())) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(v.back())));
    mult = c == 'K' ? 1024 : c == 'M' ? 1024 * 1024 : size_t(1024) * 1024 * 1024;
    digits.pop_back();
  }
  const int64_t n = to_int(opt, digits);
  if (n < 1) throw std::runtime_error(opt + ": must be >= 1 byte");
  return static_cast<size_t>(n) * mult;
}

// Chat template: the rule of hpl chat (chat_template_for); without one, /v1/chat/completions
// answers 400 no_chat_template and /v1/completions still works.
void choose_template(Server& S, const std::string& name) {
  const Vocab& vocab = S.rt->tokenizer().vocab();
  if (name.empty() && detect_chat_family(vocab) == ChatFamily::UNKNOWN)
    S.tmpl_note = "the GGUF names none";
  else
    S.tmpl = chat_template_for(vocab, name, "--template");  // throws on an unknown name
}

std::atomic<int> g_signal{0};
// The first SIGINT/SIGTERM shuts down in order; a second one exits at once.
extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) _exit(128 + sig);
}

// hpl serve's command line.
struct ServeArgs {
  std::string model_path, embed_path, rerank_path, host = "127.0.0.1", template_name;
  size_t budget = ModelRegistry::kUnlimited;
  int64_t port = 8080, max_body = 1 << 20, http_threads = 16, read_timeout = 10, per_addr = 32;
  RuntimeOptions ro;
  ThreadOptions th;
  ServeArgs() { ro.session.n_ctx = 2048; }
};

// false: --help was printed.
bool parse_serve_args(const std::vector<std::string>& args, ServeArgs& a) {
  Options o(
      "usage: hpl serve -m MODEL.gguf [options]\n"
      "       hpl serve [-m MODEL.gguf] --embedding-model M.gguf [--rerank-model R.gguf] ...");
  o.text({"-m", "--model"}, "MODEL", "the GGUF generation model", a.model_path)
      .text({"--embedding-model"}, "M", "also serve M for /v1/embeddings (a bert or decoder model)",
            a.embed_path)
      .text({"--rerank-model"}, "M", "also serve M for /v1/rerank (a cross-encoder reranker)",
            a.rerank_path)
      .value({"--memory-budget"}, "BYTES",
             "model weights loaded at once, all models together (suffix K, M\n"
             "or G: 300M); the idle least recently used model is unloaded and\n"
             "reloaded on demand; a request for it waits (default: unlimited)",
             [&a](const std::string& opt, const std::string& v) { a.budget = parse_bytes(opt, v); })
      .text({"--host"}, "ADDR", "address to listen on (default 127.0.0.1)", a.host)
      .number({"--port"}, "N", "port (default 8080; 0 = any free port, printed on start)", a.port)
      .number({"-c", "--ctx-size"}, "N", "context size in tokens (default 2048)",
              a.ro.session.n_ctx)
      .number({"--ubatch", "-ub"}, "N", "prefill micro-batch in tokens (default 256)",
              a.ro.session.n_ubatch);
  add_cache_type_option(o, a.ro.session.cache_type);
  o.number({"--max-body"}, "BYTES", "largest request body; bigger gets 413 (default 1048576)",
           a.max_body)
      .text({"--template", "--chat-template"}, "NAME",
            "chat template (gemma, chatml, llama2, llama3, ...); default: the\n"
            "GGUF's; without one, chat completions answer 400",
            a.template_name)
      .number({"--http-threads"}, "N", "threads that answer completion requests (default 16)",
              a.http_threads)
      .number({"--read-timeout"}, "S",
              "a request's head, then its body, must arrive within S seconds;\n"
              "else 408 (default 10)",
              a.read_timeout)
      .number({"--max-conns-per-addr"}, "N",
              "open connections from one client address (default 32); a\n"
              "new one closes that address's oldest idle or still-reading one",
              a.per_addr)
      .number({"--cache-states"}, "N",
              "prompt cache: saved KV states besides the last request's\n"
              "(default 4; 0: only the last request's is reused)",
              a.ro.prompt_cache_options.max_states)
      .value({"--cache-mib"}, "MIB", "prompt cache: MiB of saved states (default 64)",
             [&a](const std::string& opt, const std::string& v) {
               const int64_t mib = to_int(opt, v);
               if (mib < 0 || mib > (int64_t{1} << 30))
                 throw std::runtime_error(opt + ": must be in [0, 2^30]");
               a.ro.prompt_cache_options.max_bytes = static_cast<size_t>(mib) << 20;
             })
      .flag({"--no-cache-prompt"},
            "never reuse a cached prompt prefix (every request as with\n"
            "\"cache_prompt\": false)",
            a.ro.prompt_cache, false);
  a.th.add_to(o);  // -t, --cpus, --cpu-mask: the same options as every command
  add_spec_options(o, a.ro.session.spec);
  o.note("endpoints: POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings,")
      .note("           POST /v1/rerank, GET /v1/models, GET /health,")
      .note("           GET /metrics[?format=prometheus]");
  if (!o.parse(args)) return false;
  if (a.model_path.empty() && a.embed_path.empty() && a.rerank_path.empty())
    o.fail("-m MODEL (or --embedding-model / --rerank-model) is required");
  return true;
}

// Range checks, and a warning now for pinned CPUs this process may not use (sessions pin
// only when a request first needs one).
void check_serve_args(ServeArgs& a) {
  a.th.apply(a.ro.session);
  if (!a.th.cpus.empty()) {  // sessions pin when a request first needs one: say now what is refused
    const std::vector<int> allowed = kernel::current_thread_affinity();
    std::vector<int> refused;
    for (int c : a.th.cpus)
      if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) refused.push_back(c);
    if (!refused.empty())
      std::fprintf(
          stderr,
          "warning: pinning: CPUs %s are not available to this process (it may run on %s)\n",
          kernel::format_cpu_list(refused).c_str(), kernel::format_cpu_list(allowed).c_str());
  }
  if (a.port < 0 || a.port > 65535) throw std::runtime_error("--port: must be in [0, 65535]");
  check_ctx_threads(a.ro.session.n_ctx, a.ro.session.n_threads);
  if (a.ro.session.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  a.ro.session.spec.check();
  if (a.ro.prompt_cache_options.max_states < 0)
    throw std::runtime_error("--cache-states: must be >= 0");
  if (a.max_body < 1) throw std::runtime_error("--max-body: must be >= 1");
  if (a.http_threads < 1 || a.http_threads > 1024)
    throw std::runtime_error("--http-threads: must be in [1, 1024]");
  if (a.read_timeout < 1 || a.read_timeout > 3600)
    throw std::runtime_error("--read-timeout: must be in [1, 3600] seconds");
  if (a.per_addr < 1 || a.per_addr > 4096)
    throw std::runtime_error("--max-conns-per-addr: must be in [1, 4096]");
}

// Each model in its role, under one registry; a model of the wrong kind for its option fails
// here.
void load_served_models(Server& S, ServeArgs& a) {
  a.ro.registry = std::make_shared<ModelRegistry>(a.budget);
  const auto t0 = Clock::now();
  auto serve = [&](const std::string& path, ModelKind want, const char* opt) -> Runtime* {
    if (path.empty()) return nullptr;
    RuntimeOptions o = a.ro;
    o.model_path = path;
    auto rt = std::make_unique<Runtime>(o);
    const ModelKind k = rt->model_kind();
    // A decoder (generation) model also gives pooled embeddings.
    const bool fits = k == want || (want == ModelKind::kEmbed && k == ModelKind::kGenerate);
    if (!fits)
      throw std::runtime_error(std::string(opt) + " " + path + ": a model of kind '" +
                               model_kind_name(k) + "' cannot serve as the " +
                               model_kind_name(want) + " model" +
                               (k == ModelKind::kEmbed    ? " (use --embedding-model)"
                                : k == ModelKind::kRerank ? " (use --rerank-model)"
                                                          : " (use -m)"));
    S.models.push_back({std::filesystem::path(path).stem().string(), std::move(rt)});
    return S.models.back().rt.get();
  };
  S.rt = serve(a.model_path, ModelKind::kGenerate, "-m");
  S.embed_rt = serve(a.embed_path, ModelKind::kEmbed, "--embedding-model");
  S.rerank_rt = serve(a.rerank_path, ModelKind::kRerank, "--rerank-model");
  S.load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  S.n_ctx = a.ro.session.n_ctx;
  S.model_id = S.rt ? S.id_of(S.rt) : S.models.front().id;
  S.created = unix_now();
  S.started = Clock::now();
  if (S.rt) choose_template(S, a.template_name);
}

// The JSON error body of the HTTP layer's own refusals (413, 404, 405, 408, 415).
std::pair<std::string, std::string> http_error_body(int status, const std::string& msg) {
  const char* code = status == 413   ? "request_too_large"
                     : status == 404 ? "not_found"
                     : status == 405 ? "method_not_allowed"
                     : status == 408 ? "request_timeout"
                     : status == 415 ? "unsupported_media_type"
                                     : "";
  return std::make_pair(
      std::string("application/json"),
      dump(error_body(msg, status >= 500 ? "server_error" : "invalid_request_error", "", code)));
}

void add_routes(HttpServer& svr, Server& S) {
  const auto json_reply = [](HttpExchange& ex, int status, const json& j) {
    ex.reply(status, "application/json", dump(j));
  };
  svr.route("POST", "/v1/chat/completions",
            [&S](HttpExchange& ex) { handle_completion(S, ex, true); });
  svr.route("POST", "/v1/completions", [&S](HttpExchange& ex) { handle_completion(S, ex, false); });
  svr.route("POST", "/v1/embeddings", [&S](HttpExchange& ex) { handle_embeddings(S, ex); });
  svr.route("POST", "/v1/rerank", [&S](HttpExchange& ex) { handle_rerank(S, ex); });
  // Cheap and non-blocking: answered on the I/O thread, even when every worker is busy.
  svr.route(
      "GET", "/v1/models",
      [&S, json_reply](HttpExchange& ex) {
        json data = json::array();
        for (const Served& sv : S.models)  // kind (not OpenAI): generate, embed or rerank
          data.push_back(
              {{"id", sv.id},
               {"object", "model"},
               {"created", S.created},
               {"owned_by", "hpl"},
               {"kind", model_kind_name(sv.rt->model_kind())},
               {"context_length",
                sv.rt->model_kind() == ModelKind::kGenerate ? S.n_ctx : sv.rt->embed_n_ctx()}});
        json_reply(ex, 200, {{"object", "list"}, {"data", data}});
      },
      /*fast=*/true);
  svr.route(
      "GET", "/health",
      [&S, json_reply](HttpExchange& ex) {
        for (const Served& sv : S.models)
          if (sv.rt->failed())
            return json_reply(
                ex, 503,
                {{"status", "failed"}, {"model", sv.id}, {"reason", sv.rt->failed_reason()}});
        json_reply(ex, 200, {{"status", "ok"}});
      },
      /*fast=*/true);
  svr.route(
      "GET", "/metrics",
      [&S](HttpExchange& ex) {
        const MetricsSnapshot snap = S.snapshot();
        if (ex.request().query_param("format") == "prometheus")
          ex.reply(200, "text/plain; version=0.0.4", S.metrics.prometheus(snap));
        else
          ex.reply(200, "application/json", dump(S.metrics.json(snap)));
      },
      /*fast=*/true);
}

int run_serve(const std::vector<std::string>& args) {
  ServeArgs a;
  if (!parse_serve_args(args, a)) return 0;
  check_serve_args(a);
  Server S;
  load_served_models(S, a);
  HttpOptions ho;
  ho.max_body = static_cast<uint64_t>(a.max_body);
  ho.worker_threads = static_cast<int>(a.http_threads);
  ho.read_timeout_s = static_cast<double>(a.read_timeout);
  ho.max_conns_per_addr = static_cast<int>(a.per_addr);
  ho.max_conns = std::max(512, static_cast<int>(a.per_addr));
  HttpServer svr(ho, http_error_body);
  add_routes(svr, S);
  const int bound = svr.listen(a.host, static_cast<int>(a.port));  // throws "port in use"
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Shutdown: close the listener and the idle and still-reading connections, and stop the
  // running requests (their handlers then answer 503 and finish). Requests submitted while
  // run() winds down are stopped too.
  std::atomic<bool> listen_returned{false};
  std::thread watcher([&] {
    while (!g_signal) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    svr.stop();
    while (!listen_returned) {
      std::vector<std::pair<Runtime*, RequestId>> ids;
      {
        std::lock_guard<std::mutex> lock(S.live_mu);
        ids.assign(S.live.begin(), S.live.end());
      }
      for (const auto& [r, id] : ids) r->stop(id);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  for (const Served& sv : S.models)
    std::fprintf(stderr, "hpl serve: %s (%s, %s, context %lld, %d threads%s%s)\n",
                 sv.rt->model_path().c_str(), sv.id.c_str(), model_kind_name(sv.rt->model_kind()),
                 static_cast<long long>(sv.rt.get() == S.rt ? S.n_ctx : sv.rt->embed_n_ctx()),
                 a.ro.session.n_threads, sv.rt.get() == S.rt ? ", chat template " : "",
                 sv.rt.get() == S.rt ? (S.tmpl ? chat_family_name(S.tmpl->family()) : "none") : "");
  std::fprintf(stderr, "load %.0f ms, memory budget %s\nlistening on http://%s:%d\n", S.load_ms,
               a.budget == ModelRegistry::kUnlimited
                   ? "unlimited"
                   : (std::to_string(a.budget) + " bytes").c_str(),
               a.host.c_str(), bound);
  bool ok = true;
  try {
    svr.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hpl serve: %s\n", e.what());
    ok = false;
  }
  listen_returned = true;
  if (!g_signal) g_signal = -1;
  watcher.join();
  std::fprintf(stderr, "hpl serve: stopped\n");
  return ok ? 0 : 1;
}

}  // namespace

HPL_COMMAND("serve",
            "OpenAI-compatible HTTP server (chat/completions, embeddings, rerank, models, metrics)",
            run_serve);

}  // namespace hpl::cli
