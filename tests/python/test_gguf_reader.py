"""`hpl info --json` agrees with the `gguf` package's GGUFReader on every test GGUF file:
every metadata key, type and value, and the tensor table (name, type, shape, offset, bytes).

GGUFReader refuses two of the files (GGUF v1, and the v2 Q8_0 file whose ffn_down rows of 172
are not a multiple of the block size); for those a small independent parser below is the
oracle, and the three encodings of stories260K must agree with each other."""
import codecs
import hashlib
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
DATA = REPO / "tests" / "data"
SHARED = [Path("/work/shared/models"), Path("/work/shared/tokenizer-tests")]


def gguf_files():
    files = sorted(DATA.glob("models/*.gguf")) + sorted(DATA.glob("tokenizer/*.gguf"))
    seen = {hashlib.sha256(p.read_bytes()).digest() for p in files}
    for d in SHARED:  # the shared originals when this machine has them, unless copied here
        if d.is_dir():
            for p in sorted(d.rglob("*.gguf")):
                h = hashlib.sha256(p.read_bytes()).digest()
                if h not in seen:
                    seen.add(h)
                    files.append(p)
    return files


def file_id(p):
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


def hpl_info(hpl, path):
    out = subprocess.run([str(hpl), "info", str(path), "--json", "--tensors", "--metadata",
                          "--full-arrays"], capture_output=True, check=True)
    return json.loads(out.stdout)


# Our JSON writer replaces each byte of an invalid UTF-8 sequence with U+FFFD.
codecs.register_error("hpl_per_byte", lambda e: ("\ufffd" * (e.end - e.start), e.end))


def text(raw):
    return bytes(raw).decode("utf-8", errors="hpl_per_byte")


TYPE_NAMES = {t: t.name.lower() for t in gguf.GGUFValueType}


def same_scalar(vtype, ours, theirs):
    if vtype == "float32":
        return ours is None and not np.isfinite(theirs) or np.float32(ours) == np.float32(theirs)
    if vtype == "float64":
        return ours is None and not np.isfinite(theirs) or float(ours) == float(theirs)
    if vtype == "bool":
        return ours is bool(theirs)
    return ours == theirs


# ---- oracle 1: gguf.GGUFReader -----------------------------------------------------------

def reader_metadata(r):
    """key -> (type name, elem type name or None, value) from GGUFReader fields."""
    out = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's pseudo-fields for the header
        main = TYPE_NAMES[f.types[0]]
        if main == "array":
            elem = TYPE_NAMES[f.types[-1]]
            if len(f.types) > 2:
                pytest.fail(f"{key}: nested arrays not compared")  # none in the test files
            if elem == "string":
                val = [text(f.parts[i]) for i in f.data]
            else:
                val = [f.parts[i].tolist()[0] for i in f.data]
            out[key] = (main, elem, val)
        elif main == "string":
            out[key] = (main, None, text(f.parts[f.data[0]]))
        else:
            out[key] = (main, None, f.parts[f.data[0]].tolist()[0])
    return out


def reader_tensors(r):
    return [dict(name=t.name, type_id=int(t.tensor_type), shape=[int(d) for d in t.shape],
                 file_offset=int(t.data_offset), bytes=int(t.n_bytes)) for t in r.tensors]


# ---- oracle 2: an independent minimal parser (v1/v2/v3) for files GGUFReader refuses ----

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
BLOCKS = {0: (1, 4), 1: (1, 2), 8: (32, 34), 2: (32, 18), 12: (256, 144), 14: (256, 210)}


