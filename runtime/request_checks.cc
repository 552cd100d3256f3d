#include "runtime/request_checks.h"

#include <cmath>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace hpl {

namespace {

// Integers in full ("1048576", "-5"), other values as %g ("0.5", "nan").
std::string num(double x) {
  char buf[32];
  if (std::isfinite(x) && x == std::trunc(x) && std::fabs(x) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", x);
  else
    std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

RequestProblem problem(const std::string& field, const std::string& why) {
  return {field, field + " " + why};
}

// x in [lo, hi], or (lo, hi] when lo_open; NaN is outside every range.
std::optional<RequestProblem> in_range(const char* field, double x, double lo, double hi,
                                       bool lo_open = false) {
  const bool ok = lo_open ? (x > lo && x <= hi) : (x >= lo && x <= hi);
  if (ok) return std::nullopt;
  return problem(field, std::string("must be in ") + (lo_open ? "(" : "[") + num(lo) + ", " +
                            num(hi) + "], got " + num(x));
}

constexpr double kMaxWindow = 1 << 20;  // top_k, repeat_last_n: far above any vocab / context

}  // namespace

std::optional<RequestProblem> check_sampling(const SamplerParams& s) {
  if (auto p = in_range("temperature", s.temp, 0, 2)) return p;
  if (auto p = in_range("top_k", s.top_k, 0, kMaxWindow)) return p;
  if (auto p = in_range("top_p", s.top_p, 0, 1, /*lo_open=*/true)) return p;
  if (auto p = in_range("min_p", s.min_p, 0, 1)) return p;
  if (auto p = in_range("repeat_penalty", s.repeat_penalty, 0, 10, /*lo_open=*/true)) return p;
  if (auto p = in_range("repeat_last_n", s.repeat_last_n, 0, kMaxWindow)) return p;
  return std::nullopt;
}

std::optional<RequestProblem> check_max_tokens(int64_t n) {
  if (n >= 1 && n <= INT32_MAX) return std::nullopt;
  return problem("max_tokens",
                 "must be in [1, " + std::to_string(INT32_MAX) + "], got " + std::to_string(n));
}

std::optional<RequestProblem> check_utf8(std::string_view text, const std::string& field) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    bool valid;
    const size_t n = unicode::decode_utf8(text, i, &cp, &valid);
    if (!valid) return problem(field, "is not valid UTF-8 at byte " + std::to_string(i));
    i += n;
  }
  return std::nullopt;
}

std::optional<RequestProblem> check_request(const RequestParams& p) {
  if (p.prompt.empty() && p.messages.empty())
    return RequestProblem{"prompt", "request has neither a prompt nor messages"};
  if (!p.prompt.empty() && !p.messages.empty())
    return RequestProblem{"prompt", "request has both a prompt and messages"};
  if (auto e = check_utf8(p.prompt, "prompt")) return e;
  for (size_t i = 0; i < p.messages.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (p.messages[i].role.empty()) return problem(at + ".role", "must not be empty");
    if (auto e = check_utf8(p.messages[i].role, at + ".role")) return e;
    if (auto e = check_utf8(p.messages[i].content, at + ".content")) return e;
  }
  for (size_t i = 0; i < p.stop_strings.size(); ++i)
    if (auto e = check_utf8(p.stop_strings[i], "stop_strings[" + std::to_string(i) + "]")) return e;
  if (auto e = check_max_tokens(p.max_tokens)) return e;
  if (auto e = check_format(p.format)) return e;
  return check_sampling(p.sampling);
}

std::optional<RequestProblem> check_format(const OutputFormat& f) {
  if (f.empty()) return std::nullopt;
  const std::string field = !f.json_schema.empty() ? "json_schema" : "grammar";
  try {
    compile_output_format(f);
  } catch (const std::exception& e) {
    return RequestProblem{field, field + ": " + e.what()};
  }
  return std::nullopt;
}

namespace {

// Each text non-empty and valid UTF-8; the list non-empty.
std::optional<RequestProblem> check_texts(const std::vector<std::string>& texts,
                                          const std::string& field) {
  if (texts.empty()) return problem(field, "is empty: give at least one text");
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (texts[i].empty()) return problem(at, "is an empty string");
    if (auto e = check_utf8(texts[i], at)) return e;
  }
  return std::nullopt;
}

}  // namespace

std::optional<RequestProblem> check_embed_request(const EmbedRequest& r) {
  if (!r.inputs.empty() && !r.token_inputs.empty())
    return problem("inputs", "and token_inputs are both given: give one of them");
  const Pooling pl = r.params.pooling;
  if (pl == Pooling::kNone || pl == Pooling::kRank)
    return problem("pooling", std::string("must be mean, cls or last (or the model's), got ") +
                                  pooling_name(pl));
  if (r.token_inputs.empty()) return check_texts(r.inputs, "inputs");
  for (size_t i = 0; i < r.token_inputs.size(); ++i)
    if (r.token_inputs[i].empty())
      return problem("token_inputs[" + std::to_string(i) + "]", "is empty: no tokens");
  return std::nullopt;
}

std::optional<RequestProblem> check_rerank_request(const RerankRequest& r) {
  if (r.query.empty()) return problem("query", "is an empty string");
  if (auto e = check_utf8(r.query, "query")) return e;
  return check_texts(r.documents, "documents");
}

}  // namespace hpl
