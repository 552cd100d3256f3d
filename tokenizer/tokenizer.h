// Tokenizers built from GGUF tokenizer metadata: SentencePiece-style (tokenizer.ggml.model =
// "llama"), byte-level BPE ("gpt2") and BERT's WordPiece ("bert"). This folder includes nothing of
// ours: the engine fills a plain Vocab from the GGUF file (engine/vocab_loader.h) and hands it to
// Tokenizer::create.
//
// Behaviour follows llama.cpp's llm_tokenizer_spm / llm_tokenizer_bpe so that its conformance
// cases (tests/data/tokenizer) give the same ids, with these deliberate differences:
// - input text that is not valid UTF-8 is first repaired: every maximal invalid subpart (the
//   Unicode "substitution of maximal subparts" rule, the same as Python's errors="replace")
//   becomes U+FFFD (EF BF BD), so encode() never sees malformed sequences;
// - SPM characters with neither a piece nor <0xXX> byte tokens become <unk>, one per run of
//   such characters as SentencePiece does (llama.cpp throws std::out_of_range there);
// - a BPE character with a byte the vocab has no token for becomes U+FFFD;
// - SPM merges only form NORMAL / USER_DEFINED pieces (never CONTROL, BYTE or UNUSED ones, as
//   in SentencePiece), so "<s>" typed as text stays text unless parse_special is set.
//
// WordPiece follows Hugging Face `tokenizers` (BertNormalizer + BertPreTokenizer + WordPiece,
// the reference its conformance tests compare with) on vocabs as llama.cpp's converter writes
// them (see VocabKind::WPM); unlike llama.cpp it maps a word of more than 100 characters to
// [UNK] and drops format characters (Cf) as Hugging Face does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hpl {

// tokenizer.ggml.model: "llama" -> SPM, "gpt2" -> BPE, "bert" -> WPM.
// WPM pieces are in llama.cpp's "phantom space" form: a piece that starts a word is stored as
// "\u2581" + piece ("▁hello"), a continuation without BERT's "##" ("##lo" -> "lo"); CONTROL
// tokens ([CLS], [SEP], [UNK], [PAD], [MASK]) verbatim.
enum class VocabKind { SPM, BPE, WPM };

// tokenizer.ggml.token_type values (llama_token_type). Values are part of the file format.
enum class TokenType : int32_t {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
};

// Everything a tokenizer needs, as read from tokenizer.ggml.* keys. Ids are -1 when absent.
struct Vocab {
  VocabKind kind = VocabKind::SPM;
  std::string pre = "default";       // tokenizer.ggml.pre: BPE pre-tokenizer name
  std::vector<std::string> tokens;   // id -> piece (SPM: '▁' for space; BPE: byte-to-unicode)
  std::vector<float> scores;         // SPM merge priority; empty = all 0
  std::vector<int32_t> token_types;  // TokenType per id; empty = all NORMAL
  std::vector<std::string> merges;   // BPE: "left right", rank = index
  int32_t bos_id = -1, eos_id = -1, eot_id = -1, eom_id = -1;
  int32_t pad_id = -1, unk_id = -1, sep_id = -1;
  bool add_bos = false, add_eos = false;
  bool add_sep = false;  // pairs: sep_id between the two texts (after a's eos if add_eos)
  bool lowercase = false, strip_accents = false;  // WPM: BertNormalizer options
  bool add_space_prefix = false;  // SPM: prepend ' ' to text (Llama 1/2: yes, Gemma: no)
  std::string chat_template;      // tokenizer.chat_template (Jinja text), may be empty
};

// Two texts as one model input (cross-encoder rerankers): ids and the segment of each id.
struct TokenPair {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // 0 for bos, a and the tokens after it; 1 for b and its eos
};

class Tokenizer {
 public:
  // Validates the vocab and builds the lookup tables once. Throws std::invalid_argument with
  // what is wrong (sizes that disagree, ids out of range, a BPE vocab without merges, an
  // unknown pre-tokenizer name, duplicate pieces are tolerated: the lowest id wins).
  static std::unique_ptr<Tokenizer> create(Vocab vocab);
  virtual ~Tokenizer();

