#include "grammar/json_value.h"

#include <cstdlib>

#include "grammar/utf8.h"
#include "tokenizer/unicode.h"

namespace hpl::grammar {

const JsonValue* JsonValue::get(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

double JsonValue::number() const {
  return kind == Kind::kNumber ? std::strtod(text.c_str(), nullptr) : 0.0;
}

std::string json_quote(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string JsonValue::dump() const {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return b ? "true" : "false";
    case Kind::kNumber:
      return text;
    case Kind::kString:
      return json_quote(text);
    case Kind::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) s += ',';
        s += items[i].dump();
      }
      return s + "]";
    }
    case Kind::kObject: {
      std::string s = "{";
      for (size_t i = 0; i < members.size(); ++i) {
        if (i) s += ',';
        s += json_quote(members[i].key);
        s += ':';
        s += members[i].value.dump();
      }
      return s + "}";
    }
  }
  return "null";
}

namespace {

constexpr int kMaxDepth = 128;

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  JsonValue read_all() {
    utf8::State u = utf8::kBoundary;  // JSON text is UTF-8: refuse anything else up front
    for (; p_ < s_.size(); ++p_) {
      u = utf8::next(u, static_cast<uint8_t>(s_[p_]));
      if (u == utf8::kReject) fail("invalid UTF-8");
    }
    if (u != utf8::kBoundary) fail("invalid UTF-8 (a character cut short at the end)");
    p_ = 0;
    JsonValue v = value(0);
    space();
    if (p_ < s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < p_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw std::runtime_error("JSON line " + std::to_string(line) + ", column " +
                             std::to_string(col) + ": " + msg);
  }
  void space() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r'))
      ++p_;
  }
  bool eat(std::string_view w) {
    if (s_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }

  JsonValue value(int depth) {
    if (depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth));
    space();
    JsonValue v;
    if (p_ >= s_.size()) fail("expected a value, found the end");
    const char c = s_[p_];
    if (c == '{') {
      v.kind = JsonValue::Kind::kObject;
      ++p_;
      space();
      if (eat("}")) return v;
      for (;;) {
        space();
        if (p_ >= s_.size() || s_[p_] != '"') fail("expected a member name");
        std::string k = string();
        space();
        if (!eat(":")) fail("expected ':'");
        v.members.push_back({std::move(k), value(depth + 1)});
        space();
        if (eat("}")) return v;
        if (!eat(",")) fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::kArray;
      ++p_;
      space();
      if (eat("]")) return v;
      for (;;) {
        v.items.push_back(value(depth + 1));
        space();
        if (eat("]")) return v;
        if (!eat(",")) fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      v.text = string();
      return v;
    }
    if (eat("true") || eat("false")) {
      v.kind = JsonValue::Kind::kBool;
      v.b = c == 't';
      return v;
    }
    if (eat("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(std::string("unexpected '") + c + "'");
  }

  JsonValue number() {
    const size_t start = p_;
    auto digits = [&] {
      const size_t d = p_;
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
      if (p_ == d) fail("expected a digit");
    };
    eat("-");
    if (!eat("0")) digits();
    if (eat(".")) digits();
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      if (!eat("+")) eat("-");
      digits();
    }
    JsonValue v;
    v.kind = JsonValue::Kind::kNumber;
    v.text = std::string(s_.substr(start, p_ - start));
    return v;
  }

  uint32_t hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      const char h = p_ < s_.size() ? s_[p_] : '\0';
      const int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) fail("expected 4 hex digits after \\u");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }

  std::string string() {
    ++p_;  // '"'
    std::string out;
    for (;;) {
      if (p_ >= s_.size()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[p_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      const char e = p_ < s_.size() ? s_[p_++] : '\0';
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && eat("\\u")) {
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            fail("unpaired surrogate");
          }
          unicode::append_utf8(cp, out);
          break;
        }
        default:
          fail("bad escape in a string");
      }
    }
  }

  std::string_view s_;
  size_t p_ = 0;
};

}  // namespace

JsonValue parse_json_value(std::string_view text) {
  return Reader(text).read_all();
}

}  // namespace hpl::grammar
