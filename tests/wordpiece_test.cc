// WordPiece (tokenizer.ggml.model = bert) against Hugging Face `tokenizers` fixtures
// (tests/data/wordpiece, made by make_fixtures.py): single texts with [CLS]/[SEP], pairs with
// type ids and decoding, for the four BertNormalizer settings; plus loader defaults, the
// 100-character word limit and hand-checked cases.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/vocab_loader.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace hpl {
namespace {

const std::string kData = HPL_TEST_DATA_DIR;
const std::string kBge = kData + "/tokenizer/ggml-vocab-bert-bge.gguf";
const std::string kCased = kData + "/wordpiece/wordpiece-cased.gguf";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<int32_t> ids_of(const std::string& s) {
  std::vector<int32_t> ids;
  std::istringstream ss(s);
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

std::unique_ptr<Tokenizer> load(const std::string& path, int lowercase = -1, int strip = -1) {
  auto f = GgufFile::open(path);
  Vocab v = load_vocab(*f);
  if (lowercase >= 0) v.lowercase = lowercase;
  if (strip >= 0) v.strip_accents = strip;
  return Tokenizer::create(std::move(v));
}

struct Config {
  const char* name;
  const std::string* vocab;
  bool lowercase, strip_accents;
};

class HfFixtures : public ::testing::TestWithParam<Config> {};

TEST_P(HfFixtures, EncodePairDecodeMatchTokenizers) {
  const Config& c = GetParam();
  auto tok = load(*c.vocab, c.lowercase, c.strip_accents);
  ASSERT_EQ(tok->kind(), VocabKind::WPM);
  const std::string inp = read_file(kData + "/wordpiece/corpus.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t e = inp.find(sep, pos);
    ASSERT_NE(e, std::string::npos);
    texts.push_back(inp.substr(pos, e - pos));
    pos = e + sep.size();
  }
  std::istringstream out(read_file(kData + "/wordpiece/" + c.name + ".out"));
  std::vector<std::string> lines;
  for (std::string l; std::getline(out, l);) lines.push_back(l);
  ASSERT_GE(texts.size(), 100u);
  ASSERT_EQ(lines.size(), 3 * texts.size());
  int passed = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& line = lines[3 * i];
    const std::string& pair_line = lines[3 * i + 1];
    const std::string& decode_line = lines[3 * i + 2];
    ASSERT_EQ(pair_line.rfind("PAIR ", 0), 0u);
    ASSERT_EQ(decode_line.rfind("DECODE ", 0), 0u);
    // Hugging Face matches added special tokens in the text: parse_special on.
    const std::vector<int32_t> got = tok->encode(texts[i], true, true);
    EXPECT_EQ(show(got), show(ids_of(line))) << "case " << i << ": '" << texts[i] << "'";

    const size_t semi = pair_line.find(" ; ");
    const TokenPair p = tok->encode_pair(texts[i], texts[(i + 7) % texts.size()], true);
    EXPECT_EQ(show(p.ids), show(ids_of(pair_line.substr(5, semi - 5)))) << "pair " << i;
    EXPECT_EQ(show(p.type_ids), show(ids_of(pair_line.substr(semi + 3)))) << "pair " << i;

    EXPECT_EQ(tok->decode(got), decode_line.substr(7)) << "decode " << i;
    passed += got == ids_of(line);
  }
  std::printf("[ %s ] %d / %zu texts match tokenizers\n", c.name, passed, texts.size());
}

INSTANTIATE_TEST_SUITE_P(Configs, HfFixtures,
                         ::testing::Values(Config{"bge-uncased", &kBge, true, true},
                                           Config{"bge-lower-accents", &kBge, true, false},
                                           Config{"cased", &kCased, false, false},
                                           Config{"cased-strip", &kCased, false, true}),
                         [](const auto& info) {
                           std::string s = info.param.name;
                           for (char& ch : s) ch = ch == '-' ? '_' : ch;
                           return s;
                         });

TEST(WordPiece, LoaderReadsBertVocab) {
  auto f = GgufFile::open(kBge);
  const Vocab v = load_vocab(*f);
  EXPECT_EQ(v.kind, VocabKind::WPM);
  EXPECT_EQ(v.bos_id, 101);  // [CLS], from tokenizer.ggml.cls_token_id
  EXPECT_EQ(v.sep_id, 102);
  EXPECT_EQ(v.eos_id, 102);
  EXPECT_EQ(v.unk_id, 100);
  EXPECT_EQ(v.pad_id, 0);
  EXPECT_TRUE(v.lowercase);
  EXPECT_TRUE(v.strip_accents);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_eos);
  EXPECT_FALSE(v.add_sep);
  auto c = GgufFile::open(kCased);
  const Vocab vc = load_vocab(*c);
  EXPECT_FALSE(vc.lowercase);
  EXPECT_FALSE(vc.strip_accents);
}

