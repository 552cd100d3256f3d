// Many constrained generations from one loaded model, for tests/python/test_grammar.py:
//   grammar_generate MODEL (--json-schema FILE | --grammar-file FILE | --json) N MAX_TOKENS SEED0
// Generation i samples with seed SEED0 + i (temperature 1, no top-k/top-p/min-p, so the mask
// alone decides what can come) from a short prompt, and prints one line per generation:
//   <finish reason> <the output, JSON-quoted>
// Errors go to stderr with exit code 1.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/grammar_constraint.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "grammar/json_value.h"

namespace {

std::string read_file(const char* path) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) throw std::runtime_error(std::string("cannot read ") + path);
  std::string s;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  std::fclose(f);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc != 7 && !(argc == 6 && std::string(argv[2]) == "--json"))
      throw std::runtime_error(
          "usage: grammar_generate MODEL (--json-schema F | --grammar-file F | --json) N MAX "
          "SEED0");
    const std::string mode = argv[2];
    const int a = mode == "--json" ? 3 : 4;
    hpl::OutputFormat fmt;
    if (mode == "--json") {
      fmt.json = true;
    } else if (mode == "--json-schema") {
      fmt.json_schema = read_file(argv[3]);
    } else if (mode == "--grammar-file") {
      fmt.grammar = read_file(argv[3]);
    } else {
      throw std::runtime_error("unknown mode " + mode);
    }
    const int n = std::atoi(argv[a]);
    const int max_tokens = std::atoi(argv[a + 1]);
    const uint64_t seed0 = std::strtoull(argv[a + 2], nullptr, 10);

    auto model = hpl::Model::load(argv[1]);
    auto tok = hpl::load_tokenizer(*model->file);
    hpl::ForwardOptions fo;
    fo.n_ctx = 512;
    fo.n_threads = 1;
    hpl::Forward fwd(*model, fo);
    const auto grammar = hpl::compile_output_format(fmt);
    const auto trie = hpl::build_vocab_trie(*tok);
    const std::vector<int32_t> prompt = tok->encode("Once upon a time", true, false);
    for (int i = 0; i < n; ++i) {
      hpl::SamplerParams sp;
      sp.temp = 1.0f;
      sp.top_k = 0;
      sp.top_p = 1.0f;
      sp.min_p = 0.0f;
      sp.seed = seed0 + static_cast<uint64_t>(i);
      hpl::Sampler sampler(sp, fwd.n_vocab());
      hpl::GrammarConstraint gc(grammar, trie, *tok);
      sampler.set_constraint(&gc);
      hpl::GenerateParams gp;
      gp.max_tokens = max_tokens;
      fwd.reset();
      const hpl::GenerateResult r = hpl::generate(fwd, *tok, sampler, prompt, gp, [](auto) {});
      std::printf("%s %s\n", hpl::finish_reason_name(r.finish),
                  hpl::grammar::json_quote(r.text).c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grammar_generate: %s\n", e.what());
    return 1;
  }
}
