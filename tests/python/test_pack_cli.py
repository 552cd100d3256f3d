"""`hpl pack`: GGUF files with the matmul weights stored in hpl's packed layouts.

  - a packed file gives the same logits, bit for bit, as the plain file repacked at load
    (same kernels, same bytes), and the same greedy text; with HPL_REPACK=0 and with
    HPL_ISA=ref (no packed kernels: unpacked at load) it equals the plain file run the same way;
  - pack -> unpack gives back every tensor byte for byte;
  - hpl info names the packed types and says the file is packed;
  - bad packed files (no key, a row count not a multiple of 8, an unknown layout version) are
    clear errors naming the tensor or key; packing a packed file, unpacking a plain one too;
  - our Python tools: the gguf package refuses a packed file with an error (not a crash);
  - llama.cpp refuses a packed file with an error (when its binaries are around).
Runs on the small test models, and on Gemma 3 270M (tied output) when it is installed.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_convert as tc  # noqa: E402  (helpers only: paths, the hpl binary)

gguf = tc.gguf
MODELS = os.path.join(tc.DATA, "models")
SMALL = ["TinyLLama-v0.Q4_K_M.requant.gguf", "TinyLLama-v0.Q4_0.from-ggmlv3.gguf",
         "TinyLLama-v0.Q8_0.requant.gguf", "TinyLLama-v0.Q6_K.requant.gguf"]
IDS = [1, 415, 2936, 9060, 285, 1142, 28705, 29871, 13, 1014, 338, 263]
PACKED_NAMES = {"q4_0x8", "q5_0x8", "q8_0x8", "q4_Kx8", "q5_Kx8", "q6_Kx8"}


def hpl_bin() -> str:
    hpl = tc.hpl_binary()
    if hpl is None:
        pytest.skip("hpl not built (set HPL_BUILD_DIR)")
    return hpl


def run(args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, env=e)
    if check:
        assert p.returncode == 0, f"{args}: {p.stderr.strip()}"
    return p


def pack(src, dst, unpack=False):
    return run([hpl_bin(), "pack", str(src), str(dst)] + (["--unpack"] if unpack else []))


def logits(model, tmp_path, env=None, ids=IDS):
    dump = tmp_path / "logits.bin"
    if dump.exists():
        dump.unlink()
    run([hpl_bin(), "run", "-m", str(model), "--ids", " ".join(map(str, ids)), "--dump-logits",
         str(dump), "-n", "0", "-t", "2"], env)
    return np.fromfile(dump, dtype=np.float32)


def greedy(model, env=None):
    p = run([hpl_bin(), "run", "-m", str(model), "-p", "Once upon a time", "-n", "24", "--temp",
             "0", "-t", "2"], env)
    return p.stdout


def tensors(path):
    """name -> (type id, raw bytes, shape) read by hand (the gguf package refuses packed ids)."""
    out = {}
    info = run([hpl_bin(), "info", str(path), "--tensors", "--json"]).stdout
    j = json.loads(info)
    data = open(path, "rb").read()
    for t in j["tensors"]:
        out[t["name"]] = (t["type_id"], data[t["file_offset"]:t["file_offset"] + t["bytes"]], t["shape"])
    return out, j


@pytest.fixture(scope="module")
def gemma():
    try:
        p = subprocess.run(["bash", os.path.join(tc.REPO, "scripts", "default-model.sh")],
                           capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("default model not available")
    path = p.stdout.strip()
    if p.returncode != 0 or not os.path.exists(path):
        pytest.skip("default model (Gemma 3 270M Q4_K_M) not installed")
    return path


@pytest.mark.parametrize("name", SMALL)
def test_packed_file_same_logits_and_round_trip(name, tmp_path):
    src = os.path.join(MODELS, name)
    dst = tmp_path / "packed.gguf"
    p = pack(src, dst)
    assert "tensors packed" in p.stderr
    plain_t, _ = tensors(src)
    packed_t, j = tensors(dst)
    assert j["packed_layout"] == 1
    n_packed = sum(1 for t in j["tensors"] if t["type"] in PACKED_NAMES)
    assert n_packed > 0 and j["packed_tensor_count"] == n_packed
    assert set(plain_t) == set(packed_t)
    for k, (tid, raw, shape) in packed_t.items():
        assert len(raw) == len(plain_t[k][1]) and shape == plain_t[k][2], k
        if tid >= 0x1000:  # packed: the source's id + 0x1000, same bytes reordered
            assert tid - 0x1000 == plain_t[k][0] and raw != plain_t[k][1], k
            assert sorted(raw) == sorted(plain_t[k][1]), k
        else:
            assert (tid, raw) == plain_t[k][:2], k
    # Same logits, bit for bit: repacked at load vs mapped packed.
    want = logits(src, tmp_path)
    assert np.array_equal(logits(dst, tmp_path), want)
    # HPL_REPACK=0: the packed file is unpacked at load and runs the GGUF layout's kernels.
    off = {"HPL_REPACK": "0"}
    assert np.array_equal(logits(dst, tmp_path, off), logits(src, tmp_path, off))
    # The reference body has no packed kernels: unpacked at load, with a log line.
    ref = {"HPL_ISA": "ref"}
    assert np.array_equal(logits(dst, tmp_path, ref), logits(src, tmp_path, ref))
    p = run([hpl_bin(), "run", "-m", str(dst), "-p", "a", "-n", "1", "-v"], ref, check=False)
    assert "unpacked at load" in p.stderr and "ref body has no" in p.stderr, p.stderr
    # Round trip: every tensor byte comes back.
    back = tmp_path / "unpacked.gguf"
    pack(dst, back, unpack=True)
    back_t, jb = tensors(back)
    assert jb["packed_layout"] == 0
    assert {k: v[:2] for k, v in back_t.items()} == {k: v[:2] for k, v in plain_t.items()}
    assert np.array_equal(logits(back, tmp_path), want)


@pytest.mark.parametrize("arch", ["phi3", "qwen2", "gemma3"])
def test_hf_tiny_architectures(arch, tmp_path):
    """phi3's fused attn_qkv / ffn_up (row ranges of one packed tensor), qwen2's biases,
    gemma3's tied output: converted, quantized to q8_0, packed; same logits as repacked."""
    sys.path.insert(0, os.path.join(tc.REPO, "model"))
    from hpl_convert.convert import convert
    f16 = tmp_path / "m.f16.gguf"
    convert(os.path.join(tc.DATA, "hf-tiny", arch), str(f16), outtype="f16", progress=False,
            log=lambda *_: None)
    q8 = tmp_path / "m.q8_0.gguf"
    run([hpl_bin(), "quantize", str(f16), str(q8), "q8_0"])
    dst = tmp_path / "m.packed.gguf"
    pack(q8, dst)
    # hpl quantize --pack: the same file as quantize, then pack; no temporary left behind.
    qp = tmp_path / "m.q8_0.packed.gguf"
    run([hpl_bin(), "quantize", str(f16), str(qp), "q8_0", "--pack"])
    assert qp.read_bytes() == dst.read_bytes()
    assert not os.path.exists(str(qp) + ".plain.tmp")
    _, j = tensors(dst)
    names = {t["name"] for t in j["tensors"] if t["type"] in PACKED_NAMES}
    if arch == "phi3":
        assert "blk.0.attn_qkv.weight" in names
    ids = [1, 5, 9, 17, 33, 65, 129, 200]
    assert np.array_equal(logits(dst, tmp_path, ids=ids), logits(q8, tmp_path, ids=ids))
    ref = {"HPL_ISA": "ref"}
    assert np.array_equal(logits(dst, tmp_path, ref, ids=ids), logits(q8, tmp_path, ref, ids=ids))