TEST(WordPiece, HandCheckedPieces) {
  auto tok = load(kBge);
  // [CLS] hello , world ! cafe 我 [UNK](想) naive [SEP], checked against bert-base-uncased.
  EXPECT_EQ(show(tok->encode("Hello, World! Café 我想 naïve", true, false)),
            " 101 7592 1010 2088 999 7668 1855 100 15743 102");
  EXPECT_EQ(show(tok->encode("", true, false)), " 101 102");
  EXPECT_EQ(show(tok->encode(" \t\n ", false, false)), "");
  // Continuations: "unaffable" -> una ##ffa ##ble (bert-base-uncased, as tokenizers gives).
  const std::vector<int32_t> ids = tok->encode("unaffable", false, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(tok->token_text(ids[0]), "\xE2\x96\x81una");
  EXPECT_EQ(tok->token_text(ids[1]), "ffa");
  EXPECT_EQ(tok->token_text(ids[2]), "ble");
  EXPECT_EQ(tok->decode(ids), "unaffable");
  EXPECT_EQ(tok->decode(tok->encode("Hello, World!", true, false)), "hello, world!");
}

TEST(WordPiece, WordsOverAHundredCharactersAreUnknown) {
  auto tok = load(kBge);
  const int32_t unk = tok->unk();
  EXPECT_NE(tok->encode(std::string(100, 'a'), false, false), std::vector<int32_t>{unk});
  EXPECT_EQ(tok->encode(std::string(101, 'a'), false, false), std::vector<int32_t>{unk});
  // Counted in characters after normalization: 60 "é" are 120 bytes but 60 letters "e".
  std::string e60;
  for (int i = 0; i < 60; ++i) e60 += "\xC3\xA9";
  EXPECT_NE(tok->encode(e60, false, false), std::vector<int32_t>{unk});
  // A long word between two short ones only replaces itself.
  const std::vector<int32_t> mixed = tok->encode("a " + std::string(101, 'b') + " c", false, false);
  ASSERT_EQ(mixed.size(), 3u);
  EXPECT_EQ(mixed[1], unk);
}

TEST(WordPiece, PairFromIdsAndFlags) {
  auto f = GgufFile::open(kBge);
  Vocab v = load_vocab(*f);
  auto tok = Tokenizer::create(v);
  const TokenPair p = tok->join_pair({7592}, {2088, 999});
  EXPECT_EQ(show(p.ids), " 101 7592 102 2088 999 102");
  EXPECT_EQ(show(p.type_ids), " 0 0 0 1 1 1");
  // RoBERTa-style add_sep: <s> a </s></s> b </s>.
  v.add_sep = true;
  auto tok2 = Tokenizer::create(v);
  EXPECT_EQ(show(tok2->join_pair({7592}, {2088}).ids), " 101 7592 102 102 2088 102");
  EXPECT_EQ(show(tok2->join_pair({7592}, {2088}).type_ids), " 0 0 0 0 1 1");
}

TEST(WordPiece, VocabWithoutUnknownIsRejected) {
  Vocab v;
  v.kind = VocabKind::WPM;
  v.tokens = {"[CLS]", "[SEP]",
              "\xE2\x96\x81"
              "a"};
  EXPECT_THROW(Tokenizer::create(v), std::invalid_argument);
  v.tokens.push_back("[UNK]");
  v.unk_id = 3;
  EXPECT_EQ(Tokenizer::create(v)->encode("a b", false, false), (std::vector<int32_t>{2, 3}));
}

TEST(WordPiece, VocabTxtFormIsRejectedWithAHint) {
  Vocab v;
  v.kind = VocabKind::WPM;
  v.tokens = {"[UNK]", "hello", "##lo"};
  v.token_types = {3, 1, 1};
  v.unk_id = 0;
  try {
    Tokenizer::create(v);
    FAIL() << "vocab.txt form accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("llama.cpp's form"), std::string::npos) << e.what();
  }
}

TEST(WordPiece, NormalizerTables) {
  using V = std::vector<uint32_t>;
  auto unaccented = [](uint32_t cp) {
    V v;
    unicode::append_unaccented(cp, v);
    return v;
  };
  auto lower = [](uint32_t cp) {
    V v;
    unicode::append_lowercase(cp, v);
    return v;
  };
  EXPECT_EQ(unaccented(0xE9), V{'e'});                         // é
  EXPECT_EQ(unaccented(0x1E9B), V{0x17F});                     // ẛ -> ſ (dot above dropped)
  EXPECT_EQ(unaccented(0x301), V{});                           // a combining mark alone
  EXPECT_EQ(unaccented(0xD55C), (V{0x1112, 0x1161, 0x11AB}));  // 한 -> jamo
  EXPECT_EQ(unaccented(0xAC00), (V{0x1100, 0x1161}));          // 가: no trailing jamo
  EXPECT_EQ(unaccented(0xF900), V{0x8C48});                    // CJK compatibility ideograph
  EXPECT_EQ(unaccented('a'), V{'a'});
  EXPECT_EQ(lower('A'), V{'a'});
  EXPECT_EQ(lower(0x130), (V{'i', 0x307}));  // İ
  EXPECT_EQ(lower(0x3A3), V{0x3C3});         // Σ -> σ, never final ς
  EXPECT_EQ(lower(0x1E9E), V{0xDF});         // ẞ -> ß
  EXPECT_EQ(lower(0x4E00), V{0x4E00});
  EXPECT_TRUE(unicode::is_bert_removed(0));
  EXPECT_TRUE(unicode::is_bert_removed(0x7F));
  EXPECT_TRUE(unicode::is_bert_removed(0x200B));  // Cf
  EXPECT_TRUE(unicode::is_bert_removed(0xE000));  // Co
  EXPECT_TRUE(unicode::is_bert_removed(0x10FFFD));
  EXPECT_FALSE(unicode::is_bert_removed('\t'));
  EXPECT_FALSE(unicode::is_bert_removed('\n'));
  EXPECT_FALSE(unicode::is_bert_removed(0x378));  // unassigned: kept
  EXPECT_FALSE(unicode::is_bert_removed('a'));
  EXPECT_FALSE(unicode::is_bert_removed(0x10FFFF));  // Cn
  EXPECT_TRUE(unicode::is_bert_removed(0xFFFD));
  EXPECT_TRUE(unicode::is_bert_punctuation('$'));      // ASCII symbols count
  EXPECT_TRUE(unicode::is_bert_punctuation(0xBF));     // ¿
  EXPECT_TRUE(unicode::is_bert_punctuation(0x3002));   // 。
  EXPECT_FALSE(unicode::is_bert_punctuation(0x20AC));  // € (a non-ASCII symbol)
  EXPECT_FALSE(unicode::is_bert_punctuation(0x2E43));  // newer than tokenizers' table
  EXPECT_FALSE(unicode::is_bert_punctuation('a'));
}

}  // namespace
}  // namespace hpl
