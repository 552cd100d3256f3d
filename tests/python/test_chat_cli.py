"""`hpl chat` driven through a pipe (no TTY) on stories260K (which has no chat template, so
--template names one): replies, KV-cache reuse across turns, /stats, /reset, carry-forward
when the context is full, errors.

With --verbose, each turn logs to stderr
  [turn K] prefill P tokens (cache reused: R tokens) ...; decode D tokens ...; context C/N; ...
which proves the cache is reused: a follow-up turn starts at R = the previous turn's C and
prefills only its own tokens (P = the incrementally formatted user turn, plus the previous
reply's last token, which was sampled but never evaluated when the reply hit -n).
"""
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "tests", "data", "models", "stories260K.gguf")
TURN = re.compile(r"^\[turn (\d+)\] prefill (\d+) tokens \(cache reused: (\d+) tokens\).*?"
                  r"decode (\d+) tokens.*?context (\d+)/(\d+); stop: (.*)$", re.M)
STATS = re.compile(r"^/stats: context (\d+) tokens in the cache \(\+(\d+) pending\) of (\d+)", re.M)


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "chat", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl has no chat command")
    return p


def chat(hpl, lines, *args, ctx=512, n=8):
    r = subprocess.run([hpl, "chat", "-m", MODEL, "--template", "llama2", "--temp", "0", "-n", str(n),
                        "-c", str(ctx), "-t", "2", "--verbose", *args],
                       input="".join(l + "\n" for l in lines), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    turns = [tuple(int(x) for x in m.groups()[:6]) + (m.group(7),) for m in TURN.finditer(r.stderr)]
    return r, turns


def n_tokens(hpl, text):
    out = subprocess.run([hpl, "tokenize", "-m", MODEL, "--no-bos", "--parse-special", "-p", text],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return len(out.stdout.split())


def test_turns_reuse_the_cache(hpl):
    users = ["Tell me a story about a cat.", "What did the cat eat?", "And then?"]
    r, turns = chat(hpl, [users[0], users[1], "/stats", users[2], "/stats"])
    assert len(turns) == 3, r.stderr
    # replies were streamed: one non-empty line per turn around the /stats blocks
    replies = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith(("/stats", "memory"))]
    assert len(replies) == 3, r.stdout
    k, p, reused, d, c, nctx, stop = turns[0]
    assert reused == 0 and c == p + d and nctx == 512 and stop == "max_tokens"
    for prev, cur in zip(turns, turns[1:]):
        _, p, reused, d, c, _, stop = cur
        assert reused == prev[4]  # starts where the previous turn's context ended
        assert c == reused + p + d  # and grows by only this turn's tokens
        assert p < reused
    # Exactly the new turn: the pending last reply token + the Llama 2 continuation text.
    for i in (1, 2):
        assert turns[i][1] == 1 + n_tokens(hpl, f" </s><s>[INST] {users[i]} [/INST]")
    stats = [tuple(map(int, m.groups())) for m in STATS.finditer(r.stdout)]
    assert stats == [(turns[1][4], 1, 512), (turns[2][4], 1, 512)]
    assert "last prefill %d tokens" % turns[2][1] in r.stdout
    assert "KV cache" in r.stdout and "peak RSS" in r.stdout


def test_reset_clears(hpl):
    r, turns = chat(hpl, ["Hello there.", "/reset", "/stats", "Hello there.", "/quit", "Ignored."])
    assert len(turns) == 2, r.stderr
    assert "/reset: new conversation" in r.stdout
    assert STATS.search(r.stdout).groups() == ("0", "0", "512")
    # the same first turn from scratch: no reuse, same prefill, same (greedy) reply
    assert turns[1][2] == 0 and turns[1][1] == turns[0][1] and turns[1][4] == turns[0][4]
    replies = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith(("/", "memory"))]
    assert len(replies) == 2 and replies[0] == replies[1]


def test_small_context_carries_forward(hpl):
    users = ["Tell me a story about a cat.", "What did the cat eat?", "And then?", "Ok.", "More!"]
    r, turns = chat(hpl, users + ["/stats"], ctx=64)
    assert len(turns) == len(users), r.stderr  # every turn was answered
    assert "context full: need" in r.stderr and ", have 64" in r.stderr
    assert re.search(r"restarting the conversation with the last \d exchanges? carried forward", r.stderr)
    assert any(t[2] == 0 for t in turns[1:])  # a restart re-prefilled from position 0
    assert all(t[4] <= 64 for t in turns)
    assert int(STATS.search(r.stdout).group(1)) == turns[-1][4]


