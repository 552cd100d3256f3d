// hpl perplexity -m MODEL -f TEXT [-c CTX] [-t THREADS] [--chunks N]: perplexity of the model
// on a text over non-overlapping chunks of CTX tokens, scoring the second half of each chunk
// (llama.cpp's method; see engine/perplexity.h). Running estimate per chunk, then the final
// PPL +/- its standard error, on stdout.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "kernel/isa.h"
#include "tokenizer/tokenizer.h"
#include "tools/perplexity.h"

namespace hpl::cli {
namespace {

void usage() {
  std::fprintf(stderr,
               "usage: hpl perplexity -m MODEL.gguf -f TEXT [options]\n"
               "  -c N          chunk size = context in tokens (default 512)\n"
               "  --chunks N    score at most N chunks (default: all complete chunks)\n"
               "  --ubatch N    prefill micro-batch in tokens (default 256)\n"
               "  --cache-type T  KV cache type: f16 (default), f32, q8_0, q4_0\n"
               "Each chunk is evaluated from an empty context (first token -> BOS when the\n"
               "vocab adds one) and its second half is scored, as llama.cpp's perplexity does.\n");
  std::fprintf(stderr, "%s", kThreadUsage);
}

int run_perplexity(const std::vector<std::string>& args) {
  std::string model_path, text_path;
  ForwardOptions fo;
  fo.n_ctx = 512;
  ThreadOptions th;
  int64_t max_chunks = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "-m" || a == "--model") {
      model_path = value();
    } else if (a == "-f" || a == "--file") {
      text_path = value();
    } else if (a == "-c" || a == "--ctx-size") {
      fo.n_ctx = to_int(a, value());
    } else if (th.parse(args, i)) {  // -t, --cpus, --cpu-mask
    } else if (a == "--chunks") {
      max_chunks = to_int(a, value());
    } else if (a == "--ubatch" || a == "-ub") {
      fo.n_ubatch = to_int(a, value());
    } else if (a == "--cache-type") {
      fo.cache_type = cache_type_value(a, value());
    } else {
      usage_error(usage, "unknown option '" + a + "'");
    }
  }
  if (model_path.empty() || text_path.empty())
    usage_error(usage, "-m MODEL and -f TEXT are required");
  th.apply(fo);
  check_ctx_threads(fo.n_ctx, fo.n_threads);
  if (fo.n_ctx < 4) throw std::runtime_error("-c: a chunk needs at least 4 tokens");
  if (fo.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  if (max_chunks < 0) throw std::runtime_error("--chunks: must be >= 0");

  const std::string text = read_text_file(text_path);
  if (text.empty()) throw std::runtime_error(text_path + ": the text file is empty");
  auto model = Model::load(model_path);
  auto tok = load_tokenizer(*model->file);
  Forward fwd(*model, fo);
  warn_if_not_pinned(fwd.pool());
  const std::vector<int32_t> ids = tok->encode(text, /*add_special=*/true, false);
  const int32_t bos = tok->add_bos() ? tok->bos() : -1;
  const int64_t n_ctx = fo.n_ctx;
  const int64_t avail = static_cast<int64_t>(ids.size()) / n_ctx;
  const int64_t n_chunks = max_chunks > 0 ? std::min(avail, max_chunks) : avail;
  std::printf(
      "perplexity: %s, %zu tokens, %lld chunks of %lld (scoring positions %lld..%lld of "
      "each), %d threads (%s)\n",
      text_path.c_str(), ids.size(), static_cast<long long>(n_chunks),
      static_cast<long long>(n_ctx), static_cast<long long>(perplexity_first_scored(n_ctx)),
      static_cast<long long>(n_ctx - 1), fo.n_threads, isa_name());
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  const PerplexityResult r =
      perplexity(fwd, ids, n_ctx, max_chunks, bos, [](const PerplexityChunk& c) {
        std::printf("[%lld] %.4f  (%.1f s)\n", static_cast<long long>(c.index + 1), c.ppl_running,
                    c.seconds);
        std::fflush(stdout);
      });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("scored %lld tokens, mean NLL %.6f nats, in %.1f s (%.1f tok/s)\n",
              static_cast<long long>(r.n_scored), r.mean_nll, s,
              s > 0 ? static_cast<double>(r.chunks.size() * n_ctx) / s : 0.0);
  std::printf("Final estimate: PPL = %.4f +/- %.4f\n", r.ppl, r.ppl_stderr);
  return 0;
}

}  // namespace

HPL_COMMAND("perplexity", "perplexity of a text over non-overlapping chunks", run_perplexity);

}  // namespace hpl::cli
