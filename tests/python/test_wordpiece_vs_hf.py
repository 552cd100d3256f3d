"""WordPiece (bert vocabs) vs Hugging Face `tokenizers`' BertWordPieceTokenizer built offline
from the GGUF's own vocab.

- The committed fixtures of tests/data/wordpiece (which tests/wordpiece_test.cc checks hpl
  against) are what the installed `tokenizers` gives today (make_fixtures.py --check).
- `hpl tokenize` on fresh seeded random texts equals `tokenizers` directly, for the uncased
  bert-base vocab (llama.cpp's ggml-vocab-bert-bge.gguf) and the cased test vocab; also on
  texts of random code points from the whole of Unicode (the normalizer tables).
Skips without `tokenizers` / `gguf` or the hpl binary.
"""
import os
import random
import subprocess
import sys

import pytest

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "data", "wordpiece")
sys.path.insert(0, FIXTURES)
import make_fixtures  # noqa: E402


def test_fixtures_are_what_tokenizers_gives():
    assert make_fixtures.run(check=True) == 0


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    return p


def hpl_ids(hpl, model, text):
    r = subprocess.run([hpl, "tokenize", "-m", model, "-p", text, "--parse-special"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [int(x) for x in r.stdout.split()]


@pytest.mark.parametrize("config", ["bge-uncased", "cased"])
def test_hpl_matches_tokenizers_on_random_texts(hpl, config):
    path, lower, strip = make_fixtures.CONFIGS[config]
    ref = make_fixtures.hf_reference(path, lower, strip)
    rng = random.Random(1600)
    pieces = [p for p in make_fixtures.PIECES if "\x00" not in p]
    for _ in range(30):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 16)))
        assert hpl_ids(hpl, path, text) == ref.encode(text).ids, repr(text)


@pytest.mark.parametrize("config", ["bge-uncased", "cased"])
def test_hpl_matches_tokenizers_on_random_code_points(hpl, config):
    path, lower, strip = make_fixtures.CONFIGS[config]
    ref = make_fixtures.hf_reference(path, lower, strip)
    rng = random.Random(16)
    planes = [(1, 0xFFFF), (0x10000, 0x3FFFF), (0xE0000, 0xE01EF), (0xF0000, 0x10FFFF)]
    for _ in range(40):
        cps = []
        for _ in range(rng.randint(1, 80)):
            lo, hi = planes[min(int(rng.expovariate(1.5)), 3)]
            cp = rng.randint(lo, hi)
            if not 0xD800 <= cp <= 0xDFFF:
                cps.append(chr(cp) if rng.random() < 0.85 else " ")
        text = "".join(cps)
        assert hpl_ids(hpl, path, text) == ref.encode(text).ids, repr(text)
