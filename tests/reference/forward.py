#!/usr/bin/env python3
"""Plain numpy reference forward pass: the oracle for the engine's logits.

Reads a GGUF with the `gguf` package, dequantizes every tensor to float32 with
gguf.quants.dequantize, and runs the architecture with plain numpy (all activations
float32, no activation quantization). Supported `general.architecture` values:

  llama   RMSNorm, RoPE on adjacent pairs (GGUF permutes Q/K rows for it), GQA, SwiGLU,
          tied (no output.weight) or separate output.
  qwen2   llama + biases on Q, K, V; NeoX ("rotate-half") RoPE.
  gemma3  embedding * sqrt(n_embd); RMSNorm with the (1 + w) already stored in the GGUF;
          RMSNorm of q and k per head; post-attention and post-FFN norms; GeGLU with tanh
          GELU; NeoX RoPE; layers with (il + 1) % 6 != 0 use a sliding window
          (gemma3.attention.sliding_window) and rope base gemma3.rope.freq_base_swa
          (default 10000), the others are global with gemma3.rope.freq_base; attention scale 1/sqrt(key_length) (query_pre_attn_scalar
          = head_dim for the small models, as llama.cpp does); tied output.

Old converters quantized some tensors flat across row boundaries (tinyllamas v2 Q8_0:
ffn_down rows of 172 in Q8_0); those are dequantized flat and then reshaped.

CLI: python3 tests/reference/forward.py MODEL --ids 1 2 3 [--greedy N] [--dump FILE]
prints the top-5 logits at the last prompt position, and with --greedy N the N greedy ids.
--dump writes float32 logits of every prompt position (n_tok x n_vocab) to FILE.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import gguf
import gguf.gguf_reader
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType


def _byte_shape_allowing_flat(shape, quant_type):
    """gguf's own helper refuses rows that are not whole blocks; keep those flat instead."""
    block_size, type_size = GGML_QUANT_SIZES[quant_type]
    if shape[-1] % block_size != 0:
        n = int(np.prod(shape))
        if n % block_size != 0:
            raise ValueError(f"{quant_type.name} tensor of {n} elements is not whole blocks")
        return (n // block_size * type_size,)
    return (*shape[:-1], shape[-1] // block_size * type_size)


gguf.gguf_reader.quant_shape_to_byte_shape = _byte_shape_allowing_flat


class _V1Tensor:
    def __init__(self, name, dims, qtype, data):
        self.name, self.shape, self.tensor_type, self.data = name, dims, qtype, data


def _read_v1(path):
    """Minimal GGUF v1 reader (the gguf package reads v2/v3 only): v1 has uint32 counts,
    string lengths, array counts and dims where v2 has uint64. -> (metadata, tensors)."""
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    off = 0

    def take(fmt_dtype, count=1):
        nonlocal off
        dt = np.dtype(fmt_dtype)
        v = np.frombuffer(buf, dtype=dt, count=count, offset=off)
        off += dt.itemsize * count
        return v

    def string():
        n = int(take("<u4")[0])
        nonlocal off
        s = bytes(buf[off : off + n]).decode("utf-8", errors="replace")
        off += n
        return s

    scalar = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1"}

    def value(vt):
        if vt in scalar:
            v = take(scalar[vt])[0]
            return bool(v) if vt == 7 else v.item()
        if vt == 8:
            return string()
        if vt == 9:
            et, n = int(take("<u4")[0]), int(take("<u4")[0])
            return [value(et) for _ in range(n)]
        raise SystemExit(f"{path}: unsupported GGUF v1 value type {vt}")

    magic, version = bytes(buf[0:4]), None
    off = 4
    version = int(take("<u4")[0])
    if magic != b"GGUF" or version != 1:
        raise SystemExit(f"{path}: not a GGUF v1 file")
    n_tensors, n_kv = int(take("<u4")[0]), int(take("<u4")[0])
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(int(take("<u4")[0]))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = int(take("<u4")[0])
        dims = [int(d) for d in take("<u4", nd)]
        qtype = GGMLQuantizationType(int(take("<u4")[0]))
        rel = int(take("<u8")[0])
        infos.append((name, dims, qtype, rel))
    align = int(meta.get("general.alignment", 32))
    data0 = (off + align - 1) // align * align
    tensors = []
    for name, dims, qtype, rel in infos:
        n = int(np.prod(dims))
        bs, ts = GGML_QUANT_SIZES[qtype]
        start = data0 + rel
        raw = buf[start : start + n // bs * ts]
        if qtype == GGMLQuantizationType.F32:
            raw = raw.view(np.float32)
        elif qtype == GGMLQuantizationType.F16:
            raw = raw.view(np.float16)
        tensors.append(_V1Tensor(name, dims, qtype, raw))
    return meta, tensors


def _read(path):
    """-> (metadata dict, tensors with .name .shape (ne0 first) .tensor_type .data)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"GGUF" and int.from_bytes(head[4:8], "little") == 1:
        return _read_v1(path)
    r = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items()}, r.tensors


_Q8_0_TYPES = {GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_0,
               GGMLQuantizationType.Q5_1, GGMLQuantizationType.Q8_0}
_Q8_K_TYPES = {GGMLQuantizationType.Q2_K, GGMLQuantizationType.Q3_K, GGMLQuantizationType.Q4_K,
               GGMLQuantizationType.Q5_K, GGMLQuantizationType.Q6_K}


def quantize_act(x, block, fp16_scale):
    """Round-trip activation rows through Q8_0 (block 32, fp16 scale) or Q8_K (block 256,
    fp32 scale) as llama.cpp's (and our) quantized matmuls do: d = amax / 127,
    q = round_half_even(x / d), value = d * q."""
    T, n = x.shape
    b = x.reshape(T, n // block, block).astype(np.float32)
    d = np.abs(b).max(axis=-1, keepdims=True) / np.float32(127)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.round(b * inv)
    if fp16_scale:
        d = d.astype(np.float16).astype(np.float32)
    return (q * d).reshape(T, n).astype(np.float32)


class Model:
    """emulate_engine: also round activations through Q8_0 / Q8_K before each quantized-weight
    matmul and store K/V in float16, as the engine (and llama.cpp) do; the remaining
    difference to the engine is then summation order only."""

    def __init__(self, path: str, emulate_engine: bool = False):
        self.emulate = emulate_engine
        meta, tensors = _read(path)
        self.path = path
        self.arch = meta.get("general.architecture")
        if self.arch not in ("llama", "qwen2", "gemma3"):
            raise SystemExit(f"{path}: unsupported architecture {self.arch!r}")
        a = self.arch

        def hp(key, default=None):
            v = meta.get(f"{a}.{key}", default)
            if v is None:
                raise SystemExit(f"{path}: missing {a}.{key}")
            return v

        self.n_embd = int(hp("embedding_length"))
        self.n_layer = int(hp("block_count"))
        self.n_ff = int(hp("feed_forward_length"))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv", self.n_head))
        self.head_dim = int(hp("attention.key_length", self.n_embd // self.n_head))
        self.head_dim_v = int(hp("attention.value_length", self.head_dim))
        self.eps = float(hp("attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_base = float(hp("rope.freq_base", 10000.0))
        self.rot_dim = int(hp("rope.dimension_count", self.head_dim))
        self.sliding_window = int(meta.get(f"{a}.attention.sliding_window", 0) or 0)
        self.rope_base_swa = float(meta.get(f"{a}.rope.freq_base_swa", 10000.0))
        self.t = {}
        self.qtype = {}
        for t in tensors:
            self.t[t.name] = self._dequantize(t)
            qt = GGMLQuantizationType(t.tensor_type)
            bs = GGML_QUANT_SIZES[qt][0]
            # flat-quantized tensors are F32 in the engine (dequantized at load)
            self.qtype[t.name] = qt if int(t.shape[0]) % bs == 0 else GGMLQuantizationType.F32
        self.tok_embd = self.t["token_embd.weight"]
        self.n_vocab = self.tok_embd.shape[0]
        self.output_name = "output.weight" if "output.weight" in self.t else "token_embd.weight"

    def mm(self, x, name):  # x (T, n) @ W(name) (rows, n).T -> (T, rows)
        if self.emulate:
            qt = self.qtype[name]
            if qt in _Q8_0_TYPES:
                x = quantize_act(x, 32, True)
            elif qt in _Q8_K_TYPES:
                x = quantize_act(x, 256, False)
        return x @ self.t[name].T

    @staticmethod
    def _dequantize(t) -> np.ndarray:
        shape = tuple(reversed([int(d) for d in t.shape]))  # (rows, ne0)
        qtype = GGMLQuantizationType(t.tensor_type)
        if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            return np.asarray(t.data, dtype=np.float32).reshape(shape)
        data = np.asarray(t.data)
        if data.ndim == 1 or data.shape[-1] * GGML_QUANT_SIZES[qtype][0] != (
            shape[-1] * GGML_QUANT_SIZES[qtype][1]
        ):
            flat = gguf.quants.dequantize(data.reshape(1, -1), qtype)  # blocks span rows
            return flat.astype(np.float32).reshape(shape)
        return gguf.quants.dequantize(data, qtype).astype(np.float32).reshape(shape)

    # --- building blocks ------------------------------------------------------------------
    def rmsnorm(self, x, w):  # x (T, n) -> (T, n)
        ms = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
        return (x / np.sqrt(ms + self.eps)).astype(np.float32) * w

    def rope(self, x, pos, base, neox):  # x (T, H, D), pos (T,) -> rotated copy
        d = self.rot_dim
        inv = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # (d/2,)
        ang = pos[:, None].astype(np.float64) * inv[None, :]  # (T, d/2)
        cos = np.cos(ang)[:, None, :].astype(np.float32)
        sin = np.sin(ang)[:, None, :].astype(np.float32)
        out = x.copy()
        if neox:
            x0, x1 = x[..., : d // 2], x[..., d // 2 : d]
            out[..., : d // 2] = x0 * cos - x1 * sin
            out[..., d // 2 : d] = x0 * sin + x1 * cos
        else:
            x0, x1 = x[..., 0:d:2], x[..., 1:d:2]
            out[..., 0:d:2] = x0 * cos - x1 * sin
            out[..., 1:d:2] = x0 * sin + x1 * cos
        return out

    @staticmethod
    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))

    @staticmethod
    def silu(x):
        return x / (1.0 + np.exp(-x))

    def is_swa(self, il):
        return self.arch == "gemma3" and self.sliding_window > 0 and (il + 1) % 6 != 0

    # --- forward --------------------------------------------------------------------------
    def new_cache(self):
        return [{"k": None, "v": None} for _ in range(self.n_layer)]

    def forward(self, ids, cache, pos0):
        """ids (T,) at positions pos0.. -> logits (T, n_vocab); appends to cache."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            raise SystemExit(f"token id out of range [0, {self.n_vocab})")
        T = len(ids)
        pos = np.arange(pos0, pos0 + T)
        H, Hkv, D, Dv = self.n_head, self.n_head_kv, self.head_dim, self.head_dim_v
        gemma = self.arch == "gemma3"
        neox = self.arch in ("qwen2", "gemma3")
        x = self.tok_embd[ids].astype(np.float32)  # (T, n_embd)
        if gemma:
            x = x * np.float32(np.sqrt(self.n_embd))
        for il in range(self.n_layer):
            p = f"blk.{il}."
            g = lambda n: self.t[p + n]  # noqa: E731
            h = self.rmsnorm(x, g("attn_norm.weight"))
            q = self.mm(h, p + "attn_q.weight")
            k = self.mm(h, p + "attn_k.weight")
            v = self.mm(h, p + "attn_v.weight")
            if p + "attn_q.bias" in self.t:
                q = q + g("attn_q.bias")
                k = k + g("attn_k.bias")
                v = v + g("attn_v.bias")
            q = q.reshape(T, H, D)
            k = k.reshape(T, Hkv, D)
            v = v.reshape(T, Hkv, Dv)
            if p + "attn_q_norm.weight" in self.t:
                q = self.rmsnorm(q, g("attn_q_norm.weight"))
                k = self.rmsnorm(k, g("attn_k_norm.weight"))
            base = self.rope_base
            if gemma and self.is_swa(il):
                base = self.rope_base_swa
            q = self.rope(q, pos, base, neox)
            k = self.rope(k, pos, base, neox)
            if self.emulate:
                k = k.astype(np.float16).astype(np.float32)
                v = v.astype(np.float16).astype(np.float32)
            c = cache[il]
            c["k"] = k if c["k"] is None else np.concatenate([c["k"], k])
            c["v"] = v if c["v"] is None else np.concatenate([c["v"], v])
            K, V = c["k"], c["v"]  # (P, Hkv, D)
            P = K.shape[0]
            kpos = np.arange(P)
            mask = kpos[None, :] <= pos[:, None]  # (T, P) causal
            if self.is_swa(il):
                mask &= kpos[None, :] > pos[:, None] - self.sliding_window
            scale = 1.0 / np.sqrt(D)
            group = H // Hkv
            att_out = np.empty((T, H, Dv), dtype=np.float32)
            for hh in range(H):
                kh = K[:, hh // group, :]  # (P, D)
                vh = V[:, hh // group, :]
                s = (q[:, hh, :] @ kh.T) * scale  # (T, P)
                s = np.where(mask, s, -np.inf)
                s = s - s.max(axis=1, keepdims=True)
                e = np.exp(s)
                a = e / e.sum(axis=1, keepdims=True)
                att_out[:, hh, :] = a @ vh
            o = self.mm(att_out.reshape(T, H * Dv), p + "attn_output.weight")
            if gemma:
                o = self.rmsnorm(o, g("post_attention_norm.weight"))
            x = x + o
            h = self.rmsnorm(x, g("ffn_norm.weight"))
            gate = self.mm(h, p + "ffn_gate.weight")
            up = self.mm(h, p + "ffn_up.weight")
            act = self.gelu_tanh(gate) if gemma else self.silu(gate)
            f = self.mm((act * up).astype(np.float32), p + "ffn_down.weight")
            if gemma:
                f = self.rmsnorm(f, g("post_ffw_norm.weight"))
            x = x + f
        x = self.rmsnorm(x, self.t["output_norm.weight"])
        return self.mm(x, self.output_name).astype(np.float32)

    def greedy(self, ids, n):
        """Greedy continuation of n ids after the prompt ids."""
        cache = self.new_cache()
        logits = self.forward(ids, cache, 0)
        out = []
        pos = len(ids)
        for _ in range(n):
            nxt = int(np.argmax(logits[-1]))
            out.append(nxt)
            logits = self.forward([nxt], cache, pos)
            pos += 1
        return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--ids", type=int, nargs="+", required=True)
    ap.add_argument("--greedy", type=int, default=0, help="print N greedy continuation ids")
    ap.add_argument("--dump", help="write float32 logits (n_tok, n_vocab) of every prompt position")
    ap.add_argument("--emulate-engine", action="store_true",
                    help="quantize activations to Q8_0/Q8_K for quantized weights, F16 K/V")
    args = ap.parse_args(argv)
    m = Model(args.model, emulate_engine=args.emulate_engine)
    logits = m.forward(args.ids, m.new_cache(), 0)
    last = logits[-1]
    top = np.argsort(-last, kind="stable")[:5]
    print("top5:", ", ".join(f"{i}:{last[i]:.4f}" for i in top))
    if args.dump:
        logits.astype(np.float32).tofile(args.dump)
    if args.greedy:
        print("greedy:", " ".join(str(i) for i in m.greedy(args.ids, args.greedy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
