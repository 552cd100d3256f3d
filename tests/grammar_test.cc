// GBNF parsing (and its errors with positions), the byte-level matcher (partial UTF-8), the
// token mask against a brute-force check of every token, JSON Schema -> GBNF.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace hpl::grammar {
namespace {

std::shared_ptr<const Grammar> compile(const std::string& gbnf) {
  return std::make_shared<const Grammar>(parse_gbnf(gbnf));
}

// Does the grammar accept s as a whole sentence?
bool full_match(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  Matcher m(g);
  return m.accept(s) && m.complete();
}
bool prefix_ok(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  Matcher m(g);
  return m.accept(s);
}

std::string error_of(const std::string& gbnf) {
  try {
    parse_gbnf(gbnf);
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "";
}

TEST(Gbnf, LiteralsClassesAndRepetitions) {
  auto g = compile(R"(root ::= "ab" [0-9]+ ("x" | "yz")* [^a-c]? "!"{2,3}  # comment
)");
  EXPECT_TRUE(full_match(g, "ab1!!"));
  EXPECT_TRUE(full_match(g, "ab123xyzxd!!!"));
  EXPECT_FALSE(full_match(g, "ab!!"));      // + needs one digit
  EXPECT_FALSE(full_match(g, "ab1a!!"));    // [^a-c]
  EXPECT_FALSE(full_match(g, "ab1!"));      // {2,3}
  EXPECT_FALSE(full_match(g, "ab1!!!!!"));  // [^a-c] takes one, {2,3} at most three
  EXPECT_TRUE(prefix_ok(g, "ab12y"));
  EXPECT_FALSE(prefix_ok(g, "ab12yx"));
}

TEST(Gbnf, ExactAndOpenCounts) {
  auto g = compile("root ::= [a]{3} b{2,}\nb ::= \"b\"");
  EXPECT_TRUE(full_match(g, "aaabb"));
  EXPECT_TRUE(full_match(g, "aaabbbbbbb"));
  EXPECT_FALSE(full_match(g, "aabb"));
  EXPECT_FALSE(full_match(g, "aaab"));
}

TEST(Gbnf, EscapesAndAnyChar) {
  auto g = compile(R"(root ::= "\x41\u00e9\n\"" [\]\-] . "\U0001F600")");
  EXPECT_TRUE(full_match(g, "A\xC3\xA9\n\"]z\xF0\x9F\x98\x80"));
  EXPECT_TRUE(full_match(g, "A\xC3\xA9\n\"-\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_FALSE(full_match(g, "A\xC3\xA9\n\"a"));
}

TEST(Gbnf, MultiLineRulesAndContinuation) {
  auto g = compile("root ::= (\n  \"a\"\n  | \"b\"\n)\n  | \"c\"\n\nother ::= \"d\"\n");
  EXPECT_TRUE(full_match(g, "a"));
  EXPECT_TRUE(full_match(g, "b"));
  EXPECT_TRUE(full_match(g, "c"));
  EXPECT_FALSE(full_match(g, "d"));
}

TEST(Gbnf, PartialUtf8IsHeldUntilComplete) {
  auto g = compile("root ::= [\\u00e0-\\u00ff] \"x\"");
  Matcher m(g);
  EXPECT_TRUE(m.accept("\xC3"));  // lead byte of U+00C0..U+00FF: may become à..ÿ
  EXPECT_FALSE(m.complete());
  EXPECT_FALSE(m.accept("\x80"));  // U+00C0 is outside the class
  EXPECT_TRUE(m.accept("\xA9"));   // é
  EXPECT_TRUE(m.accept("x"));
  EXPECT_TRUE(m.complete());
  Matcher n(g);
  EXPECT_FALSE(n.accept("\xE2"));  // three-byte characters are all above U+00FF
  EXPECT_FALSE(n.accept("\x80"));  // a lone continuation byte
}

TEST(Gbnf, OverlongAndSurrogateBytesAreRefused) {
  auto g = compile("root ::= [^x]*");
  for (const char* bad :
       {"\xC0\xBB", "\xF0\x80\x81\xBB", "\xE0\x81", "\xED\xA0", "\xF4\x90", "\xF5", "\x80"})
    EXPECT_FALSE(prefix_ok(g, bad)) << bad;
  EXPECT_TRUE(full_match(g, "\xED\x9F\xBF\xF4\x8F\xBF\xBF\xE0\xA0\x80"));
  // A lead byte whose characters are all outside the class is refused at once.
  auto digits = compile("root ::= [0-9\\u0800]");
  EXPECT_FALSE(prefix_ok(digits, "\xC2"));  // U+0080..U+07FF
  EXPECT_TRUE(prefix_ok(digits, "\xE0"));   // U+0800..U+0FFF
  EXPECT_FALSE(prefix_ok(digits, "\xE0\xA1"));
}

TEST(Gbnf, ErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("root ::= \"a\"\nx ::= \"b"), "line 2, column 7: unterminated string literal");
  EXPECT_EQ(error_of("root ::= foo"), "line 1, column 10: undefined rule 'foo'");
  EXPECT_EQ(error_of("root = \"a\""), "line 1, column 6: expected '::=' after rule name 'root'");
  EXPECT_EQ(error_of("a ::= \"x\""), "line 1, column 10: no rule 'root' (the start rule)");
  EXPECT_EQ(error_of("root ::= [z-a]"), "line 1, column 13: character range end below its start");
  EXPECT_EQ(error_of("root ::= \"a\"{3,2}"), "line 1, column 13: repetition {m,n} with n < m");
  EXPECT_EQ(error_of("root ::= (\"a\""), "line 1, column 10: unclosed '('");
  EXPECT_EQ(error_of("root ::= \"\\q\""), "line 1, column 11: unknown escape '\\q'");
  EXPECT_EQ(error_of("root ::= \"a\"\nroot ::= \"b\""),
            "line 2, column 1: rule 'root' is defined twice");
  EXPECT_EQ(error_of("root ::= root \"a\" | \"b\""),
            "line 1, column 1: rule 'root' is left-recursive");
  EXPECT_EQ(error_of("root ::= x\nx ::= \"a\"? root"),
            "line 1, column 1: rule 'root' is left-recursive");
  EXPECT_EQ(error_of("root ::= \"a\" root"),
            "line 1, column 1: rule 'root' can never complete (every alternative recurses "
            "forever or needs an empty character class)");
  EXPECT_EQ(error_of("root ::= *"), "line 1, column 10: unexpected '*'");
}

