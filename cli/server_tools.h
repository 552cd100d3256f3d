// OpenAI-style `tools` / `tool_choice` for `hpl serve`'s chat completions, for the chat
// templates that define a tool-call format:
// - chatml (Qwen 2.5 / 3): the tools go into the system message as Qwen's template writes
//   them; a call is <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>;
// - llama3 (Llama 3.1 / 3.2 JSON tool calling): the tools go before the last user message;
//   a call is {"name": ..., "parameters": {...}}.
// tool_choice "required" or a named function constrains the reply with a grammar built from
// the functions' parameter schemas (grammar/json_schema.h); "auto" leaves it free and the
// reply is searched for calls; "none" ignores the tools. Any other template, streaming with
// tools, and tool-role messages are 400 naming what is not supported.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runtime/runtime_types.h"
#include "tokenizer/chat_template.h"

namespace hpl::cli {

struct ToolRequest {
  nlohmann::json tools = nlohmann::json::array();  // the validated `tools`
  std::string choice = "auto";                     // auto, required, none, or "function"
  std::string function;                            // choice "function": its name
  bool active() const { return !tools.empty() && choice != "none"; }
};

// Validates `tools` and `tool_choice` of a chat body (ApiError 400 naming the field).
ToolRequest parse_tools(const nlohmann::json& body);

// Adds the tool descriptions to the messages and, for required / named calls, the grammar.
// ApiError 400 when the template family has no tool-call format here, or with stream.
void apply_tools(const ToolRequest& t, ChatFamily family, bool stream, RequestParams& p);

// The calls in a reply ([{"id", "type": "function", "function": {"name", "arguments"}}]),
// and the text outside them in `content`; nullopt when the reply has none.
std::optional<nlohmann::json> parse_tool_calls(const std::string& text, ChatFamily family,
                                               std::string& content);

}  // namespace hpl::cli