def mini_parse(path):
    b = Path(path).read_bytes()
    pos = 0

    def get(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, b, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    assert b[:4] == b"GGUF"
    pos = 4
    version = get("<I")
    cnt = "<I" if version == 1 else "<Q"

    def string():
        nonlocal pos
        n = get(cnt)
        pos += n
        return b[pos - n:pos]

    def value(t):
        if t == 8:
            return text(string())
        if t == 9:
            et, n = get("<I"), get(cnt)
            return [value(et) for _ in range(n)]
        return get(SCALARS[t])

    n_tensors, n_kv = get(cnt), get(cnt)
    meta = {}
    for _ in range(n_kv):
        key = text(string())
        t = get("<I")
        if t == 9:
            save = pos
            et = get("<I")
            pos = save
            meta[key] = ("array", TYPE_NAMES[gguf.GGUFValueType(et)], value(9))
        else:
            meta[key] = (TYPE_NAMES[gguf.GGUFValueType(t)], None, value(t))
    align = meta.get("general.alignment", (None, None, 32))[2]
    infos = []
    for _ in range(n_tensors):
        name = text(string())
        dims = [get(cnt) for _ in range(get("<I"))]
        infos.append((name, dims, get("<I"), get("<Q")))
    data = (pos + align - 1) // align * align
    tensors = []
    for name, dims, t, off in infos:
        blk, size = BLOCKS[t]
        tensors.append(dict(name=name, type_id=t, shape=dims, file_offset=data + off,
                            bytes=int(np.prod(dims)) // blk * size))
    return version, meta, tensors


# ---- the comparison ----------------------------------------------------------------------

def compare(ours, meta, tensors, path):
    got = ours["metadata"]
    assert set(got) == set(meta), f"{path}: keys differ: {set(got) ^ set(meta)}"
    for key, (vtype, elem, val) in meta.items():
        g = got[key]
        assert g["type"] == vtype, key
        if vtype == "array":
            assert g["elem_type"] == elem, key
            assert g["count"] == len(val), key
            assert len(g["value"]) == len(val), key
            bad = [i for i, (a, b) in enumerate(zip(g["value"], val)) if not same_scalar(elem, a, b)]
            assert not bad, f"{key}[{bad[0]}]: {g['value'][bad[0]]!r} != {val[bad[0]]!r}"
        else:
            assert same_scalar(vtype, g["value"], val), f"{key}: {g['value']!r} != {val!r}"

    assert ours["tensor_count"] == len(tensors)
    mine = [{k: t[k] for k in ("name", "type_id", "shape", "file_offset", "bytes")}
            for t in ours["tensors"]]
    assert mine == tensors
    assert ours["tensor_bytes"] == sum(t["bytes"] for t in tensors)
    assert ours["file_size"] == Path(path).stat().st_size


@pytest.mark.parametrize("path", gguf_files(), ids=file_id)
def test_info_matches_reference_reader(hpl, path):
    ours = hpl_info(hpl, path)
    try:
        r = gguf.GGUFReader(str(path))
    except ValueError as e:  # v1, or rows that are not whole blocks: use the mini parser
        version, meta, tensors = mini_parse(path)
        assert ours["version"] == version
        print(f"GGUFReader refuses {path.name} ({e}); checked against the mini parser")
        compare(ours, meta, tensors, path)
        return
    meta = reader_metadata(r)
    tensors = reader_tensors(r)
    assert ours["version"] == int(r.fields["GGUF.version"].parts[-1][0])
    assert ours["alignment"] == r.alignment
    compare(ours, meta, tensors, path)
    # Sanity of the mini parser itself on a file both can read.
    if path.name == "stories260K.gguf":
        assert mini_parse(path)[2] == tensors


def test_stories260k_versions_agree(hpl):
    models = DATA / "models"
    v3 = hpl_info(hpl, models / "stories260K.gguf")
    v2 = hpl_info(hpl, models / "tinyllamas-stories-260k-q8_0.gguf")
    v1 = hpl_info(hpl, models / "tinyllamas-stories-260k-f32.gguf")
    assert (v1["version"], v2["version"], v3["version"]) == (1, 2, 3)
    for info in (v1, v2, v3):
        assert info["architecture"] == "llama"
        hp = info["hparams"]
        assert (hp["embedding_length"], hp["block_count"], hp["attention.head_count"],
                hp["attention.head_count_kv"], hp["feed_forward_length"]) == (64, 5, 8, 4, 172)
        assert info["tokenizer"]["vocab_size"] == 512
        assert info["tensor_count"] == 48
    toks = v3["metadata"]["tokenizer.ggml.tokens"]["value"]
    assert v1["metadata"]["tokenizer.ggml.tokens"]["value"] == toks
    assert v2["metadata"]["tokenizer.ggml.tokens"]["value"] == toks
    shapes = {t["name"]: t["shape"] for t in v3["tensors"]}
    assert {t["name"]: t["shape"] for t in v1["tensors"]} == shapes
    assert {t["name"]: t["shape"] for t in v2["tensors"]} == shapes
    # v2 quantized ffn_down flat across its 172-element rows: accepted and marked.
    for t in v2["tensors"]:
        assert t["rows_unaligned"] == ("ffn_down" in t["name"]), t["name"]


def test_bad_file_exits_1_with_error(hpl, tmp_path):
    src = (DATA / "models" / "stories260K.gguf").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(src[:5000])  # inside the metadata
    p = subprocess.run([str(hpl), "info", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "cut.gguf: offset " in p.stderr and "left in the file" in p.stderr, p.stderr
    notgguf = tmp_path / "x.gguf"
    notgguf.write_bytes(b"hello world")
    p = subprocess.run([str(hpl), "info", str(notgguf)], capture_output=True, text=True)
    assert p.returncode == 1 and "not a GGUF file" in p.stderr


def test_text_output(hpl):
    p = subprocess.run([str(hpl), "info", str(DATA / "models" / "stories260K.gguf"), "--tensors",
                        "--metadata"], capture_output=True, text=True, check=True)
    assert "architecture   llama" in p.stdout
    assert "block_count" in p.stdout and "blk.4.ffn_down.weight" in p.stdout
    assert "tokenizer.ggml.tokens" in p.stdout and "512 items" in p.stdout
