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

int run_perplexity(const std::vector<std::string>& args) {
  std::string model_path, text_path;
  ForwardOptions fo;
  fo.n_ctx = 512;
  ThreadOptions th;
  int64_t max_chunks = 0;
  Options o("usage: hpl perplexity -m MODEL.gguf -f TEXT [options]");
  o.text({"-m", "--model"}, "MODEL", "the GGUF model", model_path)
      .text({"-f", "--file"}, "TEXT", "the text to score", text_path)
      .number({"-c", "--ctx-size"}, "N", "chunk size = context in tokens (default 512)", fo.n_ctx)
      .number({"--chunks"}, "N", "score at most N chunks (default: all complete chunks)",
              max_chunks)
      .number({"--ubatch", "-ub"}, "N", "prefill micro-batch in tokens (default 256)", fo.n_ubatch);
  add_cache_type_option(o, fo.cache_type);
  th.add_to(o);
  o.note("Each chunk is evaluated from an empty context (first token -> BOS when the")
      .note("vocab adds one) and its second half is scored, as llama.cpp's perplexity does.");
  if (!o.parse(args)) return 0;
  if (model_path.empty() || text_path.empty()) o.fail("-m MODEL and -f TEXT are required");
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
