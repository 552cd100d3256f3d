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

// Refuses, by name, the fields of body that are not in ok (endpoint: for the message).
void check_fields(const json& body, const std::vector<std::string>& ok, const char* endpoint) {
  std::vector<std::string> refused;
  for (const auto& [k, v] : body.items())
    if (std::find(ok.begin(), ok.end(), k) == ok.end()) refused.push_back(k);
  if (refused.empty()) return;
  std::string names;
  for (const std::string& k : refused) names += (names.empty() ? "'" : ", '") + k + "'";
  bad(
      refused[0],
      names + (refused.size() == 1 ? " is" : " are") + " not supported by this server (" +
          endpoint + " accepts: " +
          [&] {
            std::string all;
            for (const std::string& k : ok) all += (all.empty() ? "" : ", ") + k;
            return all;
          }() +
          ")",
      "unsupported_parameter");
}

void check_fields(const json& body, bool chat) {
  check_fields(body, accepted_fields(chat), chat ? "/v1/chat/completions" : "/v1/completions");
}

// The body as a JSON object; 400 naming what is wrong.
json parse_body(const std::string& body_text) {
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
  return body;
}

std::string model_field(const json& body) {
  const json* m = field(body, "model");
  if (!m) return "";
  if (!m->is_string()) bad("model", "'model' must be a string");
  return m->get<std::string>();
}

bool boolean(const json& body, const char* name, bool def) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_boolean()) bad(name, std::string("'") + name + "' must be a boolean");
  return v->get<bool>();
}

// A non-empty string at path (a text of input / documents).
std::string text_at(const json& v, const std::string& path) {
  if (!v.is_string()) bad(path, "'" + path + "' must be a string");
  std::string s = v.get<std::string>();
  if (s.empty()) bad(path, "'" + path + "' is an empty string");
  if (auto e = check_utf8(s, path)) bad(path, e->message);
  return s;
}

// Token ids (an array of integers in [0, 2^31)) at path; the vocab range is the runtime's.
std::vector<int32_t> tokens_at(const json& v, const std::string& path) {
  if (v.empty()) bad(path, "'" + path + "' is an empty token array");
  std::vector<int32_t> ids;
  for (size_t j = 0; j < v.size(); ++j) {
    const json& t = v[j];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      bad(path, "'" + path + "[" + std::to_string(j) + "]' must be a token id (an integer >= 0)");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

std::string base64(const void* data, size_t n) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const uint8_t*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) |
                       (i + 2 < n ? uint32_t(p[i + 2]) : 0);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < n ? k[(v >> 6) & 63] : '=';
    out += i + 2 < n ? k[v & 63] : '=';
  }
  return out;
}

}  // namespace

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  json e = {{"message", message}, {"type", type}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return {{"error", e}};
}

namespace {

// "messages": each a system / developer / user / assistant turn with text content, or a tool
// result (role "tool"); an assistant turn with tool_calls may have no content (the calls are
// checked and written into the prompt by cli/server_tools.h). At least one from the user.
void parse_messages(const json& body, RequestParams& p) {
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
    if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer" && rs != "tool")
      bad(at + ".role",
          "'" + at + ".role' must be system, developer, user, assistant or tool, got '" + rs + "'");
    const json* c = field(m, "content");
    const json* calls = field(m, "tool_calls");
    const bool has_calls = rs == "assistant" && calls && !calls->is_null();
    if ((!c || c->is_null()) && !has_calls)
      bad(at + ".content", "'" + at + ".content' is required");
    p.messages.push_back(
        {rs == "developer" ? "system" : rs, c && !c->is_null() ? content_text(*c, i) : ""});
  }
  // One rule for every template: a conversation needs a user turn to answer.
  if (std::none_of(p.messages.begin(), p.messages.end(),
                   [](const ChatMessage& m) { return m.role == "user"; }))
    bad("messages",
        "'messages' has no user message: a system (or assistant) message alone gives the model "
        "nothing to answer; send the text as a user message, or use /v1/completions");
}

// "prompt": one non-empty string (or an array of one).
void parse_prompt(const json& body, RequestParams& p) {
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

// The sampling fields: types here; ranges (the C API's and the CLI's, same messages) in
// check_request().
void parse_sampling(const json& body, SamplerParams& sp) {
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
}

}  // namespace

