// hpl chat -m MODEL [options]: interactive chat on stdin/stdout with the model's chat template,
// on a runtime Session (the one the C API uses). The KV cache is kept across turns: each turn
// prefills only its own tokens (the user turn, formatted incrementally after the conversation
// so far, plus the last reply token that was sampled but never evaluated). When a turn would
// not fit, it says so and restarts the conversation with the last 3 exchanges (and the system
// message) carried forward (re-prefilled). Reads lines until EOF, so it works without a
// terminal; /reset, /stats, /quit.
//
// Ctrl-C while a reply is generated stops it (the partial reply stays in the conversation);
// Ctrl-C at the prompt, or Ctrl-D, ends the chat. A second Ctrl-C before the first was acted on
// exits at once with status 130.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/prompt_cache_file.h"
#include "engine/generate.h"
#include "engine/memory_report.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "kernel/isa.h"
#include "runtime/session.h"
#include "tokenizer/chat_template.h"

namespace hpl::cli {
namespace {

constexpr int kCarryExchanges = 3;  // exchanges kept when the context is full

// Ctrl-C seen during a turn and not yet acted on; at the prompt, Ctrl-C exits from the handler
// itself (nothing is buffered then), so no signal can slip in between a check and the read.
volatile std::sig_atomic_t g_sigint = 0;
volatile std::sig_atomic_t g_at_prompt = 0;

extern "C" void on_sigint(int) {
  if (g_at_prompt) {
    (void)!write(STDOUT_FILENO, "\n", 1);  // end the prompt line
    _exit(0);
  }
  if (g_sigint) _exit(130);  // a second Ctrl-C before the first was acted on
  g_sigint = 1;
}

void install_sigint_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The conversation is a runtime Session (runtime/session.h): it formats the turns, keeps the
// KV cache, runs the generation loop and restarts with the last exchanges; this class only
// decides when to restart and prints.
class Chat {
 public:
  Chat(Session& s, std::string system, RequestParams rp, bool verbose, std::string cache_file)
      : s_(s),
        system_(std::move(system)),
        rp_(std::move(rp)),
        verbose_(verbose),
        cache_file_(std::move(cache_file)) {}

  void reset() { s_.clear(); }

  // One user turn: prefill, stream the reply to stdout.
  void turn(const std::string& user) {
    RequestParams p = rp_;
    if (s_.exchanges().empty() && !system_.empty()) p.messages.push_back({"system", system_});
    p.messages.push_back({"user", user});
    // Room kept for the reply when deciding whether a turn fits.
    const int64_t n_ctx = s_.n_ctx();
    const int64_t reserve = std::min<int64_t>(p.max_tokens > 0 ? p.max_tokens : 64, n_ctx / 4);
    std::vector<int32_t> fresh;
    try {
      fresh = s_.prepare_turn(p, reserve);
    } catch (const RuntimeError& e) {
      if (e.status() != Status::kContextFull) throw;
      if (!s_.tokens().empty()) {
        std::fprintf(stderr, "%s\n", e.what());
        // Restart with the last exchanges that fit (3, else fewer) carried forward.
        const int kept = s_.restart_to_fit(p, kCarryExchanges, reserve);
        if (kept < 0) return too_long(p);
        std::fprintf(stderr,
                     "restarting the conversation with the last %d exchange%s carried forward "
                     "(%zu tokens to prefill, %lld kept in the cache)\n",
                     kept, kept == 1 ? "" : "s",
                     static_cast<size_t>(s_.n_pending()) + s_.turn_tokens(p).size(),
                     static_cast<long long>(s_.n_past()));
        ++restarts_;
      }
      // A turn that leaves no room for even one reply token is refused (the conversation
      // stays).
      try {
        fresh = s_.prepare_turn(p, 1);
      } catch (const RuntimeError& e2) {
        if (e2.status() != Status::kContextFull) throw;
        return too_long(p);
      }
    }

    // The first turn of a conversation with --prompt-cache: its prefix from the file, else
    // evaluated now and saved there (run_turn then evaluates the rest).
    if (!cache_file_.empty() && s_.tokens().empty()) {
      const LoadedModel& m = s_.model();
      const LoadedModelInfo info{m.model->config, m.identity, m.path};
      const int64_t loaded = load_prompt_cache(s_.forward(), info, fresh, cache_file_);
      const int64_t saved = save_prompt_cache(s_.forward(), info, fresh, cache_file_);
      if (verbose_)
        std::fprintf(stderr, "prompt cache %s: %lld tokens reused, %lld saved\n",
                     cache_file_.c_str(), static_cast<long long>(loaded),
                     static_cast<long long>(saved));
    }
    const int64_t reused = s_.n_past();
    const GenerateResult r = s_.run_turn(
        p, fresh,
        [](std::string_view piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        },
        [] { return g_sigint != 0; });  // Ctrl-C: the reply ends here
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (r.finish == FinishReason::kStopped)
      std::fprintf(stderr, "[reply stopped by Ctrl-C; Ctrl-C again or Ctrl-D to quit]\n");
    g_sigint = 0;  // a Ctrl-C during the reply was for the reply
    ++turns_;
    last_ = r.stats;
    if (r.finish == FinishReason::kContextEnd) {
      std::fprintf(stderr, "context full: the reply reached the context size (%lld tokens)\n",
                   static_cast<long long>(n_ctx));
    }
    if (verbose_) {
      const GenerateStats& st = r.stats;
      std::fprintf(stderr,
                   "[turn %lld] prefill %d tokens (cache reused: %lld tokens) %.1f tok/s; "
                   "decode %d tokens %.1f tok/s; context %lld/%lld; stop: %s\n",
                   static_cast<long long>(turns_), st.prompt_tokens, static_cast<long long>(reused),
                   st.prompt_tokens_per_s(), st.decode_evals, st.decode_tokens_per_s(),
                   static_cast<long long>(s_.n_past()), static_cast<long long>(n_ctx),
                   finish_reason_name(r.finish));
      if (s_.options().spec.enabled()) print_spec_stats(st);
    }
  }

