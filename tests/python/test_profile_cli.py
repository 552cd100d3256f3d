"""`hpl profile`: per-op percentages sum to ~100, every matmul role of the model appears, the
JSON and the table agree in shape."""
import json
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "tests", "data", "models")
ROLES = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output"}
ALWAYS = ROLES | {"attention", "norm", "rope", "activation", "kv_store", "add", "embedding", "sampling"}


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "profile", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl has no profile command")
    return p


def profile(hpl, model, *args):
    r = subprocess.run([hpl, "profile", "-m", os.path.join(MODELS, model), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


# F32 weights (no activation quantization) and Q8_0 weights (activations -> Q8_0 first)
@pytest.mark.parametrize("model,quantized", [("stories260K.gguf", False),
                                             ("tinyllamas-stories-260k-q8_0.gguf", True)])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_json(hpl, model, quantized, threads):
    j = json.loads(profile(hpl, model, "-p", "40", "-n", "8", "-t", threads, "--json"))
    assert j["n_prompt"] == 40 and j["n_gen"] == 8 and j["n_threads"] == int(threads)
    for phase, n in (("prefill", 40), ("decode", 8)):
        ph = j[phase]
        assert ph["n_tokens"] == n and ph["tokens_per_s"] > 0
        ops = {o["op"]: o for o in ph["ops"]}
        assert len(ops) == len(ph["ops"])  # each kind once
        assert ALWAYS <= set(ops), sorted(ops)
        assert ("quantize_act" in ops) == quantized
        assert abs(sum(o["pct"] for o in ph["ops"]) - 100.0) < 0.01
        total_ms = ph["ms"] if phase == "prefill" else ph["ms_per_token"]
        assert abs(sum(o["ms"] for o in ph["ops"]) - total_ms) < 1e-6 * total_ms + 1e-9
        pcts = [o["pct"] for o in ph["ops"]]
        assert pcts == sorted(pcts, reverse=True)
        assert all(o["ms"] > 0 for o in ph["ops"])
        assert all(o["kind"] == ("matmul" if o["op"] in ROLES else o["op"]) for o in ph["ops"])
        # most of the time is covered by a hook, not "other"
        assert ops.get("other", {"pct": 0})["pct"] < 50


def test_table(hpl):
    out = profile(hpl, "stories260K.gguf", "-p", "16", "-n", "4", "-t", "2")
    for phase in ("prefill: 16 tokens", "decode: 4 tokens"):
        assert phase in out
    blocks = out.split("\ndecode:")
    assert len(blocks) == 2
    for b in blocks:
        rows = re.findall(r"^  (mm \w+|\w+)\s+([0-9.]+)\s+([0-9.]+)%$", b, re.M)
        names = {n.removeprefix("mm ") for n, _, _ in rows}
        assert ROLES <= names
        assert abs(sum(float(p) for _, _, p in rows) - 100.0) < 0.2


def test_errors(hpl):
    r = subprocess.run([hpl, "profile", "-m", os.path.join(MODELS, "stories260K.gguf"), "-p", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "-p" in r.stderr
    r = subprocess.run([hpl, "profile"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "-m MODEL" in r.stderr
