"""Speculative decoding through the C API (Python binding): greedy replies are the plain ones,
turn after turn, with prompt lookup and with a draft model, on a sliding-window model whose KV
ring is tiny (the tiny Gemma 3 of tests/data/hf-tiny: window 4, micro-batch 3), so every
rollback of rejected drafts crosses ring moves; stats report drafts; bad draft settings fail
at load with a clear message."""
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
os.environ.setdefault("HPL_LIB", str(LIB))
sys.path.insert(0, str(REPO / "bindings" / "python"))
sys.path.insert(0, str(REPO / "model"))
import hpl  # noqa: E402
from hpl_convert.convert import convert  # noqa: E402

MODELS = REPO / "tests" / "data" / "models"
TURNS = ["the weather in the north is cold and windy in winter, the weather in the north",
         " and then the weather in the north", " is cold and windy"]


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "gemma3.f32.gguf"
    convert(str(REPO / "tests" / "data" / "hf-tiny" / "gemma3"), str(path), outtype="f32",
            progress=False, log=lambda *_: None)
    return str(path)


def conversation(model, n=24):
    """Greedy turns in one session (the KV cache carried across them), and the last stats."""
    s = model.session()
    out, stats = [], []
    for t in TURNS:
        gen = s.generate(t, max_tokens=n, temperature=0, stream=True)
        out.append("".join(gen))
        stats.append(gen.stats)
    s.close()
    return out, stats


@pytest.mark.parametrize("spec", [{"lookup": 2, "draft_max": 6}, {"lookup": 1, "draft_max": 1},
                                  {"draft": True, "draft_max": 5}])
def test_greedy_conversation_is_unchanged_on_a_sliding_window_model(gemma, spec):
    with hpl.Model(gemma, n_threads=1, n_ctx=256, n_ubatch=3) as plain:
        want, _ = conversation(plain)
    kw = dict(spec)
    if kw.pop("draft", False):
        kw["draft_model"] = gemma  # itself: every draft agrees
    with hpl.Model(gemma, n_threads=1, n_ctx=256, n_ubatch=3, **kw) as m:
        got, stats = conversation(m)
    assert got == want
    assert sum(s.drafted for s in stats) > 0
    assert all(0 <= s.accepted <= s.drafted for s in stats)
    if "draft_model" in kw:
        assert sum(s.accepted for s in stats) >= 0.75 * sum(s.drafted for s in stats)


def test_draft_with_another_vocabulary_fails_at_load():
    with pytest.raises(hpl.HplError) as e:
        hpl.Model(str(MODELS / "stories260K.gguf"),
                  draft_model=str(MODELS / "TinyStories-656K.f16.gguf"))
    assert "vocabulary differs" in str(e.value)
    with pytest.raises(hpl.HplError, match="nonexistent.gguf"):
        hpl.Model(str(MODELS / "stories260K.gguf"), draft_model="/nonexistent.gguf")


def test_contradictory_draft_settings_fail_at_load():
    p = str(MODELS / "stories260K.gguf")
    with pytest.raises(hpl.HplError, match="not both"):
        hpl.Model(p, draft_model=p, lookup=2)
    with pytest.raises(hpl.HplError, match="draft-min"):
        hpl.Model(p, lookup=2, draft_max=2, draft_min=3)
