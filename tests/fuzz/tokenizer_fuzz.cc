// libFuzzer target: arbitrary bytes through the SPM and byte-level BPE tokenizers (the test
// vocabs of tests/data/tokenizer) with parse_special on and off. Checks: no crash/UB, ids in
// range, decode is valid UTF-8 and equals the repaired input (SPM: with '\u2581' read as ' ';
// BPE: characters the vocab cannot spell as U+FFFD),
// and streaming decode equals decode. Built by tests/fuzz/run-tokenizer-fuzz.sh.
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
    for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "starcoder"}) {
      auto f = hpl::GgufFile::open(d + "/tokenizer/ggml-vocab-" + name + ".gguf");
      v.push_back(hpl::load_tokenizer(*f));
    }
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
  if (!parse_special) {
    std::string want = hpl::sanitize_utf8(text);
    if (tok.kind() == hpl::VocabKind::SPM) want = replace_all(want, "\xE2\x96\x81", " ");
    if (tok.kind() == hpl::VocabKind::BPE) want = spellable(tok, want);
    if (back != want) __builtin_trap();
  }
  hpl::StreamDecoder d(tok, false,
                       tok.kind() == hpl::VocabKind::SPM && tok.vocab().add_space_prefix);
  std::string streamed;
  for (int32_t id : ids) streamed += d.feed(id);
  streamed += d.flush();
  if (streamed != back) __builtin_trap();
  return 0;
}
