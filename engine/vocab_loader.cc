// tokenizer.ggml.* -> Vocab. Key names and defaults as llama.cpp's llama_vocab::load.
#include "engine/vocab_loader.h"

#include <stdexcept>

namespace hpl {

namespace {

// A special-token id key: -1 when missing, 0xFFFFFFFF ("none" in some converters) or out of
// range for this vocab.
int32_t token_id(const GgufFile& f, const char* key, int32_t dflt, size_t n_tokens) {
  const int64_t v = f.i64_or(key, dflt);
  if (v < 0 || v >= static_cast<int64_t>(n_tokens)) return -1;
  return static_cast<int32_t>(v);
}

int32_t find_text(const Vocab& v, std::initializer_list<const char*> texts) {
  for (const char* t : texts) {
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (v.tokens[i] == t) return static_cast<int32_t>(i);
    }
  }
  return -1;
}

}  // namespace

Vocab load_vocab(const GgufFile& f) {
  Vocab v;
  const std::string model = f.str("tokenizer.ggml.model");
  const bool spm = model == "llama", wpm = model == "bert";
  if (spm) {
    v.kind = VocabKind::SPM;
  } else if (model == "gpt2") {
    v.kind = VocabKind::BPE;
  } else if (wpm) {
    v.kind = VocabKind::WPM;
  } else {
    throw GgufError(f.path() + ": tokenizer.ggml.model '" + model +
                    "' is not supported (only 'llama' SPM, 'gpt2' BPE and 'bert' WordPiece)");
  }
  v.pre = f.str_or("tokenizer.ggml.pre", "default");
  v.tokens = f.str_array("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (f.has("tokenizer.ggml.scores")) v.scores = f.f32_array("tokenizer.ggml.scores");
  if (f.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> t = f.int_array("tokenizer.ggml.token_type");
    v.token_types.assign(t.begin(), t.end());
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] < 0 || t[i] > 6) {
        throw GgufError(f.path() + ": tokenizer.ggml.token_type[" + std::to_string(i) +
                        "] = " + std::to_string(t[i]) + " is not a token type (0..6)");
      }
    }
  }
  if (f.has("tokenizer.ggml.merges")) v.merges = f.str_array("tokenizer.ggml.merges");
  for (const auto& [key, size] : {std::pair<const char*, size_t>{"scores", v.scores.size()},
                                  {"token_type", v.token_types.size()}}) {
    if (size != 0 && size != n) {
      throw GgufError(f.path() + ": tokenizer.ggml." + key + " has " + std::to_string(size) +
                      " entries but tokenizer.ggml.tokens has " + std::to_string(n));
    }
  }

  // llama.cpp's defaults for SPM vocabs without the keys: <unk>=0, <s>=1, </s>=2.
  v.bos_id = token_id(f, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n);
  v.eos_id = token_id(f, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n);
  v.unk_id = token_id(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n);
  v.eot_id = token_id(f, "tokenizer.ggml.eot_token_id", -1, n);
  v.eom_id = token_id(f, "tokenizer.ggml.eom_token_id", -1, n);
  v.pad_id = token_id(f, "tokenizer.ggml.padding_token_id", -1, n);
  v.sep_id = token_id(f, "tokenizer.ggml.seperator_token_id", -1, n);  // sic, as written
  if (v.eot_id < 0) {
    v.eot_id = find_text(
        v, {"<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|END_OF_TURN_TOKEN|>"});
  }
  if (v.eom_id < 0) v.eom_id = find_text(v, {"<|eom_id|>"});
  if (wpm) {
    // BERT: [CLS] is bos, [SEP] ends a text (eos) and separates pairs.
    if (v.bos_id < 0) v.bos_id = token_id(f, "tokenizer.ggml.cls_token_id", -1, n);
    if (v.bos_id < 0) v.bos_id = find_text(v, {"[CLS]"});
    if (v.sep_id < 0) v.sep_id = find_text(v, {"[SEP]"});
    if (v.eos_id < 0) v.eos_id = v.sep_id;
    if (v.unk_id < 0) v.unk_id = find_text(v, {"[UNK]"});
    if (v.pad_id < 0) v.pad_id = find_text(v, {"[PAD]"});
    // BertNormalizer: strip_accents follows lowercase unless given (llama.cpp's defaults).
    v.lowercase = f.boolean_or("tokenizer.ggml.normalizer.lowercase", true);
    v.strip_accents = f.boolean_or("tokenizer.ggml.normalizer.strip_accents", v.lowercase);
  }

  v.add_bos = f.boolean_or("tokenizer.ggml.add_bos_token", spm || wpm);
  v.add_eos = f.boolean_or("tokenizer.ggml.add_eos_token", wpm);
  v.add_sep = f.boolean_or("tokenizer.ggml.add_sep_token", false);
  v.add_space_prefix = spm && f.boolean_or("tokenizer.ggml.add_space_prefix", true);
  if (v.bos_id < 0) v.add_bos = false;
  if (v.eos_id < 0) v.add_eos = false;
  if (v.sep_id < 0) v.add_sep = false;
  v.chat_template = f.str_or("tokenizer.chat_template", "");
  return v;
}

std::unique_ptr<Tokenizer> load_tokenizer(const GgufFile& f) {
  Vocab v = load_vocab(f);
  try {
    return Tokenizer::create(std::move(v));
  } catch (const std::invalid_argument& e) {
    throw GgufError(f.path() + ": " + e.what());
  }
}

}  // namespace hpl
