// hpl serve -m MODEL [options]: an OpenAI-compatible HTTP server (cli/server_http.h) over
// the runtime's FIFO queue. Each HTTP request becomes one stateless runtime request; handler
// threads wait for its events, so requests are answered in submission order.
//
// Client disconnects stop the runtime request: a streamed request notices a failed write (of
// a token, or of an SSE comment sent every 500 ms while queued); a non-streamed one polls
// its connection every 100 ms (HttpExchange::client_gone: a reset, or a close that did not
// come with the request; a half-close right after the request still gets its reply).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
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
  std::atomic<bool> client_gone{false};
  // Seconds since the server started: submitted, prompt evaluation started, finished.
  double submitted_s = 0, start_s = 0, end_s = 0;
};

struct Server {
  Runtime* rt = nullptr;
  std::shared_ptr<const LoadedModel> model;  // for the tokenizer (prompt length checks)
  std::optional<ChatTemplate> tmpl;
  std::string tmpl_note;  // why there is no template
  std::string model_id;
  int64_t n_ctx = 0;
  double load_ms = 0;
  int64_t created = 0;
  Clock::time_point started;
  ServerMetrics metrics;

  std::mutex live_mu;
  std::set<RequestId> live;  // submitted, not finished: stopped on shutdown

  MetricsSnapshot snapshot() {
    MetricsSnapshot s;
    s.queue_length = rt->queue_length();
    s.model_load_ms = load_ms;
    s.uptime_s = std::chrono::duration<double>(Clock::now() - started).count();
    const RuntimeMemory m = rt->memory();
    s.weights_bytes = m.model_bytes;
    s.kv_bytes = m.kv_bytes;
    s.scratch_bytes = m.scratch_bytes;
    s.prompt_cache_bytes = m.prompt_cache_bytes;
    s.prompt_cache_states = m.prompt_cache_states;
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
          {"decode_tokens_per_s", p.stats.decode_tokens_per_s}};
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
    apply_tools(r.tools, r.family, r.stream, p);
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
      static_cast<int64_t>(S.model->tokenizer->encode(p.prompt, true, true).size());
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

// Queues the request; its events go to `pend`. Lock order: S.live_mu before pend->mu, never
// the reverse (a finished request leaves S.live after its pend->mu is released).
RequestId submit(Server& S, const ApiRequest& r, const std::shared_ptr<Pending>& pend) {
  S.metrics.on_submitted();
  auto cb = [&S, pend](const Event& ev) {
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
      S.live.erase(ev.id);
    }
  };
  RequestId id = 0;
  try {
    id = S.rt->submit(r.params, cb);
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
  if (!pend->done) S.live.insert(id);
  return id;
}

void handle_completion(Server& S, HttpExchange& ex, bool chat) {
  ApiRequest r;
  try {
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
    rid = submit(S, r, pend);
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
    std::unique_lock<std::mutex> lock(pend->mu);
    // Poll the connection while waiting: a client that hung up stops its request.
    while (!pend->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return pend->done; })) {
      if (!pend->client_gone && ex.client_gone()) {
        lock.unlock();
        gone();
        lock.lock();
      }
    }
    if (pend->client_gone) return;  // nobody to answer
    if (pend->failed) {
      send_error(ex, ApiError(http_status_of(pend->status), pend->error, "", "",
                              pend->status == Status::kInvalidArgument ? "invalid_request_error"
                                                                       : "server_error"));
      return;
    }
    if (pend->stats.finish == FinishReason::kStopped) {  // not by its client: shutdown
      send_error(ex, shutdown_error(pend->stats));
      return;
    }
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
      if (!event(chunk_json(r, id, created, s, false, nullptr))) return;
    if (done) break;
    lock.lock();
  }
  if (pend->failed || pend->stats.finish == FinishReason::kStopped) {
    const ApiError e =
        pend->failed ? ApiError(http_status_of(pend->status), pend->error, "", "", "server_error")
                     : shutdown_error(pend->stats);
    if (!event(error_body(e.what(), e.type, e.param, e.code))) return;
  } else {
    json last = chunk_json(r, id, created, "", false, &pend->stats);
    last["timings"] = timings_json(rid, *pend);
    if (!event(last)) return;
  }
  if (write("data: [DONE]\n\n")) ex.stream_end();
}

