// HTTP/1.x request parsing for `hpl serve` (no sockets here): the request head (request line +
// header fields) and the chunked transfer coding, with the limits that keep a hostile client
// from growing memory: head size, header count, decoded body size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hpl::cli {

inline constexpr size_t kMaxHeadBytes = 16 * 1024;  // request line + headers
inline constexpr size_t kMaxHeaderFields = 100;

struct HttpRequest {
  std::string method, target, path, query;                   // target = path [? query]
  bool http10 = false;                                       // HTTP/1.0 (else HTTP/1.1)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;                                          // decoded (chunked -> plain)
  std::string remote_addr;

  // The first value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
  // A query parameter's value ("" when absent); no percent-decoding.
  std::string query_param(std::string_view name) const;
};

// What the head says about the body and the connection.
struct BodyFraming {
  bool chunked = false;
  uint64_t content_length = 0;  // when not chunked
  bool keep_alive = true;       // HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive
  bool expect_continue = false;
};

// The result of parsing: complete, need more bytes, or an HTTP error to answer and close.
struct ParseStatus {
  enum Kind { kOk, kIncomplete, kError } kind = kIncomplete;
  int http_status = 0;  // kError: 400, 413, 415, 431, 501, 505
  std::string message;  // kError: what was wrong, for the error body
  static ParseStatus ok() { return {kOk, 0, {}}; }
  static ParseStatus incomplete() { return {kIncomplete, 0, {}}; }
  static ParseStatus error(int status, std::string msg) { return {kError, status, std::move(msg)}; }
};

// Parses a request head from the start of `data` (leading empty lines skipped). kOk sets
// *head_len to the bytes consumed (through the empty line) and fills req (method, target,
// path, query, version, headers) and framing; kIncomplete when no empty line yet (and under
// kMaxHeadBytes). Refuses Content-Encoding other than identity (415: the body limit must
// count what the server decodes), Transfer-Encoding other than chunked (501), both
// Content-Length and Transfer-Encoding (400), and a Content-Length over max_body (413).
ParseStatus parse_request_head(std::string_view data, uint64_t max_body, HttpRequest* req,
                               BodyFraming* framing, size_t* head_len);

// Decodes a chunked body incrementally: feed() the bytes as they arrive; decoded data is
// appended to *out, never beyond max_body (413). Trailer fields are read and dropped.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(uint64_t max_body) : max_body_(max_body) {}
  // Consumes a prefix of `data` (*used bytes); kOk once the last chunk and trailers are in.
  ParseStatus feed(std::string_view data, std::string* out, size_t* used);

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone } state_ = State::kSize;
  uint64_t max_body_;
  uint64_t remaining_ = 0;  // kData: bytes left in this chunk
  std::string line_;        // a partial size / trailer line
};

}  // namespace hpl::cli
