"""Generation, streaming, stopping (break, close(), garbage collection), sessions, save/restore,
tokenizer, errors."""
import gc

import pytest

import hpl
from conftest import OTHER, STORY, STORY_TEXT


def test_generate_returns_text_and_stream_yields_the_same_pieces(story):
    text = story.generate("Once upon a time", max_tokens=20, temperature=0)
    assert isinstance(text, str) and text.startswith(STORY_TEXT)
    gen = story.generate("Once upon a time", stream=True, max_tokens=20, temperature=0)
    assert isinstance(gen, hpl.Generation)
    pieces = list(gen)
    assert len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == text == gen.text
    # the second request reuses the first one's prompt KV: evaluated + reused = the whole prompt
    assert gen.done and gen.stats.prompt_tokens + gen.stats.cached_tokens == 5
    assert 0 < gen.stats.completion_tokens <= 20
    assert gen.stats.finish in ("end_of_generation", "max_tokens")


def test_stop_strings_and_options(story):
    gen = story.submit("Once upon a time", max_tokens=40, temperature=0, stop="Lily")
    assert gen.result() == ", there was a little girl named "
    assert gen.stats.finish == "stop_string"
    with pytest.raises(TypeError, match="unknown option"):
        story.generate("Once", max_tokens=4, temprature=0)
    with pytest.raises(ValueError):
        story.submit()


def test_grammar_and_json_schema_constrain_the_reply(story):
    import json

    for seed in range(4):
        text = story.generate("Once upon a time", max_tokens=16, temperature=1.0, seed=seed,
                              grammar='root ::= "Tom" | "Sue" " and " ("Ben" | "Lily")')
        assert text in ("Tom", "Sue and Ben", "Sue and Lily"), text
    schema = {"type": "object", "properties": {"n": {"type": "integer"},
                                               "ok": {"enum": ["yes", "no"]}},
              "required": ["n", "ok"], "additionalProperties": False}
    for as_text in (False, True):
        gen = story.submit("Once upon a time", max_tokens=48, temperature=0.8, seed=1,
                           json_schema=json.dumps(schema) if as_text else schema)
        reply = json.loads(gen.result())
        assert gen.stats.finish == "end_of_generation"
        assert set(reply) == {"n", "ok"} and isinstance(reply["n"], int) and reply["ok"] in (
            "yes", "no")
    with pytest.raises(hpl.HplError, match="pattern"):
        story.submit("x", json_schema={"type": "string", "pattern": "a+"})
    with pytest.raises(ValueError, match="not both"):
        story.submit("x", grammar='root ::= "a"', json_schema={"enum": [1]})
    with pytest.raises(TypeError, match="grammar"):
        story.submit("x", grammar=b'root ::= "a"')


def _running(slow):
    gen = slow.generate("Once upon a time", stream=True, max_tokens=200, temperature=0)
    it = iter(gen)
    next(it)
    next(it)
    return gen


def test_close_stops_a_running_request(slow):
    gen = _running(slow)
    gen.close()
    assert gen.stats.finish == "stopped" and gen.stats.truncated
    assert gen.stats.completion_tokens < 20


def test_break_and_garbage_collection_stop_the_request(slow):
    gen = slow.generate("Once upon a time", stream=True, max_tokens=200, temperature=0)
    events = gen._q  # the request's event queue outlives the Generation
    for i, _ in enumerate(gen):
        if i == 1:
            break
    del gen
    gc.collect()
    slow.wait_idle()
    last = None
    while not events.empty():
        last = events.get()
    assert last is not None and last[0] == hpl._capi.EVENT_DONE
    assert last[2].finish == "stopped" and last[2].completion_tokens < 20


def test_dropping_a_queued_request_removes_it(slow):
    first = slow.generate("Once upon a time", stream=True, max_tokens=200, temperature=0)
    second = slow.generate("The dragon", stream=True, max_tokens=200)
    events = second._q
    del second
    gc.collect()
    kind, _, stats, *_ = events.get(timeout=60)  # DONE at once, without running
    assert kind == hpl._capi.EVENT_DONE and stats.finish == "stopped"
    assert stats.completion_tokens == 0
    assert first.stop()
    first.close()


