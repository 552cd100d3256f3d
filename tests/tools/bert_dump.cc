// Drives the bert encoder / Embedder for tests/python/test_bert_hf.py:
//   bert_dump MODEL hidden IN OUT      IN: one sequence of ids per line -> OUT: every hidden row
//   bert_dump MODEL mean|cls|last IN OUT  -> OUT: one normalized embedding per line (one batch)
//   bert_dump MODEL rerank IN OUT      IN: "query ids | document ids" per line -> OUT: scores
// OUT is raw float32. Errors go to stderr with exit code 1.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/bert.h"
#include "engine/embedding.h"

namespace {

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> v;
  std::istringstream in(s);
  int64_t x;
  while (in >> x) v.push_back(static_cast<int32_t>(x));
  return v;
}

void write(const std::string& path, const float* p, size_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bert_dump MODEL hidden|mean|cls|last|rerank IN OUT\n");
    return 2;
  }
  try {
    auto model = hpl::Model::load(argv[1]);
    const std::string mode = argv[2];
    std::ifstream in(argv[3]);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) {
      if (!l.empty()) lines.push_back(l);
    }
    hpl::ForwardOptions opt;
    opt.n_ctx = 512;
    opt.n_threads = 2;
    opt.n_ubatch = 16;  // small: batches of several encode calls
    const int64_t E = model->config.n_embd;
    if (mode == "hidden") {
      hpl::BertEncoder enc(*model, opt);
      std::vector<float> all;
      for (const auto& l : lines) {
        const auto ids = parse_ids(l);
        hpl::BertEncoder::Seq s{ids.data(), nullptr, static_cast<int64_t>(ids.size())};
        const float* h = enc.encode(&s, 1);
        all.insert(all.end(), h, h + s.n * E);
      }
      write(argv[4], all.data(), all.size());
    } else if (mode == "rerank") {
      hpl::Embedder emb(*model, opt);
      std::vector<float> scores;
      for (const auto& l : lines) {
        const size_t bar = l.find('|');
        scores.push_back(
            emb.rerank(parse_ids(l.substr(0, bar)), {parse_ids(l.substr(bar + 1))}, false)[0]);
      }
      write(argv[4], scores.data(), scores.size());
    } else {
      hpl::Embedder emb(*model, opt);
      std::vector<std::vector<int32_t>> inputs;
      for (const auto& l : lines) inputs.push_back(parse_ids(l));
      hpl::EmbedParams p;
      p.pooling = hpl::parse_pooling(mode);
      const auto vecs = emb.embed(inputs, p);
      std::vector<float> all;
      for (const auto& v : vecs) all.insert(all.end(), v.begin(), v.end());
      write(argv[4], all.data(), all.size());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bert_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
