// libFuzzer target for the chat-template renderer (tokenizer/chat_template.cc): any family,
// BOS/EOS texts, roles and contents either render or throw std::invalid_argument, never crash.
// Where a conversation renders, the incremental form must agree with the whole one:
//   format(h, true) + reply + append_user_turn(u) == format(h + {assistant: reply} + u, true)
// for a reply without surrounding whitespace (the families that trim would trim it) and h
// ending with a user turn (Llama 2's reply carries its separating space: " reply").
// Detection from a Jinja text, a vocab and a family name is fuzzed too.
// Built by tests/fuzz/run-fuzz.sh chat_template with clang++ -fsanitize=fuzzer,address,undefined.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

namespace {

using hpl::ChatFamily;
using hpl::ChatMessage;
using hpl::ChatTemplate;

constexpr ChatFamily kFamilies[] = {ChatFamily::GEMMA,  ChatFamily::CHATML,    ChatFamily::LLAMA2,
                                    ChatFamily::LLAMA3, ChatFamily::COMMAND_R, ChatFamily::ZEPHYR};
constexpr const char* kRoles[] = {"system", "user", "assistant", "model", "tool", "ipython", ""};

bool is_trimmed(const std::string& s) {
  const std::string ws = " \t\n\r\f\v";
  return s.empty() ||
         (ws.find(s.front()) == std::string::npos && ws.find(s.back()) == std::string::npos);
}

std::string role(FuzzedDataProvider& in) {
  return in.ConsumeBool() ? std::string(in.PickValueInArray(kRoles))
                          : in.ConsumeRandomLengthString(12);
}

void check_incremental(const ChatTemplate& t, const std::vector<ChatMessage>& h,
                       const std::string& reply, const std::string& user) {
  if (h.empty() || (h.back().role != "user") || !is_trimmed(reply) || reply.empty()) return;
  std::string whole, before, next;
  try {
    before = t.format(h, true);
    next = t.append_user_turn({"user", user});
    std::vector<ChatMessage> all = h;
    all.push_back({"assistant", reply});
    all.push_back({"user", user});
    whole = t.format(all, true);
  } catch (const std::invalid_argument&) {
    return;
  }
  const std::string generated = t.family() == ChatFamily::LLAMA2 ? " " + reply : reply;
  if (before + generated + next != whole) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const ChatFamily family = in.PickValueInArray(kFamilies);
  const std::string bos = in.ConsumeBool() ? "<s>" : in.ConsumeRandomLengthString(8);
  const std::string eos = in.ConsumeBool() ? "</s>" : in.ConsumeRandomLengthString(8);
  const ChatTemplate t(family, bos, eos);
  std::vector<ChatMessage> h(in.ConsumeIntegralInRange<size_t>(0, 6));
  for (ChatMessage& m : h) {
    m.role = role(in);
    m.content = in.ConsumeRandomLengthString(48);
  }
  const std::string reply = in.ConsumeRandomLengthString(48);
  const std::string user = in.ConsumeRandomLengthString(48);
  const bool closed = in.ConsumeBool();

  size_t n = 0;  // keeps the calls from being optimized away
  for (bool gen : {false, true}) {
    try {
      n += t.format(h, gen).size();
    } catch (const std::invalid_argument&) {
    }
  }
  try {
    n += t.append_user_turn({role(in), user}, closed, in.ConsumeBool()).size();
  } catch (const std::invalid_argument&) {
  }
  n += t.end_of_turn().size();
  check_incremental(t, h, reply, user);

  // Detection: by name, from a Jinja text, from a vocab (template text or special tokens).
  ChatFamily f = ChatFamily::UNKNOWN;
  n += hpl::chat_family_from_name(in.ConsumeRandomLengthString(16), &f);
  hpl::Vocab v;
  v.tokens.resize(in.ConsumeIntegralInRange<size_t>(0, 4));
  for (std::string& tok : v.tokens) tok = in.ConsumeRandomLengthString(24);
  v.bos_id = in.ConsumeIntegralInRange<int32_t>(-2, 5);
  v.eos_id = in.ConsumeIntegralInRange<int32_t>(-2, 5);
  const std::string name = in.ConsumeBool() ? in.ConsumeRandomLengthString(12) : "";
  v.chat_template = in.ConsumeRemainingBytesAsString();
  n += static_cast<size_t>(hpl::detect_chat_family(std::string_view(v.chat_template)));
  try {
    const ChatTemplate vt = ChatTemplate::for_vocab(v, name);
    n += vt.format({{"user", user}}, true).size();
  } catch (const std::invalid_argument&) {
  }
  return n == SIZE_MAX;  // always 0
}
