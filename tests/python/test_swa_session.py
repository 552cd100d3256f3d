"""Sessions over a sliding-window model whose KV ring has moved many times: a conversation
saved to a file and restored into a new session continues exactly as the original does
(session files store each sliding layer's window, not positions it no longer holds).
Model: the tiny Gemma 3 of tests/data/hf-tiny (window 4; micro-batch 3 -> the sliding layers
hold 22 positions of a 256-position context)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
LIB = Path(os.environ.get("HPL_LIB", BUILD / "lib" / "libhpl.so"))
if not LIB.exists():
    pytest.skip(f"{LIB} not built (cmake --build {BUILD} --target hpl_c)", allow_module_level=True)
pytest.importorskip("transformers")
os.environ.setdefault("HPL_LIB", str(LIB))
sys.path.insert(0, str(REPO / "bindings" / "python"))
sys.path.insert(0, str(REPO / "model"))
import hpl  # noqa: E402
from hpl_convert.convert import convert  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("swa") / "gemma3.f32.gguf"
    convert(str(REPO / "tests" / "data" / "hf-tiny" / "gemma3"), str(path), outtype="f32", progress=False,
            log=lambda *_: None)
    with hpl.Model(str(path), n_threads=1, n_ctx=256, n_ubatch=3) as m:
        yield m


def turn(session, text, n):
    return "".join(session.generate(text, max_tokens=n, temperature=0))


def test_saved_session_continues_like_the_original(model, tmp_path):
    a = model.session()
    first = turn(a, "the weather in the north is cold and windy in winter", 20)
    assert a.info().n_past > 40  # far past the window and the 22-position ring
    a.save(str(tmp_path / "a.session"))
    b = model.session()
    b.restore(str(tmp_path / "a.session"))
    assert b.info().n_past == a.info().n_past
    assert turn(b, " and then", 16) == turn(a, " and then", 16)
    # A fresh session given the whole first turn again gives the first answer again.
    c = model.session()
    assert turn(c, "the weather in the north is cold and windy in winter", 20) == first
    for s in (a, b, c):
        s.close()
