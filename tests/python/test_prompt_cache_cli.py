"""`hpl run` / `hpl chat` --prompt-cache FILE: the first run saves the prompt's prefix KV, the
next reuses what its prompt shares with it; output is the same as without the file; a file
from another model (or a corrupt one) is a clear error."""
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "tests", "data", "models")
MODEL = os.path.join(MODELS, "stories260K.gguf")
OTHER = os.path.join(MODELS, "TinyStories-656K.f16.gguf")
PROMPT = "Once upon a time, there was a little girl named Lily. She loved to"


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    return p


def run(hpl, prompt, *extra, model=MODEL, check=True):
    r = subprocess.run([hpl, "run", "-m", model, "-p", prompt, "-n", "16", "--temp", "0", "-t", "1",
                        "-c", "256", "--ubatch", "8", *extra], capture_output=True, text=True,
                       timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def reuse(stderr):
    m = re.search(r"prompt cache .*: (\d+) tokens reused, (\d+) saved", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


def test_run_saves_then_reuses_the_prompt_prefix(hpl, tmp_path):
    f = str(tmp_path / "p.cache")
    want = run(hpl, PROMPT).stdout
    first = run(hpl, PROMPT, "--prompt-cache", f, "--verbose")
    assert first.stdout == want
    used, saved = reuse(first.stderr)
    assert used == 0 and saved > 10 and os.path.getsize(f) > 0
    second = run(hpl, PROMPT, "--prompt-cache", f, "--verbose")
    assert second.stdout == want
    assert reuse(second.stderr) == (saved, 0)  # only the last token evaluated
    assert re.search(r"^prompt: 1 tokens", second.stderr, re.M), second.stderr
    # A prompt that shares only the start: that part is reused, the file rewritten.
    other = "Once upon a time, there was a big dog."
    third = run(hpl, other, "--prompt-cache", f, "--verbose")
    assert third.stdout == run(hpl, other).stdout
    used, saved = reuse(third.stderr)
    assert 5 < used < saved + 10 and saved > used


def test_run_refuses_another_models_file(hpl, tmp_path):
    f = str(tmp_path / "p.cache")
    run(hpl, PROMPT, "--prompt-cache", f)
    r = run(hpl, PROMPT, "--prompt-cache", f, model=OTHER, check=False)
    assert r.returncode != 0 and "another model" in r.stderr, r.stderr
    with open(f, "r+b") as fh:  # flip a byte in the KV section
        fh.seek(os.path.getsize(f) - 20)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0xFF]))
    r = run(hpl, PROMPT, "--prompt-cache", f, check=False)
    assert r.returncode != 0 and "checksum" in r.stderr, r.stderr


def chat(hpl, text, *extra):
    r = subprocess.run([hpl, "chat", "-m", MODEL, "--template", "llama2", "-n", "12", "--temp", "0",
                        "-t", "1", "-c", "256", "--system", "You tell tiny stories about cats and dogs.",
                        *extra], input=text + "\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_chat_first_turn_reuses_the_system_prefix(hpl, tmp_path):
    f = str(tmp_path / "c.cache")
    a = chat(hpl, "Tell me about a cat.", "--prompt-cache", f, "--verbose")
    assert reuse(a.stderr)[0] == 0
    b = chat(hpl, "Tell me about a dog.", "--prompt-cache", f, "--verbose")
    assert reuse(b.stderr)[0] > 10  # the system message and the turn's opening
    assert b.stdout == chat(hpl, "Tell me about a dog.").stdout