TEST(Gbnf, NullableRepetitionsDoNotExplode) {
  auto g = compile("root ::= (\"\" | \"\" | \"a\"){0,200} \"b\"");
  EXPECT_TRUE(full_match(g, "aaab"));
  EXPECT_TRUE(full_match(g, "b"));
}

// Random vocabulary: ASCII pieces, whole and split multi-byte characters, invalid bytes.
std::vector<std::string> random_vocab(std::mt19937& rng, int n) {
  const std::vector<std::string> atoms = {
      "a",        "b",    "{",    "}",        "\"",   "\\",   ",",    ":",    " ",    "\n",
      "1",        "0",    "-",    ".",        "e",    "t",    "r",    "u",    "n",    "l",
      "\xC3\xA9", "\xC3", "\xA9", "\xE2\x82", "\xAC", "\xFF", "\xF0", "\x80", "\x90", "\xED",
      "\xE0",     "\xA0", "[",    "]",        "x",    "f",    "s"};
  std::vector<std::string> v;
  v.push_back("");  // a control token
  for (int i = 1; i < n; ++i) {
    std::string s;
    const int len = 1 + static_cast<int>(rng() % 5);
    for (int k = 0; k < len; ++k) s += atoms[rng() % atoms.size()];
    v.push_back(s);
  }
  for (const std::string& a : atoms) v.push_back(a);  // every atom alone, so output can advance
  return v;
}

// The trie walk (with bulk acceptance) equals stepping through each token's bytes alone,
// along random walks through the grammar.
void check_masks(const std::string& gbnf, uint32_t seed) {
  std::mt19937 rng(seed);
  auto g = compile(gbnf);
  auto trie = std::make_shared<const VocabTrie>(random_vocab(rng, 3000));
  Matcher m(g);
  TokenMasker masker(trie, m);
  std::vector<uint8_t> allowed;
  for (int step = 0; step < 40; ++step) {
    masker.fill(m.state(), allowed);
    std::vector<int32_t> ok;
    for (int32_t id = 0; id < trie->n_tokens(); ++id) {
      bool want = !trie->piece(id).empty();
      MatchState cur = m.state(), next;
      for (char c : trie->piece(id)) {
        if (!want) break;
        want = m.step(cur, static_cast<uint8_t>(c), next);
        std::swap(cur, next);
      }
      ASSERT_EQ(allowed[id] != 0, want)
          << "step " << step << " token " << id << " '" << trie->piece(id) << "'";
      if (want) ok.push_back(id);
    }
    if (ok.empty()) break;
    ASSERT_TRUE(m.accept(trie->piece(ok[rng() % ok.size()])));
  }
}

