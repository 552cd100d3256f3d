// Minimal streaming JSON emitter: commas and string escaping handled here, compact output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hpl::cli {

// Appends s as a JSON string literal (with quotes). Control characters and invalid UTF-8
// bytes are escaped as \u00XX / replaced by U+FFFD so the output is always valid JSON.
void json_escape(std::string& out, std::string_view s);

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);  // the next value is this key's
  JsonWriter& str(std::string_view s);
  JsonWriter& num(int64_t v);
  JsonWriter& num(uint64_t v);
  JsonWriter& num(int v) { return num(static_cast<int64_t>(v)); }
  // Shortest form that round-trips at `digits` (9: float32, 17: double); NaN/inf -> null.
  JsonWriter& num(double v, int digits = 17);
  JsonWriter& boolean(bool v);
  JsonWriter& null();

  const std::string& text() const { return out_; }

 private:
  void value_prefix();  // comma between siblings

  std::string out_;
  std::vector<bool> has_item_;  // per open container: already holds an item
  bool after_key_ = false;
};

}  // namespace hpl::cli
