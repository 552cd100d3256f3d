// libFuzzer target: the bytes a client sends to `hpl serve`, through the parsers that turn
// them into a runtime request. The first byte picks the stage:
//   0: a /v1/chat/completions JSON body -> parse_request (ApiRequest or a 400 ApiError)
//   1: a /v1/completions JSON body      -> parse_request
//   2: a raw HTTP request -> parse_request_head, then its body through ChunkedDecoder, fed
//      whole and in pieces (split points taken from the input): both decodes must agree.
// Checks: no crash/UB/leak, no exception other than ApiError, errors are 400 with a message,
// an unsupported-field error names a field of the body, accepted requests satisfy the
// documented ranges. Built by tests/fuzz/run-server-fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "cli/server_http_parse.h"
#include "cli/server_openai.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_json(std::string_view body, bool chat) {
  const std::string text(body);
  try {
    const hpl::cli::ApiRequest r = hpl::cli::parse_request(text, chat);
    const hpl::RequestParams& p = r.params;
    check(r.chat == chat);
    if (chat) {
      check(!p.messages.empty());
      bool user = false;
      for (const auto& m : p.messages) user = user || m.role == "user";
      check(user);
    } else {
      check(!p.prompt.empty());
    }
    check(p.sampling.temp >= 0 && p.sampling.temp <= 2);
    check(p.sampling.top_p > 0 && p.sampling.top_p <= 1);
    check(p.sampling.min_p >= 0 && p.sampling.min_p <= 1);
    check(p.sampling.top_k >= 0);
    check(!r.max_tokens_given || p.max_tokens >= 1);
    check(p.stop_strings.size() <= 4);
    for (const std::string& s : p.stop_strings) check(!s.empty());
  } catch (const hpl::cli::ApiError& e) {
    check(e.http_status == 400);
    check(std::string_view(e.what()).size() > 0);
    if (e.code == "unsupported_parameter") {
      const auto j = nlohmann::json::parse(text);
      check(j.is_object() && j.contains(e.param));
    }
  }
}

void fuzz_http(std::string_view data) {
  constexpr uint64_t kMaxBody = 4096;
  hpl::cli::HttpRequest req;
  hpl::cli::BodyFraming framing;
  size_t head_len = 0;
  const hpl::cli::ParseStatus st =
      hpl::cli::parse_request_head(data, kMaxBody, &req, &framing, &head_len);
  if (st.kind == hpl::cli::ParseStatus::kError) {
    check(st.http_status >= 400 && st.http_status < 600 && !st.message.empty());
    return;
  }
  if (st.kind == hpl::cli::ParseStatus::kIncomplete) return;
  check(head_len <= data.size() && !req.method.empty() && !req.target.empty());
  check(!framing.chunked || framing.content_length == 0);
  check(framing.chunked || framing.content_length <= kMaxBody);
  (void)req.query_param("format");
  if (!framing.chunked) return;
  const std::string_view body = data.substr(head_len);

  // Whole, then in pieces whose sizes come from the body's own bytes.
  hpl::cli::ChunkedDecoder whole(kMaxBody), pieces(kMaxBody);
  std::string out_whole, out_pieces;
  size_t used_whole = 0;
  const hpl::cli::ParseStatus a = whole.feed(body, &out_whole, &used_whole);
  check(used_whole <= body.size() && out_whole.size() <= kMaxBody);
  hpl::cli::ParseStatus b = hpl::cli::ParseStatus::incomplete();
  size_t pos = 0, k = 0;
  while (pos < body.size() && b.kind == hpl::cli::ParseStatus::kIncomplete) {
    const size_t n = std::min<size_t>(body.size() - pos,
                                      1 + static_cast<unsigned char>(body[k++ % body.size()]) % 13);
    size_t used = 0;
    b = pieces.feed(body.substr(pos, n), &out_pieces, &used);
    check(used <= n);
    if (b.kind == hpl::cli::ParseStatus::kIncomplete) check(used == n);
    pos += used;
  }
  check(a.kind == b.kind && out_whole == out_pieces);
  if (a.kind == hpl::cli::ParseStatus::kOk) check(pos == used_whole);
  if (a.kind == hpl::cli::ParseStatus::kError) check(a.http_status == b.http_status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      fuzz_json(in, true);
      break;
    case 1:
      fuzz_json(in, false);
      break;
    default:
      fuzz_http(in);
      break;
  }
  return 0;
}
