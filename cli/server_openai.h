// OpenAI-style request parsing and response bodies for `hpl serve` (no HTTP here): turns a
// /v1/chat/completions, /v1/completions, /v1/embeddings or /v1/rerank JSON body into runtime
// requests, validating every field with an error that names it, and builds the completion /
// chunk / embeddings / rerank / error JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli/server_tools.h"
#include "runtime/runtime_types.h"

namespace hpl::cli {

// A client error: HTTP status (400, 413, ...) + OpenAI error fields.
class ApiError : public std::runtime_error {
 public:
  ApiError(int http_status, const std::string& msg, std::string param = "", std::string code = "",
           std::string type = "invalid_request_error")
      : std::runtime_error(msg),
        http_status(http_status),
        param(std::move(param)),
        code(std::move(code)),
        type(std::move(type)) {}
  int http_status;
  std::string param, code, type;
};

// {"error": {"message", "type", "param", "code"}}; empty param/code become null.
nlohmann::json error_body(const std::string& message, const std::string& type,
                          const std::string& param, const std::string& code);

// One parsed completion request. For chat, params.messages holds the conversation (the
// caller formats it with the chat template); for text, params.prompt holds the prompt.
struct ApiRequest {
  bool chat = false;
  bool stream = false;
  bool max_tokens_given = false;  // else the caller fills the rest of the context
  std::string model;              // echoed back ("" -> the served model's id)
  RequestParams params;
  bool seed_given = false;
  ToolRequest tools;                        // chat: `tools` / `tool_choice` (cli/server_tools.h)
  ChatFamily family = ChatFamily::UNKNOWN;  // the template that formatted it (tool calls)
};

// Parses the body (bad JSON -> 400) and validates every field (400 naming the field). A
// field this server does not read (echo, suffix, logit_bias, ...) is refused by name, as
// is a number too large for a double; a chat needs a user message.
ApiRequest parse_request(const std::string& body, bool chat);

// "stop" / "length" from the runtime's finish reason.
const char* openai_finish_reason(FinishReason r);

nlohmann::json usage_json(const RequestStats& st);

// A whole (non-streamed) response: chat.completion or text_completion.
nlohmann::json completion_json(const ApiRequest& r, const std::string& id, int64_t created,
                               const std::string& text, const RequestStats& st);
// The streamed chunk of a reply's tool calls (parse_tool_calls' array): delta.tool_calls, each
// with its index.
nlohmann::json tool_calls_chunk_json(const ApiRequest& r, const std::string& id, int64_t created,
                                     const nlohmann::json& calls);
// One streamed chunk. delta_text: the new text (chat: delta.content; text: text); role: chat's
// first chunk; finish: the last chunk (finish_reason and usage set).
nlohmann::json chunk_json(const ApiRequest& r, const std::string& id, int64_t created,
                          const std::string& delta_text, bool role, const RequestStats* finish);

// POST /v1/embeddings (OpenAI): input a string, an array of strings, a token array or an
// array of token arrays (used as given); encoding_format float or base64; dimensions, when
// given, must equal the model's (checked by the caller); truncate (not OpenAI): cut inputs
// longer than the context instead of refusing them.
struct EmbeddingsRequest {
  std::string model;  // "" -> the default embedding model
  EmbedRequest request;
  bool base64 = false;
  int64_t dimensions = 0;  // 0: not given
};
EmbeddingsRequest parse_embeddings_request(const std::string& body);
// {"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}
// from n vectors of dim floats.
nlohmann::json embeddings_json(const EmbeddingsRequest& r, const std::string& model,
                               const float* outputs, int32_t n, int32_t dim,
                               const RequestStats& st);

// POST /v1/rerank (llama.cpp's server, Jina, Cohere): query, documents (strings, or Cohere's
// {"text": ...}), top_n (default: all), return_documents; truncate (not theirs) as above.
struct RerankApiRequest {
  std::string model;
  RerankRequest request;
  int64_t top_n = 0;
  bool return_documents = false;
};
RerankApiRequest parse_rerank_request(const std::string& body);
// {"object": "list", "model", "results": [{"index", "relevance_score"[, "document"]}], "usage"}:
// the top_n documents, most relevant first.
nlohmann::json rerank_json(const RerankApiRequest& r, const std::string& model, const float* scores,
                           int32_t n, const RequestStats& st);

}  // namespace hpl::cli
