#!/usr/bin/env python3
"""Writes small GGUF models for the quantize fuzzer (< 64 KiB each, so one run is fast): the
tensor roles the mixes treat differently (output, token_embd, attn_v / ffn_down of blk.N,
norms), matrices just over the 4096-weight threshold, rows of 256 (K-quants) and of 32 or 48
(fallbacks), and inputs in F32, F16, BF16, Q8_0, Q4_0 and Q4_K. Usage: make_quantize_seeds.py OUTDIR"""
import sys
from pathlib import Path

import numpy as np
import gguf

Q = gguf.GGMLQuantizationType


def write(path, tensors, block_count=2):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(block_count)
    rng = np.random.default_rng(1)
    for name, shape, qtype in tensors:  # shape in numpy order: the row (ne[0]) last
        x = rng.standard_normal(shape).astype(np.float32)
        if qtype == Q.F32:
            w.add_tensor(name, x)
        elif qtype == Q.F16:
            w.add_tensor(name, x.astype(np.float16))
        elif qtype in (Q.BF16, Q.Q8_0, Q.Q4_0):
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
        else:  # K-quants (no quantizer in the gguf package): bytes < 0x3c keep every f16 finite
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            raw = rng.integers(0, 0x3c, (*shape[:-1], shape[-1] // block * size), dtype=np.uint8)
            w.add_tensor(name, raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write(out / "q-f32.gguf", [("token_embd.weight", [16, 256], Q.F32),
                               ("blk.0.attn_norm.weight", [256], Q.F32),
                               ("blk.0.attn_v.weight", [16, 256], Q.F32),
                               ("blk.1.ffn_down.weight", [128, 32], Q.F32),
                               ("output.weight", [16, 256], Q.F16)])
    write(out / "q-mixed.gguf", [("token_embd.weight", [16, 256], Q.BF16),
                                 ("blk.0.attn_v.weight", [16, 256], Q.Q8_0),
                                 ("blk.1.ffn_down.weight", [96, 48], Q.F16),
                                 ("blk.1.attn_q.weight", [16, 256], Q.Q4_K),
                                 ("blk.1.attn_k.weight", [128, 32], Q.Q4_0)], block_count=3)


if __name__ == "__main__":
    main()
