#include "grammar/number_range.h"

#include <algorithm>
#include <vector>

namespace hpl::grammar {
namespace {

using Alts = std::vector<std::string>;

const char* const kAnyFrac = "( \".\" [0-9]{1,16} )?";
const char* const kZeroFrac = "( \".\" \"0\"{1,16} )?";
const char* const kNonzeroFrac = "\".\" \"0\"{0,15} [1-9] [0-9]{0,15}";
constexpr int kMaxDigits = 16;  // as json-int-part

std::string lit(const std::string& digits) {
  return "\"" + digits + "\"";
}

std::string join(const Alts& alts) {
  if (alts.empty()) return "";
  std::string s = "( ";
  for (size_t i = 0; i < alts.size(); ++i) s += (i ? " | " : "") + alts[i];
  return s + " )";
}

int digits(uint64_t v) {
  int n = 1;
  for (; v >= 10; v /= 10) ++n;
  return n;
}

uint64_t pow10(int n) {
  uint64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

std::string padded(uint64_t v, int width) {
  std::string s = std::to_string(v);
  return std::string(static_cast<size_t>(width) - s.size(), '0') + s;
}

// Digit strings a <= b of one length (zeros allowed in front): after their common prefix, the
// first digit of a with the rest from a's up, the digits between with anything after, and the
// first digit of b with the rest up to b's.
void same_length(const std::string& a, const std::string& b, const std::string& prefix, Alts& out) {
  size_t k = 0;
  while (k < a.size() && a[k] == b[k]) ++k;
  const std::string p = prefix + a.substr(0, k);
  if (k == a.size()) {
    out.push_back(lit(p));
    return;
  }
  const size_t m = a.size() - k - 1;
  const std::string ra = a.substr(k + 1), rb = b.substr(k + 1);
  const bool a_zeros = ra.find_first_not_of('0') == std::string::npos;
  const bool b_nines = rb.find_first_not_of('9') == std::string::npos;
  char lo = a[k], hi = b[k];
  if (!a_zeros) {
    same_length(ra, std::string(m, '9'), p + a[k], out);
    ++lo;
  }
  if (!b_nines) --hi;
  if (lo <= hi) {
    std::string alt = p.empty() ? "" : lit(p) + " ";
    const char range[] = {'[', lo, '-', hi, ']', '\0'};
    alt += range;
    if (m > 0) alt += " [0-9]{" + std::to_string(m) + "}";
    out.push_back(alt);
  }
  if (!b_nines) same_length(std::string(m, '0'), rb, p + b[k], out);
}

// The decimal integers in [lo, hi] (hi nullopt: any up to 16 digits), no leading zeros.
void unsigned_range(uint64_t lo, std::optional<uint64_t> hi, Alts& out) {
  if (hi && *hi < lo) return;
  const int first = digits(lo), last = hi ? digits(*hi) : kMaxDigits;
  for (int l = first; l <= last; ++l) {
    const uint64_t a = l == first ? lo : pow10(l - 1);
    if (!hi && l > first) {  // every length from here on
      out.push_back("[1-9] [0-9]{" + std::to_string(l - 1) + "," + std::to_string(kMaxDigits - 1) +
                    "}");
      return;
    }
    const uint64_t b = hi && l == last ? *hi : pow10(l) - 1;
    same_length(padded(a, l), padded(b, l), "", out);
  }
}

// Magnitudes m of numbers (integer part, optional fraction) with lo <= m (< when exclusive)
// and m <= hi: the integer part lo with a fraction as the lower bound allows, those between
// with any fraction, and hi itself with a zero fraction when included.
void magnitudes(Bound lo, std::optional<Bound> hi, const std::string& sign, Alts& out) {
  const auto a = static_cast<uint64_t>(lo.value);
  if (hi) {
    const auto b = static_cast<uint64_t>(hi->value);
    if (b < a) return;
    if (a == b) {
      if (lo.inclusive && hi->inclusive)
        out.push_back(sign + lit(std::to_string(a)) + " " + kZeroFrac);
      return;
    }
  }
  out.push_back(sign + lit(std::to_string(a)) + " " + (lo.inclusive ? kAnyFrac : kNonzeroFrac));
  Alts mid;
  unsigned_range(a + 1, hi ? std::optional<uint64_t>(hi->value - 1) : std::nullopt, mid);
  for (const std::string& m : mid) out.push_back(sign + m + " " + kAnyFrac);
  if (hi && hi->inclusive) out.push_back(sign + lit(std::to_string(hi->value)) + " " + kZeroFrac);
}

}  // namespace

std::string integer_range_gbnf(std::optional<Bound> lo, std::optional<Bound> hi) {
  // inclusive integer bounds
  std::optional<int64_t> l, h;
  if (lo) l = lo->inclusive ? lo->value : lo->value + 1;
  if (hi) h = hi->inclusive ? hi->value : hi->value - 1;
  if (l && h && *l > *h) return "";
  Alts alts;
  if (!l || *l < 0) {  // negatives: magnitudes from -h (or 1) to -l (or any)
    Alts neg;
    unsigned_range(h && *h < 0 ? static_cast<uint64_t>(-*h) : 1,
                   l ? std::optional<uint64_t>(-*l) : std::nullopt, neg);
    for (const std::string& n : neg) alts.push_back("\"-\" " + n);
  }
  if (!h || *h >= 0)
    unsigned_range(l ? static_cast<uint64_t>(std::max<int64_t>(*l, 0)) : 0,
                   h ? std::optional<uint64_t>(*h) : std::nullopt, alts);
  return join(alts);
}

std::string number_range_gbnf(std::optional<Bound> lo, std::optional<Bound> hi) {
  Alts alts;
  if (!lo || lo->value < 0) {  // x < 0: magnitudes -x in (max(0, -hi), -lo]
    const Bound from = hi && hi->value < 0 ? Bound{-hi->value, hi->inclusive} : Bound{0, false};
    magnitudes(from, lo ? std::optional<Bound>(Bound{-lo->value, lo->inclusive}) : std::nullopt,
               "\"-\" ", alts);
  }
  if (!hi || hi->value > 0 || (hi->value == 0 && hi->inclusive)) {  // x >= 0
    const Bound from = lo && lo->value >= 0 ? *lo : Bound{0, true};
    magnitudes(from, hi, "", alts);
  }
  return join(alts);
}

}  // namespace hpl::grammar
