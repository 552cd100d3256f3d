// BERT's WordPiece tokenizer (tokenizer.ggml.model = "bert"), as Hugging Face `tokenizers`
// runs it: BertNormalizer (drop control/format characters, whitespace -> ' ', spaces around
// CJK ideographs, optional accent stripping and lowercasing), BertPreTokenizer (split on
// whitespace, every punctuation character its own word), then WordPiece: greedy
// longest-match-first pieces per word, [UNK] for a word that cannot be spelled or that has
// more than 100 characters.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace hpl {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 '▁': word-start piece prefix
constexpr size_t kMaxWordChars = 100;                // WordPiece max_input_chars_per_word

// CJK ideographs that BERT isolates, with the bounds Hugging Face tokenizers uses.
bool is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

class WpmTokenizer final : public Tokenizer {
 public:
  explicit WpmTokenizer(Vocab v) : Tokenizer(std::move(v)) {
    // Text pieces only: special tokens are matched before (encode) or never.
    size_t hf_form = 0;
    for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
      const TokenType t = vocab_.token_types.empty()
                              ? TokenType::NORMAL
                              : static_cast<TokenType>(vocab_.token_types[i]);
      if (t != TokenType::NORMAL && t != TokenType::UNDEFINED) continue;
      std::string_view piece = vocab_.tokens[i];
      const bool start = piece.substr(0, kSpace.size()) == kSpace;
      if (start) piece.remove_prefix(kSpace.size());
      if (piece.empty()) continue;
      (start ? starts_ : continuations_).emplace(piece, static_cast<int32_t>(i));
      max_piece_bytes_ = std::max(max_piece_bytes_, piece.size());
      hf_form += piece.substr(0, 2) == "##";
    }
    // Pieces as in vocab.txt ("hello", "##lo") would all read as continuations: say so.
    if (starts_.empty() && hf_form > 0) {
      throw std::invalid_argument(
          "vocab: bert pieces are not in llama.cpp's form (no piece starts with U+2581 but " +
          std::to_string(hf_form) +
          " start with \"##\"): write word-start pieces as U+2581 + piece and continuations "
          "without \"##\", as llama.cpp's converter does");
    }
  }

 protected:
  void encode_text(std::string_view text, bool, std::vector<int32_t>& out) const override {
    unicode::Codepoints in;
    unicode::decode(text, in);
    const std::vector<uint32_t> cps = normalize(in.cps);
    // Words: runs between whitespace, each punctuation character alone.
    std::string word;
    size_t chars = 0;
    auto flush = [&] {
      if (chars > 0) encode_word(word, chars, out);
      word.clear();
      chars = 0;
    };
    for (uint32_t cp : cps) {
      if (unicode::flags(cp) & unicode::kWhitespace) {
        flush();
      } else if (unicode::is_bert_punctuation(cp)) {
        flush();
        unicode::append_utf8(cp, word);
        chars = 1;
        flush();
      } else {
        unicode::append_utf8(cp, word);
        ++chars;
      }
    }
    flush();
  }

  std::string piece_of(int32_t id) const override {
    std::string_view p = vocab_.tokens[id];
    if (p.substr(0, kSpace.size()) != kSpace) return std::string(p);  // a continuation
    p.remove_prefix(kSpace.size());
    // Hugging Face's WordPiece decoder cleanup: no space before . , ! ?
    if (p == "." || p == "," || p == "!" || p == "?") return std::string(p);
    std::string out(1, ' ');  // append, not operator+: GCC 12 -Wrestrict false positive
    out.append(p);
    return out;
  }

 private:
  // BertNormalizer: clean_text, handle_chinese_chars, strip_accents, lowercase.
  std::vector<uint32_t> normalize(const std::vector<uint32_t>& in) const {
    std::vector<uint32_t> out, tmp;
    out.reserve(in.size() + in.size() / 4);
    for (uint32_t cp : in) {
      if (unicode::is_bert_removed(cp)) continue;
      if (unicode::flags(cp) & unicode::kWhitespace) {
        out.push_back(' ');
        continue;
      }
      const bool cjk = is_cjk(cp);
      if (cjk) out.push_back(' ');
      tmp.clear();
      if (vocab_.strip_accents) {
        unicode::append_unaccented(cp, tmp);
      } else {
        tmp.push_back(cp);
      }
      for (uint32_t c : tmp) {
        if (vocab_.lowercase) {
          unicode::append_lowercase(c, out);
        } else {
          out.push_back(c);
        }
      }
      if (cjk) out.push_back(' ');
    }
    return out;
  }

  // Greedy longest-match-first over one word of `chars` characters; all or nothing.
  void encode_word(std::string_view word, size_t chars, std::vector<int32_t>& out) const {
    const size_t first = out.size();
    if (chars <= kMaxWordChars) {
      for (size_t start = 0; start < word.size();) {
        const PieceMap& pieces = start == 0 ? starts_ : continuations_;
        size_t end = std::min(word.size(), start + max_piece_bytes_);
        int32_t id = -1;
        for (; end > start; --end) {
          if (end < word.size() && (static_cast<uint8_t>(word[end]) & 0xC0) == 0x80) continue;
          id = lookup(pieces, word.substr(start, end - start));
          if (id >= 0) break;
        }
        if (id < 0) {
          out.resize(first);
          break;
        }
        out.push_back(id);
        start = end;
      }
    }
    if (out.size() == first) out.push_back(vocab_.unk_id);
  }

  PieceMap starts_;         // "▁hello" as "hello"
  PieceMap continuations_;  // "lo" (BERT's "##lo")
  size_t max_piece_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> make_wpm_tokenizer(Vocab vocab) {
  return std::unique_ptr<Tokenizer>(new WpmTokenizer(std::move(vocab)));
}

}  // namespace hpl
