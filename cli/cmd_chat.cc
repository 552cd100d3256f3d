// hpl chat -m MODEL [options]: interactive chat on stdin/stdout with the model's chat template.
// The KV cache is kept across turns: each turn prefills only its own tokens (the user turn,
// formatted incrementally after the conversation so far, plus the last reply token that was
// sampled but never evaluated). When a turn would not fit, it says so and restarts the
// conversation with the last 3 exchanges carried forward (re-prefilled). Reads lines until EOF,
// so it works without a terminal; /reset, /stats, /quit.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/memory_report.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "kernel/isa.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hpl::cli {
namespace {

constexpr int kCarryExchanges = 3;  // exchanges kept when the context is full

void usage() {
  std::fprintf(
      stderr,
      "usage: hpl chat -m MODEL.gguf [options]   (then type; one line is one turn)\n"
      "  -c N                 context size in tokens (default 2048)\n"
      "  -n N                 reply token limit (default -1: until end of turn)\n"
      "%s"
      "  --system TEXT        system message\n"
      "  --template NAME      chat format (gemma, chatml, llama2, llama3, command-r,\n"
      "                       zephyr); default: from tokenizer.chat_template, the vocab's\n"
      "                       special tokens, or the architecture (gemma3 -> gemma)\n"
      "  --verbose            per turn: tokens prefilled, cache reused, tok/s (stderr)\n"
      "commands: /reset (new conversation), /stats, /quit (or end of input)\n",
      kSamplerUsage);
  std::fprintf(stderr, "%s", kThreadUsage);
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double rate(double n, double s) {
  return s > 0 ? n / s : 0.0;
}

ChatTemplate choose_template(const Vocab& vocab, Arch arch, const std::string& name) {
  if (!name.empty() || detect_chat_family(vocab) != ChatFamily::UNKNOWN)
    return ChatTemplate::for_vocab(vocab, name);
  // No template in the file and no telling special tokens: go by architecture.
  if (arch == Arch::kGemma3) return ChatTemplate::for_vocab(vocab, "gemma");
  if (arch == Arch::kQwen2) return ChatTemplate::for_vocab(vocab, "chatml");
  throw std::runtime_error(std::string("the model (") + arch_name(arch) +
                           ") has no chat template; name one with --template (gemma, chatml, "
                           "llama2, llama3, command-r, zephyr)");
}

class Chat {
 public:
  Chat(Forward& fwd, const Tokenizer& tok, ChatTemplate tmpl, std::string system, GenerateParams gp,
       bool verbose)
      : fwd_(fwd),
        tok_(tok),
        tmpl_(std::move(tmpl)),
        system_(std::move(system)),
        gp_(std::move(gp)),
        verbose_(verbose) {
    gp_.stop.push_back(tmpl_.end_of_turn());
  }

  void reset() {
    fwd_.reset();
    conv_.clear();
    history_.clear();
    closed_ = false;
  }

  // One user turn: prefill, stream the reply to stdout.
  void turn(const std::string& user) {
    // Room kept for the reply when deciding whether a turn fits.
    const int64_t n_ctx = fwd_.n_ctx();
    const int64_t reserve = std::min<int64_t>(gp_.n_predict > 0 ? gp_.n_predict : 64, n_ctx / 4);
    std::vector<int32_t> fresh;  // tokens this turn evaluates
    if (conv_.empty()) {
      fresh = encode_conversation(history_.size(), user);
    } else {
      fresh.assign(conv_.begin() + fwd_.n_past(), conv_.end());
      const std::string text = tmpl_.append_user_turn({"user", user}, closed_);
      const std::vector<int32_t> t = tok_.encode(text, false, true);
      fresh.insert(fresh.end(), t.begin(), t.end());
    }
    const bool restart =
        !conv_.empty() && fwd_.n_past() + static_cast<int64_t>(fresh.size()) + reserve > n_ctx;
    size_t keep = 0;
    if (restart) {
      std::fprintf(stderr,
                   "context full: need %lld tokens (%lld in the context + %zu for this turn + "
                   "%lld kept for the reply), have %lld\n",
                   static_cast<long long>(fwd_.n_past() + fresh.size() + reserve),
                   static_cast<long long>(fwd_.n_past()), fresh.size(),
                   static_cast<long long>(reserve), static_cast<long long>(n_ctx));
      // Restart with the last exchanges that fit (3, else fewer) carried forward.
      keep = std::min<size_t>(kCarryExchanges, history_.size());
      while (true) {
        fresh = encode_conversation(keep, user);
        if (static_cast<int64_t>(fresh.size()) + reserve <= n_ctx || keep == 0) break;
        --keep;
      }
    }
    // A turn that leaves no room for even one reply token is refused (the conversation stays).
    if (static_cast<int64_t>(fresh.size()) > n_ctx - 1) {
      std::fprintf(stderr,
                   "this message is too long: it needs %zu tokens, the context has %lld (use -c); "
                   "it was not sent\n",
                   fresh.size(), static_cast<long long>(n_ctx));
      return;
    }
    if (restart) {
      std::fprintf(stderr,
                   "restarting the conversation with the last %zu exchange%s carried forward "
                   "(%zu tokens to prefill)\n",
                   keep, keep == 1 ? "" : "s", fresh.size());
      history_.erase(history_.begin(), history_.end() - static_cast<std::ptrdiff_t>(keep));
      fwd_.reset();
      conv_.clear();
      ++restarts_;
    }

    const int64_t reused = fwd_.n_past();
    const GenerateResult r = generate(fwd_, tok_, fresh, gp_, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::fputc('\n', stdout);
    std::fflush(stdout);

    conv_.resize(static_cast<size_t>(reused));  // fresh repeats the pending tokens after it
    conv_.insert(conv_.end(), fresh.begin(), fresh.end());
    conv_.insert(conv_.end(), r.tokens.begin(), r.tokens.end());
    // The end-of-turn text was generated (as a stop string): the reply's turn is closed.
    // After an end-of-generation token (sampled, not kept), the next turn writes it out.
    closed_ = r.reason == StopReason::kStopString;
    history_.push_back({user, r.text});
    ++turns_;
    last_ = r;
    if (r.reason == StopReason::kContextFull) {
      std::fprintf(stderr, "context full: the reply reached the context size (%lld tokens)\n",
                   static_cast<long long>(n_ctx));
    }
    if (verbose_) {
      std::fprintf(
          stderr,
          "[turn %lld] prefill %lld tokens (cache reused: %lld tokens) %.1f tok/s; "
          "decode %lld tokens %.1f tok/s; context %lld/%lld; stop: %s\n",
          static_cast<long long>(turns_), static_cast<long long>(r.n_prompt),
          static_cast<long long>(reused), rate(static_cast<double>(r.n_prompt), r.prompt_s),
          static_cast<long long>(r.n_decode), rate(static_cast<double>(r.n_decode), r.decode_s),
          static_cast<long long>(fwd_.n_past()), static_cast<long long>(n_ctx),
          stop_reason_name(r.reason));
    }
  }

  void stats() const {
    std::printf(
        "/stats: context %lld tokens in the cache (+%lld pending) of %lld; %zu exchanges, "
        "%lld turns, %lld restarts\n",
        static_cast<long long>(fwd_.n_past()),
        static_cast<long long>(conv_.size() - static_cast<size_t>(fwd_.n_past())),
        static_cast<long long>(fwd_.n_ctx()), history_.size(), static_cast<long long>(turns_),
        static_cast<long long>(restarts_));
    std::printf("/stats: last prefill %lld tokens %.2f tok/s; last decode %lld tokens %.2f tok/s\n",
                static_cast<long long>(last_.n_prompt),
                rate(static_cast<double>(last_.n_prompt), last_.prompt_s),
                static_cast<long long>(last_.n_decode),
                rate(static_cast<double>(last_.n_decode), last_.decode_s));
    std::fputs(format_memory_report(memory_report(fwd_.model(), fwd_)).c_str(), stdout);
    std::fflush(stdout);
  }

 private:
  // The system message, the last `keep` exchanges and the user message, formatted from the
  // start (BOS included) with the assistant's turn opened.
  std::vector<int32_t> encode_conversation(size_t keep, const std::string& user) const {
    std::vector<ChatMessage> msgs;
    if (!system_.empty()) msgs.push_back({"system", system_});
    for (size_t i = history_.size() - keep; i < history_.size(); ++i) {
      msgs.push_back({"user", history_[i].first});
      msgs.push_back({"assistant", history_[i].second});
    }
    msgs.push_back({"user", user});
    return tok_.encode(tmpl_.format(msgs, true), true, true);
  }

  Forward& fwd_;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  std::string system_;
  GenerateParams gp_;
  bool verbose_;
  std::vector<int32_t> conv_;  // the conversation's tokens; the first n_past() are cached
  std::vector<std::pair<std::string, std::string>> history_;  // (user, reply)
  bool closed_ = false;  // the last reply's end-of-turn marker is already in conv_
  int64_t turns_ = 0, restarts_ = 0;
  GenerateResult last_;
};

int run_chat(const std::vector<std::string>& args) {
  std::string model_path, system, template_name;
  bool verbose = false, have_seed = false;
  GenerateParams gp;
  gp.n_predict = -1;
  ForwardOptions fo;
  ThreadOptions th;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (parse_sampler_option(args, i, gp.sampling, have_seed)) continue;
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "-m" || a == "--model") {
      model_path = value();
    } else if (a == "-c" || a == "--ctx-size") {
      fo.n_ctx = to_int(a, value());
    } else if (th.parse(args, i)) {  // -t, --cpus, --cpu-mask
    } else if (a == "-n" || a == "--n-predict") {
      gp.n_predict = parse_token_limit(a, value());
    } else if (a == "--system") {
      system = value();
    } else if (a == "--template" || a == "--chat-template") {
      template_name = value();
    } else if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else {
      usage_error(usage, "unknown option '" + a + "'");
    }
  }
  if (model_path.empty()) usage_error(usage, "-m MODEL is required");
  th.apply(fo);
  check_ctx_threads(fo.n_ctx, fo.n_threads);
  require_utf8(system, "--system");
  if (fo.n_ctx < 8) throw std::runtime_error("-c: a chat needs a context of at least 8 tokens");
  if (!have_seed) gp.sampling.seed = std::random_device{}();

  auto t_load = std::chrono::steady_clock::now();
  auto model = Model::load(model_path);
  auto tok = load_tokenizer(*model->file);
  ChatTemplate tmpl = choose_template(tok->vocab(), model->config.arch, template_name);
  Forward fwd(*model, fo);
  warn_if_not_pinned(fwd.pool());
  const bool tty = isatty(0) != 0;
  if (verbose) print_cpu_setup(fwd.pool(), fo.cpus);
  if (verbose || tty) {
    std::fprintf(stderr,
                 "chat: %s (%s), template %s, context %lld, %d threads (%s), seed %llu, load "
                 "%.0f ms\n",
                 model_path.c_str(), arch_name(model->config.arch), chat_family_name(tmpl.family()),
                 static_cast<long long>(fo.n_ctx), fo.n_threads, isa_name(),
                 static_cast<unsigned long long>(gp.sampling.seed), since(t_load) * 1e3);
  }
  if (tty) std::fprintf(stderr, "type a message; /reset, /stats, /quit\n");

  Chat chat(fwd, *tok, std::move(tmpl), system, gp, verbose);
  std::string line;
  while (true) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
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
  return 0;
}

}  // namespace

HPL_COMMAND("chat", "interactive chat with the model's template (stdin/stdout)", run_chat);

}  // namespace hpl::cli
