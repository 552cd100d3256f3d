// Hand-written pre-tokenizer regexes. Each match function returns the length of the match
// that the regex finds starting exactly at `pos` within the fragment [.., end), or 0.
#include "tokenizer/pretokenizer.h"

#include <string>

#include "tokenizer/unicode.h"

namespace hpl {

namespace {

using unicode::flags;

inline bool is_l(uint32_t c) {
  return flags(c) & unicode::kLetter;
}
inline bool is_n(uint32_t c) {
  return flags(c) & unicode::kNumber;
}
inline bool is_p(uint32_t c) {
  return flags(c) & unicode::kPunctuation;
}
inline bool is_ws(uint32_t c) {
  return flags(c) & unicode::kWhitespace;
}
inline bool is_crlf(uint32_t c) {
  return c == '\r' || c == '\n';
}
// [^\s\p{L}\p{N}]
inline bool is_other(uint32_t c) {
  return !(flags(c) & (unicode::kWhitespace | unicode::kLetter | unicode::kNumber));
}
inline uint32_t ascii_lower(uint32_t c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

template <typename Pred>
inline size_t run(const uint32_t* c, size_t pos, size_t end, Pred p) {
  size_t i = pos;
  while (i < end && p(c[i])) ++i;
  return i - pos;
}

// 's|'t|'re|'ve|'m|'ll|'d, case-sensitive (GPT-2) or not (Llama 3, Qwen2: '[sS]|...).
size_t contraction(const uint32_t* c, size_t pos, size_t end, bool any_case) {
  if (c[pos] != '\'' || pos + 1 >= end) return 0;
  auto low = [&](uint32_t x) { return any_case ? ascii_lower(x) : x; };
  const uint32_t c1 = low(c[pos + 1]);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= end) return 0;
  const uint32_t c2 = low(c[pos + 2]);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// \s+(?!\S): a whitespace run, minus its last char when a non-space follows.
size_t spaces_not_before_word(const uint32_t* c, size_t pos, size_t end) {
  const size_t r = run(c, pos, end, is_ws);
  if (r == 0) return 0;
  if (pos + r == end) return r;
  return r >= 2 ? r - 1 : 0;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
size_t match_gpt2(const uint32_t* c, size_t pos, size_t end) {
  if (size_t m = contraction(c, pos, end, false)) return m;
  const size_t q = pos + (c[pos] == ' ' && pos + 1 < end ? 1 : 0);
  if (size_t m = run(c, q, end, is_l)) return q - pos + m;
  if (size_t m = run(c, q, end, is_n)) return q - pos + m;
  if (size_t m = run(c, q, end, is_other)) return q - pos + m;
  return spaces_not_before_word(c, pos, end);
}

// (?:'[sS]|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+          (Llama 3: max_digits 3; Qwen2: 1)
size_t match_llama3(const uint32_t* c, size_t pos, size_t end, size_t max_digits) {
  if (size_t m = contraction(c, pos, end, true)) return m;
  const uint32_t c0 = c[pos];
  if (is_l(c0)) return run(c, pos, end, is_l);
  if (!is_crlf(c0) && !is_n(c0) && pos + 1 < end && is_l(c[pos + 1])) {
    return 1 + run(c, pos + 1, end, is_l);
  }
  if (is_n(c0)) {
    const size_t m = run(c, pos, end, is_n);
    return m < max_digits ? m : max_digits;
  }
  const size_t q = pos + (c0 == ' ' && pos + 1 < end ? 1 : 0);
  if (size_t m = run(c, q, end, is_other)) {
    const size_t e = q + m;
    return e - pos + run(c, e, end, is_crlf);
  }
  if (is_ws(c0)) {
    const size_t r = run(c, pos, end, is_ws);
    // \s*[\r\n]+: up to and including the last CR/LF of the run.
    for (size_t k = pos + r; k > pos; --k) {
      if (is_crlf(c[k - 1])) return k - pos;
    }
    if (size_t m = spaces_not_before_word(c, pos, end)) return m;
    return r;
  }
  return 0;
}

// \s?X+ : an optional whitespace char, then a run of class X.
template <typename Pred>
size_t opt_space_run(const uint32_t* c, size_t pos, size_t end, Pred p) {
  if (is_ws(c[pos]) && pos + 1 < end && p(c[pos + 1])) return 1 + run(c, pos + 1, end, p);
  return run(c, pos, end, p);
}

// The letter ranges of DeepSeek LLM's second regex (cased letters of many scripts).
const uint32_t kDeepseekLetters[][2] = {
    {'A', 'Z'},         {'a', 'z'},         {0xB5, 0xB5},       {0xC0, 0xD6},
    {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
    {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
    {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
    {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
bool is_deepseek_letter(uint32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  for (const auto& r : kDeepseekLetters) {
    if (c < r[0]) return false;  // ranges are ascending
    if (c <= r[1]) return true;
  }
  return false;
}
// [!-/:-~！-／：-～‘-‟　-。]
bool is_deepseek_punct(uint32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
         (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) ||
         (c >= 0x3000 && c <= 0x3002);
}
// [一-龥ࠀ-一가-퟿]
bool is_cjk_hangul(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) ||
         (c >= 0xAC00 && c <= 0xD7FF);
}
// [\p{P}\$\+<=>\^~\|] (+ '`' for Falcon)
bool is_punct_sym(uint32_t c, bool backtick) {
  if (is_p(c)) return true;
  switch (c) {
    case '$':
    case '+':
    case '<':
    case '=':
    case '>':
    case '^':
    case '~':
    case '|':
      return true;
    case '`':
      return backtick;
    default:
      return false;
  }
}
// [^(\s|.,!?…。，、।۔،)]
bool is_bloom_word(uint32_t c) {
  switch (c) {
    case '(':
    case '|':
    case '.':
    case ',':
    case '!':
    case '?':
    case ')':
    case 0x2026:
    case 0x3002:
    case 0xFF0C:
    case 0x3001:
    case 0x0964:
    case 0x06D4:
    case 0x060C:
      return false;
    default:
      return !is_ws(c);
  }
}
bool is_ascii_digit(uint32_t c) {
  return c >= '0' && c <= '9';
}

enum class Pass {
  GPT2,
  LLAMA3,
  QWEN2,
  CRLF,
  DS_LETTERS,
  DS_PUNCT,
  TRAILING_SPACE,
  CJK,
  DIGITS,
  DIGIT,
  THREE_DIGITS,
  PUNCT_SYM,
  PUNCT_SYM_TICK,
  SPACE_LETTERS,
  SPACE_PUNCT,
  BLOOM,
};

size_t match(Pass p, const uint32_t* c, size_t pos, size_t end) {
  switch (p) {
    case Pass::GPT2:
      return match_gpt2(c, pos, end);
    case Pass::LLAMA3:
      return match_llama3(c, pos, end, 3);
    case Pass::QWEN2:
      return match_llama3(c, pos, end, 1);
    case Pass::CRLF:
      return is_crlf(c[pos]) ? 1 : 0;  // [\r\n]
    case Pass::DS_LETTERS:
      return opt_space_run(c, pos, end, is_deepseek_letter);
    case Pass::DS_PUNCT:
      return opt_space_run(c, pos, end, is_deepseek_punct);
    case Pass::TRAILING_SPACE: {  // \s+$
      const size_t r = run(c, pos, end, is_ws);
      return pos + r == end ? r : 0;
    }
    case Pass::CJK:
      return run(c, pos, end, is_cjk_hangul);
    case Pass::DIGITS:
      return run(c, pos, end, is_n);  // \p{N}+
    case Pass::DIGIT:
      return is_n(c[pos]) ? 1 : 0;  // \p{N}
    case Pass::THREE_DIGITS:        // [0-9]{3}
      return pos + 3 <= end && is_ascii_digit(c[pos]) && is_ascii_digit(c[pos + 1]) &&
                     is_ascii_digit(c[pos + 2])
                 ? 3
                 : 0;
    case Pass::PUNCT_SYM:
      return run(c, pos, end, [](uint32_t x) { return is_punct_sym(x, false); });
    case Pass::PUNCT_SYM_TICK:
      return run(c, pos, end, [](uint32_t x) { return is_punct_sym(x, true); });
    case Pass::SPACE_LETTERS:
      return opt_space_run(c, pos, end, is_l);  // \s?\p{L}+
    case Pass::SPACE_PUNCT:
      return opt_space_run(c, pos, end, is_p);  // \s?\p{P}+
    case Pass::BLOOM: {                         //  ?[^(\s|...)]+
      const size_t q = pos + (c[pos] == ' ' && pos + 1 < end ? 1 : 0);
      const size_t m = run(c, q, end, is_bloom_word);
      return m ? q - pos + m : 0;
    }
  }
  return 0;
}

// Splits every fragment of `in` (end indices) by pass p into matches and gaps -> `out`.
void apply(Pass p, const uint32_t* c, const std::vector<uint32_t>& in, std::vector<uint32_t>& out) {
  out.clear();
  size_t start = 0;
  for (uint32_t end : in) {
    size_t pos = start, gap = start;
    while (pos < end) {
      const size_t m = match(p, c, pos, end);
      if (m == 0) {
        ++pos;
        continue;
      }
      if (gap < pos) out.push_back(static_cast<uint32_t>(pos));
      pos += m;
      out.push_back(static_cast<uint32_t>(pos));
      gap = pos;
    }
    if (gap < end) out.push_back(end);
    start = end;
  }
}

struct Passes {
  const Pass* p;
  size_t n;
};

Passes passes_of(PreTokenizer k) {
  static const Pass kDefault[] = {Pass::PUNCT_SYM, Pass::GPT2, Pass::DIGITS, Pass::THREE_DIGITS};
  static const Pass kGpt2[] = {Pass::GPT2};
  static const Pass kLlama3[] = {Pass::LLAMA3};
  static const Pass kQwen2[] = {Pass::QWEN2};
  static const Pass kStarcoder[] = {Pass::DIGIT, Pass::GPT2};
  static const Pass kDeepseekLlm[] = {Pass::CRLF,           Pass::DS_LETTERS, Pass::DS_PUNCT,
                                      Pass::TRAILING_SPACE, Pass::CJK,        Pass::DIGITS};
  static const Pass kDeepseekCoder[] = {Pass::CRLF, Pass::SPACE_LETTERS, Pass::SPACE_PUNCT,
                                        Pass::CJK, Pass::DIGIT};
  static const Pass kFalcon[] = {Pass::PUNCT_SYM_TICK, Pass::GPT2, Pass::THREE_DIGITS};
  static const Pass kBloom[] = {Pass::BLOOM};
  static const Pass kViking[] = {Pass::BLOOM, Pass::DIGIT};
#define HPL_PASSES(a)           \
  Passes {                      \
    a, sizeof(a) / sizeof(a[0]) \
  }
  switch (k) {
    case PreTokenizer::DEFAULT:
      return HPL_PASSES(kDefault);
    case PreTokenizer::GPT2:
      return HPL_PASSES(kGpt2);
    case PreTokenizer::LLAMA3:
      return HPL_PASSES(kLlama3);
    case PreTokenizer::QWEN2:
      return HPL_PASSES(kQwen2);
    case PreTokenizer::STARCODER:
      return HPL_PASSES(kStarcoder);
    case PreTokenizer::DEEPSEEK_LLM:
      return HPL_PASSES(kDeepseekLlm);
    case PreTokenizer::DEEPSEEK_CODER:
      return HPL_PASSES(kDeepseekCoder);
    case PreTokenizer::FALCON:
      return HPL_PASSES(kFalcon);
    case PreTokenizer::BLOOM:
      return HPL_PASSES(kBloom);
    case PreTokenizer::VIKING:
      return HPL_PASSES(kViking);
  }
#undef HPL_PASSES
  return Passes{kGpt2, 1};
}

}  // namespace

bool pretokenizer_from_name(std::string_view name, PreTokenizer* out) {
  struct Name {
    const char* name;
    PreTokenizer kind;
  };
  static const Name kNames[] = {
      {"default", PreTokenizer::DEFAULT},
      {"", PreTokenizer::DEFAULT},
      {"gpt-2", PreTokenizer::GPT2},
      {"gpt2", PreTokenizer::GPT2},
      {"mpt", PreTokenizer::GPT2},
      {"olmo", PreTokenizer::GPT2},
      {"jais", PreTokenizer::GPT2},
      {"phi-2", PreTokenizer::GPT2},
      {"roberta-bpe", PreTokenizer::GPT2},
      {"jina-es", PreTokenizer::GPT2},
      {"jina-de", PreTokenizer::GPT2},
      {"jina-v1-en", PreTokenizer::GPT2},
      {"jina-v2-es", PreTokenizer::GPT2},
      {"jina-v2-de", PreTokenizer::GPT2},
      {"jina-v2-code", PreTokenizer::GPT2},
      {"gigachat", PreTokenizer::GPT2},
      {"trillion", PreTokenizer::GPT2},
      {"llama-bpe", PreTokenizer::LLAMA3},
      {"llama3", PreTokenizer::LLAMA3},
      {"llama-v3", PreTokenizer::LLAMA3},
      {"dbrx", PreTokenizer::LLAMA3},
      {"smaug-bpe", PreTokenizer::LLAMA3},
      {"falcon3", PreTokenizer::LLAMA3},
      {"pixtral", PreTokenizer::LLAMA3},
      {"chatglm-bpe", PreTokenizer::LLAMA3},
      {"qwen2", PreTokenizer::QWEN2},
      {"stablelm2", PreTokenizer::QWEN2},
      {"deepseek-r1-qwen", PreTokenizer::QWEN2},
      {"megrez", PreTokenizer::QWEN2},
      {"hunyuan", PreTokenizer::QWEN2},
      {"starcoder", PreTokenizer::STARCODER},
      {"refact", PreTokenizer::STARCODER},
      {"command-r", PreTokenizer::STARCODER},
      {"smollm", PreTokenizer::STARCODER},
      {"codeshell", PreTokenizer::STARCODER},
      {"exaone", PreTokenizer::STARCODER},
      {"minerva-7b", PreTokenizer::STARCODER},
      {"deepseek-llm", PreTokenizer::DEEPSEEK_LLM},
      {"deepseek-coder", PreTokenizer::DEEPSEEK_CODER},
      {"falcon", PreTokenizer::FALCON},
      {"bloom", PreTokenizer::BLOOM},
      {"poro-chat", PreTokenizer::BLOOM},
      {"gpt3-finnish", PreTokenizer::BLOOM},
      {"viking", PreTokenizer::VIKING},
  };
  for (const auto& n : kNames) {
    if (name == n.name) {
      *out = n.kind;
      return true;
    }
  }
  return false;
}

void pretokenize(PreTokenizer kind, const uint32_t* cps, size_t n, std::vector<uint32_t>& ends) {
  if (n == 0) return;
  std::vector<uint32_t> a{static_cast<uint32_t>(n)}, b;
  const Passes ps = passes_of(kind);
  for (size_t i = 0; i < ps.n; ++i) {
    apply(ps.p[i], cps, a, b);
    a.swap(b);
  }
  ends.insert(ends.end(), a.begin(), a.end());
}

}  // namespace hpl
