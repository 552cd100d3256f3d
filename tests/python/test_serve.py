"""`hpl serve` over HTTP on a free loopback port, with stories260K (no chat template in the
GGUF: the server is started with --template llama2). Checks the OpenAI-compatible
endpoints against `hpl run --temp 0`, FIFO order of concurrent clients, that a client
disconnect stops its request, validation errors, oversize bodies, and a bounded load test;
then HTTP hardening over raw sockets: port in use, chunked and compressed bodies against
--max-body, slow clients (read deadline, per-address limit, SIGTERM), pipelining,
half-close, HTTP/1.0 streaming, 405. The server is always killed at the end (fixture
finalizer). Every socket has a timeout: no test can hang.
"""
import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

requests = pytest.importorskip("requests")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "tests", "data", "models", "stories260K.gguf")
CTX = 4096  # long enough that a long generation can be cut by a disconnect
MAX_BODY = 65536
READ_TIMEOUT = 3  # --read-timeout: a slow request head gets 408 after this
PER_ADDR = 48     # --max-conns-per-addr


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "serve", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl was built without serve (no nlohmann-json for this target)")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(hpl, log, port, *extra):
    """Starts `hpl serve` on 127.0.0.1:port and waits (60 s at most) until /health answers."""
    with open(log, "w") as lf:
        proc = subprocess.Popen([hpl, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port", str(port),
                                 "-c", str(CTX), "-t", "1", "--max-body", str(MAX_BODY), *extra],
                                stdout=lf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {open(log).read()}")
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return proc
        except (requests.ConnectionError, requests.Timeout):
            pass
        if time.time() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"server not healthy in 60 s: {open(log).read()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(hpl, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    port = free_port()
    proc = start_server(hpl, log, port, "--read-timeout", str(READ_TIMEOUT), "--max-conns-per-addr", str(PER_ADDR),
                        "--template", "llama2")
    base = f"http://127.0.0.1:{port}"
    try:
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
    # The same request again: the same usage, its prompt now (all but the last token) cached.
    n_prompt = j["usage"]["prompt_tokens"]
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == n_prompt - 1
    for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert chunks[-1]["usage"][k] == j["usage"][k]
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
    """A non-streamed client that hangs up (a reset) while its request generates: the server
    polls the connection and stops the request. (A plain close right after the request is a
    half-close and gets its reply: test_half_close_gets_reply.)"""
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
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
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
    proc = start_server(hpl, tmp_path / "server.log", port)
    try:
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


# ---- HTTP hardening, over raw sockets (issue 11) ----

def port_of(base):
    return int(base.rsplit(":", 1)[1])


def connect(base, timeout=30):
    return socket.create_connection(("127.0.0.1", port_of(base)), timeout=timeout)


def read_all(s):
    """Reads until the server closes (the socket's timeout bounds each wait)."""
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def parse_responses(data):
    """Splits raw bytes into [(status, headers (lower-case names), body)], decoding chunked
    bodies; a body with neither length nor chunking runs to the end (HTTP/1.0 style)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status == 100:
            data = rest
            continue
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line, 16)
                if n == 0:
                    rest = rest[2:]
                    break
                body += rest[:n]
                rest = rest[n + 2:]
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        out.append((status, headers, body))
        data = rest
    return out


def completion_request(body, extra_headers=b"", version=b"HTTP/1.1"):
    data = json.dumps(body).encode()
    return (b"POST /v1/completions " + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n" +
            extra_headers + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)


def test_second_server_on_a_port_in_use_is_refused(server, hpl):
    r = subprocess.run([hpl, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port", str(port_of(server)),
                        "-t", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "port in use" in r.stderr, (r.returncode, r.stderr)
    assert requests.get(server + "/health", timeout=10).status_code == 200


def test_chunked_body_over_max_body_is_413(server):
    """A chunked body is limited by its decoded size: 4x --max-body in 8 KiB chunks."""
    body = json.dumps({"prompt": "a " * (2 * MAX_BODY)}).encode()
    with connect(server) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for i in range(0, len(body), 8192):
                part = body[i:i + 8192]
                s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed
        resp = parse_responses(read_all(s))
    assert resp and resp[0][0] == 413, resp[:1]
    assert json.loads(resp[0][2])["error"]["code"] == "request_too_large"
    assert requests.get(server + "/health", timeout=10).status_code == 200


def test_chunked_body_under_max_body_is_served(server):
    body = json.dumps({"prompt": PROMPT, "max_tokens": 3, "temperature": 0}).encode()
    with connect(server) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n" + b"".join(b"%x\r\n" % len(body[i:i + 7]) + body[i:i + 7] + b"\r\n"
                                                          for i in range(0, len(body), 7)) + b"0\r\n\r\n")
        resp = parse_responses(read_all(s))
    assert [r[0] for r in resp] == [200], resp
    assert json.loads(resp[0][2])["usage"]["completion_tokens"] == 3


def test_compressed_body_is_refused(server):
    """Content-Encoding is refused (415) before any decompression: 64 KiB of gzip could
    otherwise inflate far past --max-body."""
    body = gzip.compress(json.dumps({"prompt": PROMPT + " " + "a " * (4 * MAX_BODY)}).encode())
    assert len(body) < MAX_BODY
    r = requests.post(server + "/v1/completions", data=body, timeout=30,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 415, r.text
    assert "Content-Encoding" in r.json()["error"]["message"]


def test_slow_header_clients_do_not_stall_health(server):
    """20 clients (more than --http-threads) sending their head a byte every 0.5 s: /health
    still answers at once, and each slow client gets 408 at --read-timeout although it keeps
    sending (the deadline is for the whole head, not per read)."""
    slow = [connect(server, timeout=READ_TIMEOUT + 10) for _ in range(20)]
    stop = threading.Event()

    def drip():
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for i in range(len(head)):
            for s in slow:
                try:
                    s.sendall(head[i:i + 1])
                except OSError:
                    pass
            if stop.wait(0.5):
                return

    t = threading.Thread(target=drip)
    t0 = time.time()
    t.start()
    try:
        for _ in range(3):
            h0 = time.time()
            assert requests.get(server + "/health", timeout=2).status_code == 200
            assert time.time() - h0 < 1
            time.sleep(0.5)
        got = [read_all(s) for s in slow]
        elapsed = time.time() - t0
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
    statuses = [parse_responses(g)[0][0] if g else None for g in got]
    assert statuses == [408] * len(slow), statuses
    assert READ_TIMEOUT - 0.5 < elapsed < READ_TIMEOUT + 5, elapsed


def test_connection_limit_per_address_evicts_oldest_idle(server):
    """More than --max-conns-per-addr connections from 127.0.0.1: the oldest idle ones are
    closed to make room, and a new request is still answered."""
    conns = []
    try:
        for _ in range(PER_ADDR + 10):
            conns.append(connect(server, timeout=10))
            time.sleep(0.005)
        assert requests.get(server + "/health", timeout=5).status_code == 200
        closed = 0
        for s in conns:
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 11, closed  # 10 over the limit, plus room for the /health request
    finally:
        for s in conns:
            s.close()


def test_sigterm_closes_idle_and_slow_connections(hpl, tmp_path):
    """SIGTERM while clients drip their heads a byte every 0.5 s and one sits idle: the
    server exits within 3 s, with 0, and those connections are closed."""
    port = free_port()
    proc = start_server(hpl, tmp_path / "server.log", port, "--http-threads", "2", "--read-timeout", "60")
    base = f"http://127.0.0.1:{port}"
    conns = [connect(base, timeout=10) for _ in range(5)]
    idle = connect(base, timeout=10)
    stop = threading.Event()

    def drip():
        head = b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100
        for i in range(len(head)):
            for s in conns:
                try:
                    s.sendall(head[i:i + 1])
                except OSError:
                    pass
            if stop.wait(0.5):
                return

    t = threading.Thread(target=drip)
    t.start()
    try:
        time.sleep(1.2)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = "still running after 10 s"
        took = time.time() - t0
        assert rc == 0 and took < 3, (rc, took, open(tmp_path / "server.log").read())
        for s in conns + [idle]:
            assert read_all(s) == b""
    finally:
        stop.set()
        t.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for s in conns + [idle]:
            s.close()


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", '{"prompt": "x", "temperature": 1e999}', "temperature"),
    ("/v1/completions", '{"prompt": "x", "top_p": -1e400}', "top_p"),
    ("/v1/completions", '{"prompt": "x", "max_tokens": 1e999}', "max_tokens"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "x"}], "seed": 2e308}', "seed"),
    ("/v1/completions", '{"prompt": "x", "stop": ["a", 1e999]}', "stop[1]"),
])
def test_number_overflow_is_400_naming_the_field(server, path, body, param):
    r = requests.post(server + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == param and param in e["message"], e


UNSUPPORTED = {"echo": True,
               "best_of": 2, "suffix": "x", "logit_bias": {"1": 5}}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_unsupported_fields_are_400_naming_them(server, path, name):
    body = {"prompt": PROMPT} if path == "/v1/completions" else {"messages": MSG}
    r = post(server, path, {**body, "max_tokens": 2, name: UNSUPPORTED[name]})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == name and f"'{name}'" in e["message"] and e["code"] == "unsupported_parameter", e


def test_every_unsupported_field_is_named(server):
    r = post(server, "/v1/completions", {"prompt": PROMPT, "echo": True, "suffix": "x", "best_of": 1})
    assert r.status_code == 400
    m = r.json()["error"]["message"]
    assert all(f"'{k}'" in m for k in ("echo", "suffix", "best_of")), m


def test_chat_with_only_a_system_message_is_400(server):
    r = post(server, "/v1/chat/completions", {"messages": [{"role": "system", "content": "Be brief."}]})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == "messages" and "no user message" in e["message"], e


def test_half_close_gets_reply(server):
    with connect(server) as s:
        s.sendall(completion_request({"prompt": PROMPT, "max_tokens": 5, "temperature": 0}))
        s.shutdown(socket.SHUT_WR)  # done sending; still reading
        resp = parse_responses(read_all(s))
    assert [r[0] for r in resp] == [200], resp
    assert json.loads(resp[0][2])["usage"]["completion_tokens"] == 5


def test_half_closed_client_that_resets_stops_its_request(server):
    before = metrics(server)
    max_tokens = CTX - 64
    with connect(server) as s:
        s.sendall(completion_request({"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}))
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    deadline = time.time() + 30
    while True:
        m = metrics(server)
        if m["requests"]["stopped"] > before["requests"]["stopped"] and m["requests"]["active"] == 0:
            break
        assert time.time() < deadline, m
        time.sleep(0.05)
    assert m["tokens"]["completion"] - before["tokens"]["completion"] < max_tokens


def test_pipelined_requests_each_get_a_response(server):
    with connect(server) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
                  completion_request({"prompt": PROMPT, "max_tokens": 4, "temperature": 0}) +
                  b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        resp = parse_responses(read_all(s))
    assert [r[0] for r in resp] == [200, 200, 200], resp
    assert json.loads(resp[0][2]) == {"status": "ok"}
    assert json.loads(resp[1][2])["usage"]["completion_tokens"] == 4
    assert json.loads(resp[2][2])["object"] == "list"


def test_http10_stream_is_not_chunked(server):
    with connect(server) as s:
        s.sendall(completion_request({"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "stream": True},
                                     version=b"HTTP/1.0"))
        data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower(), head
    assert b"text/event-stream" in head
    events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]" and len(events) >= 2, body


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/completions", "POST"),
    ("GET", "/v1/chat/completions", "POST"),
    ("POST", "/health", "GET"),
    ("DELETE", "/v1/models", "GET"),
    ("PUT", "/metrics", "GET"),
])
def test_wrong_method_is_405(server, method, path, allow):
    r = requests.request(method, server + path, timeout=10)
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_malformed_heads(server):
    cases = [
        (b"GET /health HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET /health HTTP/2.0\r\n\r\n", 505),
        (b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /health HTTP/1.1\r\n folded\r\n\r\n", 400),
        (b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    ]
    for raw, status in cases:
        with connect(server) as s:
            s.sendall(raw)
            resp = parse_responses(read_all(s))
        assert resp and resp[0][0] == status, (raw[:60], resp)
    assert requests.get(server + "/health", timeout=10).status_code == 200


def test_expect_100_continue(server):
    """A client that waits for 100 Continue (curl does for bodies over 1 KiB) gets it before
    sending its body; an oversize one gets 413 instead."""
    body = json.dumps({"prompt": PROMPT, "max_tokens": 2, "temperature": 0}).encode()
    with connect(server) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        resp = parse_responses(read_all(s))
    assert [r[0] for r in resp] == [200], resp
    with connect(server) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: " + str(10 * MAX_BODY).encode() + b"\r\n\r\n")
        resp = parse_responses(read_all(s))
    assert [r[0] for r in resp] == [413], resp


def test_connection_limit_when_every_connection_is_busy_is_503(hpl, tmp_path):
    """--max-conns-per-addr 2 with both connections in handlers: a third gets 503 and is
    closed; once they finish, new connections are served again."""
    port = free_port()
    proc = start_server(hpl, tmp_path / "server.log", port, "--max-conns-per-addr", "2")
    base = f"http://127.0.0.1:{port}"
    busy = []
    try:
        for _ in range(2):
            s = connect(base, timeout=60)
            s.sendall(completion_request({"prompt": PROMPT, "max_tokens": CTX - 64, "temperature": 0,
                                          "stream": True}))
            assert s.recv(12).startswith(b"HTTP/1.1 200")  # in a handler now
            busy.append(s)
        with connect(base) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = parse_responses(read_all(s))
        assert [r[0] for r in resp] == [503], resp
        assert "too many connections" in json.loads(resp[0][2])["error"]["message"]
        for s in busy:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(base + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        for s in busy:
            s.close()
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_half_close_is_timed_by_its_arrival_not_by_when_a_handler_looks(hpl, tmp_path):
    """--http-threads 1: a half-closed request waits > 1 s for the only handler thread (busy
    with a long request); it still gets its reply: its FIN is timed when it arrived (by the
    I/O thread), not when the handler first looked."""
    port = free_port()
    proc = start_server(hpl, tmp_path / "server.log", port, "--http-threads", "1", "-c", "8192")
    base = f"http://127.0.0.1:{port}"
    try:
        with connect(base) as long_req, connect(base) as half:
            long_req.sendall(completion_request({"prompt": PROMPT, "max_tokens": 8000, "temperature": 0}))
            time.sleep(0.3)
            # Long enough to still run when its handler first looks at the connection.
            half.sendall(completion_request({"prompt": PROMPT, "max_tokens": 2000, "temperature": 0}))
            half.shutdown(socket.SHUT_WR)
            time.sleep(1.5)  # longer than the half-close grace
            long_req.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            long_req.close()  # reset: its request stops and the handler thread is free
            resp = parse_responses(read_all(half))
        assert [r[0] for r in resp] == [200], resp
        assert json.loads(resp[0][2])["usage"]["completion_tokens"] == 2000
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("spec", [["--lookup", "2", "--draft-max", "4"], ["--draft", MODEL, "--draft-max", "3"]])
def test_speculative_server_matches_plain_run(hpl, tmp_path, spec):
    """A server with speculative decoding answers what plain greedy `hpl run` prints; its
    timings report the drafts."""
    want = run_greedy(hpl, PROMPT, 40)
    port = free_port()
    proc = start_server(hpl, tmp_path / "spec.log", port, *spec)
    try:
        r = post(f"http://127.0.0.1:{port}", "/v1/completions",
                 {"prompt": PROMPT, "max_tokens": 40, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] == want
        t = r.json()["timings"]
        assert t["draft_tokens"] > 0 and 0 <= t["draft_accepted"] <= t["draft_tokens"]
        assert 0 <= t["draft_acceptance_rate"] <= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"},
                                           "tag": {"enum": ["a", "b"]}},
          "required": ["ok", "n", "tag"], "additionalProperties": False}


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_response_format_json_schema(server, path):
    body = {"prompt": PROMPT} if path == "/v1/completions" else {"messages": MSG}
    for seed in range(3):
        r = post(server, path, {**body, "max_tokens": 200, "seed": seed, "temperature": 1.0,
                                "response_format": {"type": "json_schema",
                                                    "json_schema": {"name": "t", "schema": SCHEMA}}})
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        v = json.loads(c["text"] if path == "/v1/completions" else c["message"]["content"])
        assert set(v) == {"ok", "n", "tag"} and isinstance(v["ok"], bool) and v["tag"] in "ab", v
        assert isinstance(v["n"], int) and c["finish_reason"] == "stop", c


def test_response_format_json_object_streamed(server):
    chunks = stream(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 300, "seed": 1,
                                                "response_format": {"type": "json_object"}})
    text = "".join(ch["choices"][0]["text"] for ch in chunks)
    if chunks[-1]["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(text), dict), text
    assert text.startswith("{"), text


@pytest.mark.parametrize("rf,param,msg", [
    ({"type": "json_schema", "json_schema": {"schema": {"type": "array", "minItems": 2, "maxItems": 1}}},
     "response_format.json_schema.schema", "schema at #: minItems 2 is above maxItems 1"),
    ({"type": "json_schema", "json_schema": {"schema": {"properties": {"x": {"pattern": "a"}}}}},
     "response_format.json_schema.schema", "schema at #/properties/x/pattern: keyword 'pattern' is not supported"),
    ({"type": "json_schema"}, "response_format.json_schema", "must be an object"),
    ({"type": "xml"}, "response_format.type", "must be text, json_object or json_schema"),
])
def test_response_format_errors(server, rf, param, msg):
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "response_format": rf})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == param and msg in e["message"], e


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                                                    "unit": {"enum": ["c", "f"]}},
                   "required": ["city"], "additionalProperties": False}}}
NOOP = {"type": "function", "function": {"name": "noop"}}


class Url(str):
    family = ""  # the served chat template


@pytest.fixture(scope="module", params=["chatml", "llama3"])
def tool_server(hpl, tmp_path_factory, request):
    log = tmp_path_factory.mktemp("serve-" + request.param) / "server.log"
    port = free_port()
    proc = start_server(hpl, log, port, "--template", request.param)
    try:
        url = Url(f"http://127.0.0.1:{port}")
        url.family = request.param
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_tool_calls(tool_server, choice):
    tools = [WEATHER] if choice == "required" else [WEATHER, NOOP]
    for seed in range(3):
        r = post(tool_server, "/v1/chat/completions",
                 {"messages": [{"role": "user", "content": "Weather in Paris?"}], "max_tokens": 300,
                  "seed": seed, "temperature": 1.0, "tools": tools, "tool_choice": choice})
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        assert c["finish_reason"] == "tool_calls", c
        calls = c["message"]["tool_calls"]
        assert calls and all(t["type"] == "function" and t["function"]["name"] == "get_weather" for t in calls), c
        for t in calls:
            args = json.loads(t["function"]["arguments"])
            assert set(args) <= {"city", "unit"} and len(args["city"]) <= 10, args
            assert args.get("unit", "c") in ("c", "f"), args


@pytest.mark.parametrize("body,param,msg", [
    ({"tools": [WEATHER]}, "tools", "not supported with the llama2 chat template"),
    ({"tools": [{"type": "function"}]}, "tools[0]", "must be {"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}}, "tool_choice",
     "names 'x', which is not in 'tools'"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "must be auto, required, none"),
])
def test_tool_errors(server, body, param, msg):
    r = post(server, "/v1/chat/completions", {"messages": MSG, "max_tokens": 2, **body})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == param and msg in e["message"], e


def test_tools_are_refused_on_completions(server):
    r = post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "tools": [WEATHER]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools", r.text


def streamed_reply(chunks):
    """content, tool_calls and finish_reason of a streamed chat reply."""
    content, calls = "", []
    for ch in chunks:
        d = ch["choices"][0]["delta"]
        content += d.get("content") or ""
        for t in d.get("tool_calls", []):
            assert t["index"] == len(calls) and t["type"] == "function", t
            calls.append({"id": t["id"], "type": t["type"], "function": t["function"]})
    return content, calls, chunks[-1]["choices"][0]["finish_reason"]


@pytest.mark.parametrize("choice", ["required", "auto"])
def test_tool_calls_streamed_equal_the_whole_reply(tool_server, choice):
    """Streamed with tools: the text goes out as it comes until a call may start, then the
    calls come as one tool_calls delta; the same seed gives the same reply as unstreamed."""
    n_calls = 0
    for seed in range(3):
        body = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "max_tokens": 200,
                "seed": seed, "temperature": 1.0, "tools": [WEATHER], "tool_choice": choice}
        whole = post(tool_server, "/v1/chat/completions", body).json()["choices"][0]
        content, calls, finish = streamed_reply(stream(tool_server, "/v1/chat/completions", body))
        assert finish == whole["finish_reason"], (whole, finish)
        assert calls == whole["message"].get("tool_calls", []), (whole, calls)
        if calls:
            assert content == (whole["message"].get("content") or ""), (whole, content)
        else:
            assert content == whole["message"]["content"], (whole, content)
        n_calls += len(calls)
    if choice == "required":
        assert n_calls >= 3


def rendered(family, turns):
    """The prompt text the template gives (role, content) turns, plus the generation prompt."""
    if family == "chatml":
        return "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in turns) + "<|im_start|>assistant\n"
    return "".join(f"<|start_header_id|>{r}<|end_header_id|>\n\n{c.strip()}<|eot_id|>" for r, c in turns) + \
        "<|start_header_id|>assistant<|end_header_id|>\n\n"


def test_earlier_calls_and_tool_results_are_written_in_the_template_format(tool_server):
    """A conversation holding a call (arguments as text, as OpenAI sends them) and two results:
    the prompt is what the template's tool format writes (Qwen: <tool_call> / <tool_response>
    blocks; Llama 3.1: the call's JSON, ipython turns), checked by running that text through
    /v1/completions: the same prompt tokens and the same greedy reply."""
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_0", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_0", "content": "21 C"}]
    if tool_server.family == "chatml":
        turns = [("user", "Weather in Paris?"),
                 ("assistant", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
                 ("user", "<tool_response>\nsunny\n</tool_response>\n<tool_response>\n21 C\n</tool_response>")]
    else:
        turns = [("user", "Weather in Paris?"),
                 ("assistant", '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
                 ("ipython", "sunny"), ("ipython", "21 C")]
    for tools in ({}, {"tools": [WEATHER]}):  # with tools, the descriptions are added too
        chat = post(tool_server, "/v1/chat/completions",
                    {"messages": msgs, "max_tokens": 12, "temperature": 0, **tools})
        assert chat.status_code == 200, chat.text
        if tools:
            assert chat.json()["usage"]["prompt_tokens"] > n_prompt
            continue
        want = post(tool_server, "/v1/completions",
                    {"prompt": rendered(tool_server.family, turns), "max_tokens": 12, "temperature": 0}).json()
        n_prompt = want["usage"]["prompt_tokens"]
        assert chat.json()["usage"]["prompt_tokens"] == n_prompt, (chat.json(), want)
        assert want["choices"][0]["text"].startswith(chat.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize("msg,param,text", [
    ({"role": "assistant", "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]},
     "messages[1].tool_calls[0]", "must be {"),
    ({"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]},
     "messages[1].tool_calls[0].function.arguments", "must be a JSON object"),
    ({"role": "assistant", "tool_calls": []}, "messages[1].tool_calls", "non-empty array"),
    ({"role": "tool"}, "messages[1].content", "is required"),
    ({"role": "robot", "content": "x"}, "messages[1].role", "must be system, developer, user, assistant or tool"),
])
def test_bad_tool_history_is_400_naming_it(tool_server, msg, param, text):
    r = post(tool_server, "/v1/chat/completions", {"messages": [MSG[0], msg], "max_tokens": 2})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == param and text in e["message"], e


def test_tool_history_needs_a_template_with_a_tool_format(server):
    r = post(server, "/v1/chat/completions",
             {"messages": [MSG[0], {"role": "tool", "content": "sunny"}], "max_tokens": 2})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == "messages[1].role" and "not supported with the llama2" in e["message"], e


