// GBNF, llama.cpp's grammar format, parsed into a flat grammar the matcher walks.
//
//   root  ::= item ("," ws item)*     # rules: name ::= alternatives; comments to end of line
//   item  ::= [a-z]+ | "\"" [^"\\]* "\"" | ( "x" | "y" ){2,4} | .?
//
// Terminals: "literal" strings, [...] char classes with ranges and ^ negation, . (any
// character); escapes \n \r \t \\ \" \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH. Postfix * + ? {m}
// {m,} {m,n} on any element or (group). A newline ends a rule except inside parentheses or
// before a line that continues it with |. Rule names: [A-Za-z0-9_-]+.
//
// Repetitions and groups become generated rules (right-recursive, so the matcher's stacks do
// not grow with the length of a repetition); every element is a rule reference or a set of
// code points, and every alternative ends with kEnd.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hpl::grammar {

struct CharRange {
  uint32_t lo, hi;  // code points, inclusive
};

struct Elem {
  enum Kind : uint8_t { kEnd, kRef, kChars };
  Kind kind = kEnd;
  bool negated = false;   // kChars: matches code points in none of the ranges
  uint32_t arg = 0;       // kRef: rule index; kChars: first range in Grammar::ranges
  uint32_t n_ranges = 0;  // kChars
};

struct Grammar {
  std::vector<Elem> elems;                       // alternatives, each closed by kEnd
  std::vector<CharRange> ranges;                 // the kChars sets
  std::vector<std::vector<uint32_t>> rule_alts;  // rule -> index in elems of each alternative
  std::vector<std::string> rule_names;           // generated rules: "parent/N"
  uint32_t root = 0;

  // Does kChars element e match code point cp / some code point in [lo, hi]?
  bool matches(const Elem& e, uint32_t cp) const;
  bool matches_any(const Elem& e, uint32_t lo, uint32_t hi) const;
};

// A grammar that does not parse or cannot be used; what() is "line L, column C: message".
class GrammarError : public std::runtime_error {
 public:
  GrammarError(int line, int column, const std::string& msg);
  int line, column;
};

// Parses and checks (defined rule names, a root rule, no left recursion, a root that derives
// a finite string). Throws GrammarError.
Grammar parse_gbnf(std::string_view text, std::string_view root = "root");

// GBNF string literal for bytes s: "..." with \" \\ and control characters escaped.
std::string gbnf_literal(std::string_view s);

}  // namespace hpl::grammar
