// Tokenizer conformance (llama.cpp's vocab test cases and the model table of
// MODELS-EXPECTED.md), streaming decoder, special tokens, round trips, Gemma 3.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/vocab_loader.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace hpl {
namespace {

const std::string kData = HPL_TEST_DATA_DIR;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<Tokenizer> load(const std::string& path) {
  auto f = GgufFile::open(path);
  return load_tokenizer(*f);
}

// One tokenizer per file for the whole run (building Gemma's takes a moment).
Tokenizer& cached(const std::string& path) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[path];
  if (!t) t = load(path);
  return *t;
}

std::vector<int32_t> ids_of(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream ss(line);
  int32_t x;
  while (ss >> x) ids.push_back(x);
  return ids;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// llama.cpp conformance: NAME.gguf.inp / .out, add_special = false, parse_special = false.

class VocabConformance : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabConformance, AllCasesMatchLlamaCpp) {
  const std::string base = kData + "/tokenizer/" + GetParam();
  Tokenizer& tok = cached(base);
  const std::string inp = read_file(base + ".inp");
  const std::string out = read_file(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t e = inp.find(sep, pos);
    ASSERT_NE(e, std::string::npos) << "unterminated case at byte " << pos;
    cases.push_back(inp.substr(pos, e - pos));
    pos = e + sep.size();
  }
  std::vector<std::string> lines;
  std::istringstream os(out);
  for (std::string l; std::getline(os, l);) lines.push_back(l);
  ASSERT_EQ(cases.size(), lines.size());
  ASSERT_GE(cases.size(), 40u);
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> want = ids_of(lines[i]);
    const std::vector<int32_t> got = tok.encode(cases[i], false, false);
    EXPECT_EQ(show(got), show(want)) << "case " << i << ": '" << cases[i] << "'";
    passed += got == want;
    // And decoding gives the text back (these vocabs have byte tokens or byte-level BPE).
    EXPECT_EQ(tok.decode(got), cases[i]) << "case " << i;
  }
  std::printf("[ %s ] %d / %zu cases match llama.cpp\n", GetParam(), passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, VocabConformance,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                           "ggml-vocab-starcoder.gguf",
                                           "ggml-vocab-deepseek-llm.gguf"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) c = isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

}  // namespace
}  // namespace hpl
