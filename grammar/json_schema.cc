#include "grammar/json_schema.h"

#include <cmath>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "grammar/gbnf.h"
#include "grammar/json_value.h"
#include "grammar/number_range.h"

namespace hpl::grammar {

SchemaError::SchemaError(std::string ptr, const std::string& msg)
    : std::runtime_error("schema at #" + ptr + ": " + msg), pointer(std::move(ptr)) {}

namespace {

// Shared rules: whitespace, strings, numbers and any JSON value.
constexpr const char* kJsonRules = R"(ws ::= ( " " | "\n" [ \t]{0,16} )?
json-char ::= [^"\\\x00-\x1F\x7F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
json-string ::= "\"" json-char* "\""
json-int-part ::= "0" | [1-9] [0-9]{0,15}
json-integer ::= "-"? json-int-part
json-number ::= json-integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,16} )?
json-boolean ::= "true" | "false"
json-null ::= "null"
json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null
json-member ::= json-string ws ":" ws json-value ws
json-object ::= "{" ws ( json-member ( "," ws json-member )* )? "}"
json-array ::= "[" ws ( json-value ws ( "," ws json-value ws )* )? "]"
)";

constexpr uint32_t kMaxCount = 1000;  // bounds of repetitions the grammar spells out

const std::set<std::string, std::less<>> kAnnotations = {
    "title",           "description", "default",    "examples",
    "format",          "$schema",     "$id",        "$comment",
    "deprecated",      "readOnly",    "writeOnly",  "contentMediaType",
    "contentEncoding", "$defs",       "definitions"};
// clang-format off
const std::set<std::string, std::less<>> kKeywords = {
    "type",    "properties",       "required",        "additionalProperties",
    "items",   "minItems",         "maxItems",        "enum",
    "const",   "anyOf",            "oneOf",           "allOf",
    "$ref",    "minLength",        "maxLength",       "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum"};
// clang-format on

std::string pointer_escape(std::string_view k) {
  std::string s;
  for (char c : k) s += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return s;
}

class Converter {
 public:
  explicit Converter(const JsonValue& root) : root_(root) {}

  std::string run() {
    const std::string top = visit(root_, "");
    return "root ::= " + top + "\n" + rules_ + kJsonRules;
  }

