// Byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2"): the pre-tokenizer named by
// tokenizer.ggml.pre splits text into words; each word's bytes map to GPT-2's printable
// byte-to-unicode characters, one symbol per byte, and adjacent symbols merge lowest merge rank
// first (ties: leftmost), as llama.cpp's llm_tokenizer_bpe does.
//
// Merges are indexed by the ids of their two sides, so "a b" counts only when a, b and ab are
// all tokens (true of every real byte-level vocab; llama.cpp would also merge into a non-token
// and then emit its bytes one by one).
#include <array>
#include <queue>
#include <stdexcept>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace hpl {

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in order, so every byte is a visible character.
std::array<uint32_t, 256> byte_to_cp() {
  std::array<uint32_t, 256> m{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    m[b] = printable ? b : next++;
  }
  return m;
}

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(Vocab v) : Tokenizer(std::move(v)) {
    if (!pretokenizer_from_name(vocab_.pre, &pre_)) {
      throw std::invalid_argument("vocab: unknown BPE pre-tokenizer '" + vocab_.pre + "'");
    }
    if (vocab_.merges.empty()) throw std::invalid_argument("vocab: BPE vocab has no merges");
    ignore_merges_ = pre_ == PreTokenizer::LLAMA3;

    PieceMap all;
    build_piece_map(
        vocab_.tokens, [](int32_t) { return true; }, all);
    const auto b2c = byte_to_cp();
    cp_to_byte_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      std::string s;
      unicode::append_utf8(b2c[b], s);
      byte_ids_[b] = lookup(all, s);
      cp_to_byte_[b2c[b]] = static_cast<int16_t>(b);
      byte_chars_[b] = s;
    }

    merges_.reserve(vocab_.merges.size() * 2);
    for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
      const std::string& m = vocab_.merges[rank];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) {
        throw std::invalid_argument("vocab: merge " + std::to_string(rank) + " '" + m +
                                    "' is not of the form 'left right'");
      }
      const std::string_view l = std::string_view(m).substr(0, sp);
      const std::string_view r = std::string_view(m).substr(sp + 1);
      const int32_t il = lookup(all, l), ir = lookup(all, r);
      const int32_t im = lookup(all, std::string(l) + std::string(r));
      if (il < 0 || ir < 0 || im < 0) continue;
      merges_.emplace(key(il, ir), Merge{static_cast<int32_t>(rank), im});  // first rank wins
    }
    if (ignore_merges_) words_ = std::move(all);
  }

 protected:
  void encode_text(std::string_view text, bool, std::vector<int32_t>& out) const override {
    unicode::Codepoints cp;
    unicode::decode(text, cp);
    std::vector<uint32_t> ends;
    pretokenize(pre_, cp.cps.data(), cp.cps.size(), ends);
    size_t start = 0;
    std::vector<Symbol> sym;
    for (uint32_t end : ends) {
      const uint32_t b0 = cp.offsets[start], b1 = cp.offsets[end];
      encode_word(text.substr(b0, b1 - b0), sym, out);
      start = end;
    }
  }

  std::string piece_of(int32_t id) const override {
    const std::string& t = vocab_.tokens[id];
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      uint32_t c;
      bool valid;
      const size_t len = unicode::decode_utf8(t, i, &c, &valid);
      if (valid && c < cp_to_byte_.size() && cp_to_byte_[c] >= 0) {
        out += static_cast<char>(cp_to_byte_[c]);
      } else {
        out.append(t, i, len);  // not a byte character: keep it as is
      }
      i += len;
    }
    return out;
  }

 private:
  struct Merge {
    int32_t rank, id;
  };
  struct Symbol {
    int32_t id, prev, next;
  };
  static uint64_t key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }

  void encode_word(std::string_view word, std::vector<Symbol>& sym,
                   std::vector<int32_t>& out) const {
    if (ignore_merges_) {  // Llama 3: a word that is a token as a whole is taken as is
      std::string enc;
      for (char c : word) enc += byte_chars_[static_cast<uint8_t>(c)];
      const int32_t id = lookup(words_, enc);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    // A character with a byte the vocab cannot spell (StarCoder has no token for 0xF1, used
    // only by unassigned planes 4-7) is encoded as U+FFFD instead of dropped or <unk>.
    std::string patched;
    for (char c : word) {
      if (byte_ids_[static_cast<uint8_t>(c)] < 0) {
        patched = spellable(word);
        word = patched;
        break;
      }
    }
    sym.clear();
    for (size_t i = 0; i < word.size(); ++i) {
      const auto k = static_cast<int32_t>(i);
      sym.push_back(
          {byte_ids_[static_cast<uint8_t>(word[i])], k - 1, i + 1 < word.size() ? k + 1 : -1});
    }
    struct Bigram {
      int32_t rank, left, right, id_left, id_right, id_merged;
    };
    auto worse = [](const Bigram& a, const Bigram& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
      auto it = merges_.find(key(sym[l].id, sym[r].id));
      if (it == merges_.end()) return;
      queue.push({it->second.rank, l, r, sym[l].id, sym[r].id, it->second.id});
    };
    for (size_t i = 1; i < sym.size(); ++i) {
      try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    }
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.id != b.id_left || r.id != b.id_right || l.next != b.right) continue;  // stale
      l.id = b.id_merged;
      r.id = -2;  // merged away
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
      if (sym[i].id >= 0) out.push_back(sym[i].id);  // always, after spellable()
    }
  }

  // word with every character that has an unspellable byte replaced by U+FFFD (or dropped
  // when even U+FFFD cannot be spelled).
  std::string spellable(std::string_view word) const {
    std::string out;
    for (size_t i = 0; i < word.size();) {
      uint32_t cp;
      bool valid;
      const size_t len = unicode::decode_utf8(word, i, &cp, &valid);
      bool ok = true;
      for (size_t k = 0; k < len; ++k) ok = ok && byte_ids_[static_cast<uint8_t>(word[i + k])] >= 0;
      if (ok) {
        out.append(word, i, len);
      } else if (byte_ids_[0xEF] >= 0 && byte_ids_[0xBF] >= 0 && byte_ids_[0xBD] >= 0) {
        unicode::append_utf8(unicode::kReplacement, out);
      }
      i += len;
    }
    return out;
  }

  PreTokenizer pre_ = PreTokenizer::DEFAULT;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_;
  std::array<std::string, 256> byte_chars_;
  std::array<int16_t, 324> cp_to_byte_;  // byte characters are all below U+0144
  std::unordered_map<uint64_t, Merge> merges_;
  PieceMap words_;  // all tokens, for ignore_merges
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab) {
  return std::unique_ptr<Tokenizer>(new BpeTokenizer(std::move(vocab)));
}

}  // namespace hpl
