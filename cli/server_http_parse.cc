#include "cli/server_http_parse.h"

#include <algorithm>
#include <cctype>

namespace hpl::cli {

namespace {

bool is_token_char(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_token_char(c); });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The comma-separated tokens of a header value, trimmed and lower-cased.
std::vector<std::string> tokens(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    const size_t c = v.find(',');
    const std::string_view t = trim(v.substr(0, c));
    if (!t.empty()) out.push_back(lower(t));
    if (c == std::string_view::npos) break;
    v.remove_prefix(c + 1);
  }
  return out;
}

std::string too_large(uint64_t max_body) {
  return "the request body is larger than the limit of " + std::to_string(max_body) +
         " bytes (--max-body)";
}

ParseStatus parse_request_line(std::string_view line, HttpRequest* req) {
  const size_t s1 = line.find(' ');
  const size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
  if (s2 == std::string_view::npos || line.find(' ', s2 + 1) != std::string_view::npos)
    return ParseStatus::error(400, "malformed request line");
  const std::string_view method = line.substr(0, s1), target = line.substr(s1 + 1, s2 - s1 - 1),
                         version = line.substr(s2 + 1);
  if (!is_token(method) || method.size() > 32) return ParseStatus::error(400, "malformed method");
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      }))
    return ParseStatus::error(400, "malformed request target");
  if (version == "HTTP/1.1") {
    req->http10 = false;
  } else if (version == "HTTP/1.0") {
    req->http10 = true;
  } else if (version.substr(0, 5) == "HTTP/") {
    return ParseStatus::error(505, "HTTP version not supported: " + std::string(version));
  } else {
    return ParseStatus::error(400, "malformed HTTP version");
  }
  req->method = method;
  req->target = target;
  // Absolute form (http://host/path?q): keep the path on.
  std::string_view path = target;
  if (path.substr(0, 7) == "http://" || path.substr(0, 8) == "https://") {
    const size_t slash = path.find('/', path.find("//") + 2);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  const size_t q = path.find('?');
  req->path = path.substr(0, q);
  req->query = q == std::string_view::npos ? "" : path.substr(q + 1);
  return ParseStatus::ok();
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

std::string HttpRequest::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view kv = q.substr(0, amp);
    const size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name)
      return eq == std::string_view::npos ? "" : std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return "";
}

namespace {

// One header line "Name: value" appended to req->headers (name lower-cased).
ParseStatus parse_header_line(std::string_view line, HttpRequest* req) {
  if (line.front() == ' ' || line.front() == '\t')
    return ParseStatus::error(400, "folded header lines are not accepted");
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
    return ParseStatus::error(400, "malformed header line");
  const std::string_view value = trim(line.substr(colon + 1));
  if (std::any_of(value.begin(), value.end(), [](char c) {
        return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
      }))
    return ParseStatus::error(400, "control character in a header value");
  if (req->headers.size() == kMaxHeaderFields)
    return ParseStatus::error(431,
                              "more than " + std::to_string(kMaxHeaderFields) + " header fields");
  req->headers.emplace_back(lower(line.substr(0, colon)), std::string(value));
  return ParseStatus::ok();
}

// Body framing from the headers (RFC 9112 6): chunked, or Content-Length, or none; and
// keep-alive and 100-continue.
ParseStatus parse_framing(const HttpRequest& req, uint64_t max_body, BodyFraming* framing) {
  bool has_length = false, has_te = false;
  for (const auto& [name, value] : req.headers) {
    if (name == "transfer-encoding") {
      has_te = true;
      const std::vector<std::string> t = tokens(value);
      if (t.size() != 1 || t[0] != "chunked")
        return ParseStatus::error(
            501, "Transfer-Encoding '" + value + "' is not supported (only chunked)");
      if (framing->chunked) return ParseStatus::error(400, "Transfer-Encoding given twice");
      framing->chunked = true;
    } else if (name == "content-length") {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return ParseStatus::error(400, "malformed Content-Length '" + value + "'");
      const uint64_t n = std::stoull(value);
      if (has_length && n != framing->content_length)
        return ParseStatus::error(400, "conflicting Content-Length headers");
      has_length = true;
      framing->content_length = n;
    } else if (name == "content-encoding") {
      for (const std::string& t : tokens(value))
        if (t != "identity")
          return ParseStatus::error(
              415, "compressed request bodies are not accepted (Content-Encoding: " + value + ")");
    } else if (name == "connection") {
      for (const std::string& t : tokens(value)) {
        if (t == "close") framing->keep_alive = false;
      }
    } else if (name == "expect") {
      if (lower(value) == "100-continue") framing->expect_continue = !req.http10;
    }
  }
  if (has_te && has_length)
    return ParseStatus::error(400, "both Content-Length and Transfer-Encoding are given");
  if (has_te && req.http10)
    return ParseStatus::error(400, "Transfer-Encoding in an HTTP/1.0 request");
  if (req.http10) {
    bool ka = false;
    if (const std::string* c = req.header("connection"))
      for (const std::string& t : tokens(*c)) ka = ka || t == "keep-alive";
    framing->keep_alive = framing->keep_alive && ka;
  }
  if (has_length && framing->content_length > max_body)
    return ParseStatus::error(413, too_large(max_body));
  return ParseStatus::ok();
}

}  // namespace