  void stats() {
    std::printf(
        "/stats: context %lld tokens in the cache (+%lld pending) of %lld; %zu exchanges, "
        "%lld turns, %lld restarts\n",
        static_cast<long long>(s_.n_past()), static_cast<long long>(s_.n_pending()),
        static_cast<long long>(s_.n_ctx()), s_.exchanges().size(), static_cast<long long>(turns_),
        static_cast<long long>(restarts_));
    std::printf("/stats: last prefill %d tokens %.2f tok/s; last decode %d tokens %.2f tok/s\n",
                last_.prompt_tokens, last_.prompt_tokens_per_s(), last_.decode_evals,
                last_.decode_tokens_per_s());
    std::fputs(format_memory_report(memory_report(*s_.model().model, s_.forward())).c_str(),
               stdout);
    std::fflush(stdout);
  }

 private:
  void too_long(const RequestParams& p) const {
    std::fprintf(stderr,
                 "this message is too long: it needs %zu tokens, the context has %lld (use -c); "
                 "it was not sent\n",
                 static_cast<size_t>(s_.n_pending()) + s_.turn_tokens(p).size(),
                 static_cast<long long>(s_.n_ctx()));
  }

  Session& s_;
  std::string system_;
  RequestParams rp_;  // sampling, max_tokens (< 0: until end of turn)
  bool verbose_;
  std::string cache_file_;  // --prompt-cache
  int64_t turns_ = 0, restarts_ = 0;
  GenerateStats last_;
};

// The model (loaded here, outside any registry) in a Session, which must know a chat format.
std::unique_ptr<Session> open_session(const std::string& path, const SessionOptions& so) {
  auto lm = std::make_shared<LoadedModel>();
  lm->path = path;
  lm->model = Model::load(path);
  lm->tokenizer = load_tokenizer(*lm->model->file);
  chat_template_for(lm->tokenizer->vocab(), so.chat_template, "--template");  // one rule
  auto s = std::make_unique<Session>(std::move(lm), so);
  return s;
}

struct ChatArgs {
  std::string model_path, system, cache_file;
  bool verbose = false, have_seed = false;
  RequestParams rp;
  SessionOptions so;
  ThreadOptions th;
  ChatArgs() { rp.max_tokens = -1; }
};

// false: --help was printed.
bool parse_chat_args(const std::vector<std::string>& args, ChatArgs& a) {
  Options o("usage: hpl chat -m MODEL.gguf [options]   (then type; one line is one turn)");
  o.text({"-m", "--model"}, "MODEL", "the GGUF model", a.model_path)
      .number({"-c", "--ctx-size"}, "N", "context size in tokens (default 2048)", a.so.n_ctx)
      .value({"-n", "--n-predict"}, "N", "reply token limit (default -1: until end of turn)",
             [&a](const std::string& opt, const std::string& v) {
               a.rp.max_tokens = parse_token_limit(opt, v);
             });
  add_sampler_options(o, a.rp.sampling, a.have_seed);
  add_spec_options(o, a.so.spec);
  add_format_options(o, a.rp.format);
  add_cache_type_option(o, a.so.cache_type);
  o.text({"--system"}, "TEXT", "system message", a.system)
      .text({"--template", "--chat-template"}, "NAME",
            "chat format (gemma, chatml, llama2, llama3, command-r,\n"
            "zephyr); default: the GGUF's tokenizer.chat_template or its\n"
            "turn-marker tokens; a model with neither needs --template",
            a.so.chat_template)
      .text({"--prompt-cache"}, "FILE",
            "the first turn reuses the prefix KV (system message) saved in FILE by an\n"
            "earlier chat with the same model, and saves its own there",
            a.cache_file)
      .flag({"--verbose", "-v"}, "per turn: tokens prefilled, cache reused, tok/s (stderr)",
            a.verbose);
  a.th.add_to(o);
  o.note("commands: /reset (new conversation), /stats, /quit (or end of input)")
      .note("Ctrl-C stops the reply being generated; at the prompt, Ctrl-C or Ctrl-D quits");
  if (!o.parse(args)) return false;
  if (a.model_path.empty()) o.fail("-m MODEL is required");
  a.th.apply(a.so);
  check_ctx_threads(a.so.n_ctx, a.so.n_threads);
  a.so.spec.check();
  require_utf8(a.system, "--system");
  require_format(a.rp.format);
  if (a.so.n_ctx < 8) throw std::runtime_error("-c: a chat needs a context of at least 8 tokens");
  if (!a.have_seed) a.rp.sampling.seed = std::random_device{}();

  return true;
}

// The read-a-line loop: commands, or a turn per line, until /quit or end of input.
void chat_loop(Chat& chat, bool tty) {
  std::string line;
  while (true) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    g_at_prompt = 1;
    if (g_sigint) on_sigint(SIGINT);  // Ctrl-C after the last turn ended: quit
    const bool got = static_cast<bool>(std::getline(std::cin, line));
    g_at_prompt = 0;
    if (!got) {
      if (tty) std::fputc('\n', stdout);  // Ctrl-D: end the prompt line
      break;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      chat.reset();
      std::printf("/reset: new conversation\n");
      std::fflush(stdout);
      continue;
    }
    if (line == "/stats") {
      chat.stats();
      continue;
    }
    if (line[0] == '/') {
      std::fprintf(stderr, "unknown command '%s' (/reset, /stats, /quit)\n", line.c_str());
      continue;
    }
    if (auto bad = check_utf8(line, "message")) {  // the C API's rule (request_checks.h)
      std::fprintf(stderr, "%s; it was not sent\n", bad->message.c_str());
      continue;
    }
    chat.turn(line);
  }
}

int run_chat(const std::vector<std::string>& args) {
  ChatArgs a;
  if (!parse_chat_args(args, a)) return 0;
  auto t_load = std::chrono::steady_clock::now();
  std::unique_ptr<Session> owned = open_session(a.model_path, a.so);
  Session& session = *owned;
  const Arch arch = session.model().model->config.arch;
  // (the Session warns on stderr when pinning was refused or narrowed)
  install_sigint_handler();
  const bool tty = isatty(0) != 0;
  if (a.verbose) print_cpu_setup(session.forward().pool(), a.so.cpus);
  if (a.verbose || tty) {
    std::fprintf(stderr,
                 "chat: %s (%s), template %s, context %lld, %d threads (%s), seed %llu, load "
                 "%.0f ms\n",
                 a.model_path.c_str(), arch_name(arch),
                 chat_family_name(session.chat_template()->family()),
                 static_cast<long long>(a.so.n_ctx), a.so.n_threads, isa_name(),
                 static_cast<unsigned long long>(a.rp.sampling.seed), since(t_load) * 1e3);
  }
  if (tty) std::fprintf(stderr, "type a message; /reset, /stats, /quit\n");

  Chat chat(session, a.system, a.rp, a.verbose, a.cache_file);
  chat_loop(chat, tty);
  return 0;
}

}  // namespace

HPL_COMMAND("chat", "interactive chat with the model's template (stdin/stdout)", run_chat);

}  // namespace hpl::cli
