// Chat formats: exact text per family, incremental turns, detection, errors.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hpl {
namespace {

const std::vector<ChatMessage> kHistory = {
    {"system", "You are helpful."},
    {"user", "Hi!"},
};
const std::string kReply = "Hello! How can I help?";
const ChatMessage kNext = {"user", "Tell me a joke."};

std::vector<ChatMessage> whole() {
  std::vector<ChatMessage> m = kHistory;
  m.push_back({"assistant", kReply});
  m.push_back(kNext);
  return m;
}

struct FamilyCase {
  ChatFamily family;
  const char* expected;  // format(whole(), true)
};

// Written out from each family's reference template (HF tokenizer_config chat_template),
// without the leading BOS, which the tokenizer adds.
const FamilyCase kCases[] = {
    {ChatFamily::GEMMA,
     "<start_of_turn>user\nYou are helpful.\n\nHi!<end_of_turn>\n"
     "<start_of_turn>model\nHello! How can I help?<end_of_turn>\n"
     "<start_of_turn>user\nTell me a joke.<end_of_turn>\n"
     "<start_of_turn>model\n"},
    {ChatFamily::CHATML,
     "<|im_start|>system\nYou are helpful.<|im_end|>\n"
     "<|im_start|>user\nHi!<|im_end|>\n"
     "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
     "<|im_start|>user\nTell me a joke.<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {ChatFamily::LLAMA2,
     "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi! [/INST] Hello! How can I help? </s>"
     "<s>[INST] Tell me a joke. [/INST]"},
    {ChatFamily::LLAMA3,
     "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {ChatFamily::COMMAND_R,
     "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are helpful.<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi!<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hello! How can I help?<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Tell me a joke.<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"},
    {ChatFamily::ZEPHYR,
     "<|system|>\nYou are helpful.</s>\n"
     "<|user|>\nHi!</s>\n"
     "<|assistant|>\nHello! How can I help?</s>\n"
     "<|user|>\nTell me a joke.</s>\n"
     "<|assistant|>\n"},
};

class Family : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(Family, FormatsExactly) {
  const ChatTemplate t(GetParam().family);
  EXPECT_EQ(t.format(whole(), true), GetParam().expected);
}

TEST_P(Family, IncrementalTurnEqualsWholeConversation) {
  const ChatTemplate t(GetParam().family);
  const std::string prompt = t.format(kHistory, true);
  // What the model generated after the prompt (Llama 2 starts its reply with a space).
  const std::string reply = (GetParam().family == ChatFamily::LLAMA2 ? " " : "") + kReply;
  EXPECT_EQ(prompt + reply + t.append_user_turn(kNext), GetParam().expected);
  // The end-of-turn token was fed into the cache too: not repeated.
  const std::string closed =
      prompt + reply + (GetParam().family == ChatFamily::LLAMA2 ? " " : "") + t.end_of_turn();
  EXPECT_EQ(closed + t.append_user_turn(kNext, true), GetParam().expected);
  // Without the generation prompt the text stops after the user turn.
  const std::string no_gen = t.append_user_turn(kNext, false, false);
  EXPECT_EQ(prompt + reply + no_gen, t.format(whole(), false));
}

TEST_P(Family, FormatWithoutGenerationPromptIsAPrefix) {
  const ChatTemplate t(GetParam().family);
  const std::string with = t.format(kHistory, true);
  const std::string without = t.format(kHistory, false);
  EXPECT_EQ(with.compare(0, without.size(), without), 0);
  EXPECT_NE(t.end_of_turn(), "");
}

TEST_P(Family, DetectedFromItsOwnMarkersAndName) {
  const ChatFamily f = GetParam().family;
  ChatFamily by_name;
  ASSERT_TRUE(chat_family_from_name(chat_family_name(f), &by_name));
  EXPECT_EQ(by_name, f);
  // The formatted text carries the family's markers, so detection finds it back.
  EXPECT_EQ(detect_chat_family(GetParam().expected), f);
}

INSTANTIATE_TEST_SUITE_P(Families, Family, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string s = chat_family_name(info.param.family);
  for (char& c : s) c = c == '-' ? '_' : c;
  return s;
});

