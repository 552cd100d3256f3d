"""`hpl serve` over HTTP on a free loopback port, with stories260K (no chat template in the
GGUF: the server is started with --template llama2). Checks the OpenAI-compatible
endpoints against `hpl run --temp 0`, FIFO order of concurrent clients, that a client
disconnect stops its request, validation errors, oversize bodies, and a bounded load test.
The server is always killed at the end (fixture finalizer).
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

requests = pytest.importorskip("requests")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "tests", "data", "models", "stories260K.gguf")
CTX = 4096  # long enough that a long generation can be cut by a disconnect
MAX_BODY = 65536


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "serve", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl was built without serve (no cpp-httplib for this target)")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(hpl, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    port = free_port()
    with open(log, "w") as lf:
        proc = subprocess.Popen([hpl, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port", str(port),
                                 "-c", str(CTX), "-t", "1", "--max-body", str(MAX_BODY), "--template", "llama2"],
                                stdout=lf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, f"server exited: {open(log).read()}"
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, f"server not healthy in 60 s: {open(log).read()}"
            time.sleep(0.1)
        yield base
        assert proc.poll() is None, f"server died: {open(log).read()}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "killed after 20 s"
    # A clean shutdown on SIGTERM; under ASan/UBSan also no reports (leaks fail the exit code).
    text = open(log).read()
    assert rc == 0 and "hpl serve: stopped" in text, f"exit {rc}: {text[-4000:]}"
    assert "runtime error" not in text and "Sanitizer" not in text, text[-4000:]


def run_greedy(hpl, prompt, n, *extra):
    r = subprocess.run([hpl, "run", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0", "-t", "1",
                        "-c", str(CTX), *extra], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


def metrics(base):
    r = requests.get(base + "/metrics", timeout=10)
    assert r.status_code == 200
    return r.json()


def post(base, path, body, **kw):
    return requests.post(base + path, json=body, timeout=120, **kw)


def sse(resp):
    """The `data:` payloads of a streamed response, in order (comments skipped)."""
    out = []
    for line in resp.iter_lines(decode_unicode=False):
        if line.startswith(b"data: "):
            out.append(line[6:].decode())
    return out


def stream(base, path, body):
    with requests.post(base + path, json={**body, "stream": True}, stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = sse(r)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    return chunks


PROMPT = "Once upon a time"


def test_health_and_models(server):
    assert requests.get(server + "/health").json() == {"status": "ok"}
    m = requests.get(server + "/v1/models").json()
    assert m["object"] == "list" and m["data"][0]["id"] == "stories260K"
    assert requests.get(server + "/nope").status_code == 404


def test_completion_matches_run(server, hpl):
    want = run_greedy(hpl, PROMPT, 40)
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 40, "temperature": 0})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "text_completion"
    assert j["choices"][0]["text"] == want
    u = j["usage"]
    assert u["completion_tokens"] <= 40 and u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert j["choices"][0]["finish_reason"] == ("length" if u["completion_tokens"] == 40 else "stop")


def test_completion_stream_matches_run(server, hpl):
    want = run_greedy(hpl, PROMPT, 40)
    chunks = stream(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 40, "temperature": 0})
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == want
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert last["usage"]["completion_tokens"] <= 40
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]


def test_chat_matches_run_with_template(server, hpl):
    want = run_greedy(hpl, "Tell me a story.", 30, "--chat-template", "llama2")
    body = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 30, "temperature": 0}
    r = post(server, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "chat.completion"
    assert j["choices"][0]["message"] == {"role": "assistant", "content": want}
    assert j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"] + j["usage"]["completion_tokens"]

    chunks = stream(server, "/v1/chat/completions", body)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == want
    assert chunks[-1]["usage"] == j["usage"]
    assert chunks[-1]["choices"][0]["finish_reason"] == j["choices"][0]["finish_reason"]


def test_stop_string_and_seed(server, hpl):
    full = run_greedy(hpl, PROMPT, 40)
    word = full.split()[3]
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 40, "temperature": 0, "stop": [word]})
    j = r.json()
    assert j["choices"][0]["text"] == full[:full.index(word)]
    assert j["choices"][0]["finish_reason"] == "stop"
    # The same seed gives the same sample; sampling runs at temperature 1.
    body = {"prompt": PROMPT, "max_tokens": 30, "temperature": 1.0, "top_k": 40, "seed": 1234}
    a = post(server, "/v1/completions", body).json()["choices"][0]["text"]
    b = post(server, "/v1/completions", body).json()["choices"][0]["text"]
    assert a == b


def test_openai_client(server, hpl):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server + "/v1", api_key="dummy")
    want = run_greedy(hpl, "Tell me a story.", 20, "--chat-template", "llama2")
    c = client.chat.completions.create(model="stories260K", max_tokens=20, temperature=0,
                                       messages=[{"role": "user", "content": "Tell me a story."}])
    assert c.choices[0].message.content == want
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    parts = [ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
        model="stories260K", max_tokens=20, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Tell me a story."}]) if ch.choices]
    assert "".join(parts) == want
    t = client.completions.create(model="stories260K", prompt=PROMPT, max_tokens=40, temperature=0)
    assert t.choices[0].text == run_greedy(hpl, PROMPT, 40)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="stories260K", temperature=7,
                                       messages=[{"role": "user", "content": "x"}])
    assert "temperature" in str(e.value)


def test_concurrent_clients_fifo(server):
    """Clients started together are served one at a time, in queue (request id) order."""
    n = 6
    barrier = threading.Barrier(n)
    out = [None] * n

    def client(i):
        barrier.wait()
        r = post(server, "/v1/completions", {"prompt": f"Once upon a time {i}", "max_tokens": 300,
                                             "temperature": 0})
        out[i] = r

    ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert all(r is not None and r.status_code == 200 for r in out)
    tim = sorted((r.json()["timings"] for r in out), key=lambda t: t["request_id"])
    for a, b in zip(tim, tim[1:]):
        assert a["submitted_s"] <= b["submitted_s"]
        assert b["start_s"] >= a["end_s"], (a, b)  # one at a time, in id order
    # They were really queued together: some request was submitted before the one ahead ended.
    assert any(b["submitted_s"] < a["end_s"] for a, b in zip(tim, tim[1:])), tim


def test_disconnect_stops_request(server):
    before = metrics(server)
    max_tokens = CTX - 64
    with requests.post(server + "/v1/completions", stream=True, timeout=120,
                       json={"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True}) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = 0
        for line in lines:
            if line.startswith(b"data: "):
                got += 1
                if got == 3:
                    break
        r.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # hang up now, mid-generation
    deadline = time.time() + 30
    while True:
        m = metrics(server)
        if m["requests"]["stopped"] > before["requests"]["stopped"] and m["requests"]["active"] == 0:
            break
        assert time.time() < deadline, m
        time.sleep(0.05)
    assert m["requests"]["stopped"] == before["requests"]["stopped"] + 1
    assert m["requests"]["served"] == before["requests"]["served"]
    # It stopped early: fewer tokens than asked were generated.
    assert m["tokens"]["completion"] - before["tokens"]["completion"] < max_tokens
    # The server keeps serving.
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


def test_disconnect_stops_non_streamed_request(server):
    """A non-streamed client that hangs up while its request generates: the server polls the
    connection and stops the request."""
    before = metrics(server)
    max_tokens = CTX - 64
    port = int(server.rsplit(":", 1)[1])
    body = json.dumps({"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        # Hang up once it generates (not after a fixed sleep, which a fast machine could
        # outrun: the whole generation takes about a second on an idle machine).
        deadline = time.time() + 30
        while metrics(server)["requests"]["active"] == 0:
            assert time.time() < deadline
            time.sleep(0.005)
    deadline = time.time() + 30
    while True:
        m = metrics(server)
        if m["requests"]["stopped"] > before["requests"]["stopped"] and m["requests"]["active"] == 0:
            break
        assert time.time() < deadline, m
        time.sleep(0.05)
    assert m["requests"]["stopped"] == before["requests"]["stopped"] + 1
    assert m["tokens"]["completion"] - before["tokens"]["completion"] < max_tokens
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200


def test_bad_json(server):
    for body in [b"{", b"not json", b"[1, 2]", b""]:
        r = requests.post(server + "/v1/chat/completions", data=body,
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 400, body
        e = r.json()["error"]
        assert e["type"] == "invalid_request_error" and "JSON" in e["message"], e


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", {"messages": MSG, "temperature": 2.5}, "temperature"),
    ("/v1/chat/completions", {"messages": MSG, "temperature": "hot"}, "temperature"),
    ("/v1/chat/completions", {"messages": MSG, "top_p": 0}, "top_p"),
    ("/v1/chat/completions", {"messages": MSG, "top_k": -1}, "top_k"),
    ("/v1/chat/completions", {"messages": MSG, "max_tokens": 0}, "max_tokens"),
    ("/v1/chat/completions", {"messages": MSG, "max_tokens": 1.5}, "max_tokens"),
    ("/v1/chat/completions", {"messages": MSG, "stop": 5}, "stop"),
    ("/v1/chat/completions", {"messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("/v1/chat/completions", {"messages": MSG, "seed": "x"}, "seed"),
    ("/v1/chat/completions", {"messages": MSG, "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"messages": MSG, "n": 2}, "n"),
    ("/v1/chat/completions", {}, "messages"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("/v1/completions", {}, "prompt"),
    ("/v1/completions", {"prompt": 42}, "prompt"),
    ("/v1/completions", {"prompt": ""}, "prompt"),
])
def test_bad_parameters(server, path, body, param):
    r = post(server, path, body)
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == param and e["type"] == "invalid_request_error", e
    assert param.split("[")[0] in e["message"]


def test_oversize_body(server):
    r = post(server, "/v1/completions", {"prompt": "a " * MAX_BODY})
    assert r.status_code == 413
    assert requests.get(server + "/health").status_code == 200


def test_prompt_over_context(server):
    r = post(server, "/v1/completions", {"prompt": "a b " * 3000})  # > CTX tokens, < MAX_BODY
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["code"] == "context_length_exceeded" and e["param"] == "prompt"
    assert str(CTX) in e["message"]
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": CTX})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


def test_metrics(server):
    m = metrics(server)
    for k in ("queue_length", "model_load_ms", "uptime_s"):
        assert k in m
    assert m["requests"]["served"] > 0 and m["requests"]["rejected"] > 0
    assert m["tokens"]["decode_tokens_per_s"] > 0 and m["tokens"]["prefill_tokens_per_s"] > 0
    assert m["memory"]["weights_bytes"] > 0 and m["memory"]["kv_bytes"] > 0 and m["memory"]["rss_bytes"] > 0
    p = requests.get(server + "/metrics", params={"format": "prometheus"}).text
    assert "hpl_requests_served " in p and "hpl_decode_tokens_per_s " in p


def test_load_nothing_lost(server):
    """4 client threads x 25 requests (half streamed), 60 s cap: every request gets exactly
    one complete response."""
    threads, per_thread, cap_s = 4, 25, 60
    before = metrics(server)
    results, errors = [], []
    lock = threading.Lock()
    t0 = time.time()

    def client(t):
        s = requests.Session()
        for i in range(per_thread):
            if time.time() - t0 > cap_s:
                with lock:
                    errors.append(f"time cap hit at thread {t} request {i}")
                return
            body = {"prompt": f"Once upon a time {t} {i}", "max_tokens": 16, "temperature": 0.8, "seed": i + 1}
            try:
                if i % 2:
                    with s.post(server + "/v1/completions", json={**body, "stream": True}, stream=True,
                                timeout=60) as r:
                        assert r.status_code == 200, r.text
                        ev = sse(r)
                    assert ev[-1] == "[DONE]" and ev.count("[DONE]") == 1
                    chunks = [json.loads(e) for e in ev[:-1]]
                    finals = [c for c in chunks if c["choices"][0]["finish_reason"]]
                    assert len(finals) == 1 and finals[0] is chunks[-1]
                    n = chunks[-1]["usage"]["completion_tokens"]
                    rid = chunks[-1]["id"]
                else:
                    r = s.post(server + "/v1/completions", json=body, timeout=60)
                    assert r.status_code == 200, r.text
                    j = r.json()
                    assert j["choices"][0]["finish_reason"] in ("stop", "length")
                    n = j["usage"]["completion_tokens"]
                    rid = j["id"]
                with lock:
                    results.append((t, i, rid, n))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                with lock:
                    errors.append(f"thread {t} request {i}: {e!r}")

    ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(cap_s + 30)
    elapsed = time.time() - t0
    assert not errors, errors[:5]
    assert len(results) == threads * per_thread
    assert len({r[2] for r in results}) == threads * per_thread  # one distinct response each
    after = metrics(server)
    assert after["requests"]["served"] - before["requests"]["served"] == threads * per_thread
    assert after["requests"]["failed"] == before["requests"]["failed"]
    assert after["requests"]["active"] == 0 and after["queue_length"] == 0
    tokens = sum(r[3] for r in results)
    print(f"\nload: {len(results)} requests in {elapsed:.2f} s = {len(results) / elapsed:.1f} req/s, "
          f"{tokens / elapsed:.0f} generated tok/s, 0 lost")


def test_model_without_template_has_no_chat_endpoint(hpl, tmp_path):
    """The rule of `hpl chat`: no --template and none in the GGUF means no chat format (no guess
    by architecture); chat completions answer 400 no_chat_template, completions still work."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as lf:
        proc = subprocess.Popen([hpl, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port", str(port),
                                 "-c", "256", "-t", "1"], stdout=lf, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        r = post(base, "/v1/chat/completions", {"messages": MSG, "max_tokens": 4})
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_chat_template", r.text
        assert "--template" in r.json()["error"]["message"]
        r = post(base, "/v1/completions", {"prompt": PROMPT, "max_tokens": 4, "temperature": 0})
        assert r.status_code == 200, r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
