// GBNF for JSON numbers inside bounds (JSON Schema minimum / maximum / exclusiveMinimum /
// exclusiveMaximum): exact, digit by digit, for integers and for numbers with integer bounds
// (no exponent: a bounded number is written in plain decimal notation).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace hpl::grammar {

// A bound of a range; values up to 10^15 in magnitude (the grammar's integer digits).
struct Bound {
  int64_t value = 0;
  bool inclusive = true;
};
constexpr int64_t kMaxBound = 1'000'000'000'000'000;  // 10^15

// The GBNF expression (alternatives in parentheses) of the integers in [lo, hi] (either side
// open when nullopt), without leading zeros. Empty when no integer fits.
std::string integer_range_gbnf(std::optional<Bound> lo, std::optional<Bound> hi);

// The same for numbers: an integer part with an optional fraction of up to 16 digits; the
// bounds' values are integers.
std::string number_range_gbnf(std::optional<Bound> lo, std::optional<Bound> hi);

}  // namespace hpl::grammar
