"""Every architecture against Hugging Face transformers itself, through the converter.

tests/data/hf-tiny/<name>/ holds a tiny random-weight model per architecture (Llama 3.x
RoPE scaling, Llama 2 untied, SmolLM2 tied GQA, Qwen2.5 biases, Qwen3 QK-norm, Gemma 3
sliding window / attention scale / linear scaling, Phi-4-mini fused tensors / partial rotary /
LongRoPE) and the logits transformers' PyTorch forward gave for three prompts, made by
tests/reference/make_hf_fixtures.py (PyTorch is not needed here). Each folder is converted
with hpl-convert to F32, F16 and BF16 and run by the engine.

Tolerances (max |engine - transformers| at each position, as a fraction of transformers'
logit range there):
- F32, run with an F32 K/V cache (`--cache-type f32`): 1e-5 (observed 2.4e-7 to 4.8e-7).
- F16, run with the default F16 K/V cache: 5e-4. The fixture weights are float16-exact, so
  both files hold exactly the weights transformers ran in float32; what remains is the F16
  K/V cache, observed at 0.3e-4 (gemma3) to 2.7e-4 (phi3) of the range.
- BF16: 2e-2 (the weights themselves are rounded to 8 mantissa bits).
- Quantized K/V caches on the fixtures with head_dim 32 (qwen3, gemma3), F32 weights: q8_0
  1e-2 (observed 1.1e-3 and 4.1e-3), q4_0 1.5e-1 (observed 1.8e-2 and 6.6e-2), each further
  from transformers than the finer type.
The argmax must agree wherever transformers' top-2 margin exceeds the tolerance; greedy
continuations (12 ids; transformers recomputes the whole sequence per step) must be equal on
F32 and F16.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
FIXTURES = REPO / "tests" / "data" / "hf-tiny"
sys.path.insert(0, str(REPO / "model"))
from hpl_convert.convert import convert  # noqa: E402

NAMES = ["llama3", "llama2", "smollm2", "qwen2", "qwen3", "gemma3", "phi3"]
TOL = {"f32": 1e-5, "f16": 5e-4, "bf16": 2e-2}
# The K/V cache each weight type is checked with: F32 weights get an F32 cache (the default
# stays f16 for every model, as llama.cpp's; see README "KV cache").
CACHE = {"f32": ("--cache-type", "f32"), "f16": (), "bf16": ()}
KV_TOL = {"q8_0": 1e-2, "q4_0": 1.5e-1}


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-tiny-gguf")


def expected(name):
    d = FIXTURES / name
    exp = json.loads((d / "expected.json").read_text())
    logits = np.load(d / "logits.npz")
    exp["logits"] = [logits[f"logits_{i}"] for i in range(len(exp["prompts"]))]
    return exp


_converted: dict = {}


def converted(src: Path, out_dir: Path, outtype: str, tag: str = "") -> Path:
    out = out_dir / f"{src.name}{tag}.{outtype}.gguf"
    if out not in _converted:
        convert(str(src), str(out), outtype=outtype, progress=False, log=lambda *_: None)
        _converted[out] = True
    return out


def engine_logits(hpl, path, ids, n_ctx, tmp_path, extra=()):
    out = tmp_path / "logits.f32"
    subprocess.run([str(hpl), "run", "-m", str(path), "--ids", " ".join(map(str, ids)), "-n", "0",
                    "--dump-logits", str(out), "-t", "2", "-c", str(n_ctx), *extra],
                   check=True, capture_output=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def engine_greedy(hpl, path, ids, n, n_ctx, tmp_path, extra=()):
    out = tmp_path / "ids.txt"
    subprocess.run([str(hpl), "run", "-m", str(path), "--ids", " ".join(map(str, ids)), "-n", str(n),
                    "--temp", "0", "--dump-ids", str(out), "-t", "2", "-c", str(n_ctx), *extra],
                   check=True, capture_output=True)
    return [int(x) for x in out.read_text().split()]


def rel_errors(eng, ref):
    """Per position: max |eng - ref| / range(ref)."""
    return np.abs(eng - ref).max(axis=1) / np.ptp(ref, axis=1)


def check(eng, ref, tol, what):
    assert eng.shape == ref.shape, what
    err = rel_errors(eng, ref)
    for pos in range(ref.shape[0]):
        assert err[pos] <= tol, f"{what}: position {pos}: max |diff| is {err[pos]:.3g} of the range > {tol}"
        top2 = np.sort(ref[pos])[-2:]
        if top2[1] - top2[0] > tol * np.ptp(ref[pos]):
            assert int(eng[pos].argmax()) == int(ref[pos].argmax()), f"{what}: argmax at position {pos}"


@pytest.mark.parametrize("outtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(hpl, gguf_dir, tmp_path, name, outtype):
    exp = expected(name)
    path = converted(FIXTURES / name, gguf_dir, outtype)
    for i, ids in enumerate(exp["prompts"]):
        eng = engine_logits(hpl, path, ids, exp["n_ctx"][i], tmp_path, CACHE[outtype])
        check(eng, exp["logits"][i], TOL[outtype], f"{name} {outtype} prompt {i}")


@pytest.mark.parametrize("name", ["qwen3", "gemma3"])
def test_quantized_kv_cache_close_to_transformers(hpl, gguf_dir, tmp_path, name):
    """q8_0 / q4_0 K/V rows (head_dim 32: one block per head) stay within their tolerance, and
    each coarser cache type is further from transformers than the finer one."""
    exp = expected(name)
    path = converted(FIXTURES / name, gguf_dir, "f32")
    for i, ids in enumerate(exp["prompts"]):
        worst = {}
        for ct in ("f32", "f16", "q8_0", "q4_0"):
            eng = engine_logits(hpl, path, ids, exp["n_ctx"][i], tmp_path, ("--cache-type", ct))
            worst[ct] = rel_errors(eng, exp["logits"][i]).max()
            if ct in KV_TOL:
                check(eng, exp["logits"][i], KV_TOL[ct], f"{name} {ct} prompt {i}")
        assert worst["f32"] < worst["f16"] < worst["q8_0"] < worst["q4_0"], (name, i, worst)


@pytest.mark.parametrize("outtype", ["f32", "f16"])
@pytest.mark.parametrize("name", NAMES)
def test_greedy_equals_transformers(hpl, gguf_dir, tmp_path, name, outtype):
    exp = expected(name)
    path = converted(FIXTURES / name, gguf_dir, outtype)
    for i, ids in enumerate(exp["prompts"]):
        want = exp["greedy"][i]
        got = engine_greedy(hpl, path, ids, len(want), exp["n_ctx"][i], tmp_path, CACHE[outtype])
        assert got == want, f"{name} prompt {i}"


# --- the fixtures can fail: each scaling feature changes the logits far beyond the tolerance ---

def test_llama3_rope_scaling_is_visible(hpl, gguf_dir, tmp_path):
    """The same weights converted without the llama3 rope scaling differ from transformers."""
    src = gguf_dir / "llama3-noscaling"
    if not src.exists():
        shutil.copytree(FIXTURES / "llama3", src)
        cfg = json.loads((src / "config.json").read_text())
        cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg["rope_parameters"]["rope_theta"]}
        (src / "config.json").write_text(json.dumps(cfg))
    path = converted(src, gguf_dir, "f32")
    exp = expected("llama3")
    ids = exp["prompts"][2]
    err = rel_errors(engine_logits(hpl, path, ids, 64, tmp_path, CACHE["f32"]), exp["logits"][2])
    assert err.max() > 10 * TOL["f16"], f"only {err.max():.3g}: the fixture would not catch ignored rope_freqs"


def test_phi3_long_and_short_factors_differ(hpl, gguf_dir, tmp_path):
    """A short prompt run with a context above the original one takes the long factors (as
    llama.cpp does), which transformers only uses for sequences that long: the fixture tells
    the two apart."""
    exp = expected("phi3")
    path = converted(FIXTURES / "phi3", gguf_dir, "f32")
    ids = exp["prompts"][1]
    assert exp["n_ctx"][1] == 16
    err = rel_errors(engine_logits(hpl, path, ids, 64, tmp_path, CACHE["f32"]), exp["logits"][1])
    assert err.max() > 10 * TOL["f16"]


def test_gemma3_window_and_scale_are_visible(hpl, gguf_dir, tmp_path):
    """Without the sliding window, or with the default 1/sqrt(head_dim) query scale, the
    engine's logits leave the tolerance."""
    exp = expected("gemma3")
    ids = exp["prompts"][2]
    for change in ("no-window", "default-scale"):
        src = gguf_dir / f"gemma3-{change}"
        if not src.exists():
            shutil.copytree(FIXTURES / "gemma3", src)
            cfg = json.loads((src / "config.json").read_text())
            if change == "no-window":
                cfg["sliding_window"] = 4096
            else:
                cfg["query_pre_attn_scalar"] = cfg["head_dim"]
            (src / "config.json").write_text(json.dumps(cfg))
        path = converted(src, gguf_dir, "f32")
        err = rel_errors(engine_logits(hpl, path, ids, 64, tmp_path, CACHE["f32"]), exp["logits"][2])
        assert err.max() > 10 * TOL["f16"], change


