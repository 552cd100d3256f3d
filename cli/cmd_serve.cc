// hpl serve -m MODEL [options]: an OpenAI-compatible HTTP server (cpp-httplib) over the
// runtime's FIFO queue. Each HTTP request becomes one stateless runtime request; handler
// threads wait for its events, so requests are answered in submission order.
//
// Client disconnects stop the runtime request: a streamed request notices a failed write (of
// a token, or of an SSE comment sent every 500 ms while queued); a non-streamed one polls
// its socket every 100 ms (cpp-httplib 0.11 gives a handler no view of its connection, so
// the socket is found by its addresses: cli/server_conn.h).
#include <httplib.h>

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

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/server_conn.h"
#include "cli/server_metrics.h"
#include "cli/server_openai.h"
#include "engine/memory_report.h"
#include "engine/model_config.h"
#include "runtime/runtime.h"
#include "tokenizer/chat_template.h"

namespace hpl::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void usage() {
  std::fprintf(
      stderr,
      "usage: hpl serve -m MODEL.gguf [options]\n"
      "  --host ADDR        address to listen on (default 127.0.0.1)\n"
      "  --port N           port (default 8080; 0 = any free port, printed on start)\n"
      "  -c N               context size in tokens (default 2048)\n"
      "  -t N               inference threads (default: all cores)\n"
      "  --ubatch N         prefill micro-batch in tokens (default 64)\n"
      "  --max-body BYTES   largest request body; bigger gets 413 (default 1048576)\n"
      "  --template NAME    chat template (gemma, chatml, llama2, llama3, ...); default: the\n"
      "                     GGUF's; without one, chat completions answer 400\n"
      "  --http-threads N   HTTP connection threads (default 16)\n"
      "endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,\n"
      "           GET /health, GET /metrics[?format=prometheus]\n");
}

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

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(dump(error_body(e.what(), e.type, e.param, e.code)), "application/json");
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

// Queues the request; its events go to `pend`.
RequestId submit(Server& S, const ApiRequest& r, const std::shared_ptr<Pending>& pend) {
  S.metrics.on_submitted();
  auto cb = [&S, pend](const Event& ev) {
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
        {
          std::lock_guard<std::mutex> l2(S.live_mu);
          S.live.erase(ev.id);
        }
        break;
      case EventType::kError:
        pend->stats = ev.stats;
        pend->failed = pend->done = true;
        pend->end_s = now;
        pend->status = ev.status;
        pend->error = std::string(ev.text);
        S.metrics.on_failed();
        {
          std::lock_guard<std::mutex> l2(S.live_mu);
          S.live.erase(ev.id);
        }
        break;
      default:
        return;
    }
    pend->cv.notify_all();
  };
  try {
    std::lock_guard<std::mutex> l2(S.live_mu);  // before any event can erase the id
    const RequestId id = S.rt->submit(r.params, cb);
    S.live.insert(id);
    return id;
  } catch (const RuntimeError& e) {
    S.metrics.on_failed();
    throw ApiError(
        http_status_of(e.status()), e.what(), "",
        e.status() == Status::kFailedState ? "failed_state" : "",
        e.status() == Status::kInvalidArgument ? "invalid_request_error" : "server_error");
  }
}

