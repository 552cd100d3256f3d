// cli/server_http_parse: request heads (framing, limits, errors with their HTTP status) and
// the chunked decoder (whole and byte by byte, limits).
#include "cli/server_http_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace hpl::cli {
namespace {

struct Parsed {
  ParseStatus st;
  HttpRequest req;
  BodyFraming framing;
  size_t head_len = 0;
};

Parsed parse(const std::string& data, uint64_t max_body = 1000) {
  Parsed p;
  p.st = parse_request_head(data, max_body, &p.req, &p.framing, &p.head_len);
  return p;
}

int error_status(const std::string& data, uint64_t max_body = 1000) {
  const Parsed p = parse(data, max_body);
  EXPECT_EQ(p.st.kind, ParseStatus::kError) << data.substr(0, 80);
  EXPECT_FALSE(p.st.message.empty());
  return p.st.http_status;
}

TEST(HttpHead, GetWithQuery) {
  const std::string head =
      "GET /metrics?format=prometheus&x=1 HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n\r\n";
  const Parsed p = parse(head + "rest");
  ASSERT_EQ(p.st.kind, ParseStatus::kOk) << p.st.message;
  EXPECT_EQ(p.head_len, head.size());
  EXPECT_EQ(p.req.method, "GET");
  EXPECT_EQ(p.req.path, "/metrics");
  EXPECT_EQ(p.req.query_param("format"), "prometheus");
  EXPECT_EQ(p.req.query_param("x"), "1");
  EXPECT_EQ(p.req.query_param("y"), "");
  EXPECT_FALSE(p.req.http10);
  ASSERT_NE(p.req.header("x-a"), nullptr);
  EXPECT_EQ(*p.req.header("x-a"), "b");  // names lower-cased, values trimmed
  EXPECT_TRUE(p.framing.keep_alive);
  EXPECT_FALSE(p.framing.chunked);
  EXPECT_EQ(p.framing.content_length, 0u);
}

TEST(HttpHead, IncompleteUntilTheEmptyLineAtEveryPrefix) {
  const std::string head =
      "\r\nPOST http://h:1/v1/completions HTTP/1.0\nContent-Length: 5\nConnection: keep-alive\n\n";
  for (size_t n = 0; n < head.size(); ++n)
    EXPECT_EQ(parse(head.substr(0, n)).st.kind, ParseStatus::kIncomplete) << n;
  const Parsed p = parse(head);
  ASSERT_EQ(p.st.kind, ParseStatus::kOk) << p.st.message;
  EXPECT_EQ(p.req.path, "/v1/completions");  // absolute form
  EXPECT_TRUE(p.req.http10);
  EXPECT_TRUE(p.framing.keep_alive);
  EXPECT_EQ(p.framing.content_length, 5u);
}

TEST(HttpHead, ConnectionRules) {
  EXPECT_FALSE(parse("GET / HTTP/1.0\r\n\r\n").framing.keep_alive);
  EXPECT_FALSE(parse("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").framing.keep_alive);
  EXPECT_TRUE(parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").framing.expect_continue);
  EXPECT_FALSE(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").framing.expect_continue);
  EXPECT_TRUE(parse("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").framing.chunked);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Encoding: identity\r\n\r\n").st.kind,
            ParseStatus::kOk);
}

TEST(HttpHead, ErrorsCarryTheirStatus) {
  EXPECT_EQ(error_status("GET /\r\n\r\n"), 400);
  EXPECT_EQ(error_status("GET  / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(error_status("G(T / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(error_status("GET / HTTP/2.0\r\n\r\n"), 505);
  EXPECT_EQ(error_status("GET / FTP/1.0\r\n\r\n"), 400);
  EXPECT_EQ(error_status("GET / HTTP/1.1\r\n folded\r\n\r\n"), 400);
  EXPECT_EQ(error_status("GET / HTTP/1.1\r\nNo colon\r\n\r\n"), 400);
  EXPECT_EQ(error_status("GET / HTTP/1.1\r\nX: a\x01"
                         "b\r\n\r\n"),
            400);
  EXPECT_EQ(error_status(std::string("GET / HTTP/1.1\r\nX: ").append(kMaxHeadBytes, 'a')), 431);
  std::string many = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i <= kMaxHeaderFields; ++i) many += "X: 1\r\n";
  EXPECT_EQ(error_status(many + "\r\n"), 431);
  EXPECT_EQ(
      error_status("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
      400);
  EXPECT_EQ(error_status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
  EXPECT_EQ(error_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
  EXPECT_EQ(error_status("POST / HTTP/1.1\r\nContent-Encoding: gzip\r\n\r\n"), 415);
  EXPECT_EQ(error_status("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"), 413);
  EXPECT_EQ(error_status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(error_status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"), 400);
  EXPECT_EQ(error_status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n").st.kind, ParseStatus::kOk);
}

// Decodes `body` fed in pieces of `step` bytes; returns the final status.
ParseStatus decode(const std::string& body, size_t step, uint64_t max_body, std::string* out,
                   size_t* consumed) {
  ChunkedDecoder d(max_body);
  ParseStatus st = ParseStatus::incomplete();
  size_t pos = 0;
  while (pos < body.size() && st.kind == ParseStatus::kIncomplete) {
    size_t used = 0;
    st = d.feed(std::string_view(body).substr(pos, std::min(step, body.size() - pos)), out, &used);
    pos += used;
  }
  *consumed = pos;
  return st;
}

TEST(Chunked, DecodesWholeAndByteByByte) {
  const std::string body = "5;name=v\r\nhello\r\nA\r\n, world!!!\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (size_t step : {body.size(), size_t{1}, size_t{3}}) {
    std::string out;
    size_t consumed = 0;
    const ParseStatus st = decode(body, step, 100, &out, &consumed);
    ASSERT_EQ(st.kind, ParseStatus::kOk) << step << " " << st.message;
    EXPECT_EQ(out, "hello, world!!!");
    EXPECT_EQ(consumed, body.size() - 4) << "stops before the next request";
  }
}

TEST(Chunked, CountsDecodedBytesAgainstTheLimit) {
  std::string body;
  for (int i = 0; i < 20; ++i) body.append("10\r\n").append(16, 'a').append("\r\n");
  body += "0\r\n\r\n";
  std::string out;
  size_t consumed = 0;
  EXPECT_EQ(decode(body, 7, 320, &out, &consumed).kind, ParseStatus::kOk);
  out.clear();
  const ParseStatus st = decode(body, 7, 319, &out, &consumed);
  EXPECT_EQ(st.kind, ParseStatus::kError);
  EXPECT_EQ(st.http_status, 413);
  EXPECT_LE(out.size(), 319u);
}

TEST(Chunked, Malformed) {
  for (const char* body : {"x\r\n", "5\r\nhelloX\r\n", "-1\r\n", "5 x\r\n"}) {
    std::string out;
    size_t consumed = 0;
    const ParseStatus st = decode(body, 1, 100, &out, &consumed);
    EXPECT_EQ(st.kind, ParseStatus::kError) << body;
    EXPECT_EQ(st.http_status, 400) << body;
  }
  std::string out;
  size_t consumed = 0;
  EXPECT_EQ(decode("ffffffffffffffffff\r\n", 4, 100, &out, &consumed).http_status, 413);
  // A size line (here with a long extension) over 1 KiB.
  EXPECT_EQ(decode(std::string("1;").append(2000, 'e'), 50, 100, &out, &consumed).http_status, 400);
}

}  // namespace
}  // namespace hpl::cli
