// OpenAI-style `tools` / `tool_choice` for `hpl serve`'s chat completions, for the chat
// templates that define a tool-call format:
// - chatml (Qwen 2.5 / 3): the tools go into the system message as Qwen's template writes
//   them; a call is <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>;
// - llama3 (Llama 3.1 / 3.2 JSON tool calling): the tools go before the last user message;
//   a call is {"name": ..., "parameters": {...}}.
// tool_choice "required" or a named function constrains the reply with a grammar built from
// the functions' parameter schemas (grammar/json_schema.h); "auto" leaves it free and the
// reply is searched for calls; "none" ignores the tools. The conversation may hold earlier
// calls (an assistant message's tool_calls) and their results (role "tool"): they are written
// the way each template's tool format has them (chatml: <tool_call> blocks and <tool_response>
// in a user turn; llama3: the call's JSON and an ipython turn). Streamed, text goes out as it
// comes until a call may be starting, and the calls follow as one tool_calls delta. Any other
// template is 400 naming what is not supported.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/runtime_types.h"
#include "tokenizer/chat_template.h"

namespace hpl::cli {

struct ToolRequest {
  nlohmann::json tools = nlohmann::json::array();  // the validated `tools`
  std::string choice = "auto";                     // auto, required, none, or "function"
  std::string function;                            // choice "function": its name
  // messages[i] (an assistant turn) -> its validated tool_calls, from the conversation so far
  std::vector<std::pair<size_t, nlohmann::json>> history_calls;
  bool active() const { return !tools.empty() && choice != "none"; }
};

// Validates `tools`, `tool_choice` and the messages' tool_calls of a chat body (ApiError 400
// naming the field).
ToolRequest parse_tools(const nlohmann::json& body);

// Writes earlier calls and tool results into the messages, adds the tool descriptions and, for
// required / named calls, the grammar. ApiError 400 when the template family has no tool-call
// format here.
void apply_tools(const ToolRequest& t, ChatFamily family, RequestParams& p);

// A streamed reply that may hold tool calls: feed() passes text on until a call may be
// starting (chatml: "<tool_call>", or its beginning at the end of the text so far; llama3: a
// reply whose first non-blank character is '{') and holds it from there; finish() splits what
// was held into calls (nullopt: none) and the content around them.
class ToolCallStream {
 public:
  explicit ToolCallStream(ChatFamily family) : family_(family) {}
  std::string feed(const std::string& piece);  // the text that can be sent now
  std::optional<nlohmann::json> finish(std::string& content);

 private:
  ChatFamily family_;
  std::string held_;
  bool holding_ = false;  // a call may have started: everything from here is held
  bool plain_ = false;    // llama3: the reply is text, no call can follow
};

// The calls in a reply ([{"id", "type": "function", "function": {"name", "arguments"}}]),
// and the text outside them in `content`; nullopt when the reply has none.
std::optional<nlohmann::json> parse_tool_calls(const std::string& text, ChatFamily family,
                                               std::string& content);

}  // namespace hpl::cli
