#!/usr/bin/env python3
"""Time to first token of each turn of a 5-turn chat through an OpenAI-style server, with the
prompt cache on and off: `hpl serve` (cache_prompt true / false) and, when given, llama.cpp's
`llama-server` (the same request field). Every turn resends the whole conversation (a
stateless client); the system prompt is about 250 tokens.

    python3 bench/prompt_cache_ttft.py -m MODEL.gguf [--hpl build/bin/hpl]
        [--llama-server PATH] [-t 2] [-r 3] [-n 24]

Configurations are interleaved (one 5-turn chat of each, then again, -r times); every chat
opens with its own nonce so turn 1 never finds a cached prefix. TTFT is measured by the client:
request sent -> first streamed content chunk. Prints the load average before and after, and a
markdown table of the median TTFT per turn (min..max over the repetitions), with the prompt
tokens of each turn and how many of them the server reported as cached.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

SYSTEM = (
    "You are a patient assistant for a small public library in a mountain town. You answer "
    "questions from visitors about opening hours, borrowing rules, the reading room, children's "
    "events, the local history archive and the bus connections to the library. The library "
    "opens at nine in the morning and closes at six in the evening on weekdays, and at one in "
    "the afternoon on Saturdays; it is closed on Sundays and public holidays. Members may "
    "borrow up to eight books and two films at a time, for three weeks, and may renew each "
    "loan twice unless another member has reserved it. Late returns cost ten cents a day per "
    "item. The reading room on the first floor is quiet; laptops are welcome but phone calls "
    "are not. Story time for children under six is on Wednesday mornings at ten, and the chess "
    "club meets on Thursday evenings. The history archive holds maps, newspapers since 1890 "
    "and photographs of the valley; visitors book an appointment with the archivist a day "
    "ahead. Bus 14 stops in front of the library every twenty minutes. Answer briefly, in "
    "plain words, and say so when you do not know something."
)
QUESTIONS = [
    "When are you open on Saturday?",
    "How many books can I borrow?",
    "Is there something for my four-year-old?",
    "Can I see old newspapers from 1920?",
    "Which bus goes there?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("server not healthy in time")


def chat_turn(base: str, messages: list, n: int, cache: bool) -> tuple[float, str, dict]:
    """One streamed turn: (ttft ms, reply text, usage/timings of the last chunk)."""
    body = {"messages": messages, "max_tokens": n, "temperature": 0, "stream": True,
            "cache_prompt": cache, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    ttft = None
    text, info = "", {}
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            c = json.loads(line[6:])
            for ch in c.get("choices", []):
                piece = (ch.get("delta") or {}).get("content") or ""
                if piece and ttft is None:
                    ttft = (time.perf_counter() - t0) * 1e3
                text += piece
            if c.get("usage"):
                info["usage"] = c["usage"]
            if c.get("timings"):
                info["timings"] = c["timings"]
    return (ttft if ttft is not None else (time.perf_counter() - t0) * 1e3), text, info


def cached_of(info: dict) -> int:
    u = info.get("usage") or {}
    d = u.get("prompt_tokens_details") or {}
    if "cached_tokens" in d:
        return int(d["cached_tokens"])
    return int((info.get("timings") or {}).get("cache_n", 0))


def prompt_of(info: dict) -> int:
    u = info.get("usage") or {}
    if "prompt_tokens" in u:
        return int(u["prompt_tokens"])
    t = info.get("timings") or {}
    return int(t.get("prompt_n", 0)) + int(t.get("cache_n", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--hpl", default=os.path.join("build", "bin", "hpl"))
    ap.add_argument("--llama-server", default="")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("-n", "--max-tokens", type=int, default=24)
    ap.add_argument("-c", "--ctx", type=int, default=2048)
    ap.add_argument("--group-nice", type=int, default=None,
                    help="run in a session of its own with this autogroup nice (e.g. -20), so\n"
                         "other sessions' work on a shared machine is background load")
    a = ap.parse_args()
    if a.group_nice is not None:
        if os.getsid(0) != os.getpid():  # a new session is a new autogroup
            os.execvp("setsid", ["setsid", "-w", sys.executable] + sys.argv)
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(a.group_nice))
        except OSError as e:
            print(f"cannot set the autogroup nice: {e}", file=sys.stderr)
        print(f"autogroup: {open('/proc/self/autogroup').read().strip()}")

    servers = []  # (name, base, proc)
    try:
        port = free_port()
        proc = subprocess.Popen([a.hpl, "serve", "-m", a.model, "--port", str(port), "-t",
                                 str(a.threads), "-c", str(a.ctx)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        servers.append(("hpl", f"http://127.0.0.1:{port}", proc))
        if a.llama_server:
            port = free_port()
            proc = subprocess.Popen([a.llama_server, "-m", a.model, "--port", str(port), "-t",
                                     str(a.threads), "-c", str(a.ctx), "-np", "1",
                                     "--no-webui"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers.append(("llama.cpp", f"http://127.0.0.1:{port}", proc))
        for _, base, proc in servers:
            wait_healthy(base, proc)

        configs = [(name, base, cache) for name, base, _ in servers for cache in (True, False)]
        ttft = {(c[0], c[2]): [[] for _ in QUESTIONS] for c in configs}
        tokens = {(c[0], c[2]): [None] * len(QUESTIONS) for c in configs}
        print(f"load before: {open('/proc/loadavg').read().strip()}", flush=True)
        for rep in range(a.reps):
            for name, base, cache in configs:
                msgs = [{"role": "system", "content": f"Visit {rep}-{name}-{cache}. " + SYSTEM}]
                for i, q in enumerate(QUESTIONS):
                    msgs.append({"role": "user", "content": q})
                    ms, reply, info = chat_turn(base, msgs, a.max_tokens, cache)
                    msgs.append({"role": "assistant", "content": reply})
                    ttft[(name, cache)][i].append(ms)
                    tokens[(name, cache)][i] = (prompt_of(info), cached_of(info))
                print(f"rep {rep + 1} {name} cache={'on' if cache else 'off'}: "
                      + " ".join(f"{v[-1]:.0f}" for v in ttft[(name, cache)]) + " ms", flush=True)
        print(f"load after: {open('/proc/loadavg').read().strip()}")
        print()
        # Each cell: median TTFT ms (min..max) [cached / prompt tokens the server reported].
        head = "| turn |"
        sep = "|---|"
        for name, _, cache in configs:
            head += f" {name} cache {'on' if cache else 'off'} |"
            sep += "---|"
        print(head)
        print(sep)
        for i in range(len(QUESTIONS)):
            row = f"| {i + 1} |"
            for name, _, cache in configs:
                v = ttft[(name, cache)][i]
                p, c = tokens[(name, cache)][i]
                row += f" {statistics.median(v):.0f} ({min(v):.0f}..{max(v):.0f}) [{c}/{p}] |"
            print(row)
    finally:
        for _, _, proc in servers:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
