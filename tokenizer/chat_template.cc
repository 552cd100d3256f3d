// Chat formats, written out per family (what each model's own Jinja template produces for
// plain string messages), and detection from the template text.
#include "tokenizer/chat_template.h"

#include <stdexcept>

namespace hpl {

namespace {

bool contains(std::string_view s, std::string_view what) {
  return s.find(what) != std::string_view::npos;
}

// Jinja's trim / Python's str.strip(): ASCII whitespace at both ends.
std::string trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// "model" is Gemma's name for the assistant.
std::string canonical_role(const std::string& role, ChatFamily f) {
  if (role == "model") return "assistant";
  if (role == "system" || role == "user" || role == "assistant") return role;
  // ChatML and Llama 3 print the role name, so others ("tool", "ipython") pass through.
  if (f == ChatFamily::CHATML || f == ChatFamily::LLAMA3) return role;
  throw std::invalid_argument(std::string("chat template ") + chat_family_name(f) +
                              ": unknown role '" + role + "'");
}

}  // namespace

const char* chat_family_name(ChatFamily f) {
  switch (f) {
    case ChatFamily::GEMMA:
      return "gemma";
    case ChatFamily::CHATML:
      return "chatml";
    case ChatFamily::LLAMA2:
      return "llama2";
    case ChatFamily::LLAMA3:
      return "llama3";
    case ChatFamily::COMMAND_R:
      return "command-r";
    case ChatFamily::ZEPHYR:
      return "zephyr";
    case ChatFamily::UNKNOWN:
      break;
  }
  return "unknown";
}

bool chat_family_from_name(std::string_view name, ChatFamily* out) {
  static const std::pair<const char*, ChatFamily> kNames[] = {
      {"gemma", ChatFamily::GEMMA},   {"gemma2", ChatFamily::GEMMA},
      {"gemma3", ChatFamily::GEMMA},  {"chatml", ChatFamily::CHATML},
      {"qwen2", ChatFamily::CHATML},  {"qwen", ChatFamily::CHATML},
      {"llama2", ChatFamily::LLAMA2}, {"mistral", ChatFamily::LLAMA2},
      {"llama3", ChatFamily::LLAMA3}, {"command-r", ChatFamily::COMMAND_R},
      {"aya", ChatFamily::COMMAND_R}, {"zephyr", ChatFamily::ZEPHYR},
  };
  for (const auto& [n, f] : kNames) {
    if (name == n) {
      *out = f;
      return true;
    }
  }
  return false;
}

ChatFamily detect_chat_family(std::string_view t) {
  if (contains(t, "<|im_start|>")) return ChatFamily::CHATML;
  if (contains(t, "<|start_header_id|>")) return ChatFamily::LLAMA3;
  if (contains(t, "<start_of_turn>")) return ChatFamily::GEMMA;
  if (contains(t, "<|START_OF_TURN_TOKEN|>")) return ChatFamily::COMMAND_R;
  if (contains(t, "[INST]")) return ChatFamily::LLAMA2;
  // Phi-3 also uses <|user|> but ends turns with <|end|>: a different format.
  if (contains(t, "<|user|>") && !contains(t, "<|end|>")) return ChatFamily::ZEPHYR;
  return ChatFamily::UNKNOWN;
}

ChatFamily detect_chat_family(const Vocab& v) {
  if (!v.chat_template.empty()) return detect_chat_family(v.chat_template);
  auto has = [&](std::string_view text) {
    for (const std::string& t : v.tokens) {
      if (t == text) return true;
    }
    return false;
  };
  if (has("<start_of_turn>")) return ChatFamily::GEMMA;
  if (has("<|im_start|>")) return ChatFamily::CHATML;
  if (has("<|start_header_id|>")) return ChatFamily::LLAMA3;
  if (has("<|START_OF_TURN_TOKEN|>")) return ChatFamily::COMMAND_R;
  return ChatFamily::UNKNOWN;
}

ChatTemplate::ChatTemplate(ChatFamily family, std::string bos_text, std::string eos_text)
    : family_(family), bos_(std::move(bos_text)), eos_(std::move(eos_text)) {
  if (family == ChatFamily::UNKNOWN) {
    throw std::invalid_argument("chat template: no format for family 'unknown'");
  }
}

ChatTemplate ChatTemplate::for_vocab(const Vocab& v, std::string_view override_name) {
  ChatFamily f = ChatFamily::UNKNOWN;
  if (!override_name.empty()) {
    if (!chat_family_from_name(override_name, &f)) {
      throw std::invalid_argument("unknown chat template '" + std::string(override_name) +
                                  "' (gemma, chatml, llama2, llama3, command-r, zephyr)");
    }
  } else {
    f = detect_chat_family(v);
    if (f == ChatFamily::UNKNOWN) {
      throw std::invalid_argument(
          "cannot tell the chat format from tokenizer.chat_template or the vocab; name one "
          "(gemma, chatml, llama2, llama3, command-r, zephyr)");
    }
  }
  auto text = [&](int32_t id, const char* dflt) {
    return id >= 0 && id < static_cast<int32_t>(v.tokens.size()) ? v.tokens[id] : std::string(dflt);
  };
  return ChatTemplate(f, text(v.bos_id, "<s>"), text(v.eos_id, "</s>"));
}

std::string ChatTemplate::end_of_turn() const {
  switch (family_) {
    case ChatFamily::GEMMA:
      return "<end_of_turn>";
    case ChatFamily::CHATML:
      return "<|im_end|>";
    case ChatFamily::LLAMA3:
      return "<|eot_id|>";
    case ChatFamily::COMMAND_R:
      return "<|END_OF_TURN_TOKEN|>";
    case ChatFamily::LLAMA2:
    case ChatFamily::ZEPHYR:
      return eos_;
    case ChatFamily::UNKNOWN:
      break;
  }
  return "";
}

// One complete turn (not Llama 2, which pairs turns; not Gemma's folded system).
std::string ChatTemplate::turn(const std::string& role, const std::string& content) const {
  switch (family_) {
    case ChatFamily::GEMMA:
      return "<start_of_turn>" + std::string(role == "assistant" ? "model" : role) + "\n" +
             trim(content) + "<end_of_turn>\n";
    case ChatFamily::CHATML:
      return "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
    case ChatFamily::LLAMA3:
      return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + trim(content) + "<|eot_id|>";
    case ChatFamily::COMMAND_R: {
      const char* tok = role == "system" ? "<|SYSTEM_TOKEN|>"
                        : role == "user" ? "<|USER_TOKEN|>"
                                         : "<|CHATBOT_TOKEN|>";
      return std::string("<|START_OF_TURN_TOKEN|>") + tok + trim(content) + "<|END_OF_TURN_TOKEN|>";
    }
    case ChatFamily::ZEPHYR:
      return "<|" + role + "|>\n" + content + eos_ + "\n";
    case ChatFamily::LLAMA2:
      if (role == "user") return "[INST] " + trim(content) + " [/INST]";
      return std::string(1, ' ') + trim(content) + std::string(1, ' ') + eos_;
    case ChatFamily::UNKNOWN:
      break;
  }
  return "";
}

std::string ChatTemplate::generation_prompt() const {
  switch (family_) {
    case ChatFamily::GEMMA:
      return "<start_of_turn>model\n";
    case ChatFamily::CHATML:
      return "<|im_start|>assistant\n";
    case ChatFamily::LLAMA3:
      return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatFamily::COMMAND_R:
      return "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>";
    case ChatFamily::ZEPHYR:
      return "<|assistant|>\n";
    case ChatFamily::LLAMA2:  // "[/INST]" already hands over to the assistant
    case ChatFamily::UNKNOWN:
      break;
  }
  return "";
}

std::string ChatTemplate::format(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) const {
  std::string out;
  size_t i = 0;
  std::string system;  // Gemma, Llama 2: folded into the first turn
  const bool folds = family_ == ChatFamily::GEMMA || family_ == ChatFamily::LLAMA2;
  if (folds && !messages.empty() && canonical_role(messages[0].role, family_) == "system") {
    system = messages[0].content;
    i = 1;
  }
  const bool has_system = i == 1;
  for (size_t k = i; k < messages.size(); ++k) {
    const std::string role = canonical_role(messages[k].role, family_);
    const std::string& content = messages[k].content;
    if (folds && role == "system") {
      throw std::invalid_argument(std::string("chat template ") + chat_family_name(family_) +
                                  ": a system message must come first");
    }
    const bool first = k == i;
    if (family_ == ChatFamily::GEMMA && first && has_system) {
      // {{ '<start_of_turn>' + role + '\n' + first_user_prefix + content | trim }}
      out += "<start_of_turn>" + std::string(role == "assistant" ? "model" : role) + "\n" + system +
             "\n\n" + trim(content) + "<end_of_turn>\n";
    } else if (family_ == ChatFamily::LLAMA2 && role == "user") {
      // bos + '[INST] ' + ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content).strip() + ' [/INST]'
      // with the conversation's first BOS left to the tokenizer.
      if (!out.empty()) out += bos_;
      const std::string c =
          first && has_system ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content : content;
      out += turn(role, c);
    } else {
      out += turn(role, content);
    }
  }
  if (add_generation_prompt) out += generation_prompt();
  return out;
}

std::string ChatTemplate::append_user_turn(const ChatMessage& user, bool reply_closed,
                                           bool add_generation_prompt) const {
  const std::string role = canonical_role(user.role, family_);
  if (role != "user") {
    throw std::invalid_argument("append_user_turn: role must be 'user', not '" + user.role + "'");
  }
  std::string out;
  switch (family_) {
    case ChatFamily::GEMMA:   // <end_of_turn>\n
    case ChatFamily::CHATML:  // <|im_end|>\n
    case ChatFamily::ZEPHYR:  // </s>\n
      if (!reply_closed) out += end_of_turn();
      out += "\n";
      break;
    case ChatFamily::LLAMA3:     // <|eot_id|>
    case ChatFamily::COMMAND_R:  // <|END_OF_TURN_TOKEN|>
      if (!reply_closed) out += end_of_turn();
      break;
    case ChatFamily::LLAMA2:  // " </s>" then the next pair opens with BOS
      if (!reply_closed) out += " " + eos_;
      out += bos_;
      break;
    case ChatFamily::UNKNOWN:
      break;
  }
  out += turn(role, user.content);
  if (add_generation_prompt) out += generation_prompt();
  return out;
}

}  // namespace hpl
