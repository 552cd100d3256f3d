"""One validation of request inputs for the C API, the CLI and the server
(runtime/request_checks.h): `hpl run` / `hpl chat` refuse the sampling values and token limits
the server refuses, with the same messages, and every front end refuses text that is not valid
UTF-8, naming the field and the byte offset. On stories260K.
"""
import os
import subprocess

import pytest

from test_serve import hpl, server, post  # noqa: F401  (fixtures: a running `hpl serve`)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "tests", "data", "models", "stories260K.gguf")

# (CLI option, value, server field, server value, the shared message)
BAD_SAMPLING = [
    ("--temp", "-1", "temperature", -1, "temperature must be in [0, 2], got -1"),
    ("--top-p", "2", "top_p", 2, "top_p must be in (0, 1], got 2"),
    ("--top-k", "-3", "top_k", -3, "top_k must be in [0, 1048576], got -3"),
    ("--min-p", "5", "min_p", 5, "min_p must be in [0, 1], got 5"),
    ("--repeat-penalty", "0", "repeat_penalty", 0, "repeat_penalty must be in (0, 10], got 0"),
    ("-n", "-5", "max_tokens", -5, "max_tokens must be in [1, 2147483647], got -5"),
]


def run(hpl, *args, stdin=None):
    return subprocess.run([hpl, *args], input=stdin, capture_output=True, timeout=120)


@pytest.mark.parametrize("opt,value,field,server_value,message", BAD_SAMPLING)
def test_cli_and_server_refuse_the_same_values_with_the_same_message(
        hpl, server, opt, value, field, server_value, message):  # noqa: F811
    r = run(hpl, "run", "-m", MODEL, "-p", "Once upon a time", "-t", "1", opt, value)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert f"{opt}: {message}" in err, err
    c = run(hpl, "chat", "-m", MODEL, "--template", "llama2", "-t", "1", opt, value, stdin=b"")
    assert c.returncode != 0 and f"{opt}: {message}" in c.stderr.decode(), c.stderr
    resp = post(server, "/v1/completions", {"prompt": "Once", field: server_value})
    assert resp.status_code == 400, resp.text
    e = resp.json()["error"]
    assert e["param"] == field and e["message"] == message, e


def test_cli_keeps_its_token_limit_conventions(hpl):
    # -1: until the end of generation; 0: evaluate the prompt only. Both still accepted.
    for n in ("-1", "0"):
        r = run(hpl, "run", "-m", MODEL, "-p", "Once upon a time", "-t", "1", "-c", "64",
                "--temp", "0", "-n", n)
        assert r.returncode == 0, r.stderr


def test_cli_refuses_invalid_utf8_prompt_system_and_stop(hpl):
    r = run(hpl, "run", "-m", MODEL, "-t", "1", "-p", b"Once \xff upon")
    assert r.returncode != 0
    assert "prompt is not valid UTF-8 at byte 5" in r.stderr.decode(errors="replace")
    r = run(hpl, "run", "-m", MODEL, "-t", "1", "-p", "Once", "--stop", "ok", "--stop", b"\xc0\xaf")
    assert r.returncode != 0
    assert "--stop value 2 is not valid UTF-8 at byte 0" in r.stderr.decode(errors="replace")
    r = run(hpl, "chat", "-m", MODEL, "--template", "llama2", "-t", "1", "--system", b"ab\xed\xa0\x80",
            stdin=b"")
    assert r.returncode != 0
    assert "--system is not valid UTF-8 at byte 2" in r.stderr.decode(errors="replace")


def test_chat_skips_an_invalid_utf8_line_and_goes_on(hpl):
    r = run(hpl, "chat", "-m", MODEL, "--template", "llama2", "-t", "1", "--temp", "0", "-n", "4",
            "-c", "256", "--verbose", stdin=b"caf\xc3\n/stats\nhello\n")
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode(errors="replace")
    assert "message is not valid UTF-8 at byte 3; it was not sent" in err, err
    assert "[turn 1]" in err and "[turn 2]" not in err, err  # only "hello" became a turn


def test_server_refuses_invalid_utf8(server):  # noqa: F811
    import requests
    body = b'{"prompt": "Once \xff upon", "max_tokens": 2}'
    r = requests.post(server + "/v1/completions", data=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    # A lone surrogate escape decodes to invalid UTF-8: refused too.
    r = requests.post(server + "/v1/completions", data=b'{"prompt": "a\\ud800b", "max_tokens": 2}',
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