def test_gemma_tied_output(gemma, tmp_path):
    dst = tmp_path / "gemma-packed.gguf"
    pack(gemma, dst)
    _, j = tensors(dst)
    types = {t["name"]: t["type"] for t in j["tensors"]}
    assert "output.weight" not in types and types["token_embd.weight"] in PACKED_NAMES
    ids = [2, 818, 5279, 529, 506, 3520, 2617, 236764, 236743]
    want = logits(gemma, tmp_path, ids=ids)
    assert np.array_equal(logits(dst, tmp_path, ids=ids), want)
    assert greedy(dst) == greedy(gemma)
    # --memory accounts the packed weights as mapped, and says so.
    info = run([hpl_bin(), "info", str(dst), "--memory"]).stdout
    assert "packed         layout 1" in info

    def to_heap(path, env=None):
        out = run([hpl_bin(), "info", str(path), "--memory", "--json"], env).stdout
        return json.loads(out)["memory"]["weights_heap_at_load_bytes"]
    # Plain: the matrices the body repacks go to the heap; packed: nothing, unless the body has
    # no packed kernels (ref) or HPL_REPACK=0 asks for the GGUF layout.
    ref, off = {"HPL_ISA": "ref"}, {"HPL_REPACK": "0"}
    packed_bytes = j["packed_tensor_bytes"]
    assert to_heap(dst, ref) == to_heap(dst, off) == packed_bytes
    assert to_heap(gemma, ref) == to_heap(gemma, off) == 0
    if to_heap(gemma) == packed_bytes:  # a body with every packed kernel (avx512vnni)
        assert to_heap(dst) == 0
    p = run([hpl_bin(), "run", "-m", str(dst), "-p", "a", "-n", "1", "-v"])
    assert "packed file:" in p.stderr and "packed at load" not in p.stderr, p.stderr


def test_info_shows_packed_types(tmp_path):
    dst = tmp_path / "p.gguf"
    pack(os.path.join(MODELS, SMALL[0]), dst)
    out = run([hpl_bin(), "info", str(dst), "--tensors"]).stdout
    assert "packed         layout 1 (hpl pack)" in out
    assert any(n in out for n in PACKED_NAMES)


