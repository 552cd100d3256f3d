#include "cli/server_openai.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/request_checks.h"

namespace hpl::cli {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg,
                      const std::string& code = "invalid_value") {
  throw ApiError(400, msg, param, code);
}

// The field, or null when absent (an explicit null counts as absent).
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// Without bounds: only the type is checked (the ranges are check_request()'s).
double number(const json& body, const char* name, double def, double lo = -INFINITY,
              double hi = INFINITY, bool lo_open = false) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    bad(name, std::string("'") + name + "' must be in " + (lo_open ? "(" : "[") + json(lo).dump() +
                  ", " + json(hi).dump() + "], got " + v->dump());
  return x;
}

int64_t integer(const json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number_integer()) bad(name, std::string("'") + name + "' must be an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    bad(name, std::string("'") + name + "' is too large");
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    bad(name, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + std::to_string(x));
  return x;
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& c, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(param, "'" + param + "' must be a string or an array of text parts");
  std::string out;
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string())
      bad(param, "'" + param + "': only {\"type\": \"text\", \"text\": ...} parts are supported");
    out += part["text"].get<std::string>();
  }
  return out;
}

// Where a number overflows: the JSON path of the value being parsed when the parser stops
// ("temperature", "messages[0].content"), "" when not inside a field.
std::string overflowing_field(const std::string& text) {
  // The path to the current value: one entry per open container (key, or array index).
  struct Level {
    bool array;
    std::string key;
    size_t index;
  };
  std::vector<Level> path;
  std::string where;
  auto show = [&] {
    std::string s;
    for (const Level& l : path) {
      if (l.array) {
        s.append("[").append(std::to_string(l.index)).append("]");
      } else if (!l.key.empty()) {
        if (!s.empty()) s.append(".");
        s.append(l.key);
      }
    }
    return s;
  };
  auto on_value = [&] {  // a value ended: an array moves to its next index
    if (!path.empty() && path.back().array) ++path.back().index;
  };
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
        path.push_back({false, "", 0});
        break;
      case json::parse_event_t::array_start:
        path.push_back({true, "", 0});
        break;
      case json::parse_event_t::key:
        path.back().key = parsed.get<std::string>();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        path.pop_back();
        on_value();
        break;
      case json::parse_event_t::value:
        on_value();
        break;
    }
    where = show();
    return true;
  };
  try {
    const json ignored = json::parse(text, cb);
  } catch (const json::exception&) {
  }
  return where;
}

// Fields this server reads; others are refused by name, so that nothing a client asks for is
// silently dropped. Ignored: user, metadata, store, service_tier, stream_options
// (usage is always in the last chunk), parallel_tool_calls (no tools).
const std::vector<std::string>& accepted_fields(bool chat) {
  static const std::vector<std::string> common = {"model",
                                                  "stream",
                                                  "max_tokens",
                                                  "temperature",
                                                  "top_p",
                                                  "top_k",
                                                  "min_p",
                                                  "repeat_penalty",
                                                  "presence_penalty",
                                                  "frequency_penalty",
                                                  "n",
                                                  "logprobs",
                                                  "seed",
                                                  "stop",
                                                  "response_format",
                                                  "user",
                                                  "metadata",
                                                  "store",
                                                  "service_tier",
                                                  "stream_options",
                                                  "parallel_tool_calls",
                                                  "cache_prompt"};
  static const std::vector<std::string> chat_fields = [] {
    auto v = common;
    v.insert(v.end(), {"messages", "max_completion_tokens", "tools", "tool_choice"});
    return v;
  }();
  static const std::vector<std::string> text_fields = [] {
    auto v = common;
    v.push_back("prompt");
    return v;
  }();
  return chat ? chat_fields : text_fields;
}

// response_format: {"type": "text"}, {"type": "json_object"} or {"type": "json_schema",
// "json_schema": {"name": ..., "schema": {...}, "strict": ...}}.
OutputFormat response_format(const json& rf) {
  const std::string p = "response_format";
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    bad(p, "'response_format' must be an object with a string 'type'");
  const std::string type = rf["type"].get<std::string>();
  OutputFormat f;
  if (type == "text") return f;
  if (type == "json_object") {
    f.json = true;
    return f;
  }
  if (type != "json_schema")
    bad(p + ".type",
        "'response_format.type' must be text, json_object or json_schema, got '" + type + "'");
  const json* js = field(rf, "json_schema");
  if (!js || !js->is_object())
    bad(p + ".json_schema", "'response_format.json_schema' must be an object");
  const json* schema = field(*js, "schema");
  if (!schema || !(schema->is_object() || schema->is_boolean()))
    bad(p + ".json_schema.schema", "'response_format.json_schema.schema' must be a JSON Schema");
  f.json_schema = schema->dump();
  return f;
}

