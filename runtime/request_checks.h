// Checks of a request's inputs that do not depend on the model, shared by every front end
// (the runtime and so the C API, `hpl run` / `hpl chat`, `hpl serve`): a value is accepted or
// refused the same way everywhere, with the same message.
//
// Policy:
// - sampling: temperature in [0, 2] (0 = greedy), top_k in [0, 2^20] (0 = off), top_p in
//   (0, 1] (1 = off), min_p in [0, 1] (0 = off), repeat_penalty in (0, 10] (1 = off),
//   repeat_last_n in [0, 2^20]; NaN and infinities are refused;
// - max_tokens in [1, 2^31 - 1];
// - embed / rerank inputs: lists non-empty, texts non-empty;
// - text (prompt, chat roles and contents, stop strings, embed / rerank texts) must be valid UTF-8
// (Unicode
//   Table 3-7: no overlong forms, surrogates or code points above U+10FFFF); invalid text is
//   refused, naming the field and the byte offset of the first bad sequence, never repaired.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/sampler.h"
#include "runtime/runtime_types.h"

namespace hpl {

// A refused input: the field as the C API spells it ("temperature", "max_tokens", "prompt",
// "messages[1].content", "stop_strings[0]", ...) and a message that starts with it.
struct RequestProblem {
  std::string field;
  std::string message;
};

std::optional<RequestProblem> check_sampling(const SamplerParams& s);
std::optional<RequestProblem> check_max_tokens(int64_t n);
// "<field> is not valid UTF-8 at byte N"
std::optional<RequestProblem> check_utf8(std::string_view text, const std::string& field);
// The grammar or JSON schema compiles (field "grammar" / "json_schema", the message with its
// line:column or JSON pointer).
std::optional<RequestProblem> check_format(const OutputFormat& f);
// All of the above, plus: exactly one of a prompt or chat messages, every role non-empty.
std::optional<RequestProblem> check_request(const RequestParams& p);
// Embeddings: a non-empty list of non-empty texts (valid UTF-8) or of non-empty token lists,
// not both; pooling mean, cls, last or the model's. Lengths and token ids are the model's to
// check (Runtime::submit_embed).
std::optional<RequestProblem> check_embed_request(const EmbedRequest& r);
// Rerank: a non-empty query and a non-empty list of non-empty documents, all valid UTF-8.
std::optional<RequestProblem> check_rerank_request(const RerankRequest& r);

}  // namespace hpl