 private:
  // A new rule named after hint (made unique), with body; returns its name.
  std::string add_rule(const std::string& hint, const std::string& body) {
    const std::string name = reserve(hint);
    define(name, body);
    return name;
  }
  std::string reserve(const std::string& hint) {
    std::string base;
    for (char c : hint) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      base += ok ? c : '-';
    }
    if (base.empty()) base = "schema";
    base = "s-" + base;
    std::string name = base;
    for (int n = 2; !names_.insert(name).second; ++n) name = base + "-" + std::to_string(n);
    return name;
  }
  void define(const std::string& name, const std::string& body) {
    rules_ += name + " ::= " + body + "\n";
  }

  uint32_t count(const JsonValue& s, const char* key, const std::string& ptr, uint32_t dflt) {
    const JsonValue* v = s.get(key);
    if (!v) return dflt;
    const std::string at = ptr + "/" + key;
    if (!v->is(JsonValue::Kind::kNumber) || v->text.find_first_of(".eE-") != std::string::npos)
      throw SchemaError(at, "must be a non-negative integer");
    if (v->text.size() > 9 || std::stoul(v->text) > kMaxCount)
      throw SchemaError(
          at, std::string(key) + " above " + std::to_string(kMaxCount) + " is not supported");
    return static_cast<uint32_t>(std::stoul(v->text));
  }

  std::string visit(const JsonValue& s, const std::string& ptr) {
    if (s.is(JsonValue::Kind::kBool)) {
      if (!s.b) throw SchemaError(ptr, "the schema false allows no value");
      return "json-value";
    }
    if (!s.is(JsonValue::Kind::kObject))
      throw SchemaError(ptr, "a schema must be an object or a boolean");
    for (const auto& [k, v] : s.members)
      if (!kAnnotations.count(k) && !kKeywords.count(k))
        throw SchemaError(ptr + "/" + pointer_escape(k), "keyword '" + k + "' is not supported");
    if (s.get("allOf")) return visit(merge_all_of(s, ptr), ptr);
    if (const JsonValue* ref = s.get("$ref")) return visit_ref(*ref, ptr + "/$ref");
    if (const JsonValue* c = s.get("const")) return gbnf_literal(c->dump());
    if (const JsonValue* e = s.get("enum")) {
      if (!e->is(JsonValue::Kind::kArray)) throw SchemaError(ptr + "/enum", "must be an array");
      if (e->items.empty()) throw SchemaError(ptr + "/enum", "an empty enum allows no value");
      std::string alts;
      for (const JsonValue& v : e->items)
        alts += (alts.empty() ? "" : " | ") + gbnf_literal(v.dump());
      return "( " + alts + " )";
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      const JsonValue* a = s.get(key);
      if (!a) continue;
      const std::string at = ptr + "/" + key;
      if (!a->is(JsonValue::Kind::kArray)) throw SchemaError(at, "must be an array");
      if (a->items.empty()) throw SchemaError(at, "no alternatives: allows no value");
      std::string alts;
      for (size_t i = 0; i < a->items.size(); ++i)
        alts += (i ? " | " : "") + visit(a->items[i], at + "/" + std::to_string(i));
      return "( " + alts + " )";
    }
    const JsonValue* type = s.get("type");
    if (!type) {
      if (s.get("properties") || s.get("required") || s.get("additionalProperties"))
        return visit_type(s, "object", ptr);
      if (s.get("items") || s.get("minItems") || s.get("maxItems"))
        return visit_type(s, "array", ptr);
      if (s.get("minLength") || s.get("maxLength")) return visit_type(s, "string", ptr);
      if (s.get("minimum") || s.get("maximum") || s.get("exclusiveMinimum") ||
          s.get("exclusiveMaximum"))
        return visit_type(s, "number", ptr);
      return "json-value";
    }
    if (type->is(JsonValue::Kind::kString)) return visit_type(s, type->text, ptr);
    if (!type->is(JsonValue::Kind::kArray))
      throw SchemaError(ptr + "/type", "must be a string or an array of strings");
    if (type->items.empty()) throw SchemaError(ptr + "/type", "an empty type list allows no value");
    std::string alts;
    for (size_t i = 0; i < type->items.size(); ++i) {
      if (!type->items[i].is(JsonValue::Kind::kString))
        throw SchemaError(ptr + "/type/" + std::to_string(i), "must be a string");
      alts += (i ? " | " : "") + visit_type(s, type->items[i].text, ptr);
    }
    return "( " + alts + " )";
  }

  std::string visit_type(const JsonValue& s, const std::string& type, const std::string& ptr) {
    if (type == "string") return visit_string(s, ptr);
    if (type == "number" || type == "integer") return visit_number(s, type == "integer", ptr);
    if (type == "boolean") return "json-boolean";
    if (type == "null") return "json-null";
    if (type == "object") return visit_object(s, ptr);
    if (type == "array") return visit_array(s, ptr);
    throw SchemaError(ptr + "/type", "unknown type '" + type + "'");
  }

  // The value of bound keyword key: a number within 10^15 (integral unless for an integer).
  std::optional<double> bound_value(const JsonValue& s, const char* key, const std::string& ptr,
                                    bool integer) {
    const JsonValue* v = s.get(key);
    if (!v) return std::nullopt;
    const std::string at = ptr + "/" + key;
    if (!v->is(JsonValue::Kind::kNumber)) throw SchemaError(at, "must be a number");
    const double d = v->number();
    if (!(std::fabs(d) <= static_cast<double>(kMaxBound)))
      throw SchemaError(at, "a bound beyond 10^15 is not supported");
    if (!integer && d != std::floor(d))
      throw SchemaError(at, "a fractional bound on a number is not supported (integer bounds are)");
    return d;
  }

  // The tighter of the inclusive and exclusive bounds of one side (lower: the larger).
  std::optional<Bound> side(const JsonValue& s, const char* incl, const char* excl,
                            const std::string& ptr, bool integer, bool lower) {
    const std::optional<double> a = bound_value(s, incl, ptr, integer);
    const std::optional<double> b = bound_value(s, excl, ptr, integer);
    auto make = [&](double d, bool inclusive) {
      if (!integer) return Bound{static_cast<int64_t>(d), inclusive};
      // an integer bound: the nearest integer inside
      const double r = lower ? (inclusive ? std::ceil(d) : std::floor(d) + 1)
                             : (inclusive ? std::floor(d) : std::ceil(d) - 1);
      return Bound{static_cast<int64_t>(r), true};
    };
    std::optional<Bound> out;
    if (a) out = make(*a, true);
    if (b) {
      const Bound e = make(*b, false);
      const bool tighter = !out || (lower ? e.value > out->value : e.value < out->value) ||
                           (e.value == out->value && !e.inclusive);
      if (tighter) out = e;
    }
    return out;
  }

  std::string visit_number(const JsonValue& s, bool integer, const std::string& ptr) {
    const auto lo = side(s, "minimum", "exclusiveMinimum", ptr, integer, true);
    const auto hi = side(s, "maximum", "exclusiveMaximum", ptr, integer, false);
    if (!lo && !hi) return integer ? "json-integer" : "json-number";
    const std::string body = integer ? integer_range_gbnf(lo, hi) : number_range_gbnf(lo, hi);
    if (body.empty()) throw SchemaError(ptr, "no value fits between its minimum and maximum");
    return add_rule(ptr + (integer ? "-integer" : "-number"), body);
  }

  // A string of one of the formats with a fixed shape (RFC 3339 date / time / date-time, UUID)
  // is written in that shape; other formats are annotations.
  std::string string_format(const std::string& f) {
    const std::string date =
        R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))";
    const std::string time =
        R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? )"
        R"(( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))";
    const std::string hex = "[0-9a-fA-F]";
    std::string body;
    if (f == "date") body = date;
    if (f == "time") body = time;
    if (f == "date-time") body = date + R"( "T" )" + time;
    if (f == "uuid")
      body = hex + "{8} \"-\" " + hex + "{4} \"-\" " + hex + "{4} \"-\" " + hex + "{4} \"-\" " +
             hex + "{12}";
    if (body.empty()) return "";
    return add_rule("format-" + f, R"("\"" )" + body + R"( "\"")");
  }

  std::string visit_string(const JsonValue& s, const std::string& ptr) {
    if (const JsonValue* f = s.get("format"); f && f->is(JsonValue::Kind::kString)) {
      const std::string shaped = string_format(f->text);
      if (!shaped.empty()) return shaped;
    }
    if (!s.get("minLength") && !s.get("maxLength")) return "json-string";
    const uint32_t lo = count(s, "minLength", ptr, 0);
    const uint32_t hi = count(s, "maxLength", ptr, UINT32_MAX);
    if (hi < lo) throw SchemaError(ptr, "minLength is above maxLength: no string fits");
    const std::string rep = hi == UINT32_MAX
                                ? "{" + std::to_string(lo) + ",}"
                                : "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
    return "\"\\\"\" json-char" + rep + " \"\\\"\"";
  }

  std::string visit_array(const JsonValue& s, const std::string& ptr) {
    const uint32_t lo = count(s, "minItems", ptr, 0);
    uint32_t hi = count(s, "maxItems", ptr, UINT32_MAX);
    std::string item = "json-value";
    if (const JsonValue* it = s.get("items")) {
      if (it->is(JsonValue::Kind::kBool) && !it->b) {
        hi = 0;
      } else {
        item = visit(*it, ptr + "/items");
      }
    }
    if (hi < lo)
      throw SchemaError(
          ptr, "minItems " + std::to_string(lo) + " is above maxItems " +
                   (hi == 0 && s.get("items") ? "0 (items is false)" : std::to_string(hi)));
    if (hi == 0) return add_rule(ptr + "-array", "\"[\" ws \"]\"");
    const std::string rest_lo = std::to_string(lo > 0 ? lo - 1 : 0);
    const std::string rest = hi == UINT32_MAX ? "{" + rest_lo + ",}"
                                              : "{" + rest_lo + "," + std::to_string(hi - 1) + "}";
    const std::string inner = item + " ws ( \",\" ws " + item + " ws )" + rest;
    return add_rule(ptr + "-array",
                    "\"[\" ws " + (lo == 0 ? "( " + inner + " )?" : inner) + " \"]\"");
  }

  std::string visit_object(const JsonValue& s, const std::string& ptr) {
    const JsonValue* props = s.get("properties");
    const JsonValue* req = s.get("required");
    const JsonValue* add = s.get("additionalProperties");
    if (props && !props->is(JsonValue::Kind::kObject))
      throw SchemaError(ptr + "/properties", "must be an object");
    if (req && !req->is(JsonValue::Kind::kArray))
      throw SchemaError(ptr + "/required", "must be an array");
    const bool closed = add && add->is(JsonValue::Kind::kBool) && !add->b;
    // (name, schema or null for "any value", required)
    struct Prop {
      std::string name;
      const JsonValue* schema;
      bool required;
    };
    std::vector<Prop> list;
    if (props)
      for (const auto& [k, v] : props->members) list.push_back({k, &v, false});
    if (req) {
      for (size_t i = 0; i < req->items.size(); ++i) {
        const JsonValue& r = req->items[i];
        const std::string at = ptr + "/required/" + std::to_string(i);
        if (!r.is(JsonValue::Kind::kString)) throw SchemaError(at, "must be a string");
        bool found = false;
        for (Prop& p : list)
          if (p.name == r.text) found = p.required = true;
        if (found) continue;
        if (closed)
          throw SchemaError(at, "required property '" + r.text +
                                    "' is not in properties and additionalProperties is false");
        list.push_back({r.text, nullptr, true});
      }
    }
    if (list.empty()) {
      if (closed || !add || add->is(JsonValue::Kind::kBool))
        return closed ? add_rule(ptr + "-object", "\"{\" ws \"}\"") : "json-object";
      // A map: any names, values of the additionalProperties schema.
      const std::string v = visit(*add, ptr + "/additionalProperties");
      const std::string kv = add_rule(ptr + "-member", "json-string ws \":\" ws " + v + " ws");
      return add_rule(ptr + "-object", "\"{\" ws ( " + kv + " ( \",\" ws " + kv + " )* )? \"}\"");
    }
    // Members in schema order. after[i]: members i.. once one is written (each after a comma);
    // first(i): members i.. when none is written yet.
    const size_t n = list.size();
    std::vector<std::string> kv(n), after(n + 1);
    for (size_t i = 0; i < n; ++i) {
      const std::string at = ptr + "/properties/" + pointer_escape(list[i].name);
      const std::string v = list[i].schema ? visit(*list[i].schema, at) : "json-value";
      kv[i] = add_rule(at + "-kv",
                       gbnf_literal(json_quote(list[i].name)) + " ws \":\" ws " + v + " ws");
    }
    for (size_t i = n; i-- > 0;) {
      const std::string tail = after[i + 1].empty() ? "" : " " + after[i + 1];
      const std::string body =
          list[i].required ? "\",\" ws " + kv[i] + tail : "( \",\" ws " + kv[i] + " )?" + tail;
      after[i] = add_rule(ptr + "-after-" + std::to_string(i), body);
    }
    std::string first;  // alternatives: the first written member is j (all before it optional)
    for (size_t j = 0; j < n; ++j) {
      first += (j ? " | " : "") + kv[j] + (j + 1 < n ? " " + after[j + 1] : "");
      if (list[j].required) break;
    }
    bool all_optional = true;
    for (const Prop& p : list) all_optional = all_optional && !p.required;
    const std::string members = "( " + first + " )" + (all_optional ? "?" : "");
    return add_rule(ptr + "-object", "\"{\" ws " + members + " \"}\"");
  }

  // allOf: one schema with the keywords of s (but allOf) and of every part (a local $ref
  // followed): properties and required joined, additionalProperties false if any says so; any
  // other keyword may be set by one of them only (or the same everywhere).
  const JsonValue& merge_all_of(const JsonValue& s, const std::string& ptr) {
    const JsonValue* all = s.get("allOf");
    const std::string at = ptr + "/allOf";
    struct Depth {  // a recursive allOf (through $ref) would never end
      int& d;
      explicit Depth(int& x) : d(x) { ++d; }
      ~Depth() { --d; }
    } depth(all_of_depth_);
    if (all_of_depth_ > 16) throw SchemaError(at, "allOf nested more than 16 deep (recursive?)");
    if (!all->is(JsonValue::Kind::kArray) || all->items.empty())
      throw SchemaError(at, "must be a non-empty array");
    JsonValue& out = merged_.emplace_back();
    out.kind = JsonValue::Kind::kObject;
    auto member = [&](const std::string& key) -> JsonValue* {
      for (JsonMember& m : out.members)
        if (m.key == key) return &m.value;
      return nullptr;
    };
    auto add = [&](const JsonValue& part, const std::string& where) {
      if (!part.is(JsonValue::Kind::kObject))
        throw SchemaError(where, "an allOf part must be an object schema");
      for (const JsonMember& m : part.members) {
        if (m.key == "allOf" && &part == &s) continue;
        if (kAnnotations.count(m.key)) continue;
        const std::string mp = where + "/" + pointer_escape(m.key);
        JsonValue* have = member(m.key);
        if (!have) {
          out.members.push_back(m);
        } else if (m.key == "properties" && m.value.is(JsonValue::Kind::kObject)) {
          for (const JsonMember& p : m.value.members) {
            const JsonValue* same = have->get(p.key);
            if (!same) {
              have->members.push_back(p);
            } else if (same->dump() != p.value.dump()) {
              throw SchemaError(mp + "/" + pointer_escape(p.key),
                                "allOf parts give property '" + p.key + "' two schemas");
            }
          }
        } else if (m.key == "required" && m.value.is(JsonValue::Kind::kArray)) {
          for (const JsonValue& r : m.value.items) have->items.push_back(r);
        } else if (m.key == "additionalProperties") {
          if (m.value.is(JsonValue::Kind::kBool) && !m.value.b) *have = m.value;
        } else if (have->dump() != m.value.dump()) {
          throw SchemaError(mp,
                            "allOf parts that set '" + m.key + "' differently are not supported");
        }
      }
    };
    add(s, ptr);
    for (size_t i = 0; i < all->items.size(); ++i) {
      const std::string where = at + "/" + std::to_string(i);
      const JsonValue* part = &all->items[i];
      if (const JsonValue* ref = part->get("$ref"); ref && part->members.size() == 1)
        part = &resolve_ref(*ref, where + "/$ref").first;
      if (part->get("allOf")) part = &merge_all_of(*part, where);
      add(*part, where);
    }
    // required names listed twice are one
    if (JsonValue* req = member("required")) {
      std::vector<JsonValue> unique;
      for (const JsonValue& r : req->items) {
        bool seen = false;
        for (const JsonValue& u : unique) seen = seen || u.dump() == r.dump();
        if (!seen) unique.push_back(r);
      }
      req->items = std::move(unique);
    }
    return out;
  }

  std::string visit_ref(const JsonValue& ref, const std::string& ptr) {
    if (!ref.is(JsonValue::Kind::kString)) throw SchemaError(ptr, "must be a string");
    auto it = refs_.find(ref.text);
    if (it != refs_.end()) return it->second;
    const auto [target, target_ptr] = resolve_ref(ref, ptr);
    const std::string name = reserve("ref" + target_ptr);
    refs_[ref.text] = name;  // before the visit: a recursive schema refers to itself by name
    define(name, visit(target, target_ptr));
    return name;
  }

  // The schema a local $ref names, and its pointer.
  std::pair<const JsonValue&, std::string> resolve_ref(const JsonValue& ref,
                                                       const std::string& ptr) {
    if (!ref.is(JsonValue::Kind::kString)) throw SchemaError(ptr, "must be a string");
    const std::string& r = ref.text;
    const JsonValue* target = nullptr;
    std::string target_ptr;
    if (r == "#") {
      target = &root_;
    } else {
      for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
        const std::string p = prefix;
        if (r.compare(0, p.size(), p) != 0) continue;
        std::string name;  // unescape ~1 and ~0
        for (size_t i = p.size(); i < r.size(); ++i) {
          if (r[i] == '~' && i + 1 < r.size() && (r[i + 1] == '0' || r[i + 1] == '1')) {
            name += r[++i] == '0' ? '~' : '/';
          } else {
            name += r[i];
          }
        }
        const JsonValue* defs = root_.get(p.substr(2, p.size() - 3));
        target = defs ? defs->get(name) : nullptr;
        target_ptr = r.substr(1);
      }
      if (!target)
        throw SchemaError(ptr, "$ref '" + r +
                                   "' is not a local \"#\", \"#/$defs/...\" or "
                                   "\"#/definitions/...\" schema of this document");
    }
    return {*target, target_ptr};
  }

  const JsonValue& root_;
  std::deque<JsonValue> merged_;  // allOf merges (stable addresses while visited)
  int all_of_depth_ = 0;
  std::string rules_;
  std::set<std::string> names_;
  std::map<std::string, std::string> refs_;
};

}  // namespace

std::string json_schema_to_gbnf(std::string_view schema_json) {
  const JsonValue schema = parse_json_value(schema_json);
  return Converter(schema).run();
}

std::string json_any_gbnf(bool object_only) {
  return std::string("root ::= ") + (object_only ? "json-object" : "json-value") + "\n" +
         kJsonRules;
}

}  // namespace hpl::grammar
