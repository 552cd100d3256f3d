"""`hpl tokenize`: ids, --pieces, --no-bos, --parse-special, -f, errors."""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "tests", "data", "models")
SPM = os.path.join(REPO, "tests", "data", "tokenizer", "ggml-vocab-llama-spm.gguf")


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "tokenize", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl has no tokenize command")
    return p


def run(hpl, *args):
    return subprocess.run([hpl, "tokenize", *args], capture_output=True, text=True, timeout=120)


def test_ids_match_llama_cpp(hpl):
    # MODELS-EXPECTED.md: llama-tokenize --ids, BOS included.
    r = run(hpl, "-m", os.path.join(MODELS, "stories260K.gguf"), "-p", "Hello world")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1 346 306 414 263 304 341\n"
    r = run(hpl, "-m", os.path.join(MODELS, "TinyLLama-v0.Q4_0.from-ggmlv3.gguf"), "-p", "Hello world", "--no-bos")
    assert r.stdout.split() == ["16644", "924"]


def test_pieces(hpl):
    r = run(hpl, "-m", os.path.join(MODELS, "stories260K.gguf"), "-p", "hi 🙂\n", "--pieces")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1\t<s>"
    ids = [int(l.split("\t")[0]) for l in lines]
    assert ids[-5:-1] == [243, 162, 156, 133]  # byte fallback of the emoji
    assert lines[-1].endswith("\t\\n")          # newline shown escaped
    assert lines[-5].endswith("\t\\xF0")         # a lone byte shown as \xNN


def test_parse_special_and_file(hpl, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("<s>Hi</s>")
    on = run(hpl, "-m", SPM, "-f", str(f), "--no-bos", "--parse-special").stdout.split()
    off = run(hpl, "-m", SPM, "-f", str(f), "--no-bos").stdout.split()
    assert on[0] == "1" and on[-1] == "2"
    assert "1" not in off and "2" not in off


def test_errors(hpl, tmp_path):
    assert run(hpl, "-p", "x").returncode == 2                        # no model
    assert run(hpl, "-m", SPM).returncode == 2                        # no text
    assert run(hpl, "-m", SPM, "-p", "x", "--bogus").returncode == 2
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    r = run(hpl, "-m", str(bad), "-p", "x")
    assert r.returncode == 1 and "bad.gguf" in r.stderr