void check_fields(const json& body, bool chat) {
  const auto& ok = accepted_fields(chat);
  std::vector<std::string> refused;
  for (const auto& [k, v] : body.items())
    if (std::find(ok.begin(), ok.end(), k) == ok.end()) refused.push_back(k);
  if (refused.empty()) return;
  std::string names;
  for (const std::string& k : refused) names += (names.empty() ? "'" : ", '") + k + "'";
  bad(
      refused[0],
      names + (refused.size() == 1 ? " is" : " are") + " not supported by this server (" +
          (chat ? "/v1/chat/completions" : "/v1/completions") + " accepts: " +
          [&] {
            std::string all;
            for (const std::string& k : ok) all += (all.empty() ? "" : ", ") + k;
            return all;
          }() +
          ")",
      "unsupported_parameter");
}

}  // namespace

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  json e = {{"message", message}, {"type", type}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return {{"error", e}};
}

ApiRequest parse_request(const std::string& body_text, bool chat) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "",
                   "invalid_json");
  } catch (const json::out_of_range&) {  // a number too large for a double (1e999)
    const std::string f = overflowing_field(body_text);
    throw ApiError(400,
                   (f.empty() ? std::string("a number") : "'" + f + "'") +
                       " is out of range (too large for a double)",
                   f, "invalid_value");
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object", "", "");
  check_fields(body, chat);

  ApiRequest r;
  r.chat = chat;
  RequestParams& p = r.params;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", "'model' must be a string");
    r.model = m->get<std::string>();
  }
  if (chat) {
    const json* msgs = field(body, "messages");
    if (!msgs) bad("messages", "'messages' is required", "missing_required_parameter");
    if (!msgs->is_array() || msgs->empty()) bad("messages", "'messages' must be a non-empty array");
    for (size_t i = 0; i < msgs->size(); ++i) {
      const json& m = (*msgs)[i];
      const std::string at = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) bad(at, "'" + at + "' must be an object");
      const json* role = field(m, "role");
      if (!role || !role->is_string()) bad(at + ".role", "'" + at + ".role' must be a string");
      const std::string rs = role->get<std::string>();
      if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer")
        bad(at + ".role",
            "'" + at + ".role' must be system, developer, user or assistant, got '" + rs + "'");
      const json* c = field(m, "content");
      if (!c) bad(at + ".content", "'" + at + ".content' is required");
      p.messages.push_back({rs == "developer" ? "system" : rs, content_text(*c, i)});
    }
    // One rule for every template: a conversation needs a user turn to answer.
    if (std::none_of(p.messages.begin(), p.messages.end(),
                     [](const ChatMessage& m) { return m.role == "user"; }))
      bad("messages",
          "'messages' has no user message: a system (or assistant) message alone gives the model "
          "nothing to answer; send the text as a user message, or use /v1/completions");
  } else {
    const json* pr = field(body, "prompt");
    if (!pr) bad("prompt", "'prompt' is required", "missing_required_parameter");
    if (pr->is_array() && pr->size() == 1 && (*pr)[0].is_string()) {
      p.prompt = (*pr)[0].get<std::string>();
    } else if (pr->is_string()) {
      p.prompt = pr->get<std::string>();
    } else {
      bad("prompt", "'prompt' must be a string (or an array of one string)");
    }
    if (p.prompt.empty()) bad("prompt", "'prompt' must not be empty");
  }

  if (const json* s = field(body, "stream")) {
    if (!s->is_boolean()) bad("stream", "'stream' must be a boolean");
    r.stream = s->get<bool>();
  }
  if (const json* c = field(body, "cache_prompt")) {  // llama.cpp's name; default true
    if (!c->is_boolean()) bad("cache_prompt", "'cache_prompt' must be a boolean");
    p.cache_prompt = c->get<bool>();
  }
  SamplerParams& sp = p.sampling;
  // Types here; ranges (the C API's and the CLI's, same messages) in check_request() below.
  sp.temp = static_cast<float>(number(body, "temperature", 1.0));
  sp.top_p = static_cast<float>(number(body, "top_p", 1.0));
  sp.top_k = static_cast<int32_t>(integer(body, "top_k", 0, INT32_MIN, INT32_MAX));
  sp.min_p = static_cast<float>(number(body, "min_p", 0.0));
  sp.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 1.0));
  for (const char* pen : {"presence_penalty", "frequency_penalty"})
    if (number(body, pen, 0.0, -2.0, 2.0) != 0.0)
      bad(pen, std::string("'") + pen + "' is not supported (use repeat_penalty)", "unsupported");
  if (integer(body, "n", 1, 1, 1) != 1) bad("n", "'n' must be 1");
  if (const json* lp = field(body, "logprobs"))
    if (!lp->is_boolean() || lp->get<bool>())
      bad("logprobs", "'logprobs' is not supported", "unsupported");

  const char* max_name =
      chat && field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (field(body, max_name)) {
    p.max_tokens = static_cast<int32_t>(integer(body, max_name, 1, INT32_MIN, INT32_MAX));
    r.max_tokens_given = true;
  }
  if (field(body, "seed")) {
    sp.seed = static_cast<uint64_t>(integer(body, "seed", 0, INT64_MIN, INT64_MAX));
    r.seed_given = true;
  }
  if (const json* st = field(body, "stop")) {
    auto add = [&](const json& s) {
      if (!s.is_string() || s.get<std::string>().empty())
        bad("stop", "'stop' must be a non-empty string or an array of them");
      p.stop_strings.push_back(s.get<std::string>());
    };
    if (st->is_array()) {
      if (st->size() > 4) bad("stop", "'stop' has at most 4 strings");
      for (const json& s : *st) add(s);
    } else {
      add(*st);
    }
  }
  if (const json* rf = field(body, "response_format")) p.format = response_format(*rf);
  if (chat) r.tools = parse_tools(body);
  if (auto e = check_request(p)) {  // one validation for the server, the C API and the CLI
    const std::string& f = e->field;
    if (f == "json_schema")  // the compile error: its JSON pointer is inside the schema
      bad("response_format.json_schema.schema",
          "'response_format.json_schema.schema'" + e->message.substr(f.size()));
    bad(f == "max_tokens" ? max_name : f.rfind("stop_strings", 0) == 0 ? "stop" : f, e->message);
  }
  return r;
}

