// UTF-8 decoding and general-category lookup.
#include "tokenizer/unicode.h"

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace hpl::unicode {

namespace {
// ASCII flags straight from the range table, once.
struct AsciiTable {
  uint8_t f[128];
  AsciiTable() {
    int r = 0;
    for (uint32_t cp = 0; cp < 128; ++cp) {
      while (r + 1 < kRangeCount && kRangeStart[r + 1] <= cp) ++r;
      f[cp] = kRangeFlags[r];
    }
  }
};
const AsciiTable& ascii() {
  static const AsciiTable t;
  return t;
}
}  // namespace

uint8_t flags(uint32_t cp) {
  if (cp < 128) return ascii().f[cp];
  if (cp > 0x10FFFF) return kOther;
  // Last range whose start <= cp.
  const uint32_t* end = kRangeStart + kRangeCount;
  const uint32_t* it = std::upper_bound(kRangeStart, end, cp);
  return kRangeFlags[(it - kRangeStart) - 1];
}

namespace {
// Whether cp is in one of the inclusive ranges [first[i], last[i]] (ascending).
bool in_ranges(uint32_t cp, const uint32_t* first, const uint32_t* last, int count) {
  const uint32_t* it = std::upper_bound(first, first + count, cp);  // past the last first <= cp
  return it != first && cp <= last[(it - first) - 1];
}

// Appends the mapping of cp in a generated table, or cp itself when it has none.
void append_mapped(uint32_t cp, const uint32_t* keys, int count, const uint16_t* offsets,
                   const uint32_t* data, std::vector<uint32_t>& out) {
  const uint32_t* it = std::lower_bound(keys, keys + count, cp);
  if (it == keys + count || *it != cp) {
    out.push_back(cp);
    return;
  }
  const size_t k = it - keys;
  out.insert(out.end(), data + offsets[k], data + offsets[k + 1]);
}
}  // namespace

bool is_bert_removed(uint32_t cp) {
  return in_ranges(cp, kRemovedFirst, kRemovedLast, kRemovedCount);
}

bool is_bert_punctuation(uint32_t cp) {
  return in_ranges(cp, kBertPunctFirst, kBertPunctLast, kBertPunctCount);
}

void append_unaccented(uint32_t cp, std::vector<uint32_t>& out) {
  // Hangul syllable -> L V (T) jamo (Unicode 3.12, "Hangul Syllable Decomposition").
  constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
  constexpr uint32_t kTCount = 28, kNCount = 21 * 28, kSCount = 19 * 21 * 28;
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  append_mapped(cp, kUnaccentedKeys, kUnaccentedCount, kUnaccentedOffsets, kUnaccentedData, out);
}

void append_lowercase(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp < 128) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  append_mapped(cp, kLowerKeys, kLowerCount, kLowerOffsets, kLowerData, out);
}

size_t decode_utf8(std::string_view s, size_t i, uint32_t* cp, bool* valid) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  const uint8_t b0 = p[i];
  *valid = true;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  // Lead byte: sequence length and the allowed range of the second byte (Unicode Table 3-7,
  // which excludes overlongs, surrogates and code points above U+10FFFF).
  int len;
  uint8_t lo = 0x80, hi = 0xBF;
  uint32_t c;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, c = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, c = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, c = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *cp = kReplacement;
    *valid = false;
    return 1;
  }
  size_t k = 1;
  for (; k < static_cast<size_t>(len); ++k) {
    if (i + k >= n) break;
    const uint8_t b = p[i + k];
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
    c = (c << 6) | (b & 0x3F);
  }
  if (k == static_cast<size_t>(len)) {
    *cp = c;
    return k;
  }
  *cp = kReplacement;  // maximal subpart: the bytes that were a valid prefix
  *valid = false;
  return k;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void decode(std::string_view s, Codepoints& out) {
  out.cps.clear();
  out.offsets.clear();
  out.cps.reserve(s.size());
  out.offsets.reserve(s.size() + 1);
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    bool valid;
    const size_t len = decode_utf8(s, i, &cp, &valid);
    out.cps.push_back(cp);
    out.offsets.push_back(static_cast<uint32_t>(i));
    i += len;
  }
  out.offsets.push_back(static_cast<uint32_t>(s.size()));
}

}  // namespace hpl::unicode

namespace hpl {

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    bool valid;
    const size_t len = unicode::decode_utf8(s, i, &cp, &valid);
    if (valid) {
      out.append(s.data() + i, len);
    } else {
      unicode::append_utf8(unicode::kReplacement, out);
    }
    i += len;
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view s) {
  // Only the last 3 bytes can be an unfinished sequence: find the last lead byte there.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    if (b < 0x80) return n;
    uint32_t cp;
    bool valid;
    const size_t len = unicode::decode_utf8(s, n - back, &cp, &valid);
    // A valid-so-far prefix that ran out of bytes: hold it back.
    if (!valid && n - back + len == n) {
      const int need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
      if (static_cast<int>(len) < need && b >= 0xC2 && b <= 0xF4) return n - back;
    }
    return n;
  }
  return n;
}

}  // namespace hpl
