// Pre-tokenizers of byte-level BPE vocabs (tokenizer.ggml.pre): split text into words before
// merges. Each is the sequence of regexes llama.cpp uses for that name, hand-written over code
// points with real Unicode categories (no std::regex). A pass splits every fragment from the
// previous pass into its matches and the gaps between them (both kept), left to right with
// ordered alternation and greedy quantifiers, as a regex iterator does.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace hpl {

enum class PreTokenizer {
  DEFAULT,         // "default" (and a missing key): punctuation runs, GPT-2, digit runs, 3 digits
  GPT2,            // "gpt-2", "mpt", "olmo", "jais", "phi-2", "roberta-bpe", ...
  LLAMA3,          // "llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "chatglm-bpe", ...
  QWEN2,           // "qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"
  STARCODER,       // "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", ...
  DEEPSEEK_LLM,    // "deepseek-llm"
  DEEPSEEK_CODER,  // "deepseek-coder"
  FALCON,          // "falcon"
  BLOOM,           // "bloom", "poro-chat", "gpt3-finnish"
  VIKING,          // "viking"
};

// false when the name is not one we implement.
bool pretokenizer_from_name(std::string_view name, PreTokenizer* out);

// Splits code points cps[0..n) into words. Appends to `ends` the end index (exclusive) of each
// word in order; the first word starts at 0.
void pretokenize(PreTokenizer kind, const uint32_t* cps, size_t n, std::vector<uint32_t>& ends);

}  // namespace hpl