ParseStatus parse_request_head(std::string_view data, uint64_t max_body, HttpRequest* req,
                               BodyFraming* framing, size_t* head_len) {
  size_t start = 0;  // robustness (RFC 9112 2.2): empty lines before the request line
  while (start < data.size() && (data[start] == '\r' || data[start] == '\n')) ++start;
  if (start > kMaxHeadBytes) return ParseStatus::error(400, "too many empty lines");
  *req = HttpRequest{};
  *framing = BodyFraming{};
  bool first = true;
  size_t pos = start;
  for (;;) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (data.size() - start > kMaxHeadBytes)
        return ParseStatus::error(431, "the request head is larger than 16 KiB");
      return ParseStatus::incomplete();
    }
    if (nl + 1 - start > kMaxHeadBytes)
      return ParseStatus::error(431, "the request head is larger than 16 KiB");
    std::string_view line = data.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    const bool request_line = first;
    first = false;
    if (!request_line && line.empty()) break;
    const ParseStatus st =
        request_line ? parse_request_line(line, req) : parse_header_line(line, req);
    if (st.kind != ParseStatus::kOk) return st;
  }
  *head_len = pos;
  return parse_framing(*req, max_body, framing);
}

ParseStatus ChunkedDecoder::feed(std::string_view data, std::string* out, size_t* used) {
  constexpr size_t kMaxLine = 1024;  // a size line (with extensions) or a trailer field
  size_t i = 0;
  // Appends bytes up to and including '\n' to line_; true when the line is complete.
  auto take_line = [&](ParseStatus* err) {
    const size_t nl = data.find('\n', i);
    const size_t end = nl == std::string_view::npos ? data.size() : nl;
    line_.append(data.substr(i, end - i));
    i = nl == std::string_view::npos ? data.size() : nl + 1;
    if (line_.size() > kMaxLine) {
      *err = ParseStatus::error(400, "a chunk size or trailer line is longer than 1 KiB");
      return false;
    }
    if (nl == std::string_view::npos) return false;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    return true;
  };
  ParseStatus err = ParseStatus::incomplete();
  while (i < data.size() && state_ != State::kDone) {
    switch (state_) {
      case State::kSize: {
        if (!take_line(&err)) break;
        size_t k = 0;
        uint64_t size = 0;
        while (k < line_.size() && std::isxdigit(static_cast<unsigned char>(line_[k]))) {
          if (k == 15) return *used = i, ParseStatus::error(413, too_large(max_body_));
          const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line_[k])));
          size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
          ++k;
        }
        const std::string_view rest = trim(std::string_view(line_).substr(k));
        if (k == 0 || (!rest.empty() && rest.front() != ';'))
          return *used = i, ParseStatus::error(400, "malformed chunk size line");
        line_.clear();
        if (size == 0) {
          state_ = State::kTrailer;
        } else {
          if (size > max_body_ - std::min<uint64_t>(max_body_, out->size()))
            return *used = i, ParseStatus::error(413, too_large(max_body_));
          remaining_ = size;
          state_ = State::kData;
        }
        break;
      }
      case State::kData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        out->append(data.substr(i, n));
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kDataEnd;
        break;
      }
      case State::kDataEnd:
        if (!take_line(&err)) break;
        if (!line_.empty())
          return *used = i, ParseStatus::error(400, "chunk data longer than its size");
        state_ = State::kSize;
        break;
      case State::kTrailer:
        if (!take_line(&err)) break;
        if (line_.empty()) state_ = State::kDone;
        line_.clear();
        break;
      case State::kDone:
        break;
    }
    if (err.kind == ParseStatus::kError) return *used = i, err;
  }
  *used = i;
  return state_ == State::kDone ? ParseStatus::ok() : ParseStatus::incomplete();
}

}  // namespace hpl::cli