const char* openai_finish_reason(FinishReason r) {
  switch (r) {
    case FinishReason::kMaxTokens:
    case FinishReason::kContextEnd:
      return "length";
    default:
      return "stop";
  }
}

// prompt_tokens counts the whole prompt: those evaluated and those whose KV came from the
// prompt cache (prompt_tokens_details.cached_tokens, as OpenAI reports it).
json usage_json(const RequestStats& st) {
  const int64_t prompt = int64_t{st.prompt_tokens} + st.cached_tokens;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", st.completion_tokens},
          {"total_tokens", prompt + st.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", st.cached_tokens}}}};
}

json completion_json(const ApiRequest& r, const std::string& id, int64_t created,
                     const std::string& text, const RequestStats& st) {
  json choice = {{"index", 0}, {"finish_reason", openai_finish_reason(st.finish)}};
  std::string content;
  std::optional<json> calls;
  if (r.chat && r.tools.active()) calls = parse_tool_calls(text, r.family, content);
  if (calls) {
    choice["message"] = {{"role", "assistant"}, {"tool_calls", *calls}};
    choice["message"]["content"] = content.empty() ? json(nullptr) : json(content);
    choice["finish_reason"] = "tool_calls";
  } else if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  choice["logprobs"] = nullptr;
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(st)}};
}

json chunk_json(const ApiRequest& r, const std::string& id, int64_t created,
                const std::string& delta_text, bool role, const RequestStats* finish) {
  json choice = {{"index", 0}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish ? json(openai_finish_reason(finish->finish)) : json(nullptr);
  if (r.chat) {
    json delta = json::object();
    if (role) delta["role"] = "assistant";
    if (role || !delta_text.empty()) delta["content"] = delta_text;
    choice["delta"] = delta;
  } else {
    choice["text"] = delta_text;
  }
  json c = {{"id", id},
            {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", r.model},
            {"choices", json::array({choice})}};
  if (finish) c["usage"] = usage_json(*finish);
  return c;
}

}  // namespace hpl::cli
