// libFuzzer target: arbitrary bytes through the SPM, byte-level BPE and WordPiece tokenizers
// (the test vocabs of tests/data/tokenizer, and tests/data/wordpiece's cased one) with
// parse_special on and off. Checks: no crash/UB, ids in range, decode is valid UTF-8 and equals
// the repaired input (SPM: with '\u2581' read as ' '; BPE: characters the vocab cannot spell as
// U+FFFD; WordPiece, which drops case, accents and spacing: encoding the decoded text gives
// the same ids when there is no [UNK]), streaming decode equals decode, and WordPiece pairs are
// [CLS] a [SEP] b [SEP] with type ids 0 then 1. Built by tests/fuzz/run-tokenizer-fuzz.sh.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/vocab_loader.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<hpl::Tokenizer>>& tokenizers() {
  static std::vector<std::unique_ptr<hpl::Tokenizer>> t = [] {
    const char* dir = std::getenv("HPL_TEST_DATA");
    const std::string d = dir ? dir : "tests/data";
    std::vector<std::unique_ptr<hpl::Tokenizer>> v;
    for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "starcoder", "bert-bge"}) {
      auto f = hpl::GgufFile::open(d + "/tokenizer/ggml-vocab-" + name + ".gguf");
      v.push_back(hpl::load_tokenizer(*f));
    }
    v.push_back(hpl::load_tokenizer(*hpl::GgufFile::open(d + "/wordpiece/wordpiece-cased.gguf")));
    return v;
  }();
  return t;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
  return s;
}

// GPT-2 byte-to-unicode character of byte b, UTF-8 encoded.
std::string byte_char(int b) {
  int n = 0, cp = -1;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const int c = printable ? x : 256 + n++;
    if (x == b) cp = c;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// BPE: characters with a byte the vocab has no token for come back as U+FFFD.
std::string spellable(const hpl::Tokenizer& tok, const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    bool ok = true;
    for (size_t k = 0; k < len; ++k) {
      ok = ok && tok.find_token(byte_char(static_cast<uint8_t>(s[i + k]))) >= 0;
    }
    out += ok ? s.substr(i, len) : std::string("\xEF\xBF\xBD");
    i += len;
  }
  return out;
}

// WordPiece: re-encoding the decoded text is stable (the normalizer is idempotent and decode
// keeps word boundaries) unless a word became [UNK]; a pair of the two halves is well formed.
void check_wordpiece(const hpl::Tokenizer& tok, const std::string& text, bool parse_special) {
  const std::vector<int32_t> plain = tok.encode(text, false, parse_special);
  if (!parse_special && std::find(plain.begin(), plain.end(), tok.unk()) == plain.end()) {
    if (tok.encode(tok.decode(plain), false, false) != plain) __builtin_trap();
  }
  const size_t half = text.size() / 2;
  const std::vector<int32_t> a = tok.encode(text.substr(0, half), false, parse_special);
  const std::vector<int32_t> b = tok.encode(text.substr(half), false, parse_special);
  const hpl::TokenPair p = tok.join_pair(a, b);
  if (p.ids.size() != a.size() + b.size() + 3 || p.type_ids.size() != p.ids.size()) {
    __builtin_trap();
  }
  if (p.ids.front() != tok.bos() || p.ids[a.size() + 1] != tok.sep() || p.ids.back() != tok.sep()) {
    __builtin_trap();
  }
  for (size_t i = 0; i < p.ids.size(); ++i) {
    if (p.type_ids[i] != (i < a.size() + 2 ? 0 : 1)) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto& toks = tokenizers();
  const hpl::Tokenizer& tok = *toks[data[0] % toks.size()];
  const bool parse_special = data[0] & 0x80;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<int32_t> ids = tok.encode(text, (data[0] & 0x40) != 0, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
  }
  const std::string back = tok.decode(ids);
  if (hpl::sanitize_utf8(back) != back) __builtin_trap();
  if (tok.kind() == hpl::VocabKind::WPM) {
    check_wordpiece(tok, text, parse_special);
  } else if (!parse_special) {
    std::string want = hpl::sanitize_utf8(text);
    if (tok.kind() == hpl::VocabKind::SPM) want = replace_all(want, "\xE2\x96\x81", " ");
    if (tok.kind() == hpl::VocabKind::BPE) want = spellable(tok, want);
    if (back != want) __builtin_trap();
  }
  hpl::StreamDecoder d(tok, false, tok.strips_first_space());
  std::string streamed;
  for (int32_t id : ids) streamed += d.feed(id);
  streamed += d.flush();
  if (streamed != back) __builtin_trap();
  return 0;
}