void handle_completion(Server& S, const httplib::Request& req, httplib::Response& res, bool chat) {
  ApiRequest r;
  try {
    r = parse_request(req.body, chat);
    prepare(S, r);
  } catch (const ApiError& e) {
    S.metrics.on_rejected();
    send_error(res, e);
    return;
  }
  auto pend = std::make_shared<Pending>();
  RequestId rid = 0;
  try {
    rid = submit(S, r, pend);
  } catch (const ApiError& e) {
    send_error(res, e);
    return;
  }
  const int conn = find_connection_fd(req.remote_addr, req.remote_port, req.local_port);
  // The runtime's request id: increasing in queue order.
  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(rid);
  const int64_t created = unix_now();

  if (!r.stream) {
    std::unique_lock<std::mutex> lock(pend->mu);
    // Poll the connection while waiting: a client that hung up stops its request.
    while (!pend->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return pend->done; })) {
      if (conn >= 0 && !pend->client_gone && peer_closed(conn)) {
        pend->client_gone = true;
        lock.unlock();
        S.rt->stop(rid);
        lock.lock();
      }
    }
    if (pend->client_gone) return;  // nobody to answer
    if (pend->failed) {
      send_error(res, ApiError(http_status_of(pend->status), pend->error, "", "",
                               pend->status == Status::kInvalidArgument ? "invalid_request_error"
                                                                        : "server_error"));
      return;
    }
    if (pend->stats.finish == FinishReason::kStopped) {  // not by its client: shutdown
      send_error(res, shutdown_error(pend->stats));
      return;
    }
    std::string text;
    for (const std::string& s : pend->pieces) text += s;
    json body = completion_json(r, id, created, text, pend->stats);
    body["timings"] = timings_json(rid, *pend);
    res.set_content(dump(body), "application/json");
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  Runtime* rt = S.rt;
  auto gone = [rt, pend, rid] {
    if (!pend->client_gone.exchange(true)) rt->stop(rid);
  };
  res.set_chunked_content_provider(
      "text/event-stream",
      [r, id, rid, created, pend, gone, conn](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          if (sink.write(s.data(), s.size())) return true;
          gone();
          return false;
        };
        auto event = [&](const json& j) { return write("data: " + dump(j) + "\n\n"); };
        if (r.chat && !event(chunk_json(r, id, created, "", /*role=*/true, nullptr))) return false;
        std::unique_lock<std::mutex> lock(pend->mu);
        for (;;) {
          const bool ready = pend->cv.wait_for(lock, std::chrono::milliseconds(500),
                                               [&] { return pend->done || !pend->pieces.empty(); });
          std::deque<std::string> pieces;
          pieces.swap(pend->pieces);
          const bool done = pend->done;
          lock.unlock();
          // An SSE comment while waiting: clients ignore it; a dead connection fails it.
          if (!ready && ((conn >= 0 && peer_closed(conn)) || !write(": waiting\n\n"))) {
            gone();
            return false;
          }
          for (const std::string& s : pieces)
            if (!event(chunk_json(r, id, created, s, false, nullptr))) return false;
          if (done) break;
          lock.lock();
        }
        if (pend->failed || pend->stats.finish == FinishReason::kStopped) {
          const ApiError e = pend->failed ? ApiError(http_status_of(pend->status), pend->error, "",
                                                     "", "server_error")
                                          : shutdown_error(pend->stats);
          if (!event(error_body(e.what(), e.type, e.param, e.code))) return false;
        } else {
          json last = chunk_json(r, id, created, "", false, &pend->stats);
          last["timings"] = timings_json(rid, *pend);
          if (!event(last)) return false;
        }
        if (!write("data: [DONE]\n\n")) return false;
        sink.done();
        return true;
      },
      [pend, gone](bool) {
        std::lock_guard<std::mutex> lock(pend->mu);
        if (!pend->done) gone();  // the connection ended before the request did
      });
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
extern "C" void on_signal(int sig) {
  g_signal = sig;
}