TEST(TokenMask, EqualsBruteForceOnJson) {
  for (uint32_t seed = 1; seed <= 4; ++seed) check_masks(json_any_gbnf(false), seed);
}

TEST(TokenMask, EqualsBruteForceOnSchemaAndUtf8Classes) {
  const std::string schema =
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":6},
    "tags":{"type":"array","items":{"enum":["a","b\u00e9"]},"maxItems":3},"n":{"type":"integer"}},
    "required":["name"],"additionalProperties":false})";
  for (uint32_t seed = 1; seed <= 3; ++seed) check_masks(json_schema_to_gbnf(schema), seed);
  check_masks("root ::= ([^\\u00e9\"] | \"\\u00e9\\u20ac\")* \"\\\"\" [a-z]*", 7);
}

std::string schema_error(const std::string& schema) {
  try {
    json_schema_to_gbnf(schema);
  } catch (const SchemaError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonSchema, ObjectsArraysEnumsAndRefs) {
  auto g = compile(json_schema_to_gbnf(R"({
    "type": "object",
    "properties": {
      "id": {"type": "integer"},
      "name": {"type": "string"},
      "kind": {"enum": ["a", 1, null]},
      "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1, "maxItems": 2},
      "ok": {"type": ["boolean", "null"]},
      "c": {"const": {"x": [1]}}
    },
    "required": ["id", "tags"],
    "additionalProperties": false,
    "$defs": {"tag": {"type": "string", "maxLength": 3}}
  })"));
  EXPECT_TRUE(full_match(g, R"({"id":-12,"tags":["ab"]})"));
  EXPECT_TRUE(full_match(
      g,
      R"({ "id": 0, "name": "x\"y", "kind": null, "tags": ["a", "bcd"], "ok": true, "c": {"x":[1]}})"));
  EXPECT_FALSE(full_match(g, R"({"id":1})"));                       // tags required
  EXPECT_FALSE(full_match(g, R"({"id":1,"tags":[]})"));             // minItems 1
  EXPECT_FALSE(full_match(g, R"({"id":1,"tags":["a","b","c"]})"));  // maxItems 2
  EXPECT_FALSE(full_match(g, R"({"id":1,"tags":["abcd"]})"));       // maxLength 3
  EXPECT_FALSE(full_match(g, R"({"id":01,"tags":["a"]})"));         // no leading zero
  EXPECT_FALSE(full_match(g, R"({"id":1,"tags":["a"],"x":1})"));    // no other properties
  EXPECT_FALSE(full_match(g, R"({"id":1,"tags":["a"],"kind":"b"})"));
  EXPECT_FALSE(full_match(g, R"({"id":1,"tags":["a"]} )"));  // nothing after the value
}

TEST(JsonSchema, OptionalPropertiesNeedNoDanglingCommas) {
  auto g = compile(json_schema_to_gbnf(
      R"({"properties":{"a":{"type":"null"},"b":{"type":"null"},"c":{"type":"null"}}})"));
  for (const char* ok : {"{}", R"({"a":null})", R"({"b":null})", R"({"a":null,"c":null})",
                         R"({"a":null,"b":null,"c":null})"})
    EXPECT_TRUE(full_match(g, ok)) << ok;
  for (const char* bad : {"{,}", R"({"a":null,})", R"({,"b":null})", R"({"b":null,"a":null})"})
    EXPECT_FALSE(full_match(g, bad)) << bad;
}

TEST(JsonSchema, RecursiveRef) {
  auto g = compile(json_schema_to_gbnf(
      R"({"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}}},"additionalProperties":false})"));
  EXPECT_TRUE(full_match(g, R"({"kids":[{},{"kids":[{}]}]})"));
  EXPECT_FALSE(full_match(g, R"({"kids":[1]})"));
}

