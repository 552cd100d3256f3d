"""`hpl serve` and the prompt cache: a client resending its conversation (OpenAI-style, stateless)
gets the same greedy replies with cache_prompt true (default) and false, its later turns evaluate
only their new tokens (usage.prompt_tokens_details.cached_tokens, timings.cache_n), and /metrics
counts hits, misses and tokens saved. stories260K with --template llama2."""
import os
import signal
import subprocess

import pytest

requests = pytest.importorskip("requests")

from test_serve import MODEL, free_port, hpl, post, start_server  # noqa: E402,F401


@pytest.fixture(scope="module")
def server(hpl, tmp_path_factory):  # noqa: F811
    log = tmp_path_factory.mktemp("serve_pc") / "server.log"
    port = free_port()
    proc = start_server(hpl, log, port, "--template", "llama2")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chat(base, messages, cache):
    r = post(base, "/v1/chat/completions",
             {"messages": messages, "max_tokens": 16, "temperature": 0, "cache_prompt": cache})
    assert r.status_code == 200, r.text
    j = r.json()
    return j["choices"][0]["message"]["content"], j["usage"], j["timings"]


def metrics(base):
    return requests.get(base + "/metrics", timeout=10).json()["prompt_cache"]


def test_conversation_turns_reuse_their_history_with_the_same_replies(server):
    system = {"role": "system", "content": "You tell short stories about animals. " * 6}
    before = metrics(server)
    conv, plain = [system], [system]
    saved = 0
    for i, q in enumerate(["Tell me about a cat.", "And a dog?", "What did they eat?"]):
        conv.append({"role": "user", "content": q})
        plain.append({"role": "user", "content": q})
        got, u, t = chat(server, conv, True)
        want, u0, t0 = chat(server, plain, False)
        assert got == want
        assert u["prompt_tokens"] == u0["prompt_tokens"]
        assert u0["prompt_tokens_details"]["cached_tokens"] == 0 and t0["cache_n"] == 0
        c = u["prompt_tokens_details"]["cached_tokens"]
        assert t["cache_n"] == c and t["prompt_n"] == u["prompt_tokens"] - c
        if i > 0:  # everything up to the previous reply is cached
            assert c > u["prompt_tokens"] // 2, (i, u)
        saved += c
        conv.append({"role": "assistant", "content": got})
        plain.append({"role": "assistant", "content": want})
    after = metrics(server)
    assert after["tokens_saved"] - before["tokens_saved"] == saved
    assert after["hits"] - before["hits"] >= 2
    assert after["misses"] - before["misses"] >= 3  # every cache_prompt=false request
    prom = requests.get(server + "/metrics?format=prometheus", timeout=10).text
    assert "hpl_prompt_cache_tokens_saved " in prom


def test_cache_prompt_must_be_a_boolean(server):
    r = post(server, "/v1/completions", {"prompt": "Once", "cache_prompt": "yes"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cache_prompt"


def test_no_cache_prompt_option_turns_it_off(hpl, tmp_path):  # noqa: F811
    port = free_port()
    proc = start_server(hpl, tmp_path / "log", port, "--template", "llama2", "--no-cache-prompt",
                        "--cache-states", "0")
    base = f"http://127.0.0.1:{port}"
    try:
        msgs = [{"role": "user", "content": "Tell me about a cat."}]
        for _ in range(2):
            _, u, t = chat(base, msgs, True)
            assert u["prompt_tokens_details"]["cached_tokens"] == 0 and t["cache_n"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
