// Minimal JSON reader for the CLI's inputs (benchmark result files): a value tree, numbers as
// double. Throws std::runtime_error naming the byte offset of the first syntax error.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hpl::cli {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<JsonValue> items;              // kArray
  std::map<std::string, JsonValue> members;  // kObject

  bool is_object() const { return kind == Kind::kObject; }
  bool is_array() const { return kind == Kind::kArray; }
  // Member k of an object, or null when absent / not an object.
  const JsonValue* get(const std::string& k) const;
  double number_or(const std::string& k, double fallback) const;
  std::string string_or(const std::string& k, const std::string& fallback) const;
};

// One JSON value filling all of text (surrounding whitespace allowed).
JsonValue parse_json(std::string_view text);

}  // namespace hpl::cli
