// Plain types shared by the runtime (runtime/runtime.h) and the C API (bindings/c/hpl.h):
// status codes, request parameters (generation, embeddings, rerank), events and per-request
// statistics.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/embedding.h"
#include "engine/generate.h"
#include "engine/grammar_constraint.h"
#include "engine/sampler.h"
#include "tokenizer/chat_template.h"

namespace hpl {

// Values are part of the C API (HPL_OK, HPL_ERR_...): append only.
enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad parameter or input (also: unknown request / session id)
  kIo = 2,               // file could not be opened, read or written
  kModel = 3,            // the model file is corrupt or unsupported
  kContextFull = 4,      // the turn does not fit in the session's context
  kOutOfMemory = 5,      // allocation failed or the memory budget is exhausted
  kFailedState = 6,      // circuit breaker open: the runtime refuses work until reset
  kSessionMismatch = 7,  // a session file from another model / incompatible context
  kBusy = 8,             // the object is in use (a model with live sessions or requests)
  kWouldDeadlock = 9,    // a blocking call made from inside a runtime callback
  kInternal = 10,        // anything else (a bug)
  kNotFound = 11,        // no such request (or it already finished)
  kTimeout = 12,         // a wait timed out
};
const char* status_name(Status s);

// An error that carries its status code; the runtime turns it into an error event.
class RuntimeError : public std::runtime_error {
 public:
  RuntimeError(Status s, const std::string& msg) : std::runtime_error(msg), status_(s) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

using RequestId = uint64_t;  // > 0; increasing in submission order
using SessionId = uint64_t;  // > 0

// ChatMessage {role, content} comes from tokenizer/chat_template.h.

// The generation loop's max_tokens (here > 0) and stop_strings, plus what a runtime request
// adds: its session, its input and its sampler settings.
struct RequestParams : GenerateParams {
  SessionId session = 0;  // 0: a stateless request (the context is cleared before and after)
  // Either raw prompt text (appended to the session as is) or chat messages (formatted with
  // the model's chat template; a follow-up turn formats only the new messages).
  std::string prompt;
  std::vector<ChatMessage> messages;
  SamplerParams sampling;  // engine/sampler.h; seed 0 is a fixed seed like any other
  OutputFormat format;     // engine/grammar_constraint.h: grammar, JSON schema or JSON mode
  // Stateless requests: reuse the KV of the longest prefix of the prompt that an earlier
  // request left (runtime/prompt_cache.h); false evaluates the whole prompt.
  bool cache_prompt = true;
};

// What a request asks for. Values are the C API's.
enum class RequestKind : int { kGenerate = 0, kEmbed = 1, kRerank = 2 };

// One vector per input, in input order. Exactly one of inputs (texts, tokenized with the
// model's special tokens: engine/embedding.h embed_tokens) or token_inputs (ids used as given)
// is non-empty. params: pooling (kUnspecified: the model's), L2 normalization, truncation (else
// an input longer than the context is refused naming the limit).
struct EmbedRequest {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> token_inputs;
  EmbedParams params;
};

// One relevance score per document, in document order, from a cross-encoder (a model of kind
// ModelKind::kRerank). truncate: cut documents that do not fit beside the query.
struct RerankRequest {
  std::string query;
  std::vector<std::string> documents;
  bool truncate = false;
};

enum class EventType : int { kQueued = 0, kProcessing = 1, kToken = 2, kDone = 3, kError = 4 };

// FinishReason (why a request ended with kDone; values are the C API's) is the generation
// loop's own, from engine/generate.h.

// RequestStats::truncated for each finish reason: the reply was cut short by something other
// than the model or the request's own limits, i.e. kStopped (stop(), also while queued or
// during prompt evaluation) and kContextEnd. kEndOfGeneration, kMaxTokens and kStopString
// are not truncations.
constexpr bool is_truncation(FinishReason r) {
  return r == FinishReason::kStopped || r == FinishReason::kContextEnd;
}

struct RequestStats {
  int32_t prompt_tokens = 0;          // tokens evaluated for this turn (new tokens only);
                                      // embed / rerank: all tokens evaluated
  int32_t cached_tokens = 0;          // stateless: prompt tokens whose KV was reused, not evaluated
  int32_t completion_tokens = 0;      // tokens generated
  double time_to_first_token_ms = 0;  // from prompt evaluation start to the first token
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  double queue_ms = 0;  // from submit to prompt evaluation start
  double total_ms = 0;  // from prompt evaluation start to the end
  // Where total_ms went: prompt evaluation, single-token evaluations, sampling (the rest is
  // streaming the text and the callbacks).
  double prefill_ms = 0, decode_ms = 0, sampling_ms = 0;
  int32_t drafted = 0, accepted = 0;  // speculative decoding's drafts, and those accepted
  bool truncated = false;             // is_truncation(finish)
  FinishReason finish = FinishReason::kEndOfGeneration;
};

struct Event {
  EventType type = EventType::kQueued;
  RequestId id = 0;
  std::string_view text;        // kToken: a UTF-8-complete piece; kError: the message
  RequestStats stats;           // kDone (partial counts for kError)
  Status status = Status::kOk;  // kError: the code
  // kDone of an embed request: n_outputs vectors of dim floats, row after row (fewer than the
  // inputs only when stopped: the first n_outputs); of a rerank request: n_outputs scores
  // (dim 1) in document order. Empty for generation.
  std::span<const float> outputs;
  int32_t n_outputs = 0;
  int32_t dim = 0;
};

// Called for every event of one request. See Runtime for which thread calls it.
using EventCallback = std::function<void(const Event&)>;

}  // namespace hpl