def test_three_exchanges_carried_forward(hpl):
    users = ["Tell me a story about a cat.", "What did the cat eat?", "And then?", "Ok.", "More!", "Why?"]
    r, turns = chat(hpl, users, ctx=192)
    assert len(turns) == len(users), r.stderr
    m = re.search(r"restarting the conversation with the last 3 exchanges carried forward "
                  r"\((\d+) tokens to prefill, (\d+) kept in the cache\)", r.stderr)
    assert m, r.stderr
    prefill, kept = int(m.group(1)), int(m.group(2))
    # The KV of the prefix the replay shares with the old conversation (BOS, "[INST]") is kept.
    assert 0 < kept < prefill
    restart = next(t for t in turns[1:] if t[1] == prefill and t[2] == kept)
    # the carried exchanges are re-prefilled: more than one user turn's worth of tokens
    assert restart[1] > 3 * n_tokens(hpl, "[INST] Ok. [/INST]")


def test_errors(hpl):
    # No template in the GGUF and none named: chat and run --chat refuse alike (serve: see
    # test_serve.py), naming their option; no guess by architecture.
    r = subprocess.run([hpl, "chat", "-m", MODEL], input="hi\n", capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "has no chat template" in r.stderr and "--template" in r.stderr
    r = subprocess.run([hpl, "run", "-m", MODEL, "--chat", "-p", "hi", "-n", "2"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "has no chat template" in r.stderr and "--chat-template" in r.stderr
    r = subprocess.run([hpl, "chat", "-m", MODEL, "--template", "nonsense"], input="hi\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown chat template 'nonsense'" in r.stderr
    r = subprocess.run([hpl, "chat", "-m", MODEL, "--template", "llama2", "-c", "16", "-n", "2"],
                       input="/bogus\n" + "word " * 40 + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "unknown command '/bogus'" in r.stderr and "too long" in r.stderr


def test_ctrl_c_stops_the_reply_and_a_second_one_exits(hpl):
    """Ctrl-C (SIGINT) while a reply is generated stops that reply, which stays in the
    conversation; Ctrl-C at the prompt then ends the chat with status 0.

    No timing is involved: stdout is a one-page pipe that the test stops reading, so hpl blocks
    writing the reply long before it could end (greedy stories260K does not end its reply; -n
    and -c leave room for several pages), and the signal comes once the page is full."""
    rfd, wfd = os.pipe()
    fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, 4096)
    page = fcntl.fcntl(wfd, fcntl.F_GETPIPE_SZ)
    proc = subprocess.Popen([hpl, "chat", "-m", MODEL, "--template", "llama2", "--temp", "0", "-n",
                             "100000", "-c", "8192", "-t", "2", "--verbose"],
                            stdin=subprocess.PIPE, stdout=wfd, stderr=subprocess.PIPE)
    os.close(wfd)
    out = bytearray()
    try:
        proc.stdin.write(b"Tell me a story.\n")
        proc.stdin.flush()
        deadline = time.time() + 120  # a hang guard, not a speed assumption
        while True:
            avail = struct.unpack("i", fcntl.ioctl(rfd, termios.FIONREAD, b"\0\0\0\0"))[0]
            if avail >= page - 64:  # full: the writer is blocked, or blocks at its next piece
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, f"the reply did not fill a {page}-byte pipe"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        reader = threading.Thread(target=lambda: [out.extend(b) for b in iter(
            lambda: os.read(rfd, 65536), b"")])
        reader.start()
        proc.stdin.write(b"/stats\n")  # answered once the stopped turn has ended
        proc.stdin.flush()
        while b"/stats:" not in out:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)  # at the prompt: quit
        rc = proc.wait(timeout=60)
        reader.join(60)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(rfd)
    assert rc == 0, err
    assert "[reply stopped by Ctrl-C" in err, err
    turns = [m.groups() for m in TURN.finditer(err)]
    assert len(turns) == 1 and turns[0][6] == "stopped", err
    assert int(turns[0][3]) < 8000  # far from -n and the context: it was cut short
    text = out.decode("utf-8", "replace")
    reply = text.split("/stats:")[0]
    assert len(reply) >= page - 64
    # The partial reply is kept: one exchange, one turn.
    assert re.search(r"/stats: context \d+ tokens .* of 8192; 1 exchanges, 1 turns", text), text[-500:]
