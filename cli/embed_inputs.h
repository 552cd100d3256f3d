// Shared by hpl embed and hpl rerank: the model and Embedder options, and texts read from a
// file one per line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/options.h"
#include "engine/embedding.h"
#include "engine/memory_report.h"

namespace hpl::cli {

// hpl embed / rerank defaults (and hpl info --memory's for embedding and rerank models): the
// longest text is the model's context up to kEmbedMaxCtx, batches of kEmbedUbatch tokens.
constexpr int64_t kEmbedMaxCtx = 8192, kEmbedUbatch = 512;

struct EmbedModelOptions {
  std::string model;
  int64_t n_ctx = 0;  // 0: the model's context_length, at most 8192
  bool truncate = false;
  bool verbose = false;
  ThreadOptions threads;

  void add_to(Options& o) {
    o.text({"-m", "--model"}, "MODEL", "the GGUF model", model)
        .number({"-c", "--ctx-size"}, "N",
                "longest text in tokens (default: the model's context, at most 8192)", n_ctx)
        .flag({"--truncate"},
              "cut texts longer than the context (default: refuse them, naming the limit)",
              truncate)
        .flag({"--verbose"},
              "print the memory used (weights, KV cache, scratch: as `hpl info --memory`) to "
              "stderr",
              verbose);
    threads.add_to(o);
  }
  ForwardOptions forward_options(const Model& m) const {
    ForwardOptions fo;
    fo.n_ctx = n_ctx > 0 ? n_ctx : std::min<int64_t>(m.config.n_ctx_train, kEmbedMaxCtx);
    fo.n_ubatch = kEmbedUbatch;
    threads.apply(fo);
    check_ctx_threads(fo.n_ctx, fo.n_threads);
    return fo;
  }
  // --verbose: the memory report once the model has run.
  void report(const Model& m, const Embedder& e) const {
    if (verbose) std::fputs(format_memory_report(memory_report(m, e)).c_str(), stderr);
  }
};

// The lines of a text file, one text each; a final newline does not make an extra text, an
// empty line in between is an error naming it (an empty text has nothing to embed).
inline std::vector<std::string> read_lines(const std::string& path) {
  const std::string all = read_text_file(path);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::string line = all.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      throw std::runtime_error(path + ": line " + std::to_string(out.size() + 1) +
                               " is empty (one text per line; empty texts have nothing to embed)");
    }
    require_utf8(line, path + " line " + std::to_string(out.size() + 1));
    out.push_back(std::move(line));
    start = end + 1;
  }
  if (out.empty()) throw std::runtime_error(path + ": no texts (the file is empty)");
  return out;
}

}  // namespace hpl::cli