def test_session_keeps_context_and_round_trips_through_a_file(story, tmp_path):
    path = tmp_path / "chat.session"
    with story.session() as s:
        s.generate("Once upon a time", max_tokens=12, temperature=0)
        s.save(path)
        g = s.generate(" One day,", stream=True, max_tokens=16, temperature=0)
        uninterrupted = g.result()
        assert g.stats.prompt_tokens < 10  # only the new tokens were evaluated
        info = s.info()
        assert info.n_exchanges == 2 and 0 < info.n_past <= info.n_ctx == 256
    with story.session() as r:
        r.restore(path)
        assert r.info().n_exchanges == 1
        assert r.generate(" One day,", max_tokens=16, temperature=0) == uninterrupted
    with hpl.Model(OTHER, n_threads=1, n_ctx=256) as other, other.session() as o:
        with pytest.raises(hpl.SessionMismatchError) as e:
            o.restore(path)
        assert e.value.name == "SESSION_MISMATCH" and e.value.status == 7
        assert "another model" in str(e.value)


def test_chat_session_keeps_turns(story):
    with story.session() as s:
        first = s.chat([{"role": "user", "content": "Tell me a story."}], max_tokens=8)
        g = s.chat("And then?", stream=True, max_tokens=8)
        second = g.result()
        assert isinstance(first, str) and isinstance(second, str)
        assert s.info().n_exchanges == 2
        total = s.info().n_tokens
        assert g.stats.prompt_tokens < total  # the first turn was not evaluated again
        s.reset()
        assert s.info().n_exchanges == 0
    assert isinstance(story.chat([("user", "Hi")], max_tokens=4), str)


def test_tokenize_detokenize(story):
    ids = story.tokenize("Once upon a time")
    assert ids[0] == 1 and len(ids) == 5  # BOS + 4 words (stories260K: Llama 2 vocab)
    assert story.tokenize("Once upon a time", add_special=False) == ids[1:]
    assert story.detokenize(ids) == "Once upon a time"
    with pytest.raises(hpl.InvalidArgumentError, match="outside the vocab"):
        story.detokenize([1, 10**6])


def test_errors_carry_status_and_message(tmp_path):
    with pytest.raises(hpl.ModelFileError) as e:
        hpl.Model(tmp_path / "missing.gguf")
    assert e.value.name == "IO" and e.value.status == 2 and "missing.gguf" in str(e.value)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(hpl.HplError) as e:
        hpl.Model(bad)
    assert e.value.name in ("MODEL", "IO") and str(bad) in str(e.value)
    with pytest.raises(hpl.InvalidArgumentError, match="n_threads"):
        hpl.Model(STORY, n_threads=-1)
    with pytest.raises(hpl.InvalidArgumentError, match="cpus"):
        hpl.Model(STORY, cpus="not-a-cpu-list")


def test_context_full_and_circuit_breaker():
    with hpl.Model(STORY, n_threads=1, n_ctx=32) as m:
        for _ in range(3):
            with pytest.raises(hpl.ContextFullError) as e:
                m.generate("Once upon a time there was a girl. " * 4, max_tokens=8)
            assert "have 32" in e.value.message
        assert m.failed
        with pytest.raises(hpl.FailedStateError):
            m.generate("Once", max_tokens=4)
        m.reset()
        assert m.generate("Once", max_tokens=4, temperature=0)


def test_closed_model_refuses_work_and_close_is_idempotent():
    m = hpl.Model(STORY, n_threads=1, n_ctx=64)
    s = m.session()
    m.close()  # frees the session too
    m.close()
    with pytest.raises(hpl.HplError, match="closed"):
        m.generate("Once", max_tokens=2)
    with pytest.raises(hpl.HplError, match="closed"):
        s.info()


def test_prefault_and_micro_batch_options():
    with hpl.Model(STORY, n_threads=1, n_ctx=128, n_ubatch=4, prefault=True, cpus="0") as m:
        text = m.generate("Once upon a time", max_tokens=8, temperature=0)
        assert len(text) > 10 and STORY_TEXT.startswith(text)
        assert m.memory().model_bytes > 0
