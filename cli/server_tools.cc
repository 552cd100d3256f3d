#include "cli/server_tools.h"

#include <algorithm>
#include <utility>

#include "cli/server_openai.h"
#include "grammar/json_schema.h"

namespace hpl::cli {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg,
                      const std::string& code = "invalid_value") {
  throw ApiError(400, msg, param, code);
}

// {"anyOf": [{"name": const, <args key>: parameters}, ...]} over the allowed functions, the
// name first (ordered_json keeps the order, and the grammar writes properties in it).
std::string call_schema(const ToolRequest& t, const char* args_key) {
  using ojson = nlohmann::ordered_json;
  ojson alts = ojson::array();
  for (const json& tool : t.tools) {
    const json& f = tool["function"];
    const std::string name = f["name"].get<std::string>();
    if (t.choice == "function" && name != t.function) continue;
    ojson props = ojson::object();
    props["name"] = ojson{{"const", name}};
    props[args_key] =
        f.contains("parameters") ? ojson::parse(f["parameters"].dump()) : ojson{{"type", "object"}};
    ojson alt = ojson::object();
    alt["type"] = "object";
    alt["properties"] = props;
    alt["required"] = ojson::array({"name", args_key});
    alt["additionalProperties"] = false;
    alts.push_back(alt);
  }
  return ojson{{"anyOf", alts}}.dump();
}

// messages[i].tool_calls: [{"id"?, "type": "function"?, "function": {"name", "arguments"}}],
// arguments a JSON object or its text (as OpenAI sends it). Returns them with the arguments as
// text.
json checked_calls(const json& calls, size_t i) {
  const std::string at = "messages[" + std::to_string(i) + "].tool_calls";
  if (!calls.is_array() || calls.empty()) bad(at, "'" + at + "' must be a non-empty array");
  json out = json::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    const json& c = calls[k];
    const std::string ck = at + "[" + std::to_string(k) + "]";
    const json* f = c.is_object() && c.contains("function") ? &c["function"] : nullptr;
    if (!f || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string() ||
        c.value("type", "function") != "function")
      bad(ck,
          "'" + ck + "' must be {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
    const json args = f->value("arguments", json::object());
    const json parsed =
        args.is_string() ? json::parse(args.get<std::string>(), nullptr, false) : args;
    if (!parsed.is_object())
      bad(ck + ".function.arguments",
          "'" + ck + ".function.arguments' must be a JSON object or its text");
    out.push_back({{"name", (*f)["name"]},
                   {"arguments", args.is_string() ? args.get<std::string>() : args.dump()}});
  }
  return out;
}

// An assistant turn's calls as its template writes them (content, if any, first).
std::string calls_text(const json& calls, const std::string& content, bool qwen) {
  std::string out = content;
  for (const json& c : calls) {
    const std::string name = c["name"].dump(), args = c["arguments"].get<std::string>();
    if (!out.empty()) out += "\n";
    out += qwen ? "<tool_call>\n{\"name\": " + name + ", \"arguments\": " + args + "}\n</tool_call>"
                : "{\"name\": " + name + ", \"parameters\": " + args + "}";
  }
  return out;
}

// Earlier calls and tool results into the messages: chatml (Qwen) gathers consecutive results
// into one user turn of <tool_response> blocks; llama3 gives each an ipython turn.
void write_tool_history(const ToolRequest& t, ChatFamily family, RequestParams& p) {
  const bool qwen = family == ChatFamily::CHATML;
  std::vector<ChatMessage> out;
  size_t next_call = 0;
  for (size_t i = 0; i < p.messages.size(); ++i) {
    ChatMessage m = p.messages[i];
    const bool called = next_call < t.history_calls.size() && t.history_calls[next_call].first == i;
    if (!called && m.role != "tool") {
      out.push_back(std::move(m));
      continue;
    }
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (family != ChatFamily::CHATML && family != ChatFamily::LLAMA3)
      bad(at + (called ? ".tool_calls" : ".role"),
          std::string("tool calls and results are not supported with the ") +
              chat_family_name(family) +
              " chat template (chatml for Qwen 2.5/3, llama3 for Llama 3.1+)",
          "unsupported_parameter");
    if (called) {
      out.push_back(
          {"assistant", calls_text(t.history_calls[next_call++].second, m.content, qwen)});
    } else if (!qwen) {
      out.push_back({"ipython", m.content});
    } else {
      const std::string block = "<tool_response>\n" + m.content + "\n</tool_response>";
      if (i > 0 && p.messages[i - 1].role == "tool")
        out.back().content += "\n" + block;
      else
        out.push_back({"user", block});
    }
  }
  p.messages = std::move(out);
}

}  // namespace

