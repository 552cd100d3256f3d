"""`hpl perplexity`: equals exp(mean NLL) computed here from `hpl run --dump-logits` logits.

The method (llama.cpp's): chunks of CTX tokens of the BOS-prefixed text, each chunk's first
token replaced by BOS, evaluated from an empty cache; the tokens at positions CTX/2+1 .. CTX-1
are scored from the logits one position earlier.
"""
import math
import os
import re
import subprocess
import tempfile

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "tests", "data", "models", "stories260K.gguf")
TEXT = os.path.join(REPO, "tests", "data", "ppl-english.txt")
BOS = 1  # stories260K


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "perplexity", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl has no perplexity command")
    return p


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def reference_nlls(hpl, ids, ctx, n_chunks):
    """NLL of every scored token, from the engine's logits of each whole chunk."""
    nlls = []
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "logits.f32")
        for c in range(n_chunks):
            chunk = list(ids[c * ctx:(c + 1) * ctx])
            chunk[0] = BOS
            run(hpl, "run", "-m", MODEL, "--ids", " ".join(map(str, chunk)), "--dump-logits", path,
                "-n", "0", "-c", str(ctx), "-t", "1")
            logits = np.fromfile(path, dtype=np.float32).reshape(ctx, -1).astype(np.float64)
            for p in range(ctx // 2 + 1, ctx):
                row = logits[p - 1]
                m = row.max()
                nlls.append(math.log(np.exp(row - m).sum()) + m - row[chunk[p]])
    return np.array(nlls)


@pytest.mark.parametrize("ctx,chunks", [(64, 3), (48, 0)])
def test_matches_mean_nll_of_dumped_logits(hpl, ctx, chunks):
    ids = [int(t) for t in run(hpl, "tokenize", "-m", MODEL, "-f", TEXT).split()]
    assert ids[0] == BOS
    n_chunks = len(ids) // ctx if chunks == 0 else chunks
    args = [hpl, "perplexity", "-m", MODEL, "-f", TEXT, "-c", str(ctx), "-t", "2"]
    if chunks:
        args += ["--chunks", str(chunks)]
    out = run(*args)
    running = [float(x) for x in re.findall(r"^\[(?:\d+)\] ([0-9.]+)", out, re.M)]
    assert len(running) == n_chunks, out
    m = re.search(r"scored (\d+) tokens, mean NLL ([0-9.]+) nats", out)
    f = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", out)
    assert m and f, out
    nlls = reference_nlls(hpl, ids, ctx, n_chunks)
    assert int(m.group(1)) == len(nlls) == n_chunks * (ctx - 1 - ctx // 2)
    ppl_ref = math.exp(nlls.mean())
    assert abs(float(f.group(1)) - ppl_ref) <= 1e-3 * ppl_ref, (f.group(1), ppl_ref)
    assert abs(float(m.group(2)) - nlls.mean()) <= 1e-5
    # stderr of the mean NLL, scaled to PPL
    se = ppl_ref * nlls.std(ddof=0) / math.sqrt(len(nlls) - 1)
    assert abs(float(f.group(2)) - se) <= 1e-3 * se + 1e-4
    # the last running estimate is the final one
    assert abs(running[-1] - float(f.group(1))) <= 1e-4 * ppl_ref + 1e-4
    # a trained story model should do much better than uniform over its 512 tokens
    assert 1.0 < ppl_ref < 512


def test_errors(hpl):
    r = subprocess.run([hpl, "perplexity", "-m", MODEL, "-f", TEXT, "-c", "100000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "fewer than one chunk" in r.stderr
    r = subprocess.run([hpl, "perplexity", "-m", MODEL, "-f", "/nonexistent.txt"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "cannot read /nonexistent.txt" in r.stderr
    r = subprocess.run([hpl, "perplexity", "-m", MODEL], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "-f TEXT" in r.stderr


def test_directory_and_empty_text_are_errors(hpl, tmp_path):
    r = subprocess.run([hpl, "perplexity", "-m", MODEL, "-f", str(tmp_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and f"{tmp_path}: is a directory" in r.stderr, r.stderr
    assert "tokens" not in r.stdout  # refused before tokenizing (was: "1 tokens")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    r = subprocess.run([hpl, "perplexity", "-m", MODEL, "-f", str(empty)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "empty" in r.stderr, r.stderr
    short = tmp_path / "short.txt"
    short.write_text("Once upon a time")
    r = subprocess.run([hpl, "perplexity", "-m", MODEL, "-f", str(short), "-c", "64"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "fewer than one chunk of 64" in r.stderr, r.stderr
