#!/usr/bin/env python3
"""Soak test for `hpl serve` (not run in CI): a server on a free 127.0.0.1 port under a mix
of valid, invalid and abandoned requests from a few client threads for DURATION seconds;
the server's RSS, open descriptors and threads are sampled every INTERVAL seconds.

Valid: completions and chat, plain and streamed. Invalid: bad JSON, an unsupported field,
a number that overflows, a wrong method, an unknown path, a body over --max-body (with
Content-Length, chunked, gzip), a malformed head. Abandoned: a stream closed after a few
events, a non-streamed request reset while it runs, a head that never ends (the server's
read deadline closes it), a connection closed at once, a half-close (still answered).

Every response is checked (status and, for 200, a complete body); anything else counts as
an error. At the end the server gets SIGTERM and must exit 0. Exit status: 0 when there
were no errors, the server lived and its RSS after warm-up grew less than --max-growth-mb.
Loopback only; every socket has a timeout; the run stops by itself. With an ASan build
(--build build-asan) sanitizer reports count as errors; its RSS grows by ASan's quarantine
of freed memory (256 MB), so judge growth on a release build.

  usage: python3 tests/soak/serve_soak.py [--build build] [--model M] [--duration 1200]
         [--interval 10] [--clients 4] [--csv out.csv]
"""
import argparse
import gzip
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_BODY = 65536
READ_TIMEOUT = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


