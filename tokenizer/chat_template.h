// Chat prompt formats of the common model families, chosen from the GGUF's
// tokenizer.chat_template (by distinctive substrings, not by running Jinja) or by name.
//
// Output conventions (all families):
// - The leading BOS is NOT in the text: encode with add_special = true (the tokenizer adds it
//   when the vocab asks) and parse_special = true (so "<start_of_turn>" becomes its id).
// - format() gives the whole conversation; append_user_turn() gives only what follows the
//   tokens already in the KV cache after a generated reply, for incremental prefill.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace hpl {

enum class ChatFamily {
  UNKNOWN,
  GEMMA,      // <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n; system folded
  CHATML,     // <|im_start|>role\n...<|im_end|>\n (Qwen2, many fine-tunes)
  LLAMA2,     // [INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] reply </s><s>[INST] ...
  LLAMA3,     // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  COMMAND_R,  // <|START_OF_TURN_TOKEN|><|USER_TOKEN|>...<|END_OF_TURN_TOKEN|> (Command-R, Aya)
  ZEPHYR,     // <|user|>\n...</s>\n<|assistant|>\n
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (or "model")
  std::string content;
};

const char* chat_family_name(ChatFamily f);  // "gemma", "chatml", ...
// Names and aliases: gemma, gemma3, chatml, qwen2, llama2, mistral, llama3, command-r, aya,
// zephyr. false when unknown.
bool chat_family_from_name(std::string_view name, ChatFamily* out);
// From a Jinja template's text: UNKNOWN when no family's marker is in it.
ChatFamily detect_chat_family(std::string_view jinja);
// From a vocab: its chat_template, else its special tokens (some GGUFs, like the Gemma 3 270M
// default model, carry no template). UNKNOWN when neither tells.
ChatFamily detect_chat_family(const Vocab& vocab);

class ChatTemplate {
 public:
  // bos/eos texts are used inside the history of families that repeat them (Llama 2: "<s>",
  // "</s>"; Zephyr: "</s>").
  explicit ChatTemplate(ChatFamily family, std::string bos_text = "<s>",
                        std::string eos_text = "</s>");
  // override_name (if not empty) wins over detection. Throws std::invalid_argument for an
  // unknown name or a vocab whose family cannot be told.
  static ChatTemplate for_vocab(const Vocab& vocab, std::string_view override_name = "");

  ChatFamily family() const { return family_; }

  // The whole conversation; add_generation_prompt opens the assistant's turn. Throws
  // std::invalid_argument on an unknown role, or a system message that is not first in
  // families that fold it into the first user turn (Gemma, Llama 2).
  std::string format(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  // Text to append after a conversation formatted with add_generation_prompt whose assistant
  // reply was then generated into the cache: closes that reply (its end-of-turn marker unless
  // reply_closed, i.e. the end-of-turn token was already fed), adds `user`, and opens the
  // assistant turn again (if add_generation_prompt). So that
  //   format(h, true) + reply + append_user_turn(u) == format(h + {assistant: reply} + u, true)
  // (Llama 2's reply starts with its separating space, " reply").
  std::string append_user_turn(const ChatMessage& user, bool reply_closed = false,
                               bool add_generation_prompt = true) const;

  // The text that ends an assistant turn ("<end_of_turn>", "<|im_end|>", ...): a stop string.
  std::string end_of_turn() const;

 private:
  std::string turn(const std::string& role, const std::string& content) const;
  std::string generation_prompt() const;

  ChatFamily family_;
  std::string bos_, eos_;
};

}  // namespace hpl
