// llama.cpp's grammar sampler on the same model and GBNF as bench/grammar_cost.cc (built and
// run by bench/grammar_cost_llamacpp.sh against a llama.cpp build; not part of the CMake build):
//   grammar_cost_llamacpp MODEL GBNF_FILE [STEPS=64] [THREADS=2]
// Greedy decoding under llama_sampler_init_grammar; every step times llama_sampler_apply of
// the grammar sampler on the full candidate list (what llama.cpp's sampler chain does when
// the grammar is not applied lazily) and one llama_decode of a single token.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

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
  if (argc < 3) {
    std::fprintf(stderr, "usage: grammar_cost_llamacpp MODEL GBNF_FILE [STEPS] [THREADS]\n");
    return 2;
  }
  const int steps = argc > 3 ? std::atoi(argv[3]) : 64;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  std::ifstream in(argv[2]);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string gbnf = ss.str();

  llama_backend_init();
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) return 1;
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 1024;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  llama_context* ctx = llama_init_from_model(model, cp);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);
  const auto t0 = Clock::now();
  llama_sampler* grammar = llama_sampler_init_grammar(vocab, gbnf.c_str(), "root");
  const auto t1 = Clock::now();
  if (!grammar) {
    std::fprintf(stderr, "llama.cpp did not parse the grammar\n");
    return 1;
  }
  std::printf("vocab %d tokens; grammar sampler initialized in %.1f ms\n", n_vocab, ms(t0, t1));

  const std::string prompt = "Write a JSON record for a person:\n";
  std::vector<llama_token> ids(prompt.size() + 8);
  const int n = llama_tokenize(vocab, prompt.c_str(), static_cast<int32_t>(prompt.size()),
                               ids.data(), static_cast<int32_t>(ids.size()), true, false);
  ids.resize(static_cast<size_t>(n));
  llama_decode(ctx, llama_batch_get_one(ids.data(), n));
  std::vector<llama_token_data> cand(static_cast<size_t>(n_vocab));
  std::vector<double> mask_ms, decode_ms;
  std::string out;
  for (int s = 0; s < steps; ++s) {
    const float* logits = llama_get_logits_ith(ctx, -1);
    for (int i = 0; i < n_vocab; ++i) cand[static_cast<size_t>(i)] = {i, logits[i], 0.0f};
    llama_token_data_array arr = {cand.data(), cand.size(), -1, false};
    const auto a = Clock::now();
    llama_sampler_apply(grammar, &arr);
    mask_ms.push_back(ms(a, Clock::now()));
    size_t best = 0;
    for (size_t i = 1; i < arr.size; ++i)
      if (arr.data[i].logit > arr.data[best].logit) best = i;
    llama_token id = arr.data[best].id;
    llama_sampler_accept(grammar, id);
    if (llama_vocab_is_eog(vocab, id)) break;
    char piece[256];
    const int len = llama_token_to_piece(vocab, id, piece, sizeof piece, 0, false);
    if (len > 0) out.append(piece, static_cast<size_t>(len));
    const auto c = Clock::now();
    llama_decode(ctx, llama_batch_get_one(&id, 1));
    decode_ms.push_back(ms(c, Clock::now()));
  }
  const double mm = quantile(mask_ms, 0.5), dm = quantile(decode_ms, 0.5);
  std::printf("output (%zu masks): %s\n", mask_ms.size(), out.c_str());
  std::printf("mask   ms: median %.3f  p10 %.3f  p90 %.3f  max %.3f\n", mm, quantile(mask_ms, 0.1),
              quantile(mask_ms, 0.9), quantile(mask_ms, 1.0));
  std::printf("decode ms: median %.3f  p10 %.3f  p90 %.3f (%d threads)\n", dm,
              quantile(decode_ms, 0.1), quantile(decode_ms, 0.9), threads);
  std::printf("mask / decode (medians): %.1f%%\n", dm > 0 ? 100.0 * mm / dm : 0.0);
  llama_sampler_free(grammar);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
