#!/usr/bin/env python3
"""Writes small GGUF seed files for the GGUF fuzzer: every metadata type, nested arrays,
tensors of plain, block and k-quant types, and a packed file (hpl's packed type ids, which
the gguf package does not know, so it is written by hand). Usage: make_gguf_seeds.py OUTDIR"""
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

T = gguf.GGUFValueType
Q = gguf.GGMLQuantizationType


def write(path, arch, kvs, tensors):
    w = gguf.GGUFWriter(str(path), arch)
    for key, val, vtype, sub in kvs:
        w.add_key_value(key, val, vtype, sub_type=sub)
    for name, shape, qtype in tensors:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n = int(np.prod(shape))
        raw = (np.arange(n // block * size, dtype=np.uint32) % 251).astype(np.uint8)
        row_bytes = shape[-1] // block * size  # numpy order: last dim is the row
        w.add_tensor(name, raw.reshape(*shape[:-1], row_bytes), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_packed(path):
    """A GGUF v3 file marked hpl.packed_layout = 1 with one tensor of each packed id, 8 rows."""
    # (name, packed type id, row length, bytes per block, elements per block)
    tensors = [("q40.weight", 0x1002, 64, 18, 32), ("q50.weight", 0x1006, 32, 22, 32),
               ("q80.weight", 0x1008, 32, 34, 32), ("q4k.weight", 0x100C, 256, 144, 256),
               ("q5k.weight", 0x100D, 256, 176, 256), ("q6k.weight", 0x100E, 256, 210, 256)]
    kv = gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("mini")
    kv += gguf_string("hpl.packed_layout") + struct.pack("<II", 4, 1)
    info, data = b"", b""
    for name, tid, n, bb, be in tensors:
        size = 8 * (n // be) * bb
        info += gguf_string(name) + struct.pack("<IQQIQ", 2, n, 8, tid, len(data))
        data += bytes(i % 251 for i in range(size))
        data += bytes(-len(data) % 32)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 2) + kv + info
    path.write_bytes(head + bytes(-len(head) % 32) + data)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    scalars = [
        ("s.u8", 7, T.UINT8, None), ("s.i8", -7, T.INT8, None),
        ("s.u16", 700, T.UINT16, None), ("s.i16", -700, T.INT16, None),
        ("s.u32", 70000, T.UINT32, None), ("s.i32", -70000, T.INT32, None),
        ("s.f32", 1.5, T.FLOAT32, None), ("s.bool", True, T.BOOL, None),
        ("s.str", "hello", T.STRING, None), ("s.u64", 1 << 40, T.UINT64, None),
        ("s.i64", -(1 << 40), T.INT64, None), ("s.f64", 2.25, T.FLOAT64, None),
        ("general.alignment", 64, T.UINT32, None),
    ]
    arrays = [
        ("a.i32", [1, -2, 3], T.ARRAY, T.INT32), ("a.f32", [0.5, 1.5], T.ARRAY, T.FLOAT32),
        ("a.str", ["a", "bc", ""], T.ARRAY, T.STRING), ("a.bool", [True, False], T.ARRAY, T.BOOL),
        ("a.nested", [[1, 2], [3]], T.ARRAY, T.ARRAY),
        ("mini.block_count", 2, T.UINT32, None),
    ]
    write(out / "seed-meta.gguf", "mini", scalars + arrays, [])
    write(out / "seed-tensors.gguf", "mini", arrays, [
        ("a.weight", [2, 8], Q.F32), ("b.weight", [4], Q.F16),
        ("c.weight", [2, 64], Q.Q8_0), ("d.weight", [256], Q.Q4_K),
        ("e.weight", [1, 1, 2, 32], Q.Q4_0),
    ])
    write(out / "seed-empty.gguf", "mini", [], [])
    write_packed(out / "seed-packed.gguf")


if __name__ == "__main__":
    main()