ToolRequest parse_tools(const json& body) {
  ToolRequest t;
  auto it = body.find("tools");
  if (it != body.end() && !it->is_null()) {
    if (!it->is_array()) bad("tools", "'tools' must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& tool = (*it)[i];
      const std::string at = "tools[" + std::to_string(i) + "]";
      if (!tool.is_object() || tool.value("type", "") != "function" || !tool.contains("function") ||
          !tool["function"].is_object())
        bad(at, "'" + at + "' must be {\"type\": \"function\", \"function\": {...}}");
      const json& f = tool["function"];
      if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
        bad(at + ".function.name", "'" + at + ".function.name' must be a non-empty string");
      if (f.contains("parameters") && !f["parameters"].is_object())
        bad(at + ".function.parameters", "'" + at + ".function.parameters' must be a JSON Schema");
      t.tools.push_back(tool);
    }
  }
  it = body.find("tool_choice");
  if (it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      t.choice = it->get<std::string>();
      if (t.choice != "auto" && t.choice != "required" && t.choice != "none")
        bad("tool_choice", "'tool_choice' must be auto, required, none or a function");
    } else if (it->is_object() && it->value("type", "") == "function" && it->contains("function") &&
               (*it)["function"].is_object() && (*it)["function"].value("name", "") != "") {
      t.choice = "function";
      t.function = (*it)["function"]["name"].get<std::string>();
      bool found = false;
      for (const json& tool : t.tools) found = found || tool["function"]["name"] == t.function;
      if (!found)
        bad("tool_choice", "'tool_choice' names '" + t.function + "', which is not in 'tools'");
    } else {
      bad("tool_choice",
          "'tool_choice' must be auto, required, none or {\"type\": \"function\", \"function\": "
          "{\"name\": ...}}");
    }
    if (t.tools.empty() && t.choice != "none" && t.choice != "auto")
      bad("tool_choice", "'tool_choice' needs 'tools'");
  }
  it = body.find("messages");
  if (it != body.end() && it->is_array())
    for (size_t i = 0; i < it->size(); ++i) {
      const json& m = (*it)[i];
      if (m.is_object() && m.value("role", "") == "assistant" && m.contains("tool_calls") &&
          !m["tool_calls"].is_null())
        t.history_calls.emplace_back(i, checked_calls(m["tool_calls"], i));
    }
  return t;
}

