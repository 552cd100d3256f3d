// The JSON reader: for JSON Schemas (objects keep their member order: a schema's property
// order is the order the constrained output writes them in) and the CLI's input files
// (benchmark results). Numbers keep their source text (number() reads it as a double).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hpl::grammar {

struct JsonMember;

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool b = false;
  std::string text;                 // kString: the decoded string; kNumber: the number as written
  std::vector<JsonValue> items;     // kArray
  std::vector<JsonMember> members;  // kObject, in source order

  const JsonValue* get(std::string_view key) const;  // nullptr when absent or not an object
  bool is(Kind k) const { return kind == k; }
  double number() const;  // kNumber: its value (0 for other kinds)
  // Compact serialization (strings re-escaped, numbers as written).
  std::string dump() const;
};

struct JsonMember {
  std::string key;
  JsonValue value;
};

// One JSON value filling all of text. Throws std::runtime_error "JSON line L, column C: ...".
JsonValue parse_json_value(std::string_view text);

// A JSON string literal for bytes s (", \ and control characters escaped).
std::string json_quote(std::string_view s);

}  // namespace hpl::grammar
