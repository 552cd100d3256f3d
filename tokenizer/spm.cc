// SentencePiece-style tokenizer (tokenizer.ggml.model = "llama"): spaces become '▁', the text
// starts as one symbol per UTF-8 character, and adjacent symbols whose concatenation is a piece
// are merged best score first (ties: leftmost), as llama.cpp's llm_tokenizer_spm does.
// Characters with no piece fall back to <0xXX> byte tokens, or without them to <unk> (one
// <unk> for a run of such characters, as SentencePiece and HF's fuse_unk do).
#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "tokenizer/tokenizer_impl.h"

namespace hpl {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 '▁'

// Length of the UTF-8 character starting with byte b (input is already valid UTF-8).
inline size_t utf8_len(uint8_t b) {
  return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab v) : Tokenizer(std::move(v)) {
    // Only pieces SentencePiece itself would produce from text can be merge results.
    build_piece_map(
        vocab_.tokens,
        [&](int32_t id) {
          const TokenType t = vocab_.token_types.empty()
                                  ? TokenType::NORMAL
                                  : static_cast<TokenType>(vocab_.token_types[id]);
          return t == TokenType::NORMAL || t == TokenType::USER_DEFINED ||
                 t == TokenType::UNDEFINED;
        },
        pieces_);
    // Characters that some piece has right before an inner '▁'.
    for (const auto& [piece, id] : pieces_) {
      for (size_t p = 1; p < piece.size(); ++p) {
        if (piece.compare(p, kSpace.size(), kSpace) != 0) continue;
        size_t q = p - 1;
        while (q > 0 && (static_cast<uint8_t>(piece[q]) & 0xC0) == 0x80) --q;
        joins_space_.insert(piece.substr(q, p - q));
      }
    }
    byte_ids_.fill(-1);
    for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
      const int b = parse_byte_token(vocab_.tokens[i]);
      if (b >= 0 && byte_ids_[b] < 0) byte_ids_[b] = static_cast<int32_t>(i);
    }
  }

 protected:
  void encode_text(std::string_view raw, bool prev_special,
                   std::vector<int32_t>& out) const override {
    // Escape: optional leading space, then ' ' -> '▁'.
    std::string text;
    text.reserve(raw.size() + raw.size() / 2 + 3);
    if (vocab_.add_space_prefix && prev_special) text.append(kSpace);
    for (char c : raw) {
      if (c == ' ') {
        text.append(kSpace);
      } else {
        text += c;
      }
    }

    // Merges never cross a '▁' that no piece has inside after the preceding character
    // (Llama: only "▁▁.." pieces; Gemma: only ">▁</"), so the text is cut there
    // and each word merged on its own: same result, small queues.
    Work w;
    size_t seg = 0;
    for (size_t p = 1; p < text.size(); ++p) {
      if (text.compare(p, kSpace.size(), kSpace) != 0) continue;
      size_t q = p - 1;  // start of the character before p
      while (q > seg && (static_cast<uint8_t>(text[q]) & 0xC0) == 0x80) --q;
      if (joins_space_.count(std::string_view(text).substr(q, p - q))) continue;
      encode_segment(std::string_view(text).substr(seg, p - seg), w, out);
      seg = p;
    }
    if (seg < text.size()) encode_segment(std::string_view(text).substr(seg), w, out);
  }

  std::string piece_of(int32_t id) const override {
    const std::string& t = vocab_.tokens[id];
    if (token_type(id) == TokenType::BYTE) {
      const int b = parse_byte_token(t);
      if (b >= 0) return std::string(1, static_cast<char>(b));
    }
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += t[i++];
      }
    }
    return out;
  }

 private:
  // Symbols: a doubly linked list of byte spans, one per character at first; adjacent pairs
  // that form a piece merge best score first (ties: leftmost).
  struct Symbol {
    int32_t prev, next;
    uint32_t start, len;  // len 0: merged away
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t len;  // bytes of left + right when queued: stale if either changed
  };
  struct Work {
    std::vector<Symbol> sym;
    std::vector<Bigram> heap;
    bool after_unk = false;  // the last id out was a fallback <unk>: fuse a run into one
  };

  void encode_segment(std::string_view text, Work& w, std::vector<int32_t>& out) const {
    std::vector<Symbol>& sym = w.sym;
    std::vector<Bigram>& heap = w.heap;
    sym.clear();
    heap.clear();
    for (size_t i = 0; i < text.size();) {
      const size_t len = std::min(utf8_len(static_cast<uint8_t>(text[i])), text.size() - i);
      const auto k = static_cast<int32_t>(sym.size());
      sym.push_back({k - 1, -1, static_cast<uint32_t>(i), static_cast<uint32_t>(len)});
      if (k > 0) sym[k - 1].next = k;
      i += len;
    }
    auto worse = [](const Bigram& a, const Bigram& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      const uint32_t len = sym[l].len + sym[r].len;
      const int32_t id = lookup(pieces_, text.substr(sym[l].start, len));
      if (id < 0) return;
      heap.push_back({score(id), l, r, len});
      std::push_heap(heap.begin(), heap.end(), worse);
    };
    for (size_t i = 1; i < sym.size(); ++i) {
      try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    }
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      const Bigram b = heap.back();
      heap.pop_back();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }

    for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
      const std::string_view piece = text.substr(sym[i].start, sym[i].len);
      const int32_t id = lookup(pieces_, piece);
      if (id >= 0) {
        out.push_back(id);
        w.after_unk = false;
        continue;
      }
      // Not a piece (always a single character here): byte fallback, else <unk>.
      bool all_bytes = true;
      for (char c : piece) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        for (char c : piece) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        w.after_unk = false;
      } else if (vocab_.unk_id >= 0 && !w.after_unk) {
        out.push_back(vocab_.unk_id);  // a run of such characters is one <unk>, as in SentencePiece
        w.after_unk = true;
      }
    }
  }

  float score(int32_t id) const { return vocab_.scores.empty() ? 0.0f : vocab_.scores[id]; }

  PieceMap pieces_;
  std::unordered_set<std::string_view> joins_space_;
  std::array<int32_t, 256> byte_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) {
  return std::unique_ptr<Tokenizer>(new SpmTokenizer(std::move(vocab)));
}

}  // namespace hpl