// Chat template: the rule of hpl chat (chat_template_for); without one, /v1/chat/completions
// answers 400 no_chat_template and /v1/completions still works.
void choose_template(Server& S, const std::string& name) {
  const Vocab& vocab = S.model->tokenizer->vocab();
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

int run_serve(const std::vector<std::string>& args) {
  std::string model_path, host = "127.0.0.1", template_name;
  int64_t port = 8080, max_body = 1 << 20, http_threads = 16, read_timeout = 10, per_addr = 32;
  RuntimeOptions ro;
  ro.session.n_ctx = 2048;
  ThreadOptions th;
  Options o("usage: hpl serve -m MODEL.gguf [options]");
  o.text({"-m", "--model"}, "MODEL", "the GGUF model", model_path)
      .text({"--host"}, "ADDR", "address to listen on (default 127.0.0.1)", host)
      .number({"--port"}, "N", "port (default 8080; 0 = any free port, printed on start)", port)
      .number({"-c", "--ctx-size"}, "N", "context size in tokens (default 2048)", ro.session.n_ctx)
      .number({"--ubatch", "-ub"}, "N", "prefill micro-batch in tokens (default 256)",
              ro.session.n_ubatch);
  add_cache_type_option(o, ro.session.cache_type);
  o.number({"--max-body"}, "BYTES", "largest request body; bigger gets 413 (default 1048576)",
           max_body)
      .text({"--template", "--chat-template"}, "NAME",
            "chat template (gemma, chatml, llama2, llama3, ...); default: the\n"
            "GGUF's; without one, chat completions answer 400",
            template_name)
      .number({"--http-threads"}, "N", "threads that answer completion requests (default 16)",
              http_threads)
      .number({"--read-timeout"}, "S",
              "a request's head, then its body, must arrive within S seconds;\n"
              "else 408 (default 10)",
              read_timeout)
      .number({"--max-conns-per-addr"}, "N",
              "open connections from one client address (default 32); a\n"
              "new one closes that address's oldest idle or still-reading one",
              per_addr)
      .number({"--cache-states"}, "N",
              "prompt cache: saved KV states besides the last request's\n"
              "(default 4; 0: only the last request's is reused)",
              ro.prompt_cache_options.max_states)
      .value({"--cache-mib"}, "MIB", "prompt cache: MiB of saved states (default 64)",
             [&ro](const std::string& opt, const std::string& v) {
               const int64_t mib = to_int(opt, v);
               if (mib < 0 || mib > (int64_t{1} << 30))
                 throw std::runtime_error(opt + ": must be in [0, 2^30]");
               ro.prompt_cache_options.max_bytes = static_cast<size_t>(mib) << 20;
             })
      .flag({"--no-cache-prompt"},
            "never reuse a cached prompt prefix (every request as with\n"
            "\"cache_prompt\": false)",
            ro.prompt_cache, false);
  th.add_to(o);  // -t, --cpus, --cpu-mask: the same options as every command
  o.note("endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,")
      .note("           GET /health, GET /metrics[?format=prometheus]");
  if (!o.parse(args)) return 0;
  if (model_path.empty()) o.fail("-m MODEL is required");
  th.apply(ro.session);
  if (!th.cpus.empty()) {  // sessions pin when a request first needs one: say now what is refused
    const std::vector<int> allowed = kernel::current_thread_affinity();
    std::vector<int> refused;
    for (int c : th.cpus)
      if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) refused.push_back(c);
    if (!refused.empty())
      std::fprintf(
          stderr,
          "warning: pinning: CPUs %s are not available to this process (it may run on %s)\n",
          kernel::format_cpu_list(refused).c_str(), kernel::format_cpu_list(allowed).c_str());
  }
  if (port < 0 || port > 65535) throw std::runtime_error("--port: must be in [0, 65535]");
  check_ctx_threads(ro.session.n_ctx, ro.session.n_threads);
  if (ro.session.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  if (ro.prompt_cache_options.max_states < 0)
    throw std::runtime_error("--cache-states: must be >= 0");
  if (max_body < 1) throw std::runtime_error("--max-body: must be >= 1");
  if (http_threads < 1 || http_threads > 1024)
    throw std::runtime_error("--http-threads: must be in [1, 1024]");
  if (read_timeout < 1 || read_timeout > 3600)
    throw std::runtime_error("--read-timeout: must be in [1, 3600] seconds");
  if (per_addr < 1 || per_addr > 4096)
    throw std::runtime_error("--max-conns-per-addr: must be in [1, 4096]");

  Server S;
  ro.model_path = model_path;
  const auto t0 = Clock::now();
  Runtime rt(ro);
  S.rt = &rt;
  S.model = rt.registry().acquire(model_path);
  S.load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  S.n_ctx = ro.session.n_ctx;
  S.model_id = std::filesystem::path(model_path).stem().string();
  S.created = unix_now();
  S.started = Clock::now();
  choose_template(S, template_name);

  HttpOptions ho;
  ho.max_body = static_cast<uint64_t>(max_body);
  ho.worker_threads = static_cast<int>(http_threads);
  ho.read_timeout_s = static_cast<double>(read_timeout);
  ho.max_conns_per_addr = static_cast<int>(per_addr);
  ho.max_conns = std::max(512, static_cast<int>(per_addr));
  HttpServer svr(ho, [](int status, const std::string& msg) {
    const char* code = status == 413   ? "request_too_large"
                       : status == 404 ? "not_found"
                       : status == 405 ? "method_not_allowed"
                       : status == 408 ? "request_timeout"
                       : status == 415 ? "unsupported_media_type"
                                       : "";
    return std::make_pair(
        std::string("application/json"),
        dump(error_body(msg, status >= 500 ? "server_error" : "invalid_request_error", "", code)));
  });

  const auto json_reply = [](HttpExchange& ex, int status, const json& j) {
    ex.reply(status, "application/json", dump(j));
  };
  svr.route("POST", "/v1/chat/completions",
            [&S](HttpExchange& ex) { handle_completion(S, ex, true); });
  svr.route("POST", "/v1/completions", [&S](HttpExchange& ex) { handle_completion(S, ex, false); });
  // Cheap and non-blocking: answered on the I/O thread, even when every worker is busy.
  svr.route(
      "GET", "/v1/models",
      [&S, json_reply](HttpExchange& ex) {
        json m = {{"id", S.model_id},
                  {"object", "model"},
                  {"created", S.created},
                  {"owned_by", "hpl"},
                  {"context_length", S.n_ctx}};
        json_reply(ex, 200, {{"object", "list"}, {"data", json::array({m})}});
      },
      /*fast=*/true);
  svr.route(
      "GET", "/health",
      [&S, json_reply](HttpExchange& ex) {
        if (S.rt->failed())
          json_reply(ex, 503, {{"status", "failed"}, {"reason", S.rt->failed_reason()}});
        else
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

  const int bound = svr.listen(host, static_cast<int>(port));  // throws "port in use"
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
      std::vector<RequestId> ids;
      {
        std::lock_guard<std::mutex> lock(S.live_mu);
        ids.assign(S.live.begin(), S.live.end());
      }
      for (RequestId id : ids) rt.stop(id);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::fprintf(stderr,
               "hpl serve: %s (%s, context %lld, %d threads, chat template %s), load %.0f ms\n"
               "listening on http://%s:%d\n",
               model_path.c_str(), S.model_id.c_str(), static_cast<long long>(S.n_ctx),
               ro.session.n_threads, S.tmpl ? chat_family_name(S.tmpl->family()) : "none",
               S.load_ms, host.c_str(), bound);
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

HPL_COMMAND("serve", "OpenAI-compatible HTTP server (chat/completions, models, metrics)",
            run_serve);

}  // namespace hpl::cli
