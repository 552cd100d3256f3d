"""asyncio forms, several Python threads on one model, and interpreter exit with a request
running."""
import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

import hpl
from conftest import STORY, STORY_TEXT


def test_await_and_async_iteration(story):
    async def main():
        text = await story.agenerate("Once upon a time", max_tokens=20, temperature=0)
        pieces = [p async for p in story.agenerate("Once upon a time", max_tokens=20,
                                                   temperature=0)]
        both = await asyncio.gather(
            story.agenerate("Once upon a time", max_tokens=20, temperature=0).result(),
            story.achat("Hi", max_tokens=4))
        return text, pieces, both

    text, pieces, both = asyncio.run(main())
    assert text.startswith(STORY_TEXT) and "".join(pieces) == text and both[0] == text
    assert isinstance(both[1], str)


def test_async_leaving_the_loop_stops_the_request(slow):
    async def main():
        gen = slow.agenerate("Once upon a time", max_tokens=200, temperature=0)
        async with gen:
            async for _ in gen:
                break
        return gen

    gen = asyncio.run(main())
    assert gen.done and gen.stats.finish == "stopped" and gen.stats.completion_tokens < 20


def test_async_cancellation_stops_the_request(slow):
    async def main():
        gen = slow.agenerate("Once upon a time", max_tokens=200, temperature=0)
        task = asyncio.ensure_future(gen.result())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gen.aclose()
        return gen

    gen = asyncio.run(main())
    assert gen.stats.finish == "stopped"


def test_several_threads_share_one_model(story):
    results, errors = [], []

    def work(i):
        try:
            if i % 2:
                results.append(story.generate("Once upon a time", max_tokens=20, temperature=0))
            else:
                results.append("".join(story.generate("Once upon a time", stream=True,
                                                      max_tokens=20, temperature=0)))
            with story.session() as s:  # sessions created and freed concurrently
                s.generate("Once upon a time", max_tokens=4, temperature=0)
            story.tokenize("Once upon a time")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(results) == 8 and len(set(results)) == 1 and results[0].startswith(STORY_TEXT)


def test_close_from_another_thread_while_iterating(slow_model_path):
    m = hpl.Model(slow_model_path, n_threads=2, n_ctx=256, n_ubatch=16)
    gen = m.generate("Once upon a time", stream=True, max_tokens=200, temperature=0)
    next(gen)
    got = []
    t = threading.Thread(target=lambda: got.extend(gen))
    t.start()
    m.close()  # stops the request, then waits for nothing else
    t.join(timeout=120)
    assert not t.is_alive()
    assert gen.stats.finish == "stopped"


EXIT_SCRIPT = textwrap.dedent("""
    import sys, threading, hpl
    m = hpl.Model(sys.argv[1], n_threads=2, n_ctx=512)
    live = m.generate("Once upon a time", stream=True, max_tokens=400)   # running
    queued = m.generate("The dragon", stream=True, max_tokens=400)       # queued behind it
    next(live)
    t = threading.Thread(target=lambda: list(live), daemon=True)         # iterating
    t.start()
    print("exiting", flush=True)
    sys.exit(0)
""")


@pytest.mark.parametrize("model_kind", ["slow", "story"])
def test_interpreter_exit_with_a_request_running(model_kind, slow_model_path):
    path = slow_model_path if model_kind == "slow" else STORY
    r = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, path], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "exiting" in r.stdout
    assert "fatal" not in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr


def test_close_races_with_threads_using_the_model():
    m = hpl.Model(STORY, n_threads=1, n_ctx=128)
    stop = threading.Event()
    unexpected = []

    def work():
        while not stop.is_set():
            try:
                with m.session() as s:
                    s.generate("Once upon a time", max_tokens=8, temperature=0)
                "".join(m.generate("Once", stream=True, max_tokens=8))
            except hpl.HplError as e:
                if "closed" not in e.message:
                    unexpected.append(e)
                return
            except BaseException as e:  # noqa: BLE001
                unexpected.append(e)
                return

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    threading.Event().wait(0.5)
    m.close()
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not unexpected, unexpected