// Random bounds (either side open, inclusive or exclusive, fractional for integers): every
// integer in [-1300, 1300] and every quarter in [-300, 300] written in several ways is
// accepted exactly when it lies inside.
TEST(JsonSchema, NumericBoundsAcceptExactlyTheValuesInside) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(-1200, 1200), coin(0, 3);
  for (int round = 0; round < 60; ++round) {
    const bool integer = round % 2 == 0;
    std::string schema = std::string("{\"type\":\"") + (integer ? "integer" : "number") + "\"";
    double lo = -1e300, hi = 1e300;
    bool lo_x = false, hi_x = false;
    int a = pick(rng), b = pick(rng);
    if (a > b) std::swap(a, b);
    if (!integer) a /= 4, b /= 4;  // numbers: a narrower range, walked in quarters
    const double frac = integer && coin(rng) == 0 ? 0.5 : 0.0;
    if (coin(rng) != 0) {
      lo_x = coin(rng) == 0;
      lo = a + frac;
      schema +=
          std::string(",\"") + (lo_x ? "exclusiveMinimum" : "minimum") + "\":" + std::to_string(lo);
    }
    if (coin(rng) != 0) {
      hi_x = coin(rng) == 0;
      hi = b + frac;
      schema +=
          std::string(",\"") + (hi_x ? "exclusiveMaximum" : "maximum") + "\":" + std::to_string(hi);
    }
    schema += "}";
    auto inside = [&](double v) { return (lo_x ? v > lo : v >= lo) && (hi_x ? v < hi : v <= hi); };
    std::shared_ptr<const Grammar> g;
    try {
      g = compile(json_schema_to_gbnf(schema));
    } catch (const SchemaError& e) {  // only when nothing fits
      bool any = false;
      for (int v = -1300; v <= 1300 && !any; ++v) any = inside(v) || (!integer && inside(v + 0.5));
      EXPECT_FALSE(any) << schema << ": " << e.what();
      continue;
    }
    if (integer) {
      for (int v = -1300; v <= 1300; ++v)
        ASSERT_EQ(full_match(g, std::to_string(v)), inside(v)) << schema << " " << v;
      EXPECT_FALSE(full_match(g, "007"));
    } else {
      for (int q = -1200; q <= 1200; ++q) {
        const double v = q / 4.0;
        char text[32];
        std::snprintf(text, sizeof text, "%.2f", v);  // 1.25, -0.50, 3.00
        ASSERT_EQ(full_match(g, text), inside(v)) << schema << " " << text;
        if (q % 4 == 0) {
          const std::string whole = std::to_string(q / 4);
          ASSERT_EQ(full_match(g, whole), inside(v)) << schema << " " << whole;
        }
      }
      if (lo > -1e300 || hi < 1e300) {
        EXPECT_FALSE(full_match(g, "1e2")) << schema;  // bounded: plain decimals only
      }
    }
  }
  // Near the 10^15 limit, and an empty range.
  auto g = compile(json_schema_to_gbnf(R"({"type":"integer","minimum":999999999999998})"));
  EXPECT_TRUE(full_match(g, "999999999999999"));
  EXPECT_TRUE(full_match(g, "1000000000000000"));
  EXPECT_TRUE(full_match(g, "9999999999999999"));
  EXPECT_FALSE(full_match(g, "999999999999997"));
  EXPECT_EQ(schema_error(R"({"type":"integer","minimum":2.5,"maximum":2.9})"),
            "schema at #: no value fits between its minimum and maximum");
  EXPECT_EQ(schema_error(R"({"type":"number","maximum":0.5})"),
            "schema at #/maximum: a fractional bound on a number is not supported (integer "
            "bounds are)");
  EXPECT_EQ(schema_error(R"({"type":"integer","minimum":1e16})"),
            "schema at #/minimum: a bound beyond 10^15 is not supported");
}

TEST(JsonSchema, DateTimeAndUuidFormatsHaveTheirShape) {
  auto g = compile(json_schema_to_gbnf(
      R"({"type":"object","properties":{"d":{"type":"string","format":"date"},)"
      R"("t":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uuid"},)"
      R"("e":{"type":"string","format":"email"}},"required":["d","t","u","e"]})"));
  EXPECT_TRUE(full_match(g, R"({"d":"2026-11-30","t":"2026-11-30T14:05:09.5+01:00",)"
                            R"("u":"123e4567-e89b-12d3-a456-426614174000","e":"any text"})"));
  EXPECT_TRUE(full_match(g, R"({"d":"1999-01-31","t":"2000-12-01T23:59:59Z",)"
                            R"("u":"00000000-0000-0000-0000-00000000000A","e":""})"));
  for (const char* bad : {R"("d":"2026-13-01","t":"2000-12-01T23:59:59Z")",
                          R"("d":"2026-11-32","t":"2000-12-01T23:59:59Z")",
                          R"("d":"26-11-30","t":"2000-12-01T23:59:59Z")",
                          R"("d":"2026-11-30","t":"2000-12-01T24:00:00Z")",
                          R"("d":"2026-11-30","t":"2000-12-01 23:59:59Z")",
                          R"("d":"2026-11-30","t":"2000-12-01T23:59:59")"})
    EXPECT_FALSE(full_match(
        g, std::string("{") + bad + R"(,"u":"123e4567-e89b-12d3-a456-426614174000","e":""})"))
        << bad;
  EXPECT_FALSE(full_match(g, R"({"d":"2026-11-30","t":"2000-12-01T23:59:59Z",)"
                             R"("u":"123e4567e89b12d3a456426614174000","e":""})"));
}

