"""`hpl info MODEL --memory` (computed from the metadata and tensor table alone) equals what
`hpl run --verbose` reports after loading the model and allocating the context, byte for byte,
for full-attention models and for Gemma 3's sliding-window KV ring; and the ring is smaller
than a full-context cache by what the layout says."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
MODELS = REPO / "tests" / "data" / "models"
FIXTURES = REPO / "tests" / "data" / "hf-tiny"


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


@pytest.fixture(scope="module")
def gemma_tiny(tmp_path_factory):
    pytest.importorskip("transformers")
    sys.path.insert(0, str(REPO / "model"))
    from hpl_convert.convert import convert

    out = tmp_path_factory.mktemp("mem") / "gemma3.f16.gguf"
    convert(str(FIXTURES / "gemma3"), str(out), outtype="f16", progress=False, log=lambda *_: None)
    return out


def estimate(hpl, path, *opts):
    r = subprocess.run([str(hpl), "info", str(path), "--memory", "--json", *opts],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["memory"]


def loaded(hpl, path, *opts):
    r = subprocess.run([str(hpl), "run", "-m", str(path), "--ids", "1 2 3", "-n", "1", "--temp", "0",
                        "--verbose", *opts], check=True, capture_output=True, text=True)
    m = re.search(r"memory bytes: weights mapped (\d+), converted (\d+), KV cache (\d+), scratch (\d+)",
                  r.stderr)
    assert m, r.stderr
    return dict(zip(["weights_mapped_bytes", "weights_converted_bytes", "kv_bytes", "scratch_bytes"],
                    map(int, m.groups())))


OPTS = [("-c", "64", "-t", "1"), ("-c", "512", "-t", "2", "--ubatch", "7"), ("-c", "1000", "-t", "3")]


@pytest.mark.parametrize("opts", OPTS)
@pytest.mark.parametrize("name", ["stories260K.gguf", "TinyLLama-v0.Q4_0.from-ggmlv3.gguf",
                                  "tinystories-656k-q8_0.gguf"])
def test_estimate_equals_loaded_full_attention(hpl, name, opts):
    est = estimate(hpl, MODELS / name, *opts)
    got = loaded(hpl, MODELS / name, *opts)
    for key, value in got.items():
        assert est[key] == value, (name, opts, key)
    assert est["kv_bytes"] == est["kv_bytes_full_context"]  # no sliding-window layers


# Bytes of one position's K (or V) row of 32 values per cache type (kv_dim of the gemma3 fixture).
ROW32 = {"f16": 64, "f32": 128, "q8_0": 34, "q4_0": 18}


@pytest.mark.parametrize("cache_type", ["f16", "f32", "q8_0", "q4_0"])
@pytest.mark.parametrize("opts", OPTS)
def test_estimate_equals_loaded_sliding_window(hpl, gemma_tiny, opts, cache_type):
    opts = (*opts, "--cache-type", cache_type)
    est = estimate(hpl, gemma_tiny, *opts)
    got = loaded(hpl, gemma_tiny, *opts)
    for key, value in got.items():
        assert est[key] == value, (opts, key)
    # 5 sliding layers (window 4) hold min(n_ctx, 3 + B + max(B, 16)) positions, 1 global
    # layer all n_ctx; kv_dim = 1 head x 32, K and V rows of ROW32 bytes.
    n_ctx, b = est["n_ctx"], min(est["n_ubatch"], est["n_ctx"])
    ring = min(n_ctx, 3 + b + max(b, 16))
    assert est["cache_type"] == cache_type
    assert est["kv_bytes"] == (5 * ring + n_ctx) * ROW32[cache_type] * 2
    assert est["kv_bytes_full_context"] == 6 * n_ctx * ROW32[cache_type] * 2
    assert est["kv_bytes_f16"] == (5 * ring + n_ctx) * ROW32["f16"] * 2


def test_unknown_cache_type_is_refused(hpl):
    r = subprocess.run([str(hpl), "info", str(MODELS / "stories260K.gguf"), "--memory", "--cache-type", "q5_0"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "unknown KV cache type 'q5_0'" in r.stderr


@pytest.mark.parametrize("cmd", [["info", str(MODELS / "stories260K.gguf"), "--memory"],
                                 ["run", "-m", str(MODELS / "stories260K.gguf"), "-p", "hi", "-n", "1"]])
def test_quantized_cache_needs_head_dim_multiple_of_32(hpl, cmd):
    """stories260K has head_dim 8: a q8_0 block of 32 would span heads, so it is refused."""
    r = subprocess.run([str(hpl), *cmd, "--cache-type", "q8_0"], capture_output=True, text=True)
    assert r.returncode != 0 and "q8_0 needs head_dim a multiple of 32 (this model: 8)" in r.stderr
