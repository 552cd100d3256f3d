// Shared tokenizer machinery: vocab validation, special-token partitioning, detokenizing,
// end-of-generation ids, pairs and the streaming decoder. The kinds are in spm.cc, bpe.cc and
// wpm.cc.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace hpl {

namespace {

// Byte trie over special-token texts for leftmost-longest matching in O(match length).
class SpecialTrie {
 public:
  SpecialTrie() { root_.fill(-1); }
  void add(std::string_view text, int32_t id) {
    if (text.empty()) return;
    int32_t& r = root_[static_cast<uint8_t>(text[0])];
    if (r < 0) {
      r = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    int32_t n = r;
    for (size_t i = 1; i < text.size(); ++i) {
      const uint8_t b = static_cast<uint8_t>(text[i]);
      int32_t next = child(n, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[n].kids.emplace_back(b, next);
        nodes_.emplace_back();
      }
      n = next;
    }
    if (nodes_[n].id < 0 || id < nodes_[n].id) nodes_[n].id = id;
  }
  bool empty() const { return nodes_.empty(); }
  // Longest special token starting at s[pos]: its length (0 if none) and id.
  size_t longest(std::string_view s, size_t pos, int32_t* id) const {
    int32_t n = root_[static_cast<uint8_t>(s[pos])];
    size_t best = 0;
    for (size_t i = pos + 1; n >= 0; ++i) {
      if (nodes_[n].id >= 0) {
        best = i - pos;
        *id = nodes_[n].id;
      }
      if (i >= s.size()) break;
      n = child(n, static_cast<uint8_t>(s[i]));
    }
    return best;
  }

 private:
  struct Node {
    int32_t id = -1;
    std::vector<std::pair<uint8_t, int32_t>> kids;
  };
  int32_t child(int32_t n, uint8_t b) const {
    for (const auto& k : nodes_[n].kids) {
      if (k.first == b) return k.second;
    }
    return -1;
  }
  std::array<int32_t, 256> root_;
  std::vector<Node> nodes_;
};

void validate(const Vocab& v) {
  const size_t n = v.tokens.size();
  auto fail = [](const std::string& what) { throw std::invalid_argument("vocab: " + what); };
  if (n == 0) fail("no tokens");
  if (n > 0x7FFFFFFF) fail("too many tokens");
  if (!v.scores.empty() && v.scores.size() != n) {
    fail("scores has " + std::to_string(v.scores.size()) + " entries, tokens " + std::to_string(n));
  }
  if (!v.token_types.empty() && v.token_types.size() != n) {
    fail("token_type has " + std::to_string(v.token_types.size()) + " entries, tokens " +
         std::to_string(n));
  }
  for (size_t i = 0; i < v.token_types.size(); ++i) {
    if (v.token_types[i] < 0 || v.token_types[i] > 6) {
      fail("token " + std::to_string(i) + " has unknown type " + std::to_string(v.token_types[i]));
    }
  }
  const std::pair<const char*, int32_t> ids[] = {
      {"bos", v.bos_id}, {"eos", v.eos_id}, {"eot", v.eot_id}, {"eom", v.eom_id},
      {"pad", v.pad_id}, {"unk", v.unk_id}, {"sep", v.sep_id}};
  for (const auto& [name, id] : ids) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      fail(std::string(name) + " id " + std::to_string(id) + " out of range [0, " +
           std::to_string(n) + ")");
    }
  }
  if (v.add_bos && v.bos_id < 0) fail("add_bos is set but there is no bos id");
  if (v.add_eos && v.eos_id < 0) fail("add_eos is set but there is no eos id");
  if (v.add_sep && v.sep_id < 0) fail("add_sep is set but there is no sep id");
  if (v.kind == VocabKind::WPM && v.unk_id < 0) fail("a WordPiece vocab needs an unknown token");
}

}  // namespace

struct Tokenizer::PieceIndex {
  PieceMap all;
  SpecialTrie specials;  // CONTROL, UNKNOWN and USER_DEFINED
  SpecialTrie user;      // USER_DEFINED only (always matched)
};

int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::unique_ptr<Tokenizer> Tokenizer::create(Vocab vocab) {
  validate(vocab);
  std::unique_ptr<Tokenizer> t;
  switch (vocab.kind) {
    case VocabKind::SPM:
      t = make_spm_tokenizer(std::move(vocab));
      break;
    case VocabKind::BPE:
      t = make_bpe_tokenizer(std::move(vocab));
      break;
    case VocabKind::WPM:
      t = make_wpm_tokenizer(std::move(vocab));
      break;
  }
  t->init_common();
  return t;
}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
Tokenizer::~Tokenizer() = default;