ApiRequest parse_request(const std::string& body_text, bool chat) {
  const json body = parse_body(body_text);
  check_fields(body, chat);

  ApiRequest r;
  r.chat = chat;
  RequestParams& p = r.params;
  r.model = model_field(body);
  if (chat) {
    parse_messages(body, p);
  } else {
    parse_prompt(body, p);
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
  parse_sampling(body, sp);

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

json tool_calls_chunk_json(const ApiRequest& r, const std::string& id, int64_t created,
                           const json& calls) {
  json c = chunk_json(r, id, created, "", false, nullptr);
  json deltas = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json d = calls[i];
    d["index"] = i;
    deltas.push_back(d);
  }
  c["choices"][0]["delta"] = {{"tool_calls", deltas}};
  return c;
}

EmbeddingsRequest parse_embeddings_request(const std::string& body_text) {
  const json body = parse_body(body_text);
  check_fields(body, {"input", "model", "encoding_format", "dimensions", "user", "truncate"},
               "/v1/embeddings");
  EmbeddingsRequest r;
  r.model = model_field(body);
  const json* in = field(body, "input");
  if (!in) bad("input", "'input' is required", "missing_required_parameter");
  EmbedRequest& e = r.request;
  if (in->is_string()) {
    e.inputs.push_back(text_at(*in, "input"));
  } else if (!in->is_array()) {
    bad("input", "'input' must be a string, an array of strings, or token arrays");
  } else if (in->empty()) {
    bad("input", "'input' is an empty array: give at least one text");
  } else if ((*in)[0].is_number()) {  // one token array
    e.token_inputs.push_back(tokens_at(*in, "input"));
  } else {
    for (size_t i = 0; i < in->size(); ++i) {
      const json& v = (*in)[i];
      const std::string at = "input[" + std::to_string(i) + "]";
      if (v.is_array())
        e.token_inputs.push_back(tokens_at(v, at));
      else
        e.inputs.push_back(text_at(v, at));
    }
    if (!e.inputs.empty() && !e.token_inputs.empty())
      bad("input", "'input' mixes strings and token arrays: use one kind");
  }
  if (const json* f = field(body, "encoding_format")) {
    const std::string v = f->is_string() ? f->get<std::string>() : "";
    if (v != "float" && v != "base64")
      bad("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    r.base64 = v == "base64";
  }
  r.dimensions = integer(body, "dimensions", 0, 1, INT32_MAX);
  e.params.truncate = boolean(body, "truncate", false);
  return r;
}

json embeddings_json(const EmbeddingsRequest& r, const std::string& model, const float* outputs,
                     int32_t n, int32_t dim, const RequestStats& st) {
  json data = json::array();
  for (int32_t i = 0; i < n; ++i) {
    const float* v = outputs + static_cast<size_t>(i) * dim;
    json item = {{"object", "embedding"}, {"index", i}};
    // base64: the little-endian float32 bytes, as OpenAI's clients decode them.
    item["embedding"] =
        r.base64 ? json(base64(v, sizeof(float) * dim)) : json(std::vector<float>(v, v + dim));
    data.push_back(std::move(item));
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", st.prompt_tokens}, {"total_tokens", st.prompt_tokens}}}};
}

RerankApiRequest parse_rerank_request(const std::string& body_text) {
  const json body = parse_body(body_text);
  check_fields(body, {"query", "documents", "model", "top_n", "return_documents", "truncate"},
               "/v1/rerank");
  RerankApiRequest r;
  r.model = model_field(body);
  const json* q = field(body, "query");
  if (!q) bad("query", "'query' is required", "missing_required_parameter");
  r.request.query = text_at(*q, "query");
  const json* docs = field(body, "documents");
  if (!docs) bad("documents", "'documents' is required", "missing_required_parameter");
  if (!docs->is_array()) bad("documents", "'documents' must be an array of strings");
  if (docs->empty()) bad("documents", "'documents' is an empty array: give at least one");
  for (size_t i = 0; i < docs->size(); ++i) {
    const json& d = (*docs)[i];
    const std::string at = "documents[" + std::to_string(i) + "]";
    // Cohere also sends {"text": ...} objects.
    const json* t = d.is_object() ? field(d, "text") : &d;
    if (!t) bad(at, "'" + at + "' must be a string or an object with a \"text\" string");
    r.request.documents.push_back(text_at(*t, at));
  }
  r.top_n = integer(body, "top_n", static_cast<int64_t>(docs->size()), 1, INT32_MAX);
  r.return_documents = boolean(body, "return_documents", false);
  r.request.truncate = boolean(body, "truncate", false);
  return r;
}

json rerank_json(const RerankApiRequest& r, const std::string& model, const float* scores,
                 int32_t n, const RequestStats& st) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) order[i] = i;
  // Most relevant first; equal scores keep document order.
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  json results = json::array();
  for (size_t k = 0; k < order.size() && k < static_cast<size_t>(r.top_n); ++k) {
    const int32_t i = order[k];
    json item = {{"index", i}, {"relevance_score", scores[i]}};
    if (r.return_documents) item["document"] = {{"text", r.request.documents[i]}};
    results.push_back(std::move(item));
  }
  return {{"object", "list"},
          {"model", model},
          {"results", std::move(results)},
          {"usage", {{"prompt_tokens", st.prompt_tokens}, {"total_tokens", st.prompt_tokens}}}};
}

}  // namespace hpl::cli
