// Reads tokenizer.ggml.* (and tokenizer.chat_template) from a GGUF file into a tokenizer Vocab.
#pragma once

#include <memory>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

// Throws GgufError naming the file and key when a key is missing, of the wrong type, or the
// arrays disagree in length. Defaults follow llama.cpp: SPM adds BOS and a space prefix unless
// tokenizer.ggml.add_bos_token / add_space_prefix say otherwise; BPE adds neither; BERT
// ("bert", WordPiece) adds [CLS] and [SEP] (add_bos/add_eos_token, default true; pairs get an
// extra sep only with add_sep_token), lowercases and strips accents unless
// tokenizer.ggml.normalizer.lowercase / strip_accents say false, and finds [CLS] [SEP] [UNK]
// [PAD] by text when their id keys are missing. A special
// token id of 0xFFFFFFFF (as some converters write for "none") or out of range becomes -1.
// eot/eom ids come from tokenizer.ggml.eot_token_id / eom_token_id, else from well-known
// token texts (<end_of_turn>, <|im_end|>, <|eot_id|>, <|eom_id|>, <|end|>).
Vocab load_vocab(const GgufFile& f);

// load_vocab + Tokenizer::create; a std::invalid_argument from create is rethrown as
// GgufError naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const GgufFile& f);

}  // namespace hpl