void Tokenizer::init_common() {
  index_ = std::make_unique<PieceIndex>();
  build_piece_map(
      vocab_.tokens, [](int32_t) { return true; }, index_->all);
  const int32_t n = n_vocab();
  for (int32_t id = 0; id < n; ++id) {
    const TokenType t = token_type(id);
    if (t == TokenType::CONTROL || t == TokenType::UNKNOWN || t == TokenType::USER_DEFINED) {
      if (vocab_.tokens[id].empty()) continue;
      special_ids_.push_back(id);
      index_->specials.add(vocab_.tokens[id], id);
      if (t == TokenType::USER_DEFINED) index_->user.add(vocab_.tokens[id], id);
    }
  }
  std::stable_sort(special_ids_.begin(), special_ids_.end(), [&](int32_t a, int32_t b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });
  // End of generation: the declared ids plus well-known end-of-turn texts.
  for (int32_t id : {vocab_.eos_id, vocab_.eot_id, vocab_.eom_id}) {
    if (id >= 0) eog_ids_.push_back(id);
  }
  static const char* const kEogTexts[] = {
      "<end_of_turn>",   "<|im_end|>",    "<|eot_id|>", "<|eom_id|>",
      "<|end|>",         "<|endoftext|>", "</s>",       "<|END_OF_TURN_TOKEN|>",
      "<|end_of_text|>", "<|return|>",    "<|call|>",   "<end_of_utterance>",
      "<|eot|>",
  };
  for (const char* text : kEogTexts) {
    const int32_t id = find_token(text);
    if (id < 0) continue;
    const TokenType t = token_type(id);
    if (t != TokenType::CONTROL && t != TokenType::USER_DEFINED) continue;
    eog_ids_.push_back(id);
  }
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());
}

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kEmpty;
  return id >= 0 && id < n_vocab() ? vocab_.tokens[id] : kEmpty;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return TokenType::UNDEFINED;
  if (vocab_.token_types.empty()) return TokenType::NORMAL;
  return static_cast<TokenType>(vocab_.token_types[id]);
}

int32_t Tokenizer::find_token(std::string_view text) const {
  return lookup(index_->all, text);
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

bool Tokenizer::is_control(int32_t id) const {
  const TokenType t = token_type(id);
  return t == TokenType::CONTROL || t == TokenType::UNKNOWN || t == TokenType::UNUSED;
}

std::vector<int32_t> Tokenizer::encode(std::string_view raw, bool add_special,
                                       bool parse_special) const {
  const std::string text = sanitize_utf8(raw);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos_id);
  const SpecialTrie& trie = parse_special ? index_->specials : index_->user;
  bool prev_special = true;  // the start counts as "after a special token" (SPM space prefix)
  size_t frag = 0;
  if (!trie.empty()) {
    for (size_t pos = 0; pos < text.size();) {
      int32_t id = -1;
      const size_t len = trie.longest(text, pos, &id);
      if (len == 0) {
        ++pos;
        continue;
      }
      if (frag < pos) {
        encode_text(std::string_view(text).substr(frag, pos - frag), prev_special, out);
      }
      out.push_back(id);
      prev_special = true;
      pos += len;
      frag = pos;
    }
  }
  if (frag < text.size()) encode_text(std::string_view(text).substr(frag), prev_special, out);
  if (add_special && vocab_.add_eos) out.push_back(vocab_.eos_id);
  return out;
}

TokenPair Tokenizer::encode_pair(std::string_view a, std::string_view b, bool parse_special) const {
  return join_pair(encode(a, false, parse_special), encode(b, false, parse_special));
}

TokenPair Tokenizer::join_pair(const std::vector<int32_t>& a, const std::vector<int32_t>& b) const {
  TokenPair p;
  p.ids.reserve(a.size() + b.size() + 4);
  if (vocab_.add_bos) p.ids.push_back(vocab_.bos_id);
  p.ids.insert(p.ids.end(), a.begin(), a.end());
  if (vocab_.add_eos) p.ids.push_back(vocab_.eos_id);
  if (vocab_.add_sep) p.ids.push_back(vocab_.sep_id);
  p.type_ids.assign(p.ids.size(), 0);
  p.ids.insert(p.ids.end(), b.begin(), b.end());
  if (vocab_.add_eos) p.ids.push_back(vocab_.eos_id);
  p.type_ids.resize(p.ids.size(), 1);
  return p;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return "";
  switch (token_type(id)) {
    case TokenType::CONTROL:
    case TokenType::UNKNOWN:
    case TokenType::UNUSED:
      return render_special ? vocab_.tokens[id] : std::string();
    case TokenType::USER_DEFINED:
      return vocab_.tokens[id];
    default:
      return piece_of(id);
  }
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  StreamDecoder d(*this, render_special, strips_first_space());
  std::string out;
  for (int32_t id : ids) out += d.feed(id);
  out += d.flush();
  return out;
}

bool Tokenizer::strips_first_space() const {
  return vocab_.kind == VocabKind::WPM ||
         (vocab_.kind == VocabKind::SPM && vocab_.add_space_prefix);
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool render_special, bool strip_space_prefix)
    : tok_(&tok), render_special_(render_special), strip_space_prefix_(strip_space_prefix) {}

std::string StreamDecoder::feed(int32_t id) {
  std::string piece = tok_->token_to_piece(id, render_special_);
  if (at_start_ && !piece.empty()) {
    if (strip_space_prefix_ && piece[0] == ' ') piece.erase(0, 1);
    at_start_ = false;
  }
  return feed_bytes(piece);
}

std::string StreamDecoder::feed_bytes(std::string_view bytes) {
  if (bytes.empty()) return "";
  std::string buf = std::move(pending_);
  buf.append(bytes);
  const size_t k = utf8_complete_prefix(buf);
  pending_.assign(buf, k, std::string::npos);
  buf.resize(k);
  return sanitize_utf8(buf);
}

std::string StreamDecoder::flush() {
  std::string out = sanitize_utf8(pending_);  // a dangling partial -> U+FFFD
  pending_.clear();
  return out;
}

void StreamDecoder::reset() {
  pending_.clear();
  at_start_ = true;
}

}  // namespace hpl