int run_serve(const std::vector<std::string>& args) {
  std::string model_path, host = "127.0.0.1", template_name;
  int64_t port = 8080, max_body = 1 << 20, http_threads = 16;
  RuntimeOptions ro;
  ro.session.n_ctx = 2048;
  ro.session.n_threads = default_threads();
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "-m" || a == "--model") {
      model_path = value();
    } else if (a == "--host") {
      host = value();
    } else if (a == "--port") {
      port = to_int(a, value());
    } else if (a == "-c" || a == "--ctx-size") {
      ro.session.n_ctx = to_int(a, value());
    } else if (a == "-t" || a == "--threads") {
      ro.session.n_threads = static_cast<int>(to_int(a, value()));
    } else if (a == "--ubatch" || a == "-ub") {
      ro.session.n_ubatch = to_int(a, value());
    } else if (a == "--max-body") {
      max_body = to_int(a, value());
    } else if (a == "--template" || a == "--chat-template") {
      template_name = value();
    } else if (a == "--http-threads") {
      http_threads = to_int(a, value());
    } else {
      usage_error(usage, "unknown option '" + a + "'");
    }
  }
  if (model_path.empty()) usage_error(usage, "-m MODEL is required");
  if (port < 0 || port > 65535) throw std::runtime_error("--port: must be in [0, 65535]");
  check_ctx_threads(ro.session.n_ctx, ro.session.n_threads);
  if (ro.session.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  if (max_body < 1) throw std::runtime_error("--max-body: must be >= 1");
  if (http_threads < 1 || http_threads > 1024)
    throw std::runtime_error("--http-threads: must be in [1, 1024]");

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

  httplib::Server svr;
  svr.new_task_queue = [n = static_cast<size_t>(http_threads)] {
    return new httplib::ThreadPool(n);
  };
  svr.set_payload_max_length(static_cast<size_t>(max_body));
  svr.set_keep_alive_timeout(2);
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const bool too_big = res.status == 413;
    const std::string msg = too_big             ? "the request body is larger than --max-body"
                            : res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                                : "HTTP error " + std::to_string(res.status);
    res.set_content(
        dump(error_body(msg, "invalid_request_error", "", too_big ? "request_too_large" : "")),
        "application/json");
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string msg = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          msg = std::string("internal error: ") + e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(dump(error_body(msg, "server_error", "", "")), "application/json");
      });

  svr.Post("/v1/chat/completions", [&S](const httplib::Request& q, httplib::Response& res) {
    handle_completion(S, q, res, true);
  });
  svr.Post("/v1/completions", [&S](const httplib::Request& q, httplib::Response& res) {
    handle_completion(S, q, res, false);
  });
  svr.Get("/v1/models", [&S](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", S.model_id},
              {"object", "model"},
              {"created", S.created},
              {"owned_by", "hpl"},
              {"context_length", S.n_ctx}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  svr.Get("/health", [&S](const httplib::Request&, httplib::Response& res) {
    if (S.rt->failed()) {
      res.status = 503;
      res.set_content(dump({{"status", "failed"}, {"reason", S.rt->failed_reason()}}),
                      "application/json");
    } else {
      res.set_content(dump({{"status", "ok"}}), "application/json");
    }
  });
  svr.Get("/metrics", [&S](const httplib::Request& q, httplib::Response& res) {
    const MetricsSnapshot snap = S.snapshot();
    if (q.get_param_value("format") == "prometheus")
      res.set_content(S.metrics.prometheus(snap), "text/plain; version=0.0.4");
    else
      res.set_content(dump(S.metrics.json(snap)), "application/json");
  });

  int bound = static_cast<int>(port);
  if (port == 0) {
    bound = svr.bind_to_any_port(host);
    if (bound < 0) throw std::runtime_error("cannot listen on " + host);
  } else if (!svr.bind_to_port(host, bound)) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                             " (in use, or a bad address)");
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Shutdown: stop the running requests (their handlers then finish) and the listener.
  // Handlers still running keep listen() from returning, so requests that arrive meanwhile
  // are stopped too.
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
  const bool ok = svr.listen_after_bind();
  listen_returned = true;
  if (!g_signal) g_signal = -1;
  watcher.join();
  std::fprintf(stderr, "hpl serve: stopped\n");
  return ok || g_signal ? 0 : 1;
}

}  // namespace

HPL_COMMAND("serve", "OpenAI-compatible HTTP server (chat/completions, models, metrics)",
            run_serve);

}  // namespace hpl::cli
