// hpl profile -m MODEL [-p N_PROMPT] [-n N_GEN] [-t THREADS] [--json]: wall time per op kind
// (matmul by tensor role, attention, norms, rope, activations, activation quantization, KV
// store, adds, embedding, sampling, other) for one prefill of N_PROMPT tokens and for a decode
// token (mean over N_GEN), with percentages, sorted. "other" is the wall time no hook covered
// (thread-pool dispatch between ops, logits copies, loop overhead). See engine/profiler.h for
// how parallel sections are attributed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/json_writer.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/profiler.h"
#include "engine/sampler.h"
#include "engine/vocab_loader.h"
#include "kernel/isa.h"

namespace hpl::cli {
namespace {

void usage() {
  std::fprintf(stderr,
               "usage: hpl profile -m MODEL.gguf [options]\n"
               "  -p N        prompt tokens of the profiled prefill (default 128)\n"
               "  -n N        decode tokens to average over (default 32)\n"
               "  --ubatch N  prefill micro-batch in tokens (default 256)\n"
               "  --json      one JSON object on stdout instead of tables\n");
  std::fprintf(stderr, "%s", kThreadUsage);
}

using clock_type = std::chrono::steady_clock;

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

struct Phase {
  const char* name;
  int64_t n_tokens;  // tokens evaluated
  double per;        // divisor for "per token" figures (1 for prefill, N_GEN for decode)
  double wall_s;     // total wall time
  std::vector<std::pair<ProfOp, double>> ops;  // seconds, sorted descending, sum = wall_s
};

Phase make_phase(const char* name, int64_t n_tokens, double per, double wall_s, Profiler& prof) {
  // What no hook covered; never negative (timer granularity).
  prof.add(ProfOp::kOther, std::max(0.0, wall_s - prof.total()));
  Phase ph{name, n_tokens, per, prof.total(), {}};
  for (int i = 0; i < kProfOpCount; ++i) {
    const auto op = static_cast<ProfOp>(i);
    if (prof.seconds(op) > 0) ph.ops.push_back({op, prof.seconds(op)});
  }
  std::sort(ph.ops.begin(), ph.ops.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  return ph;
}

void print_phase(const Phase& ph, const char* unit) {
  std::printf("\n%s: %lld tokens, %.3f ms %s (%.2f tok/s)\n", ph.name,
              static_cast<long long>(ph.n_tokens), ph.wall_s / ph.per * 1e3, unit,
              ph.wall_s > 0 ? static_cast<double>(ph.n_tokens) / ph.wall_s : 0.0);
  std::printf("  %-14s %10s %7s\n", "op", "ms", "%");
  for (const auto& [op, s] : ph.ops) {
    const std::string label =
        prof_op_is_matmul(op) ? std::string("mm ") + prof_op_name(op) : prof_op_name(op);
    std::printf("  %-14s %10.3f %6.2f%%\n", label.c_str(), s / ph.per * 1e3, 100.0 * s / ph.wall_s);
  }
}

void json_phase(JsonWriter& j, const Phase& ph) {
  j.key(ph.name).begin_object();
  j.key("n_tokens").num(ph.n_tokens);
  j.key(ph.per > 1 ? "ms_per_token" : "ms").num(ph.wall_s / ph.per * 1e3, 9);
  j.key("tokens_per_s").num(ph.wall_s > 0 ? static_cast<double>(ph.n_tokens) / ph.wall_s : 0.0, 9);
  j.key("ops").begin_array();
  for (const auto& [op, s] : ph.ops) {
    j.begin_object();
    j.key("op").str(prof_op_name(op));
    j.key("kind").str(prof_op_is_matmul(op) ? "matmul" : prof_op_name(op));
    j.key("ms").num(s / ph.per * 1e3, 9);
    j.key("pct").num(100.0 * s / ph.wall_s, 9);
    j.end_object();
  }
  j.end_array();
  j.end_object();
}

// The two phases as one JSON object on stdout, or as tables.
void report(const std::string& model_path, const Model& model, int n_threads, int64_t n_prompt,
            int64_t n_gen, const Phase& prefill, const Phase& decode, bool json) {
  if (json) {
    JsonWriter j;
    j.begin_object();
    j.key("model").str(model_path);
    j.key("arch").str(arch_name(model.config.arch));
    j.key("n_threads").num(n_threads);
    j.key("isa").str(isa_name());
    j.key("n_prompt").num(n_prompt);
    j.key("n_gen").num(n_gen);
    json_phase(j, prefill);
    json_phase(j, decode);
    j.end_object();
    std::printf("%s\n", j.text().c_str());
  } else {
    std::printf("profile: %s (%s), %d threads (%s)\n", model_path.c_str(),
                arch_name(model.config.arch), n_threads, isa_name());
    print_phase(prefill, "total");
    print_phase(decode, "per token");
  }
}

int run_profile(const std::vector<std::string>& args) {
  std::string model_path;
  int64_t n_prompt = 128, n_gen = 32;
  bool json = false;
  ForwardOptions fo;
  ThreadOptions th;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "-m" || a == "--model") {
      model_path = value();
    } else if (a == "-p" || a == "--n-prompt") {
      n_prompt = to_int(a, value());
    } else if (a == "-n" || a == "--n-gen") {
      n_gen = to_int(a, value());
    } else if (th.parse(args, i)) {  // -t, --cpus, --cpu-mask
    } else if (a == "--ubatch" || a == "-ub") {
      fo.n_ubatch = to_int(a, value());
    } else if (a == "--json") {
      json = true;
    } else {
      usage_error(usage, "unknown option '" + a + "'");
    }
  }
  if (model_path.empty()) usage_error(usage, "-m MODEL is required");
  if (n_prompt < 1 || n_prompt > (int64_t{1} << 20)) throw std::runtime_error("-p: must be >= 1");
  if (n_gen < 1 || n_gen > (int64_t{1} << 20)) throw std::runtime_error("-n: must be >= 1");
  if (fo.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  fo.n_ctx = n_prompt + n_gen;
  th.apply(fo);
  check_ctx_threads(fo.n_ctx, fo.n_threads);

  auto model = Model::load(model_path);
  auto tok = load_tokenizer(*model->file);
  Forward fwd(*model, fo);
  warn_if_not_pinned(fwd.pool());
  const int64_t n_vocab = fwd.n_vocab();
  // A fixed pseudo-text: BOS, then ids spread over the vocabulary (timing does not depend on
  // which tokens they are).
  std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
  for (int64_t i = 0; i < n_prompt; ++i)
    prompt[i] = static_cast<int32_t>((i * 7919 + 13) % n_vocab);
  if (tok->bos() >= 0 && tok->bos() < n_vocab) prompt[0] = tok->bos();
  SamplerParams sp;
  sp.seed = 1;
  Sampler sampler(sp, n_vocab);
  auto discard = [](std::string_view) {};

  // Warm-up (pages the weights in, spins the pool up), not profiled.
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  fwd.eval(prompt.data(), std::min<int64_t>(n_prompt, 16), logits.data());
  fwd.reset();

  // Both phases through the generation loop: the prompt and the first sampled token, then
  // N_GEN tokens continuing from it (end-of-generation ignored, so the count is exact).
  GenerateParams gp;
  gp.ignore_eog = true;
  gp.max_tokens = 1;
  Profiler pp;
  fwd.set_profiler(&pp);
  auto t0 = clock_type::now();
  const GenerateResult first = generate(fwd, *tok, sampler, prompt, gp, discard);
  const Phase prefill = make_phase("prefill", n_prompt, 1.0, since(t0), pp);

  Profiler dp;
  fwd.set_profiler(&dp);
  gp.max_tokens = static_cast<int32_t>(n_gen);
  t0 = clock_type::now();
  const GenerateResult rest = generate(fwd, *tok, sampler, first.tokens, gp, discard);
  const Phase decode = make_phase("decode", rest.stats.prompt_tokens + rest.stats.decode_evals,
                                  static_cast<double>(n_gen), since(t0), dp);
  fwd.set_profiler(nullptr);

  report(model_path, *model, fo.n_threads, n_prompt, n_gen, prefill, decode, json);
  return 0;
}

}  // namespace

HPL_COMMAND("profile", "time per op kind (matmul by role, attention, ...) for prefill and decode",
            run_profile);

}  // namespace hpl::cli
