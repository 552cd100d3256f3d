"""`hpl info MODEL --memory` (computed from the metadata and tensor table alone) equals what
`hpl run --verbose` reports after loading the model and allocating the context, byte for byte,
for full-attention models and for Gemma 3's sliding-window KV ring; and the ring is smaller
than a full-context cache by what the layout says. For bert encoders (embedding and rerank) it
equals what `hpl embed / hpl rerank --verbose` allocate: no KV cache, the encoder's scratch for
one batch of tokens (checked against the buffer shapes from the model's config too)."""
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
BERT_FIXTURES = REPO / "tests" / "data" / "hf-tiny-bert"


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


def memory_bytes(stderr):
    m = re.search(r"memory bytes: weights mapped (\d+), converted (\d+), KV cache (\d+), scratch (\d+)",
                  stderr)
    assert m, stderr
    return dict(zip(["weights_mapped_bytes", "weights_converted_bytes", "kv_bytes", "scratch_bytes"],
                    map(int, m.groups())))


def loaded(hpl, path, *opts):
    r = subprocess.run([str(hpl), "run", "-m", str(path), "--ids", "1 2 3", "-n", "1", "--temp", "0",
                        "--verbose", *opts], check=True, capture_output=True, text=True)
    return memory_bytes(r.stderr)


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


@pytest.fixture(scope="module")
def berts(tmp_path_factory):
    pytest.importorskip("safetensors")
    sys.path.insert(0, str(REPO / "model"))
    from hpl_convert.convert import convert

    d = tmp_path_factory.mktemp("mem-bert")
    out = {}
    for name in ("bert", "bert-rerank"):
        for outtype in ("f32", "f16"):
            out[name, outtype] = d / f"{name}.{outtype}.gguf"
            convert(str(BERT_FIXTURES / name), str(out[name, outtype]), outtype=outtype, progress=False,
                    log=lambda *_: None)
    return out


def bert_scratch(cfg, n_ctx, n_ubatch, threads):
    """The encoder's buffers from the config alone: x, q, k, v, att, proj (T, E) and ff (T, F)
    floats, per thread scores (n, n) + V^T (D, n), and the matmuls' q8_0 / q8_K activations of
    T rows of max(E, F) (blocks of 32 -> 34 bytes, of 256 -> 292 bytes)."""
    e, f, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    n = min(n_ctx, cfg["max_position_embeddings"])
    t, d, w = max(n_ubatch, n), e // heads, max(e, f)
    floats = 6 * t * e + t * f + threads * (n * n + d * n)
    return 4 * floats + t * -(-w // 32) * 34 + t * -(-w // 256) * 292


# (ctx, threads, micro-batch): a context under, at and over the 64 positions of the fixtures.
BERT_OPTS = [("16", "1", "512"), ("64", "2", "512"), ("100", "3", "512"), ("32", "2", "8")]


@pytest.mark.parametrize("outtype", ["f32", "f16"])
@pytest.mark.parametrize("name", ["bert", "bert-rerank"])
@pytest.mark.parametrize("ctx,threads,ubatch", BERT_OPTS)
def test_estimate_equals_loaded_bert(hpl, berts, name, outtype, ctx, threads, ubatch):
    path = berts[name, outtype]
    est = estimate(hpl, path, "-c", ctx, "-t", threads, "--ubatch", ubatch)
    assert est["kind"] == ("rerank" if name == "bert-rerank" else "embed")
    assert est["cache_type"] == "none" and est["kv_bytes"] == 0
    cfg = json.loads((BERT_FIXTURES / name / "config.json").read_text())
    assert est["scratch_bytes"] == bert_scratch(cfg, int(ctx), int(ubatch), int(threads))
    cmd = (["embed", "-p", "hello world"] if name == "bert" else ["rerank", "-q", "hello", "-d", "world"])
    if ubatch == "512":  # the embed / rerank commands' micro-batch
        r = subprocess.run([str(hpl), *cmd, "-m", str(path), "-c", ctx, "-t", threads, "--verbose"],
                           check=True, capture_output=True, text=True)
        got = memory_bytes(r.stderr)
        for key, value in got.items():
            assert est[key] == value, (name, outtype, ctx, key)
        assert "KV cache 0.0 MiB (none)" in r.stderr


def test_text_estimate_says_encoder_has_no_kv_cache(hpl, berts):
    r = subprocess.run([str(hpl), "info", str(berts["bert", "f32"]), "--memory"], check=True,
                       capture_output=True, text=True)
    assert "KV cache          none (an encoder, embed" in r.stdout
    assert "memory for texts of up to 64 tokens (batches of 512" in r.stdout


def test_default_estimate_is_what_embed_allocates(hpl, berts):
    """Without -c / --ubatch, info --memory takes hpl embed's defaults for an embedding model
    (its whole context, batches of 512), not hpl run's."""
    path = berts["bert", "f32"]
    est = estimate(hpl, path, "-t", "2")
    assert est["n_ubatch"] == 512 and est["n_ctx"] == 64
    r = subprocess.run([str(hpl), "embed", "-m", str(path), "-p", "hello", "-t", "2", "--verbose"],
                       check=True, capture_output=True, text=True)
    got = memory_bytes(r.stderr)
    for key, value in got.items():
        assert est[key] == value, key
