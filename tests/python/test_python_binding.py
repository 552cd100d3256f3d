"""The Python binding from the source tree (bindings/python/hpl over build/lib/libhpl.so) on
stories260K. The installed pip package has its own suite: tests/python_package."""
import os
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
LIB = Path(os.environ.get("HPL_LIB", BUILD / "lib" / "libhpl.so"))
MODELS = REPO / "tests" / "data" / "models"

if not LIB.exists():
    pytest.skip(f"{LIB} not built (cmake --build {BUILD} --target hpl_c)", allow_module_level=True)
os.environ.setdefault("HPL_LIB", str(LIB))
sys.path.insert(0, str(REPO / "bindings" / "python"))
import hpl  # noqa: E402

STORY = str(MODELS / "stories260K.gguf")


@pytest.fixture(scope="module")
def model():
    with hpl.Model(STORY, n_threads=1, n_ctx=256, n_ubatch=16) as m:
        yield m


def test_version():
    assert hpl.version() == "0.1.0"


def test_generate_iterates_text_pieces_with_stats(model):
    gen = model.generate("Once upon a time", stream=True, max_tokens=20, temperature=0)
    pieces = list(gen)
    assert len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    text = "".join(pieces)
    assert text.startswith(", there was a little girl named Lily.")
    assert gen.text == text
    assert gen.stats.prompt_tokens == 5
    assert 0 < gen.stats.completion_tokens <= 20
    assert gen.stats.decode_tokens_per_s > 0 and gen.stats.prefill_tokens_per_s > 0
    st = gen.stats  # the timing split lies within total_ms
    assert st.prefill_ms > 0 and st.sampling_ms > 0 and st.decode_ms >= 0
    assert st.prefill_ms + st.decode_ms + st.sampling_ms <= st.total_ms * 1.000001
    assert gen.stats.finish in ("end_of_generation", "max_tokens")
    assert not gen.stats.truncated


def test_stop_keeps_partial_output(model):
    gen = model.generate("Once upon a time", stream=True, max_tokens=200, temperature=0.9, seed=7)
    got = []
    for piece in gen:
        got.append(piece)
        if len(got) == 3:
            assert gen.stop()
    assert gen.stats.finish in ("stopped", "end_of_generation")
    if gen.stats.finish == "stopped":
        assert gen.stats.truncated
        assert gen.stats.completion_tokens < 200
        assert gen.text.startswith("".join(got))
    assert not gen.stop()  # already finished


def test_leaving_the_loop_early_stops_the_request(model):
    gen = model.generate("Once upon a time", stream=True, max_tokens=200, temperature=0.9, seed=3)
    for _ in gen:
        break
    gen.wait()
    assert gen.stats is not None
    assert gen.stats.completion_tokens < 200 or gen.stats.finish != "stopped"


def test_requests_queue_fifo_from_threads(model):
    order = []
    lock = threading.Lock()
    gens = [model.submit("Once upon a time", max_tokens=4, temperature=0) for _ in range(5)]
    ids = [g.id for g in gens]
    assert ids == sorted(ids)

    def consume(g):
        g.result()
        with lock:
            order.append(g.id)

    threads = [threading.Thread(target=consume, args=(g,)) for g in gens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(order) == ids
    assert len({g.text for g in gens}) == 1  # same greedy text


def test_session_keeps_context_and_round_trips_through_a_file(model, tmp_path):
    path = str(tmp_path / "chat.session")
    with model.session() as s:
        s.generate("Once upon a time", max_tokens=12, temperature=0)
        s.save(path)
        g = s.submit(" One day,", max_tokens=16, temperature=0)
        uninterrupted = g.result()
        assert g.stats.prompt_tokens < 10  # only the new tokens
        assert s.info().n_exchanges == 2
    with model.session() as r:
        r.restore(path)
        assert r.info().n_exchanges == 1
        assert r.generate(" One day,", max_tokens=16, temperature=0) == uninterrupted
    with hpl.Model(str(MODELS / "TinyStories-656K.f16.gguf"), n_threads=1, n_ctx=256) as other:
        with other.session() as o:
            with pytest.raises(hpl.HplError) as e:
                o.restore(path)
            assert e.value.name == "SESSION_MISMATCH"
            assert "another model" in str(e.value)


def test_context_full_and_circuit_breaker():
    with hpl.Model(STORY, n_threads=1, n_ctx=32) as m:
        long_prompt = "Once upon a time there was a girl. " * 4
        for _ in range(3):
            with pytest.raises(hpl.HplError) as e:
                m.generate(long_prompt, max_tokens=8)
            assert e.value.name == "CONTEXT_FULL"
            assert "have 32" in str(e.value)
        assert m.failed
        with pytest.raises(hpl.HplError) as e:
            m.generate("Once", max_tokens=4)
        assert e.value.name == "FAILED_STATE"
        m.reset()
        assert not m.failed
        assert m.generate("Once", max_tokens=4, temperature=0)


def test_chat_messages_and_stop_strings(model):
    g = model.submit(messages=[("user", "Tell me a story.")], max_tokens=8)
    g.result()
    assert g.stats.completion_tokens > 0
    g = model.submit("Once upon a time", max_tokens=40, temperature=0, stop=["Lily"])
    assert g.result() == ", there was a little girl named "
    assert g.stats.finish == "stop_string"


def test_memory_and_errors(model):
    mem = model.memory()
    assert mem.model_bytes == os.path.getsize(STORY)
    with pytest.raises(hpl.HplError) as e:
        hpl.Model(str(MODELS / "missing.gguf"))
    assert e.value.name == "IO" and "missing.gguf" in str(e.value)
    with pytest.raises(ValueError):
        model.submit()


def test_bad_sampling_is_refused_with_the_shared_message(model):
    # The C API's check (runtime/request_checks.h), also used by `hpl run/chat` and `hpl serve`.
    for kw, msg in [({"temperature": -1}, "temperature must be in [0, 2], got -1"),
                    ({"top_p": 2.0}, "top_p must be in (0, 1], got 2"),
                    ({"max_tokens": -5}, "max_tokens must be in [1, 2147483647], got -5")]:
        with pytest.raises(hpl.HplError) as e:
            list(model.generate("Once upon a time", **kw))
        assert e.value.name == "INVALID_ARGUMENT" and msg in str(e.value), (kw, str(e.value))


def test_cache_type_sets_the_kv_rows():
    """cache_type reaches the sessions: an f32 KV cache is twice the default f16 one, and an
    unknown type is refused at load naming it."""
    kv = {}
    for ct in (None, "f32"):
        with hpl.Model(STORY, n_threads=1, n_ctx=64, cache_type=ct) as m:
            with m.session() as s:
                s.generate("Once upon a time", max_tokens=4, temperature=0)
                kv[ct] = m.memory().kv_bytes
    assert kv["f32"] == 2 * kv[None] > 0
    with pytest.raises(hpl.HplError) as e:
        hpl.Model(STORY, cache_type="q9_0")
    assert e.value.name == "INVALID_ARGUMENT" and "q9_0" in str(e.value)