TEST(ChatTemplate, GemmaWithoutSystemAndTrim) {
  const ChatTemplate t(ChatFamily::GEMMA);
  EXPECT_EQ(t.format({{"user", "  Hi there \n"}}, true),
            "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(t.format({{"user", "a"}, {"model", "b"}}, false),
            "<start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n");
  EXPECT_EQ(t.append_user_turn({"user", "c"}),
            "<end_of_turn>\n<start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, Llama2WithoutSystem) {
  const ChatTemplate t(ChatFamily::LLAMA2);
  EXPECT_EQ(t.format({{"user", "Hi"}}, true), "[INST] Hi [/INST]");
  EXPECT_EQ(t.format({{"user", "Hi"}, {"assistant", "Yo"}, {"user", "Ok"}}, true),
            "[INST] Hi [/INST] Yo </s><s>[INST] Ok [/INST]");
}

TEST(ChatTemplate, ZephyrUsesTheVocabEos) {
  const ChatTemplate t(ChatFamily::ZEPHYR, "<s>", "<|endoftext|>");
  EXPECT_EQ(t.format({{"user", "Hi"}}, true), "<|user|>\nHi<|endoftext|>\n<|assistant|>\n");
}

TEST(ChatTemplate, DetectsRealTemplateSnippets) {
  EXPECT_EQ(detect_chat_family(
                "{{ bos_token }}{% for message in loop_messages %}{{ '<start_of_turn>' + role + "
                "'\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"),
            ChatFamily::GEMMA);
  EXPECT_EQ(detect_chat_family("{% for message in messages %}{{'<|im_start|>' + message['role'] "
                               "+ '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"),
            ChatFamily::CHATML);
  EXPECT_EQ(detect_chat_family("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"),
            ChatFamily::LLAMA2);
  EXPECT_EQ(detect_chat_family("{{ '<|start_header_id|>' + message['role'] + "
                               "'<|end_header_id|>\\n\\n' + message['content'] | trim + "
                               "'<|eot_id|>' }}"),
            ChatFamily::LLAMA3);
  EXPECT_EQ(detect_chat_family("{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + "
                               "'<|END_OF_TURN_TOKEN|>' }}"),
            ChatFamily::COMMAND_R);
  EXPECT_EQ(detect_chat_family("{{ '<|user|>\\n' + message['content'] + eos_token }}"),
            ChatFamily::ZEPHYR);
  // Phi-3: <|user|> but <|end|> turns: not Zephyr.
  EXPECT_EQ(detect_chat_family("{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n'}}"),
            ChatFamily::UNKNOWN);
  EXPECT_EQ(detect_chat_family(""), ChatFamily::UNKNOWN);
}

TEST(ChatTemplate, ForVocab) {
  Vocab v;
  v.tokens = {"<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"};
  v.bos_id = 2, v.eos_id = 1;
  // No template in the file: the vocab's tokens tell (the Gemma 3 270M GGUF has none).
  EXPECT_EQ(ChatTemplate::for_vocab(v).family(), ChatFamily::GEMMA);
  // A template wins over the tokens, and a name wins over both.
  v.chat_template = "{{ '<|im_start|>' }}";
  EXPECT_EQ(ChatTemplate::for_vocab(v).family(), ChatFamily::CHATML);
  EXPECT_EQ(ChatTemplate::for_vocab(v, "llama3").family(), ChatFamily::LLAMA3);
  EXPECT_EQ(ChatTemplate::for_vocab(v, "aya").family(), ChatFamily::COMMAND_R);
  EXPECT_THROW(ChatTemplate::for_vocab(v, "klingon"), std::invalid_argument);
  // Llama 2 repeats the vocab's BOS/EOS texts inside the history.
  v.chat_template = "[INST]";
  const ChatTemplate l2 = ChatTemplate::for_vocab(v);
  EXPECT_EQ(l2.format({{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, true),
            "[INST] a [/INST] b <eos><bos>[INST] c [/INST]");
  Vocab plain;
  plain.tokens = {"a", "b"};
  EXPECT_THROW(ChatTemplate::for_vocab(plain), std::invalid_argument);
}

TEST(ChatTemplate, Errors) {
  const ChatTemplate g(ChatFamily::GEMMA);
  EXPECT_THROW(g.format({{"user", "a"}, {"system", "late"}}, true), std::invalid_argument);
  EXPECT_THROW(g.format({{"wizard", "a"}}, true), std::invalid_argument);
  EXPECT_THROW(g.append_user_turn({"assistant", "a"}), std::invalid_argument);
  EXPECT_THROW(ChatTemplate(ChatFamily::UNKNOWN), std::invalid_argument);
  // ChatML prints any role.
  EXPECT_EQ(ChatTemplate(ChatFamily::CHATML).format({{"tool", "42"}}, false),
            "<|im_start|>tool\n42<|im_end|>\n");
}

}  // namespace
}  // namespace hpl
