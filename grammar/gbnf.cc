#include "grammar/gbnf.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

namespace hpl::grammar {

bool Grammar::matches(const Elem& e, uint32_t cp) const {
  bool in = false;
  for (uint32_t i = 0; i < e.n_ranges && !in; ++i) {
    const CharRange& r = ranges[e.arg + i];
    in = cp >= r.lo && cp <= r.hi;
  }
  return in != e.negated;
}

bool Grammar::matches_any(const Elem& e, uint32_t lo, uint32_t hi) const {
  if (!e.negated) {
    for (uint32_t i = 0; i < e.n_ranges; ++i) {
      const CharRange& r = ranges[e.arg + i];
      if (r.lo <= hi && r.hi >= lo) return true;
    }
    return false;
  }
  // Negated: some point of [lo, hi] outside every range. Walk lo upward past covering ranges.
  for (bool moved = true; moved;) {
    moved = false;
    for (uint32_t i = 0; i < e.n_ranges; ++i) {
      const CharRange& r = ranges[e.arg + i];
      if (r.lo <= lo && r.hi >= lo) {
        if (r.hi >= hi) return false;
        lo = r.hi + 1;
        moved = true;
      }
    }
  }
  return true;
}

GrammarError::GrammarError(int l, int c, const std::string& msg)
    : std::runtime_error("line " + std::to_string(l) + ", column " + std::to_string(c) + ": " +
                         msg),
      line(l),
      column(c) {}

std::string gbnf_literal(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr size_t kMaxElems = size_t{1} << 20;  // a {m,n} that would blow the grammar up
constexpr uint32_t kMaxRepeat = 1000;
constexpr int kMaxNesting = 64;  // parentheses (the parser and the matcher recurse)
constexpr uint32_t kUnbounded = UINT32_MAX;

// A parsed element before flattening: a rule reference or a set of code points.
struct Item {
  bool is_ref = false;
  uint32_t rule = 0;
  bool negated = false;
  std::vector<CharRange> ranges;

  static Item ref(uint32_t r) {
    Item it;
    it.is_ref = true;
    it.rule = r;
    return it;
  }
  static Item chars(std::vector<CharRange> r, bool negated = false) {
    Item it;
    it.negated = negated;
    it.ranges = std::move(r);
    return it;
  }
};
using Seq = std::vector<Item>;

struct RuleDef {
  std::vector<Seq> alts;
  bool defined = false;
  size_t where = 0;  // offset of the definition, else of the first reference
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Grammar parse(std::string_view root_name) {
    for (skip_space(true); pos_ < s_.size(); skip_space(true)) parse_rule();
    for (size_t i = 0; i < rules_.size(); ++i)
      if (!rules_[i].defined) fail(rules_[i].where, "undefined rule '" + names_[i] + "'");
    auto it = index_.find(std::string(root_name));
    if (it == index_.end() || !rules_[it->second].defined)
      fail(s_.size(), "no rule '" + std::string(root_name) + "' (the start rule)");
    check_left_recursion();
    check_productive(it->second);
    return flatten(it->second);
  }

 private:
  [[noreturn]] void fail(size_t off, const std::string& msg) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < off && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80) {
        ++col;  // columns count characters, not UTF-8 continuation bytes
      }
    }
    throw GrammarError(line, col, msg);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }

  // Spaces, tabs and comments; newlines too when `newlines`.
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r'))) {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else if (c == '\r' && peek(1) == '\n' && newlines) {
        pos_ += 2;
      } else {
        break;
      }
    }
  }

  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (!at_end() && is_name_char(peek())) ++pos_;
    if (pos_ == start) fail(pos_, "expected a rule name");
    return std::string(s_.substr(start, pos_ - start));
  }

  uint32_t rule_id(const std::string& name, size_t where) {
    auto [it, added] = index_.emplace(name, static_cast<uint32_t>(rules_.size()));
    if (added) {
      rules_.push_back({});
      rules_.back().where = where;
      names_.push_back(name);
    }
    return it->second;
  }

  uint32_t new_rule(uint32_t parent, std::vector<Seq> alts, size_t where) {
    std::string name;
    do {
      name = names_[parent] + "/" + std::to_string(++generated_);
    } while (index_.count(name));
    const uint32_t id = rule_id(name, where);
    rules_[id].alts = std::move(alts);
    rules_[id].defined = true;
    return id;
  }

  void parse_rule() {
    const size_t start = pos_;
    const std::string name = parse_name();
    const uint32_t id = rule_id(name, start);
    if (rules_[id].defined) fail(start, "rule '" + name + "' is defined twice");
    rules_[id].defined = true;
    rules_[id].where = start;
    current_ = id;
    skip_space(false);
    if (s_.substr(pos_, 3) != "::=") fail(pos_, "expected '::=' after rule name '" + name + "'");
    pos_ += 3;
    skip_space(true);
    rules_[id].alts = parse_alternates(false);
    skip_space(false);
    if (!at_end() && peek() != '\n' && peek() != '\r')
      fail(pos_, std::string("unexpected '") + peek() + "'");
  }

  std::vector<Seq> parse_alternates(bool nested) {
    std::vector<Seq> alts;
    alts.push_back(parse_sequence(nested));
    for (;;) {
      if (peek() == '|') {
        ++pos_;
        skip_space(true);
        alts.push_back(parse_sequence(nested));
        continue;
      }
      if (!nested) {  // a following line that starts with | continues this rule
        const size_t save = pos_;
        skip_space(true);
        if (peek() == '|') continue;
        pos_ = save;
      }
      return alts;
    }
  }

  Seq parse_sequence(bool nested) {
    Seq seq;
    for (;;) {
      skip_space(nested);
      const char c = peek();
      if (at_end() || c == '|' || c == ')' || c == '\n' || c == '\r') return seq;
      const size_t unit_start = seq.size(), where = pos_;
      if (c == '"') {
        ++pos_;
        while (peek() != '"') {
          if (at_end() || peek() == '\n') fail(where, "unterminated string literal");
          const uint32_t cp = parse_char();
          seq.push_back(Item::chars({{cp, cp}}));
        }
        ++pos_;
      } else if (c == '[') {
        seq.push_back(parse_class());
      } else if (c == '.') {
        ++pos_;
        seq.push_back(Item::chars({{0, kMaxCodePoint}}));
      } else if (c == '(') {
        if (++nesting_ > kMaxNesting)
          fail(pos_, "parentheses nested deeper than " + std::to_string(kMaxNesting));
        ++pos_;
        skip_space(true);
        std::vector<Seq> alts = parse_alternates(true);
        if (peek() != ')') fail(where, "unclosed '('");
        ++pos_;
        --nesting_;
        seq.push_back(Item::ref(new_rule(current_, std::move(alts), where)));
      } else if (is_name_char(c)) {
        const std::string name = parse_name();
        seq.push_back(Item::ref(rule_id(name, where)));
      } else {
        fail(pos_, std::string("unexpected '") + c + "'");
      }
      parse_postfix(seq, unit_start);
    }
  }

  // Applies * + ? {m,n} after the unit seq[unit_start..] (one element, literal or group).
  void parse_postfix(Seq& seq, size_t unit_start) {
    for (;;) {
      const char c = peek();
      const size_t where = pos_;
      uint32_t lo, hi;
      if (c == '*' || c == '+' || c == '?') {
        ++pos_;
        lo = c == '+' ? 1 : 0;
        hi = c == '?' ? 1 : kUnbounded;
      } else if (c == '{') {
        ++pos_;
        skip_space(true);
        lo = parse_int();
        hi = lo;
        skip_space(true);
        if (peek() == ',') {
          ++pos_;
          skip_space(true);
          hi = peek() == '}' ? kUnbounded : parse_int();
          skip_space(true);
        }
        if (peek() != '}') fail(pos_, "expected '}' to close the repetition");
        ++pos_;
        if (hi < lo) fail(where, "repetition {m,n} with n < m");
      } else {
        return;
      }
      if (unit_start == seq.size()) fail(where, "nothing to repeat");
      Seq unit(seq.begin() + static_cast<std::ptrdiff_t>(unit_start), seq.end());
      seq.resize(unit_start);
      const Item x = unit.size() == 1 ? unit[0] : Item::ref(new_rule(current_, {unit}, where));
      repeat(seq, x, lo, hi, where);
    }
  }

  // Appends x{lo,hi} to seq: lo copies, then x* or a chain of nested optionals.
  void repeat(Seq& seq, const Item& x, uint32_t lo, uint32_t hi, size_t where) {
    if (lo > kMaxRepeat || (hi != kUnbounded && hi > kMaxRepeat))
      fail(where, "repetition count above " + std::to_string(kMaxRepeat));
    n_items_ += static_cast<size_t>(hi == kUnbounded ? lo + 1 : hi) * 2;
    if (n_items_ > kMaxElems) fail(where, "grammar too large");
    for (uint32_t i = 0; i < lo; ++i) seq.push_back(x);
    if (hi == kUnbounded) {
      const uint32_t star = new_rule(current_, {}, where);  // star ::= x star | ""
      rules_[star].alts = {{x, Item::ref(star)}, {}};
      seq.push_back(Item::ref(star));
    } else if (hi > lo) {
      uint32_t opt = new_rule(current_, {{x}, {}}, where);  // opt1 ::= x | ""
      for (uint32_t i = lo + 1; i < hi; ++i)                // optN ::= x opt(N-1) | ""
        opt = new_rule(current_, {{x, Item::ref(opt)}, {}}, where);
      seq.push_back(Item::ref(opt));
    }
  }

  uint32_t parse_int() {
    const size_t start = pos_;
    uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > kMaxRepeat) fail(start, "repetition count above " + std::to_string(kMaxRepeat));
      ++pos_;
    }
    if (pos_ == start) fail(pos_, "expected a number");
    return static_cast<uint32_t>(v);
  }

  Item parse_class() {
    const size_t where = pos_;
    ++pos_;  // '['
    Item it;
    if (peek() == '^') {
      it.negated = true;
      ++pos_;
    }
    while (peek() != ']') {
      if (at_end()) fail(where, "unterminated character class");
      const uint32_t lo = parse_char();
      uint32_t hi = lo;
      if (peek() == '-' && peek(1) != ']' && pos_ + 1 < s_.size()) {
        ++pos_;
        const size_t at = pos_;
        hi = parse_char();
        if (hi < lo) fail(at, "character range end below its start");
      }
      it.ranges.push_back({lo, hi});
    }
    ++pos_;
    return it;
  }

  // One character of a literal or class: an escape or a UTF-8 encoded code point.
  uint32_t parse_char() {
    const size_t where = pos_;
    const unsigned char c = static_cast<unsigned char>(peek());
    if (c == '\\') {
      ++pos_;
      const char e = peek();
      ++pos_;
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
        case '/':
          return static_cast<uint32_t>(e);
        case 'x':
          return parse_hex(2, where);
        case 'u':
          return parse_hex(4, where);
        case 'U':
          return parse_hex(8, where);
        default:
          fail(where,
               at_end() ? "escape at end of input" : std::string("unknown escape '\\") + e + "'");
      }
    }
    int n = c < 0x80                 ? 0
            : c >= 0xC2 && c <= 0xDF ? 1
            : c >= 0xE0 && c <= 0xEF ? 2
            : c >= 0xF0 && c <= 0xF4 ? 3
                                     : -1;
    if (n < 0) fail(where, "invalid UTF-8");
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    ++pos_;
    for (; n > 0; --n, ++pos_) {
      const unsigned char d = static_cast<unsigned char>(peek());
      if (at_end() || (d & 0xC0) != 0x80) fail(where, "invalid UTF-8");
      cp = (cp << 6) | (d & 0x3F);
    }
    return cp;
  }

  uint32_t parse_hex(int digits, size_t where) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      const char h = peek();
      const int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) fail(where, "expected " + std::to_string(digits) + " hex digits");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    if (v > kMaxCodePoint) fail(where, "code point above U+10FFFF");
    return v;
  }

  // Rules that derive the empty string, to the fixpoint.
  std::vector<bool> nullable() const {
    std::vector<bool> null(rules_.size(), false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < rules_.size(); ++r) {
        if (null[r]) continue;
        for (const Seq& a : rules_[r].alts) {
          bool all = true;
          for (const Item& it : a) all = all && it.is_ref && null[it.rule];
          if (all) {
            null[r] = changed = true;
            break;
          }
        }
      }
    }
    return null;
  }

  // A rule that can reach itself without consuming a character would expand forever.
  void check_left_recursion() const {
    const std::vector<bool> null = nullable();
    std::vector<std::vector<uint32_t>> left(rules_.size());  // rule -> rules at its left edge
    for (size_t r = 0; r < rules_.size(); ++r)
      for (const Seq& a : rules_[r].alts)
        for (const Item& it : a) {
          if (!it.is_ref) break;
          left[r].push_back(it.rule);
          if (!null[it.rule]) break;
        }
    std::vector<int> color(rules_.size(), 0);  // 0 new, 1 on the path, 2 done
    std::function<void(uint32_t)> visit = [&](uint32_t r) {
      color[r] = 1;
      for (uint32_t n : left[r]) {
        if (color[n] == 1) {
          const uint32_t user = names_[n].find('/') == std::string::npos ? n : r;
          fail(rules_[user].where, "rule '" + names_[n] + "' is left-recursive");
        }
        if (color[n] == 0) visit(n);
      }
      color[r] = 2;
    };
    for (uint32_t r = 0; r < rules_.size(); ++r)
      if (color[r] == 0) visit(r);
  }

  // The start rule must derive some finite string, else nothing could ever complete it.
  void check_productive(uint32_t root) const {
    std::vector<bool> prod(rules_.size(), false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < rules_.size(); ++r) {
        if (prod[r]) continue;
        for (const Seq& a : rules_[r].alts) {
          bool all = true;
          for (const Item& it : a)
            all = all && (it.is_ref ? prod[it.rule]
                                    : !(it.negated && covers_all(it)) &&
                                          (it.negated || !it.ranges.empty()));
          if (all) {
            prod[r] = changed = true;
            break;
          }
        }
      }
    }
    if (!prod[root])
      fail(rules_[root].where, "rule '" + names_[root] +
                                   "' can never complete (every alternative recurses forever or "
                                   "needs an empty character class)");
  }

  static bool covers_all(const Item& it) {
    Grammar g;
    g.ranges = it.ranges;
    Elem e{Elem::kChars, true, 0, static_cast<uint32_t>(it.ranges.size())};
    return !g.matches_any(e, 0, kMaxCodePoint);
  }

  Grammar flatten(uint32_t root) const {
    Grammar g;
    g.root = root;
    g.rule_names = names_;
    g.rule_alts.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r) {
      for (const Seq& a : rules_[r].alts) {
        g.rule_alts[r].push_back(static_cast<uint32_t>(g.elems.size()));
        for (const Item& it : a) {
          Elem e;
          if (it.is_ref) {
            e.kind = Elem::kRef;
            e.arg = it.rule;
          } else {
            e.kind = Elem::kChars;
            e.negated = it.negated;
            e.arg = static_cast<uint32_t>(g.ranges.size());
            e.n_ranges = static_cast<uint32_t>(it.ranges.size());
            g.ranges.insert(g.ranges.end(), it.ranges.begin(), it.ranges.end());
          }
          g.elems.push_back(e);
        }
        g.elems.push_back(Elem{});
      }
    }
    return g;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<RuleDef> rules_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> index_;
  uint32_t current_ = 0;    // the rule being defined (names generated rules)
  uint32_t generated_ = 0;  // generated-rule counter
  size_t n_items_ = 0;
  int nesting_ = 0;
};

}  // namespace

Grammar parse_gbnf(std::string_view text, std::string_view root) {
  return Parser(text).parse(root);
}

}  // namespace hpl::grammar