  // Text -> ids. add_special: BOS/EOS as the vocab's add_bos/add_eos say.
  // parse_special: CONTROL/UNKNOWN token texts in `text` ("<start_of_turn>") become their
  // ids (longest match first); USER_DEFINED tokens are always matched, as llama.cpp does.
  // WPM: add_special gives [CLS] text [SEP] (bos = [CLS], eos = [SEP] for bert vocabs).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // Pair input: [bos] a [eos] [sep] b [eos], each special where the vocab's add_bos / add_eos /
  // add_sep say. BERT: [CLS] a [SEP] b [SEP], type ids 0 up to and including the first [SEP].
  TokenPair encode_pair(std::string_view a, std::string_view b, bool parse_special = false) const;
  // The same from ids of plain text (encode(text, false, ...)), e.g. after truncating them.
  TokenPair join_pair(const std::vector<int32_t>& a, const std::vector<int32_t>& b) const;

  // Raw bytes of one token: SPM '▁' -> ' ', <0xXX> -> that byte; BPE byte-to-unicode reversed;
  // USER_DEFINED verbatim. CONTROL/UNKNOWN/UNUSED give "" unless render_special (then their
  // text). May be part of a UTF-8 sequence: use StreamDecoder to print text. Bad id -> "".
  std::string token_to_piece(int32_t id, bool render_special = false) const;

  // Inverse of encode for plain text: concatenated pieces, with the space that
  // add_space_prefix put before the first text removed, repaired to valid UTF-8.
  // WPM: word-start pieces are preceded by a space (none before the first one nor before "."
  // "," "!" "?", as Hugging Face's WordPiece decoder with cleanup), continuations are joined.
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;
  // Whether decode drops a leading space of the first piece (SPM with add_space_prefix, WPM):
  // pass it to StreamDecoder's strip_space_prefix when decoding whole encoded texts.
  bool strips_first_space() const;

  // End of generation: eos, eot, eom and any CONTROL token named like an end of turn
  // (<end_of_turn>, <|im_end|>, <|eot_id|>, <|end|>, <|endoftext|>, </s>, ...).
  bool is_eog(int32_t id) const;
  bool is_control(int32_t id) const;  // CONTROL or UNKNOWN or UNUSED: not text
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }

  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos() const { return vocab_.bos_id; }
  int32_t eos() const { return vocab_.eos_id; }
  int32_t eot() const { return vocab_.eot_id; }
  int32_t unk() const { return vocab_.unk_id; }
  int32_t sep() const { return vocab_.sep_id; }
  int32_t pad() const { return vocab_.pad_id; }
  bool add_bos() const { return vocab_.add_bos; }
  bool add_eos() const { return vocab_.add_eos; }
  VocabKind kind() const { return vocab_.kind; }
  const Vocab& vocab() const { return vocab_; }
  const std::string& token_text(int32_t id) const;  // the vocab string; "" for a bad id
  TokenType token_type(int32_t id) const;
  int32_t find_token(std::string_view text) const;  // exact vocab string -> id, or -1

 protected:
  explicit Tokenizer(Vocab vocab);
  // Tokenizes one run of plain text (no special tokens in it). prev_special: the previous
  // fragment was a special token or this is the start (SPM adds the space prefix then).
  virtual void encode_text(std::string_view text, bool prev_special,
                           std::vector<int32_t>& out) const = 0;
  virtual std::string piece_of(int32_t id) const = 0;  // NORMAL/BYTE token -> raw bytes

  Vocab vocab_;
  std::vector<int32_t> eog_ids_;
  std::vector<int32_t> special_ids_;  // CONTROL/UNKNOWN/USER_DEFINED, longest text first

 private:
  void init_common();
  struct PieceIndex;
  std::unique_ptr<PieceIndex> index_;  // text -> id over all tokens
};

// Incremental detokenizer for streaming: feed ids, get text that is always valid UTF-8.
// Bytes of a multi-byte character split across tokens are held back until complete; invalid
// sequences become U+FFFD (maximal-subpart rule); flush() turns a dangling partial character
// into U+FFFD.
class StreamDecoder {
 public:
  // strip_space_prefix: drop the ' ' that add_space_prefix put before the first text (use it
  // when decoding a whole encoded text; leave it off for generated continuations).
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false,
                         bool strip_space_prefix = false);
  std::string feed(int32_t id);
  std::string feed_bytes(std::string_view bytes);  // for pieces from elsewhere
  std::string flush();
  void reset();

 private:
  const Tokenizer* tok_;
  bool render_special_;
  bool strip_space_prefix_;
  bool at_start_ = true;
  std::string pending_;  // an incomplete UTF-8 sequence, at most 3 bytes
};

// UTF-8 helpers shared by the tokenizers and tests.
// Replaces every maximal invalid subpart with U+FFFD.
std::string sanitize_utf8(std::string_view s);
// Length of the longest prefix of s that ends on a character boundary, counting a trailing
// incomplete-but-valid-so-far sequence as NOT included (it may complete later).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace hpl
