#!/usr/bin/env python3
"""Writes tokenizer/unicode_norm_tables.cc: what BERT's normalizer and pre-tokenizer do to
each code point, read off Hugging Face `tokenizers` itself (its BertNormalizer and
BertPreTokenizer, probed one code point at a time).

Run: python3 tokenizer/gen_unicode_norm_tables.py > tokenizer/unicode_norm_tables.cc

Why probe instead of using Python's unicodedata: `tokenizers` mixes Unicode versions (an old
general-category table for "control", "nonspacing mark" and "punctuation", the Rust standard
library's newer one for lowercasing and whitespace, a third for NFD), so about 550 newer code
points behave differently from any single Unicode version. The tables are:
- Removed: what clean_text drops (control, format, private use; 0 and U+FFFD), as ranges.
- Punctuation: what BertPreTokenizer isolates (P* of its table and every ASCII symbol).
- Unaccented: strip_accents of one code point (NFD, nonspacing marks dropped) where it is not
  the code point itself; Hangul syllables are left out (arithmetic in unicode.cc, checked here).
- Lower: the lowercase of one code point where it differs (full mapping: U+0130 -> 2).
Checked here, not tabled: whitespace becomes ' ' exactly for White_Space code points that are
not removed, and handle_chinese_chars spaces exactly the CJK ranges of wpm.cc.
"""
import sys

import tokenizers
from tokenizers import normalizers, pre_tokenizers

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
WHITE_SPACE = set([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                   0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def code_points():
    return [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def ranges(cps):
    out = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def hangul(cp):
    s = cp - HANGUL_FIRST
    jamo = [0x1100 + s // 588, 0x1161 + (s % 588) // 28]
    if s % 28:
        jamo.append(0x11A7 + s % 28)
    return "".join(map(chr, jamo))


def probe():
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True,
                                         strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    lower = normalizers.Lowercase()
    split = pre_tokenizers.BertPreTokenizer()
    removed, punct, unacc, low = [], [], {}, {}
    for cp in code_points():
        c = chr(cp)
        cleaned = clean.normalize_str("x" + c + "x")
        if cleaned == "xx":
            removed.append(cp)
        else:
            want = "x x" if cp in WHITE_SPACE else "x" + c + "x"
            assert cleaned == want, (hex(cp), cleaned)
        cjk = any(a <= cp <= b for a, b in CJK)
        assert chinese.normalize_str(c) == (" " + c + " " if cjk else c), hex(cp)
        if cp not in WHITE_SPACE and len(split.pre_tokenize_str("a" + c + "a")) == 3:
            punct.append(cp)
        s = strip.normalize_str(c)
        if HANGUL_FIRST <= cp <= HANGUL_LAST:
            assert s == hangul(cp), hex(cp)
        elif s != c:
            unacc[cp] = s
        lo = lower.normalize_str(c)
        if lo != c:
            low[cp] = lo
    return ranges(removed), ranges(punct), unacc, low


def write_array(out, ctype, name, values, per_line, fmt):
    out.write("const %s %s[] = {\n" % (ctype, name))
    for i in range(0, len(values), per_line):
        out.write("    " + ", ".join(fmt % v for v in values[i:i + per_line]) + ",\n")
    out.write("};\n")


def write_ranges(out, prefix, what, rs):
    out.write("\n// %s: inclusive [first, last] ranges, ascending.\n" % what)
    out.write("const int k%sCount = %d;\n" % (prefix, len(rs)))
    write_array(out, "uint32_t", "k%sFirst" % prefix, [r[0] for r in rs], 10, "0x%X")
    write_array(out, "uint32_t", "k%sLast" % prefix, [r[1] for r in rs], 10, "0x%X")


def write_mapping(out, prefix, what, m):
    keys, offsets, data = [], [0], []
    for cp in sorted(m):
        keys.append(cp)
        data.extend(ord(c) for c in m[cp])
        offsets.append(len(data))
    assert offsets[-1] < 65536
    out.write("\n// %s: code points (ascending), where each one's result starts in %sData\n"
              "// (it ends where the next one starts), and the result code points.\n" % (what, prefix))
    out.write("const int k%sCount = %d;\n" % (prefix, len(keys)))
    write_array(out, "uint32_t", "k%sKeys" % prefix, keys, 10, "0x%X")
    write_array(out, "uint16_t", "k%sOffsets" % prefix, offsets, 12, "%d")
    write_array(out, "uint32_t", "k%sData" % prefix, data or [0], 10, "0x%X")


def main():
    removed, punct, unacc, low = probe()
    out = sys.stdout
    out.write("// clang-format off\n")
    out.write("// Generated by tokenizer/gen_unicode_norm_tables.py from Hugging Face tokenizers %s. "
              "Do not edit.\n" % tokenizers.__version__)
    out.write('#include "tokenizer/unicode.h"\n\nnamespace hpl::unicode {\n')
    out.write("\nconst char* const kBertTablesSource = \"tokenizers %s\";\n" % tokenizers.__version__)
    write_ranges(out, "Removed", "BertNormalizer clean_text drops", removed)
    write_ranges(out, "BertPunct", "BertPreTokenizer punctuation", punct)
    write_mapping(out, "Unaccented", "strip_accents (NFD without nonspacing marks)", unacc)
    write_mapping(out, "Lower", "Lowercase", low)
    out.write("\n}  // namespace hpl::unicode\n")


if __name__ == "__main__":
    main()
