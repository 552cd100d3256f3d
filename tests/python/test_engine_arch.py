"""Every architecture's code path against the numpy reference, on small random-weight GGUFs
written here with gguf.GGUFWriter (no trained qwen2 model fits in the test data, and the real
Gemma 3 model's 512-token sliding window is longer than any quick test prompt).

- llama: GQA, untied output, and tied output (no output.weight);
- qwen2: Q/K/V biases, NeoX RoPE;
- gemma3: head_dim != n_embd / n_head, QK-norm, post-norms, GeGLU, embedding scale, and a
  sliding window of 5 tokens on layers 0-4 and 6 (layer 5 global) with their own RoPE base,
  on a 16-token prompt, so the window really cuts keys off, also across prefill micro-batches.
Weights are F32 (exact architecture logic: tolerance 1e-3 of the logit range, the engine's
F16 K/V cache being the main difference) and Q8_0 (checked against the plain reference at 2e-2,
the activation-quantization tolerance of test_engine_logits.py).
The tokenizer metadata is copied from stories260K.gguf (512 tokens).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
VOCAB_SRC = REPO / "tests" / "data" / "models" / "stories260K.gguf"
sys.path.insert(0, str(REPO / "tests" / "reference"))
import forward  # noqa: E402

N_VOCAB = 512
PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


def copy_tokenizer(w):
    r = gguf.GGUFReader(str(VOCAB_SRC))
    f = r.fields
    w.add_tokenizer_model("llama")
    w.add_token_list(f["tokenizer.ggml.tokens"].contents())
    w.add_token_scores(f["tokenizer.ggml.scores"].contents())
    w.add_token_types(f["tokenizer.ggml.token_type"].contents())
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def write_model(path, arch, qtype, tied=False, seed=0, extra=None, file_arch=None):
    """Random weights of a small model of `arch`; matrices in qtype (F32 or Q8_0). extra(w),
    when given, adds keys or tensors; file_arch overrides general.architecture."""
    rng = np.random.default_rng(seed)
    E, L, F = 64, 7 if arch == "gemma3" else 3, 96
    H, Hkv = 4, 2
    D = 32 if arch == "gemma3" else E // H
    w = gguf.GGUFWriter(str(path), file_arch or arch)
    w.add_context_length(256)
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    w.add_layer_norm_rms_eps(1e-6 if arch == "gemma3" else 1e-5)
    if arch == "gemma3":
        w.add_key_length(D)
        w.add_value_length(D)
        w.add_sliding_window(5)
        w.add_rope_freq_base(1e6)
    elif arch == "qwen2":
        w.add_rope_freq_base(1e6)
    copy_tokenizer(w)

    def mat(name, rows, cols, scale=None):
        a = (rng.standard_normal((rows, cols)) * (scale or 1.0 / np.sqrt(cols))).astype(np.float32)
        if qtype == "q8_0":
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, a)

    def vec(name, n, center=1.0, spread=0.1):
        w.add_tensor(name, (center + spread * rng.standard_normal(n)).astype(np.float32))

    mat("token_embd.weight", N_VOCAB, E, scale=1.0 if arch != "gemma3" else 0.2)
    vec("output_norm.weight", E)
    if not tied:
        mat("output.weight", N_VOCAB, E)
    for il in range(L):
        p = f"blk.{il}."
        vec(p + "attn_norm.weight", E)
        mat(p + "attn_q.weight", H * D, E)
        mat(p + "attn_k.weight", Hkv * D, E)
        mat(p + "attn_v.weight", Hkv * D, E)
        if arch == "qwen2":
            vec(p + "attn_q.bias", H * D, 0.0, 0.5)
            vec(p + "attn_k.bias", Hkv * D, 0.0, 0.5)
            vec(p + "attn_v.bias", Hkv * D, 0.0, 0.5)
        if arch == "gemma3":
            vec(p + "attn_q_norm.weight", D)
            vec(p + "attn_k_norm.weight", D)
            vec(p + "post_attention_norm.weight", E)
            vec(p + "post_ffw_norm.weight", E)
        mat(p + "attn_output.weight", E, H * D)
        vec(p + "ffn_norm.weight", E)
        mat(p + "ffn_gate.weight", F, E)
        mat(p + "ffn_up.weight", F, E)
        mat(p + "ffn_down.weight", E, F)
    if extra:
        extra(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def engine_logits(hpl, path, ids, tmp_path, ubatch=None):
    out = tmp_path / "logits.f32"
    cmd = [str(hpl), "run", "-m", str(path), "--ids", " ".join(map(str, ids)), "-n", "0",
           "--dump-logits", str(out), "-t", "2", "-c", "64"]
    if ubatch:
        cmd += ["--ubatch", str(ubatch)]
    subprocess.run(cmd, check=True, capture_output=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


CASES = [("llama", False), ("llama", True), ("qwen2", False), ("gemma3", True)]


@pytest.mark.parametrize("qtype", ["f32", "q8_0"])
@pytest.mark.parametrize("arch,tied", CASES)
def test_architecture_matches_reference(hpl, tmp_path, arch, tied, qtype):
    path = write_model(tmp_path / f"{arch}.gguf", arch, qtype, tied)
    ref_model = forward.Model(str(path))
    assert ref_model.arch == arch
    ref = ref_model.forward(PROMPT, ref_model.new_cache(), 0)
    tol = 1e-3 if qtype == "f32" else 2e-2
    for ub in (None, 3):
        eng = engine_logits(hpl, path, PROMPT, tmp_path, ub)
        for pos in range(len(PROMPT)):
            rng = float(np.ptp(ref[pos]))
            err = float(np.abs(eng[pos] - ref[pos]).max())
            assert err <= tol * rng, f"{arch} {qtype} ubatch {ub}: position {pos}: {err} > {tol} x {rng}"
            top2 = np.sort(ref[pos])[-2:]
            if top2[1] - top2[0] > tol * rng:
                assert eng[pos].argmax() == ref[pos].argmax(), f"{arch}: argmax at {pos}"


def test_gemma3_sliding_window_is_what_the_reference_checks(tmp_path):
    """The window must matter in the case above, or the test would not cover it: a reference
    without sliding windows gives different logits at positions past the window."""
    path = write_model(tmp_path / "g.gguf", "gemma3", "f32", True)
    m = forward.Model(str(path))
    with_window = m.forward(PROMPT, m.new_cache(), 0)
    m.sliding_window = 1000  # same layers and RoPE bases, no key ever outside the window
    without = m.forward(PROMPT, m.new_cache(), 0)
    assert np.abs(with_window[:5] - without[:5]).max() < 1e-5
    assert np.abs(with_window[6:] - without[6:]).max() > 1e-2


def test_bad_model_gives_clear_error(hpl, tmp_path):
    path = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    copy_tokenizer(w)
    w.add_tensor("token_embd.weight", np.zeros((N_VOCAB, 64), np.float32))
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(64, np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 32), np.float32))  # wrong shape
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = subprocess.run([str(hpl), "run", "-m", str(path), "--ids", "1 2", "-n", "1"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "blk.0.attn_q.weight" in r.stderr and "shape" in r.stderr, r.stderr


REFUSALS = [
    # (arch, file_arch, extra, words the error must contain)
    ("llama", "mamba", None, ["unsupported architecture 'mamba'"]),
    ("llama", None, lambda w: w.add_float32("llama.attn_logit_softcapping", 30.0),
     ["llama.attn_logit_softcapping", "not implement"]),
    ("llama", None, lambda w: w.add_string("llama.rope.scaling.type", "yarn"), ["rope.scaling.type 'yarn'"]),
    ("llama", None, lambda w: w.add_uint32("llama.attention.sliding_window", 4096),
     ["llama.attention.sliding_window"]),
    ("llama", None, lambda w: w.add_tensor("blk.0.attn_output.bias", np.zeros(64, np.float32)),
     ["blk.0.attn_output.bias", "not implemented"]),
    ("qwen2", None, lambda w: w.add_tensor("rope_freqs.weight", np.ones(8, np.float32)),
     ["rope_freqs.weight", "qwen2"]),
    ("llama", None, lambda w: w.add_float32("llama.rope.scaling.attn_factor", 1.2), ["attn_factor"]),
]


@pytest.mark.parametrize("arch,file_arch,extra,words", REFUSALS)
def test_unimplemented_is_refused_by_name(hpl, tmp_path, arch, file_arch, extra, words):
    """An architecture, key or tensor the forward pass does not implement stops the load with
    a message naming it, rather than running a different model."""
    path = write_model(tmp_path / "m.gguf", arch, "f32", extra=extra, file_arch=file_arch)
    r = subprocess.run([str(hpl), "run", "-m", str(path), "--ids", "1 2", "-n", "1"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    for word in words:
        assert word in r.stderr, r.stderr