class Client:
    def __init__(self, port):
        self.port = port

    def conn(self, timeout=60):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    @staticmethod
    def read_all(s):
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
        return out

    def exchange(self, raw, shut_wr=False, timeout=60):
        with self.conn(timeout) as s:
            try:
                s.sendall(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
            return self.read_all(s)


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def body_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while body:
            size, _, body = body.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out += body[:n]
            body = body[n + 2:]
        return out
    return body


def request(path, body, method=b"POST", extra=b"", version=b"HTTP/1.1"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (method + b" " + path + b" " + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\n" + extra + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)


PROMPTS = ["Once upon a time", "The little dog", "One day, Lily", "Tom and his friend"]


def actions(c, rnd):
    """name -> callable returning None (ok) or an error string."""
    def valid_text():
        r = c.exchange(request(b"/v1/completions", {"prompt": rnd.choice(PROMPTS), "max_tokens": rnd.randint(1, 48),
                                                    "temperature": rnd.choice([0, 0.8])}))
        if status_of(r) != 200 or "choices" not in json.loads(body_of(r)):
            return f"valid_text: {r[:200]!r}"

    def valid_chat_stream():
        r = c.exchange(request(b"/v1/chat/completions", {"messages": [{"role": "user", "content": rnd.choice(PROMPTS)}],
                                                         "max_tokens": rnd.randint(1, 48), "stream": True}))
        if status_of(r) != 200 or not body_of(r).rstrip().endswith(b"data: [DONE]"):
            return f"valid_chat_stream: {r[-200:]!r}"

    def half_close():
        r = c.exchange(request(b"/v1/completions", {"prompt": "x", "max_tokens": 4}), shut_wr=True)
        if status_of(r) != 200:
            return f"half_close: {r[:200]!r}"

    def invalid(raw, want):
        def f():
            r = c.exchange(raw)
            if status_of(r) != want:
                return f"invalid (want {want}): {raw[:60]!r} -> {r[:200]!r}"
        return f

    def chunked_over():
        with c.conn() as s:
            try:
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(3 * MAX_BODY // 8192):
                    s.sendall(b"2000\r\n" + b"a" * 8192 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_all(s)
        if status_of(r) != 413:
            return f"chunked_over: {r[:200]!r}"

    def abandon_stream():
        with c.conn() as s:
            s.sendall(request(b"/v1/completions", {"prompt": "Once", "max_tokens": 400, "stream": True}))
            got = b""
            while got.count(b"data: ") < 3:
                d = s.recv(4096)
                if not d:
                    break
                got += d

    def abandon_reset():
        with c.conn() as s:
            s.sendall(request(b"/v1/completions", {"prompt": "Once", "max_tokens": 400}))
            time.sleep(rnd.uniform(0.01, 0.3))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def abandon_slow_head():
        with c.conn() as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHo")
            time.sleep(rnd.uniform(0.1, READ_TIMEOUT + 1))

    def connect_close():
        c.conn().close()

    gz = gzip.compress(json.dumps({"prompt": "a " * 200000}).encode())
    return {
        "valid_text": (valid_text, 6),
        "valid_chat_stream": (valid_chat_stream, 4),
        "half_close": (half_close, 1),
        "bad_json": (invalid(request(b"/v1/completions", b"{\"prompt\": "), 400), 1),
        "unsupported": (invalid(request(b"/v1/completions", {"prompt": "x", "echo": True}), 400), 1),
        "overflow": (invalid(request(b"/v1/completions", b'{"prompt": "x", "temperature": 1e999}'), 400), 1),
        "system_only": (invalid(request(b"/v1/chat/completions", {"messages": [{"role": "system", "content": "x"}]}),
                                400), 1),
        "wrong_method": (invalid(b"GET /v1/completions HTTP/1.1\r\nConnection: close\r\n\r\n", 405), 1),
        "not_found": (invalid(b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n", 404), 1),
        "too_large": (invalid(request(b"/v1/completions", {"prompt": "a " * MAX_BODY}), 413), 1),
        "gzip": (invalid(request(b"/v1/completions", gz, extra=b"Content-Encoding: gzip\r\n"), 415), 1),
        "bad_head": (invalid(b"GET / HTTP/9.9\r\n\r\n", 505), 1),
        "chunked_over": (chunked_over, 1),
        "abandon_stream": (abandon_stream, 2),
        "abandon_reset": (abandon_reset, 2),
        "abandon_slow_head": (abandon_slow_head, 1),
        "connect_close": (connect_close, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")))
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "data", "models", "stories260K.gguf"))
    ap.add_argument("--duration", type=float, default=1200)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", default="")
    ap.add_argument("--max-growth-mb", type=float, default=32)
    a = ap.parse_args()

    port = free_port()
    log = open(os.path.join("/tmp", f"hpl-soak-{port}.log"), "w")
    proc = subprocess.Popen([os.path.join(a.build, "bin", "hpl"), "serve", "-m", a.model, "--host", "127.0.0.1",
                             "--port", str(port), "-c", "1024", "-t", "1", "--max-body", str(MAX_BODY),
                             "--read-timeout", str(READ_TIMEOUT)], stdout=log, stderr=subprocess.STDOUT)
    c = Client(port)
    deadline = time.time() + 60
    while True:
        try:
            if status_of(c.exchange(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", timeout=2)) == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            print("server did not start; log:", log.name)
            proc.kill()
            return 2
        time.sleep(0.1)

    counts, errors = {}, []
    lock = threading.Lock()
    t0 = time.time()
    end = t0 + a.duration

    def client(i):
        rnd = random.Random(a.seed * 1000 + i)
        acts = actions(c, rnd)
        names = list(acts)
        weights = [acts[n][1] for n in names]
        while time.time() < end:
            name = rnd.choices(names, weights)[0]
            try:
                err = acts[name][0]()
            except OSError as e:
                err = f"{name}: {e!r}"
            with lock:
                counts[name] = counts.get(name, 0) + 1
                if err:
                    errors.append(f"{time.time() - t0:.0f}s {err}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    samples = []
    print(f"soak: hpl serve pid {proc.pid} on 127.0.0.1:{port}, {a.clients} clients, {a.duration:.0f} s")
    print(f"{'t_s':>6} {'rss_mb':>8} {'fds':>5} {'threads':>7} {'requests':>8} {'errors':>6}")
    next_sample = t0
    while True:
        now = time.time()
        if now >= next_sample:
            if proc.poll() is not None:
                errors.append(f"server exited with {proc.returncode}")
                break
            rss, fds, nthreads = proc_stats(proc.pid)
            with lock:
                n, ne = sum(counts.values()), len(errors)
            samples.append((now - t0, rss, fds, nthreads, n, ne))
            print(f"{now - t0:6.0f} {rss / 2**20:8.1f} {fds:5d} {nthreads:7d} {n:8d} {ne:6d}", flush=True)
            next_sample += a.interval
        if now >= end:
            break
        time.sleep(min(0.5, max(0.01, next_sample - now)))
    for t in threads:
        t.join(READ_TIMEOUT + 70)

    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed after 20 s"
    if rc != 0:
        errors.append(f"server exit status on SIGTERM: {rc}")
    log.close()
    text = open(log.name).read()
    if "Sanitizer" in text or "runtime error" in text:  # an ASan/UBSan build (--build build-asan)
        errors.append(f"sanitizer report in {log.name}")

    if a.csv:
        with open(a.csv, "w") as f:
            f.write("t_s,rss_bytes,fds,threads,requests,errors\n")
            for s in samples:
                f.write(",".join(str(round(x, 1) if isinstance(x, float) else x) for x in s) + "\n")
    warm = [s for s in samples if s[0] >= min(120, a.duration / 4)]
    growth_mb = (max(s[1] for s in warm) - warm[0][1]) / 2**20 if warm else 0.0
    print("requests by kind:", json.dumps(dict(sorted(counts.items()))))
    print(f"total {sum(counts.values())} requests, {len(errors)} errors; RSS first {samples[0][1] / 2**20:.1f} MB, "
          f"max {max(s[1] for s in samples) / 2**20:.1f} MB, last {samples[-1][1] / 2**20:.1f} MB; "
          f"growth after warm-up {growth_mb:.1f} MB; fds {min(s[2] for s in samples)}..{max(s[2] for s in samples)}")
    for e in errors[:20]:
        print("error:", e)
    ok = not errors and growth_mb < a.max_growth_mb
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
