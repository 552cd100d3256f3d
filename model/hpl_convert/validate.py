"""Checks on a written GGUF: every tensor's name, shape and type as planned, the key metadata,
and (when the `hpl` binary with its `tokenize` subcommand is built) that hpl tokenizes sample
texts like the Hugging Face tokenizer does."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess

from .errors import ConvertError

SAMPLE_TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Hello world! It's 2024, and the temperature is 21.5 degrees.",
    "  leading spaces,\ttabs and\nnew lines\n\n",
    "naïve café, Ünïcode: 日本語 and emoji 🙂",
    "don't won't they'll I'm we've CAPS lowercase MiXeD",
]


def check_file(result) -> None:
    """Reopen result.path and compare it with what convert() planned."""
    import gguf

    r = gguf.GGUFReader(result.path)
    arch = r.fields.get("general.architecture")
    if arch is None or arch.contents() != result.arch:
        raise ConvertError(f"{result.path}: general.architecture is not {result.arch!r}")
    got = {t.name: t for t in r.tensors}
    want = {t.plan.gguf_name: t for t in result.tensors}
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise ConvertError(f"{result.path}: tensors missing {missing}, unexpected {extra}")
    for name, t in want.items():
        g = got[name]
        shape = tuple(reversed([int(d) for d in g.shape]))  # GGUF lists ne0 (the row length) first
        if shape != tuple(t.plan.shape):
            raise ConvertError(f"{result.path}: {name} has shape {list(shape)}, expected {list(t.plan.shape)}")
        if g.tensor_type != t.qtype:
            raise ConvertError(f"{result.path}: {name} has type {g.tensor_type.name}, expected {t.qtype.name}")
    n_tok = len(r.fields["tokenizer.ggml.tokens"].data)
    if n_tok != result.tensors[0].plan.shape[0]:
        raise ConvertError(f"{result.path}: {n_tok} tokens but {result.tensors[0].plan.shape[0]} embedding rows")


def find_hpl() -> str | None:
    build = os.environ.get("HPL_BUILD_DIR")
    if not build:
        build = os.path.join(os.path.dirname(__file__), "..", "..", "build")
    path = os.path.join(build, "bin", "hpl")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    # The pip package (pyproject.toml) bundles hpl inside the `hpl` Python package.
    spec = importlib.util.find_spec("hpl")
    if spec and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "_bin", "hpl")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("hpl")


def parse_ids(text: str) -> list[int]:
    """Token ids from `hpl tokenize` output: a line of integers (plain, comma separated or in
    brackets), or else the first integer of each line (one 'id text' pair per line)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.fullmatch(r"[\[\]\d,\s]+", ln) and re.search(r"\d", ln):
            return [int(x) for x in re.findall(r"\d+", ln)]
    ids = []
    for ln in lines:
        m = re.match(r"\s*(\d+)\b", ln)
        if m:
            ids.append(int(m.group(1)))
    return ids


def hpl_tokenize(hpl: str, gguf_path: str, text: str) -> list[int]:
    p = subprocess.run([hpl, "tokenize", "-m", gguf_path, "-p", text, "--no-bos"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or f"exit code {p.returncode}")
    return parse_ids(p.stdout)


def compare_tokenization(gguf_path: str, model_dir: str, texts=SAMPLE_TEXTS, hpl: str | None = None,
                         log=print, strict: bool = False) -> bool | None:
    """True if hpl and Hugging Face agree on every text; None (with a warning) when the check
    cannot run; False (with a warning per text) on a mismatch, or ConvertError when strict."""
    hpl = hpl or find_hpl()
    if hpl is None:
        log("hpl-convert: warning: hpl binary not found (set HPL_BUILD_DIR); tokenization not compared")
        return None
    tj = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(tj):
        log("hpl-convert: warning: no tokenizer.json, so no Hugging Face tokenizer to compare with")
        return None
    probe = subprocess.run([hpl, "tokenize", "--help"], capture_output=True, text=True, timeout=60)
    if "unknown command" in (probe.stdout + probe.stderr).lower():
        log(f"hpl-convert: warning: {hpl} has no 'tokenize' subcommand; tokenization not compared")
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tj)
    differ = []
    for text in texts:
        want = tok.encode(text, add_special_tokens=False).ids
        try:
            got = hpl_tokenize(hpl, gguf_path, text)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"hpl-convert: warning: `hpl tokenize` failed ({e}); tokenization not compared")
            return None
        if got != want:
            differ.append(f"tokenization differs for {text!r}: hpl {got}, Hugging Face {want}")
    if differ:
        if strict:
            raise ConvertError("; ".join(differ))
        for d in differ:
            log(f"hpl-convert: warning: {d}")
        log(f"hpl-convert: warning: {len(differ)} of {len(texts)} sample texts tokenize differently in hpl")
        return False
    log(f"hpl-convert: tokenization of {len(texts)} sample texts matches Hugging Face")
    return True