TEST(JsonSchema, AllOfMergesObjectParts) {
  // pydantic v1's form: a field's $ref wrapped in allOf beside its description
  auto g = compile(json_schema_to_gbnf(R"({
    "definitions": {"Pt": {"type": "object", "properties": {"x": {"type": "integer"}},
                           "required": ["x"]}},
    "type": "object",
    "properties": {"p": {"allOf": [{"$ref": "#/definitions/Pt"}], "description": "a point"},
                   "q": {"allOf": [{"$ref": "#/definitions/Pt"},
                                   {"properties": {"y": {"type": "boolean"}}, "required": ["y"],
                                    "additionalProperties": false}]}},
    "required": ["p", "q"]})"));
  EXPECT_TRUE(full_match(g, R"({"p":{"x":1},"q":{"x":2,"y":true}})"));
  EXPECT_FALSE(full_match(g, R"({"p":{"x":1},"q":{"x":2}})"));                 // y required
  EXPECT_FALSE(full_match(g, R"({"p":{"x":1},"q":{"y":true}})"));              // x required
  EXPECT_FALSE(full_match(g, R"({"p":{"x":1},"q":{"x":2,"y":true,"z":1}})"));  // closed
  EXPECT_EQ(schema_error(R"({"allOf":[{"properties":{"a":{"type":"string"}}},)"
                         R"({"properties":{"a":{"type":"integer"}}}]})"),
            "schema at #/allOf/1/properties/a: allOf parts give property 'a' two schemas");
  EXPECT_EQ(schema_error(R"({"allOf":[{"type":"string"},{"type":"integer"}]})"),
            "schema at #/allOf/1/type: allOf parts that set 'type' differently are not supported");
  EXPECT_NE(schema_error(R"({"allOf":[{"$ref":"#"}]})")
                .find("/allOf/0/allOf: allOf nested more than 16 deep (recursive?)"),
            std::string::npos);
  EXPECT_EQ(schema_error(R"({"allOf":[]})"), "schema at #/allOf: must be a non-empty array");
}

TEST(JsonSchema, ErrorsNameThePointer) {
  EXPECT_EQ(schema_error(R"({"properties":{"t":{"type":"array","minItems":3,"maxItems":2}}})"),
            "schema at #/properties/t: minItems 3 is above maxItems 2");
  EXPECT_EQ(
      schema_error(R"({"properties":{"a":{}},"required":["a","b"],"additionalProperties":false})"),
      "schema at #/required/1: required property 'b' is not in properties and "
      "additionalProperties is false");
  EXPECT_EQ(schema_error(R"({"type":"string","pattern":"^a"})"),
            "schema at #/pattern: keyword 'pattern' is not supported");
  EXPECT_EQ(schema_error(R"({"items":{"enum":[]}})"),
            "schema at #/items/enum: an empty enum allows no value");
  EXPECT_EQ(schema_error(R"({"anyOf":[{"type":"string"},false]})"),
            "schema at #/anyOf/1: the schema false allows no value");
  EXPECT_EQ(schema_error(R"({"type":"strin"})"), "schema at #/type: unknown type 'strin'");
  EXPECT_EQ(schema_error(R"({"$ref":"#/$defs/nope"})"),
            "schema at #/$ref: $ref '#/$defs/nope' is not a local \"#\", \"#/$defs/...\" or "
            "\"#/definitions/...\" schema of this document");
  EXPECT_THROW(json_schema_to_gbnf("{\"type\": }"), std::runtime_error);
  // Not UTF-8 (found by the fuzzer: the name went into the GBNF as raw bytes).
  EXPECT_THROW(json_schema_to_gbnf("{\"properties\":{\"a\xFF\":{}}}"), std::runtime_error);
}

}  // namespace
}  // namespace hpl::grammar
