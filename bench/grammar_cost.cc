// Cost of grammar-constrained sampling against a decode step, on one model and one schema:
//   grammar_cost MODEL (SCHEMA.json | --json) [STEPS=64] [THREADS=2] [--dump-gbnf FILE]
// Greedy decoding under the constraint; every step times the mask computation (the trie walk
// plus setting the disallowed logits to -inf) and the single-token forward pass, one after
// the other, so both see the same machine load. Prints medians and p10/p90 of each and the
// ratio of the medians. --dump-gbnf writes the compiled grammar's GBNF (to feed llama.cpp the
// same grammar: bench/grammar_cost_llamacpp.sh).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/grammar_constraint.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "grammar/json_schema.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> pos;
    std::string dump;
    for (int i = 1; i < argc; ++i) {
      if (std::string(argv[i]) == "--dump-gbnf" && i + 1 < argc) {
        dump = argv[++i];
      } else {
        pos.push_back(argv[i]);
      }
    }
    if (pos.size() < 2) {
      std::fprintf(stderr,
                   "usage: grammar_cost MODEL (SCHEMA.json | --json) [STEPS] [THREADS] "
                   "[--dump-gbnf FILE]\n");
      return 2;
    }
    const int steps = pos.size() > 2 ? std::atoi(pos[2].c_str()) : 64;
    const int threads = pos.size() > 3 ? std::atoi(pos[3].c_str()) : 2;
    std::string gbnf;
    if (pos[1] == "--json") {
      gbnf = hpl::grammar::json_any_gbnf(true);
    } else {
      std::ifstream in(pos[1]);
      std::stringstream ss;
      ss << in.rdbuf();
      if (!in) throw std::runtime_error("cannot read " + pos[1]);
      gbnf = hpl::grammar::json_schema_to_gbnf(ss.str());
    }
    if (!dump.empty()) std::ofstream(dump) << gbnf;
    hpl::OutputFormat fmt;
    fmt.grammar = gbnf;

    auto model = hpl::Model::load(pos[0]);
    auto tok = hpl::load_tokenizer(*model->file);
    hpl::ForwardOptions fo;
    fo.n_ctx = 1024;
    fo.n_threads = threads;
    hpl::Forward fwd(*model, fo);
    const auto t0 = Clock::now();
    const auto trie = hpl::build_vocab_trie(*tok);
    const auto t1 = Clock::now();
    hpl::GrammarConstraint gc(hpl::compile_output_format(fmt), trie, *tok);
    const auto t2 = Clock::now();
    std::printf(
        "vocab %d tokens: trie %zu nodes, %.1f MiB, built in %.0f ms; grammar compiled in %.1f "
        "ms\n",
        tok->n_vocab(), trie->n_nodes(), trie->memory_bytes() / 1048576.0, ms(t0, t1), ms(t1, t2));

    std::vector<int32_t> ids = tok->encode("Write a JSON record for a person:\n", true, false);
    std::vector<float> logits(static_cast<size_t>(fwd.n_vocab())), masked;
    fwd.eval(ids.data(), static_cast<int64_t>(ids.size()), logits.data());
    std::vector<double> mask_ms, decode_ms;
    std::string out;
    for (int s = 0; s < steps; ++s) {
      masked = logits;
      const auto a = Clock::now();
      gc.mask(masked.data());
      const auto b = Clock::now();
      mask_ms.push_back(ms(a, b));
      const int32_t id =
          static_cast<int32_t>(std::max_element(masked.begin(), masked.end()) - masked.begin());
      gc.accept(id);
      if (std::getenv("GRAMMAR_COST_TRACE"))
        std::fprintf(stderr, "%8.3f ms  %s\n", mask_ms.back(), tok->token_to_piece(id).c_str());
      if (tok->is_eog(id)) break;
      out += tok->token_to_piece(id);
      const auto c = Clock::now();
      fwd.eval(&id, 1, logits.data());
      decode_ms.push_back(ms(c, Clock::now()));
    }
    const double mm = quantile(mask_ms, 0.5), dm = quantile(decode_ms, 0.5);
    std::printf("output (%zu masks, %s): %s\n", mask_ms.size(),
                gc.complete() ? "complete" : "incomplete", out.c_str());
    std::printf("mask   ms: median %.3f  p10 %.3f  p90 %.3f  max %.3f\n", mm,
                quantile(mask_ms, 0.1), quantile(mask_ms, 0.9), quantile(mask_ms, 1.0));
    std::printf("decode ms: median %.3f  p10 %.3f  p90 %.3f (%d threads)\n", dm,
                quantile(decode_ms, 0.1), quantile(decode_ms, 0.9), threads);
    std::printf("mask / decode (medians): %.1f%%\n", dm > 0 ? 100.0 * mm / dm : 0.0);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grammar_cost: %s\n", e.what());
    return 1;
  }
}
