// JSON Schema -> GBNF, for the common subset: type (one or a list), object with properties /
// required / additionalProperties, array with items / minItems / maxItems, string with
// minLength / maxLength, number, integer, boolean, null, enum, const, anyOf / oneOf (both as
// "one of the alternatives"; oneOf's exclusivity is not enforced), $ref to "#", "#/$defs/X"
// or "#/definitions/X". Annotations (title, description, default, examples, format, $schema,
// $id, $comment, ...) are ignored; any other keyword is an error, so no constraint is
// silently dropped.
//
// The output is compact but may contain whitespace between tokens (at most one space, or a
// newline and up to 16 spaces/tabs); it is never followed by whitespace. Only the listed
// properties are written, in schema order (optional ones may be left out); numbers have at
// most 16 integer, fraction and exponent digits.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace hpl::grammar {

// A schema that is unsupported or cannot be satisfied; pointer is the JSON pointer of the
// offending (sub)schema ("" for the root), what() says "schema at /properties/x: ...".
class SchemaError : public std::runtime_error {
 public:
  SchemaError(std::string pointer, const std::string& msg);
  std::string pointer;
};

// GBNF text with start rule "root". Throws SchemaError, or std::runtime_error for bad JSON.
std::string json_schema_to_gbnf(std::string_view schema_json);

// GBNF for any JSON value, or any JSON object when object_only (the --json mode).
std::string json_any_gbnf(bool object_only);

}  // namespace hpl::grammar
