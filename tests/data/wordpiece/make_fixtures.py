#!/usr/bin/env python3
"""WordPiece conformance fixtures: Hugging Face `tokenizers` ids for a mixed corpus.

    python3 tests/data/wordpiece/make_fixtures.py          # rewrite every fixture
    python3 tests/data/wordpiece/make_fixtures.py --check  # compare, exit 1 on a difference

Writes, next to this file:
- corpus.inp: the texts, separated by the line __ggml_vocab_test__ (llama.cpp's .inp form).
- wordpiece-cased.gguf: a cased vocab (no lowercasing, accents kept) trained with
  `tokenizers`' WordPiece trainer on tests/data/ppl-english.txt and the corpus, written as
  llama.cpp's converter writes bert vocabs ("\u2581" + word-start pieces, "##" removed from
  continuations, special tokens CONTROL and verbatim). Not rewritten by --check.
- CONFIG.out: per corpus text three lines: the ids of encode(text) with [CLS]/[SEP]; "PAIR
  ids ; type ids" of encode(text, next text) where next = corpus[(i + 7) % n]; "DECODE " and
  decode(ids of the text) (special tokens skipped, WordPiece decoder with cleanup).
  CONFIG is VOCAB-NORMALIZER: the vocab (bge = tests/data/tokenizer/ggml-vocab-bert-bge.gguf,
  uncased bert-base vocab; cased = wordpiece-cased.gguf) and the BertNormalizer options.

The reference is BertWordPieceTokenizer built offline from the GGUF's own vocab, so the
fixtures test the tokenizer, not a conversion. tests/tokenizer_test.cc checks hpl against
the .out files; tests/python/test_wordpiece_vs_hf.py re-runs this with --check.
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
SEP = "\n__ggml_vocab_test__\n"
PAIR_STEP = 7
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# name -> (vocab GGUF, lowercase, strip_accents)
CONFIGS = {
    "bge-uncased": (os.path.join(DATA, "tokenizer", "ggml-vocab-bert-bge.gguf"), True, True),
    "bge-lower-accents": (os.path.join(DATA, "tokenizer", "ggml-vocab-bert-bge.gguf"), True, False),
    "cased": (os.path.join(HERE, "wordpiece-cased.gguf"), False, False),
    "cased-strip": (os.path.join(HERE, "wordpiece-cased.gguf"), False, True),
}

FIXED = [
    "", " ", "   ", "\t\n\r  ", "\u3000\u00a0\u2003", "\n",
    "Hello World!", "hello, world.", "Don't stop-believing... OK?", "The QUICK brown Fox",
    "Café naïve résumé Ångström façade Straße", "İstanbul ıi", "ΣΊΣΥΦΟΣ ΟΔΟΣ Ελληνικά",
    "Привет, мир! Ёлка", "Ñandú ¿Qué? ¡Sí!", "e\u0301 a\u0308\u0304 \u0301alone", "ǅemal ẞ ǈ",
    "我想在apple工作1314151天～", "日本語のテキスト、カタカナ。", "中文，标点。“引号”",
    "한국어 텍스트 안녕하세요", "\U00020000\U0002A700 \uf900\ufa0e", "ᄀᄁ ᅡ",
    "a" * 100, "a" * 101, "é" * 60, "é" * 101, "e\u0301" * 80, "b" + "\u0301" * 150,
    "supercalifragilisticexpialidocious " * 3, "x" * 99 + "é", "Z" * 250,
    "☃ ⚡ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0378 \U0010fffd \ue000", "🙂🚀 😶\u200d🌫️ 👍🏽 ❤️", "\U0001D15F\U0001D165",
    "a\x00b\x01c\x7fd\x1fe", "soft\u00adhyphen zero\u200bwidth \ufeffBOM", "line\u2028sep\u2029x",
    "x\x0by\x0cz\x85w", "x[i] += y; // comment", "$100 + 50% = ? <b>&amp;</b>",
    "email@example.com http://a.b/c?d=e&f=g", "C++ & C# ^_^ `code` ~tilde| |", "«quotes» “curly” ‘single’",
    "— – - … ‰ § ¶ † •", "1,234.56 3.14 12345678901234567890", "नमस्ते दुनिया", "مرحبا بالعالم",
    "שלום עולם", "สวัสดีครับ", "ﬁ ligature Ⅻ ① ｆｕｌｌｗｉｄｔｈ ＡＢＣ", "[CLS] x [SEP] [MASK] [unused0]",
    "[cls] lower [sep]", "un\u0000known\ufffd", "TAB\tSEP\tVALUES\n\nnew  lines",
]

PIECES = [
    "the", " the", "Hello", " world", "ing", " and", ",", ".", "!", "?", "'s", "don't", "  ",
    "\t", "\n", "123", " 89", "3.14", "é", "naïve", "Ünïcödé", "Straße", "Привет", " мир",
    "我想", "在apple工作", "こんにちは", "안녕하세요", "مرحبا", "🙂", "😶\u200d🌫️", "\u00a0",
    "\u200b", "e\u0301", "x[i]", "<div>", "~", "$", "^_^", "--", "...", "ΣΟΦΙΑ", "Àà", "İ",
    "\x07", "\ufffd", "unbelievable", "tokenization", "WordPiece",
]


def corpus():
    rng = random.Random(16)
    rand = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14))) for _ in range(60)]
    return FIXED + rand


def gguf_vocab(path):
    """(tokens in Hugging Face form, token types, GGUF reader fields) of a bert vocab GGUF."""
    import gguf

    r = gguf.GGUFReader(path)
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    hf = []
    for t, ty in zip(toks, types):
        if ty == 3:  # CONTROL: verbatim
            hf.append(t)
        elif t.startswith("\u2581"):
            hf.append(t[1:])
        else:
            hf.append("##" + t)
    return hf, types


def hf_reference(path, lowercase, strip_accents):
    from tokenizers import BertWordPieceTokenizer

    toks, _ = gguf_vocab(path)
    vocab = {}
    for i, t in enumerate(toks):
        vocab.setdefault(t, i)
    return BertWordPieceTokenizer(vocab, clean_text=True, handle_chinese_chars=True,
                                  strip_accents=strip_accents, lowercase=lowercase)


def expected_lines(tk, texts):
    lines = []
    for i, t in enumerate(texts):
        lines.append(" ".join(map(str, tk.encode(t).ids)))
        p = tk.encode(t, texts[(i + PAIR_STEP) % len(texts)])
        lines.append("PAIR " + " ".join(map(str, p.ids)) + " ; " + " ".join(map(str, p.type_ids)))
        lines.append("DECODE " + tk.decode(tk.encode(t).ids))
    return "\n".join(lines) + "\n"


def write_cased_vocab(path, texts):
    import gguf
    from tokenizers import BertWordPieceTokenizer

    train = open(os.path.join(DATA, "ppl-english.txt"), encoding="utf-8").read().split("\n")
    tk = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                lowercase=False)
    tk.train_from_iterator(train + texts, vocab_size=1200, min_frequency=1, limit_alphabet=300,
                           special_tokens=SPECIALS, show_progress=False)
    by_id = sorted(tk.get_vocab().items(), key=lambda kv: kv[1])
    assert [i for _, i in by_id] == list(range(len(by_id)))
    tokens, types = [], []
    for t, _ in by_id:
        if t in SPECIALS:
            tokens.append(t)
            types.append(3)
        elif t.startswith("##"):
            tokens.append(t[2:])
            types.append(1)
        else:
            tokens.append("\u2581" + t)
            types.append(1)
    ids = {t: i for i, (t, _) in enumerate(by_id)}
    w = gguf.GGUFWriter(path, "bert")
    w.add_name("wordpiece-cased-test")
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_unk_token_id(ids["[UNK]"])
    w.add_sep_token_id(ids["[SEP]"])
    w.add_pad_token_id(ids["[PAD]"])
    w.add_mask_token_id(ids["[MASK]"])
    w.add_uint32("tokenizer.ggml.cls_token_id", ids["[CLS]"])
    w.add_bos_token_id(ids["[CLS]"])
    w.add_eos_token_id(ids["[SEP]"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    w.add_add_sep_token(False)
    w.add_bool("tokenizer.ggml.normalizer.lowercase", False)
    w.add_bool("tokenizer.ggml.normalizer.strip_accents", False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run(check):
    """Writes the fixtures, or with check compares them; returns the exit code."""
    texts = corpus()
    inp = os.path.join(HERE, "corpus.inp")
    want_inp = "".join(t + SEP for t in texts)
    if check:
        with open(inp, encoding="utf-8", newline="") as f:
            if f.read() != want_inp:
                print("corpus.inp differs from make_fixtures.py's corpus")
                return 1
    else:
        with open(inp, "w", encoding="utf-8", newline="") as f:
            f.write(want_inp)
        write_cased_vocab(CONFIGS["cased"][0], texts)
    bad = 0
    for name, (path, lower, strip) in CONFIGS.items():
        out = os.path.join(HERE, name + ".out")
        want = expected_lines(hf_reference(path, lower, strip), texts)
        if check:
            with open(out, encoding="utf-8") as f:
                got = f.read()
            if got != want:
                g, w = got.split("\n"), want.split("\n")
                diff = next(i for i in range(min(len(g), len(w))) if g[i] != w[i]) \
                    if len(g) == len(w) else -1
                print(f"{name}.out differs from tokenizers at line {diff + 1}")
                bad += 1
        else:
            with open(out, "w", encoding="utf-8") as f:
                f.write(want)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(run("--check" in sys.argv[1:]))