def test_pack_refusals(tmp_path):
    src = os.path.join(MODELS, SMALL[0])
    dst = tmp_path / "p.gguf"
    pack(src, dst)
    p = run([hpl_bin(), "pack", str(dst), str(tmp_path / "q.gguf")], check=False)
    assert p.returncode != 0 and "packed already" in p.stderr
    p = run([hpl_bin(), "pack", src, str(tmp_path / "q.gguf"), "--unpack"], check=False)
    assert p.returncode != 0 and "not a packed file" in p.stderr
    p = run([hpl_bin(), "pack", src, src], check=False)
    assert p.returncode != 0 and "is the input file" in p.stderr
    assert not (tmp_path / "q.gguf").exists()


def corrupt(src, dst, old: bytes, new: bytes):
    data = open(src, "rb").read()
    assert data.count(old) >= 1
    open(dst, "wb").write(data.replace(old, new, 1))


def test_bad_packed_files(tmp_path):
    dst = tmp_path / "p.gguf"
    pack(os.path.join(MODELS, SMALL[0]), dst)
    # The key renamed (same length): packed ids without it.
    bad = tmp_path / "nokey.gguf"
    corrupt(dst, bad, b"hpl.packed_layout", b"hpl.packed_layouX")
    p = run([hpl_bin(), "info", str(bad)], check=False)
    assert p.returncode == 1 and "no 'hpl.packed_layout' key" in p.stderr and "tensor '" in p.stderr
    # An unknown layout version.
    key = b"hpl.packed_layout" + struct.pack("<II", 4, 1)
    bad = tmp_path / "v9.gguf"
    corrupt(dst, bad, key, key[:-4] + struct.pack("<I", 9))
    p = run([hpl_bin(), "run", "-m", str(bad), "-p", "a", "-n", "1"], check=False)
    assert p.returncode != 0 and "packed layout version 9 is not supported" in p.stderr
    # A packed tensor whose row count is not a multiple of 8 (ffn_down: 64 rows -> 60).
    _, j = tensors(dst)
    t = next(t for t in j["tensors"] if t["type"] in PACKED_NAMES and t["shape"][1] % 8 == 0)
    name = t["name"].encode()
    rec = struct.pack("<Q", len(name)) + name + struct.pack("<I", 2) + struct.pack(
        "<QQ", t["shape"][0], t["shape"][1])
    bad = tmp_path / "rows.gguf"
    corrupt(dst, bad, rec, rec[:-8] + struct.pack("<Q", t["shape"][1] - 4))
    p = run([hpl_bin(), "info", str(bad)], check=False)
    assert p.returncode == 1 and f"tensor '{t['name']}'" in p.stderr
    assert "not a multiple of 8" in p.stderr


def test_gguf_package_refuses_packed_file(tmp_path):
    dst = tmp_path / "p.gguf"
    pack(os.path.join(MODELS, SMALL[0]), dst)
    with pytest.raises((ValueError, KeyError)):
        gguf.GGUFReader(str(dst))


def test_llama_cpp_refuses_packed_file(tmp_path):
    exe = os.environ.get("HPL_LLAMA_SIMPLE") or shutil.which("llama-simple")
    if exe is None and os.access("/work/llamacpp-build/bin/llama-simple", os.X_OK):
        exe = "/work/llamacpp-build/bin/llama-simple"
    if exe is None:
        pytest.skip("llama-simple not found (set HPL_LLAMA_SIMPLE)")
    dst = tmp_path / "p.gguf"
    pack(os.path.join(MODELS, SMALL[0]), dst)
    p = subprocess.run([exe, "-m", str(dst), "-n", "4", "hello"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode > 0, f"llama-simple exit {p.returncode} (a signal when negative)"
    assert "type" in p.stderr and "failed to load model" in p.stderr, p.stderr[-2000:]


def test_python_binding_loads_packed_file(tmp_path):
    """The Python package (over libhpl.so) runs a packed file like the plain one."""
    build = os.environ.get("HPL_BUILD_DIR", os.path.join(tc.REPO, "build"))
    lib = os.environ.get("HPL_LIB", os.path.join(build, "lib", "libhpl.so"))
    if not os.path.exists(lib):
        pytest.skip(f"{lib} not built (target hpl_c)")
    src = os.path.join(MODELS, SMALL[0])
    dst = tmp_path / "p.gguf"
    pack(src, dst)
    code = ("import sys, hpl\n"
            "for p in sys.argv[1:]:\n"
            "    with hpl.Model(p, n_threads=2, n_ctx=256) as m:\n"
            "        print(repr(m.generate('Once upon a time', max_tokens=12, temperature=0)))\n")
    env = {"HPL_LIB": lib, "PYTHONPATH": os.path.join(tc.REPO, "bindings", "python")}
    out = run([sys.executable, "-c", code, src, str(dst)], env).stdout.splitlines()
    assert len(out) == 2 and out[0] == out[1], out
