// hpl run -m MODEL -p PROMPT [options]: generates a continuation (or, with --chat/--system, a
// chat reply) and streams it to stdout as it is produced; logs and timings go to stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
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

void usage() {
  std::fprintf(
      stderr,
      "usage: hpl run -m MODEL.gguf (-p PROMPT | -f FILE | --ids \"1 2 3\") [options]\n"
      "  -n N                 tokens to generate (default 128; -1: until end of generation)\n"
      "  -c N                 context size in tokens (default 2048, at most the model's)\n"
      "%s"
      "  (sampling ranges and UTF-8 text are checked like the C API's and the server's)\n"
      "  --stop TEXT          stop when TEXT is generated (repeatable; not printed)\n"
      "  --chat               format the prompt as a user turn with the model's chat template\n"
      "  --system TEXT        system message (implies --chat)\n"
      "  --chat-template NAME override the template family (gemma, chatml, llama2, llama3, ...)\n"
      "  --ubatch N           prefill micro-batch in tokens (default 256)\n"
      "  --verbose            model info, load time, prompt and decode tok/s, memory\n",
      kSamplerUsage);
  std::fprintf(stderr, "%s", kThreadUsage);
}

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::istringstream in(s);
  std::string tok;
  while (in >> tok) {
    char* end = nullptr;
    long v = std::strtol(tok.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX)
      throw std::runtime_error("--ids: bad id '" + tok + "'");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw std::runtime_error("--ids: no token ids given");
  return ids;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_run(const std::vector<std::string>& args) {
  std::string model_path, prompt, prompt_file, ids_text, system, template_name;
  std::string dump_logits, dump_ids;
  bool have_prompt = false, have_ids = false, chat = false, verbose = false;
  GenerateParams gp;
  ForwardOptions fo;
  ThreadOptions th;
  bool have_seed = false, have_ctx = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (parse_sampler_option(args, i, gp.sampling, have_seed)) continue;
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "-m" || a == "--model") {
      model_path = value();
    } else if (a == "-p" || a == "--prompt") {
      prompt = value();
      have_prompt = true;
    } else if (a == "-f" || a == "--file") {
      prompt_file = value();
    } else if (a == "--ids") {
      ids_text = value();
      have_ids = true;
    } else if (a == "-n" || a == "--n-predict") {
      gp.n_predict = parse_token_limit(a, value());
    } else if (a == "-c" || a == "--ctx-size") {
      fo.n_ctx = to_int(a, value());
      have_ctx = true;
    } else if (th.parse(args, i)) {  // -t, --cpus, --cpu-mask
    } else if (a == "--ubatch" || a == "-ub") {
      fo.n_ubatch = to_int(a, value());
    } else if (a == "--stop") {
      gp.stop.push_back(value());
    } else if (a == "--chat") {
      chat = true;
    } else if (a == "--system") {
      system = value();
      chat = true;
    } else if (a == "--chat-template") {
      template_name = value();
      chat = true;
    } else if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (a == "--dump-logits") {  // hidden, for tests: f32 (n_prompt, n_vocab)
      dump_logits = value();
    } else if (a == "--dump-ids") {  // hidden, for tests: generated ids, space-separated
      dump_ids = value();
    } else {
      usage_error(usage, "unknown option '" + a + "'");
    }
  }
  if (model_path.empty()) usage_error(usage, "-m MODEL is required");
  if (!prompt_file.empty()) {
    prompt = read_text_file(prompt_file);
    have_prompt = true;
  }
  if (have_prompt == have_ids)
    usage_error(usage, "give exactly one of -p PROMPT, -f FILE or --ids");
  if (have_ids && chat) throw std::runtime_error("--ids cannot be combined with --chat/--system");
  require_utf8(prompt, prompt_file.empty() ? "prompt" : "prompt (" + prompt_file + ")");
  require_utf8(system, "--system");
  for (size_t i = 0; i < gp.stop.size(); ++i)
    require_utf8(gp.stop[i], "--stop value " + std::to_string(i + 1));
  th.apply(fo);
  check_ctx_threads(fo.n_ctx, fo.n_threads);
  if (fo.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  if (!have_seed) gp.sampling.seed = std::random_device{}();

  auto t_load = std::chrono::steady_clock::now();
  auto model = Model::load(model_path);
  auto tok = load_tokenizer(*model->file);
  if (!have_ctx && model->config.n_ctx_train > 0) {
    fo.n_ctx = std::min(fo.n_ctx, model->config.n_ctx_train);
  }
  Forward fwd(*model, fo);
  warn_if_not_pinned(fwd.pool());
  const double load_s = since(t_load);
  const ModelConfig& cfg = model->config;
  if (tok->n_vocab() != cfg.n_vocab && verbose) {
    std::fprintf(stderr, "warning: tokenizer has %d tokens, the model %lld\n", tok->n_vocab(),
                 static_cast<long long>(cfg.n_vocab));
  }

  for (const auto& w : model->weights.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (fo.n_ctx > cfg.n_ctx_train) {
    std::fprintf(stderr, "warning: context %lld exceeds the model's training context %lld\n",
                 static_cast<long long>(fo.n_ctx), static_cast<long long>(cfg.n_ctx_train));
  }

  std::vector<int32_t> ids;
  if (have_ids) {
    ids = parse_ids(ids_text);
  } else if (chat) {
    ChatTemplate tmpl = ChatTemplate::for_vocab(tok->vocab(), template_name);
    std::vector<ChatMessage> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    msgs.push_back({"user", prompt});
    ids = tok->encode(tmpl.format(msgs, true), true, true);
    gp.stop.push_back(tmpl.end_of_turn());
  } else {
    ids = tok->encode(prompt, true, true);
  }

  if (verbose) {
    print_cpu_setup(fwd.pool(), fo.cpus);
    std::fprintf(stderr,
                 "model: %s (%s, %lld layers, n_embd %lld, %lld heads / %lld kv, vocab %lld)\n"
                 "run: %d threads (%s), context %lld, ubatch %lld, seed %llu, %zu prompt tokens\n"
                 "load: %.0f ms\n",
                 model_path.c_str(), arch_name(cfg.arch), static_cast<long long>(cfg.n_layer),
                 static_cast<long long>(cfg.n_embd), static_cast<long long>(cfg.n_head),
                 static_cast<long long>(cfg.n_head_kv), static_cast<long long>(cfg.n_vocab),
                 fo.n_threads, isa_name(), static_cast<long long>(fo.n_ctx),
                 static_cast<long long>(fo.n_ubatch),
                 static_cast<unsigned long long>(gp.sampling.seed), ids.size(), load_s * 1e3);
    for (const auto& c : model->weights.converted)
      std::fprintf(stderr, "converted: %s\n", c.c_str());
  }

  if (!dump_logits.empty()) {
    check_prompt_fits(static_cast<int64_t>(ids.size()), 0, fwd.n_ctx());
    std::vector<float> all(ids.size() * static_cast<size_t>(cfg.n_vocab));
    fwd.eval(ids.data(), static_cast<int64_t>(ids.size()), all.data(), /*all_logits=*/true);
    FILE* f = std::fopen(dump_logits.c_str(), "wb");
    if (!f || std::fwrite(all.data(), sizeof(float), all.size(), f) != all.size()) {
      if (f) std::fclose(f);
      throw std::runtime_error("cannot write " + dump_logits);
    }
    std::fclose(f);
    fwd.reset();
  }

  GenerateResult r;
  if (gp.n_predict != 0 || dump_logits.empty()) {
    r = generate(fwd, *tok, ids, gp, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (!dump_ids.empty()) {
    std::ofstream out(dump_ids);
    for (size_t i = 0; i < r.tokens.size(); ++i) out << (i ? " " : "") << r.tokens[i];
    out << "\n";
    if (!out) throw std::runtime_error("cannot write " + dump_ids);
  }
  if (r.reason == StopReason::kContextFull) {
    std::fprintf(stderr, "note: stopped because the context (%lld tokens) is full; use -c\n",
                 static_cast<long long>(fwd.n_ctx()));
  }
  if (verbose) {
    auto rate = [](double n, double s) { return s > 0 ? n / s : 0.0; };
    std::fprintf(stderr,
                 "prompt: %lld tokens in %.1f ms (%.2f tok/s)\n"
                 "decode: %lld tokens in %.1f ms (%.2f tok/s), sampling %.1f ms\n"
                 "generated %zu tokens, stop: %s\n",
                 static_cast<long long>(r.n_prompt), r.prompt_s * 1e3,
                 rate(static_cast<double>(r.n_prompt), r.prompt_s),
                 static_cast<long long>(r.n_decode), r.decode_s * 1e3,
                 rate(static_cast<double>(r.n_decode), r.decode_s), r.sample_s * 1e3,
                 r.tokens.size(), stop_reason_name(r.reason));
    std::fputs(format_memory_report(memory_report(*model, fwd)).c_str(), stderr);
  }
  return 0;
}

}  // namespace

HPL_COMMAND("run", "generate text from a prompt (streams to stdout)", run_run);

}  // namespace hpl::cli