void apply_tools(const ToolRequest& t, ChatFamily family, RequestParams& p) {
  write_tool_history(t, family, p);
  if (!t.active()) return;
  if (family != ChatFamily::CHATML && family != ChatFamily::LLAMA3)
    bad("tools",
        std::string("'tools' is not supported with the ") + chat_family_name(family) +
            " chat template (tool calls: chatml for Qwen 2.5/3, llama3 for Llama 3.1+)",
        "unsupported_parameter");
  if (!p.format.empty())
    bad("response_format", "'response_format' with 'tools' is not supported",
        "unsupported_parameter");
  std::string list;
  for (const json& tool : t.tools) list += tool.dump() + "\n";
  const bool qwen = family == ChatFamily::CHATML;
  if (qwen) {  // Qwen 2.5's template: the tools follow the system message
    std::string text =
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        list +
        "</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>";
    if (!p.messages.empty() && p.messages[0].role == "system") {
      p.messages[0].content += text;
    } else {
      p.messages.insert(p.messages.begin(), {"system", "You are a helpful assistant." + text});
    }
  } else {  // Llama 3.1's JSON tool calling: the functions precede the last user message
    for (auto m = p.messages.rbegin(); m != p.messages.rend(); ++m) {
      if (m->role != "user") continue;
      m->content =
          "Given the following functions, please respond with a JSON for a function call with "
          "its proper arguments that best answers the given prompt.\n\nRespond in the format "
          "{\"name\": function name, \"parameters\": dictionary of argument name and its "
          "value}. Do not use variables.\n\n" +
          list + "\n" + m->content;
      break;
    }
  }
  if (t.choice == "auto") return;
  std::string gbnf;
  try {
    gbnf = grammar::json_schema_to_gbnf(call_schema(t, qwen ? "arguments" : "parameters"));
  } catch (const std::exception& e) {
    bad("tools", std::string("'tools': a function's parameters: ") + e.what());
  }
  // The schema's start rule becomes one call; the reply is one or more of them.
  gbnf.replace(0, gbnf.find("::="), "tool-call ");
  p.format.grammar = qwen ? "root ::= tc (\"\\n\" tc)*\ntc ::= \"<tool_call>\\n\" tool-call "
                            "\"\\n</tool_call>\"\n" +
                                gbnf
                          : "root ::= tool-call\n" + gbnf;
}

std::optional<json> parse_tool_calls(const std::string& text, ChatFamily family,
                                     std::string& content) {
  json calls = json::array();
  auto add = [&](const json& j, const char* args_key) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
    const json args = j.contains(args_key) ? j[args_key] : j.value("arguments", json::object());
    if (!args.is_object()) return false;
    calls.push_back({{"id", "call_" + std::to_string(calls.size())},
                     {"type", "function"},
                     {"function", {{"name", j["name"]}, {"arguments", args.dump()}}}});
    return true;
  };
  content.clear();
  if (family == ChatFamily::CHATML) {
    const std::string open = "<tool_call>", close = "</tool_call>";
    size_t pos = 0;
    for (;;) {
      const size_t a = text.find(open, pos);
      if (a == std::string::npos) break;
      const size_t b = text.find(close, a);
      if (b == std::string::npos) break;
      content += text.substr(pos, a - pos);
      const json j = json::parse(text.substr(a + open.size(), b - a - open.size()), nullptr, false);
      if (!add(j, "arguments")) content += text.substr(a, b + close.size() - a);
      pos = b + close.size();
    }
    content += text.substr(pos);
  } else {
    const json j = json::parse(text, nullptr, false);
    if (!add(j, "parameters")) content = text;
  }
  if (calls.empty()) return std::nullopt;
  const size_t first = content.find_first_not_of(" \t\n");
  content = first == std::string::npos
                ? ""
                : content.substr(first, content.find_last_not_of(" \t\n") - first + 1);
  return calls;
}

std::string ToolCallStream::feed(const std::string& piece) {
  held_ += piece;
  if (holding_) return "";
  if (plain_) return std::exchange(held_, "");
  size_t send = held_.size();
  if (family_ == ChatFamily::CHATML) {
    static const std::string open = "<tool_call>";
    const size_t a = held_.find(open);
    if (a != std::string::npos) {
      holding_ = true;
      send = a;
    } else {  // keep back an end that may be the start of the tag
      for (size_t k = std::min(open.size() - 1, held_.size()); k > 0; --k)
        if (held_.compare(held_.size() - k, k, open, 0, k) == 0) {
          send = held_.size() - k;
          break;
        }
    }
  } else {  // llama3: a call is the whole reply, a JSON object
    const size_t first = held_.find_first_not_of(" \t\n");
    if (first == std::string::npos) return "";  // blanks only: not known yet
    if (held_[first] == '{') {
      holding_ = true;
      return "";
    }
    plain_ = true;  // text: no call can follow, everything passes on
  }
  std::string out = held_.substr(0, send);
  held_.erase(0, send);
  return out;
}

std::optional<json> ToolCallStream::finish(std::string& content) {
  auto calls = holding_ ? parse_tool_calls(held_, family_, content) : std::nullopt;
  if (!calls) content = held_;
  held_.clear();
  return calls;
}

}  // namespace hpl::cli