@pytest.mark.parametrize("cache_type", ["f32", "q8_0"])
@pytest.mark.parametrize("ubatch", [1, 3, 7])
def test_gemma3_sliding_window_ring_buffer(hpl, gguf_dir, tmp_path, ubatch, cache_type):
    """Gemma 3's sliding layers keep only their window (4 here) plus a micro-batch and slack
    (16 positions at most for these micro-batches) instead of the whole 512-position context,
    moving the kept positions to the front many times over a 24-token prompt and 12 greedy
    steps: logits and greedy ids still equal transformers' (q8_0 rows: within its tolerance)."""
    exp = expected("gemma3")
    path = converted(FIXTURES / "gemma3", gguf_dir, "f32")
    extra = ("--ubatch", str(ubatch), "--cache-type", cache_type)
    tol = TOL["f32"] if cache_type == "f32" else KV_TOL[cache_type]
    for i, ids in enumerate(exp["prompts"]):
        check(engine_logits(hpl, path, ids, 512, tmp_path, extra), exp["logits"][i], tol,
              f"gemma3 prompt {i} ubatch {ubatch} {cache_type}")
        if cache_type == "f32":
            assert engine_greedy(hpl, path, ids, len(exp["greedy"][i]), 512, tmp_path, extra) == exp["greedy"][i]
