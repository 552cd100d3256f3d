"""Lazy access to the tensors of a Hugging Face checkpoint (single or sharded safetensors).

Only the table (names, dtypes, shapes) is read up front; each tensor is read from disk when
it is asked for, so converting keeps about one tensor in memory at a time.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
from safetensors import safe_open

from .errors import ConvertError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

# safetensors dtype -> numpy dtype numpy can read directly (BF16 is handled by hand).
_NP_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # raw bits; widened to float32 in _read_bf16
}


class TensorEntry:
    def __init__(self, name: str, path: str, dtype: str, shape: tuple[int, ...]):
        self.name = name
        self.path = path
        self.dtype = dtype
        self.shape = shape


class Checkpoint:
    """name -> TensorEntry over every safetensors shard of a model folder."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.entries: dict[str, TensorEntry] = {}
        for path in self._shard_paths():
            with safe_open(path, framework="np") as f:
                for name in f.keys():
                    sl = f.get_slice(name)
                    dtype = sl.get_dtype()
                    if dtype not in _NP_DTYPES:
                        raise ConvertError(
                            f"{path}: tensor {name!r} has dtype {dtype}; supported: "
                            + ", ".join(_NP_DTYPES)
                        )
                    if name in self.entries:
                        raise ConvertError(f"{path}: tensor {name!r} is also in {self.entries[name].path}")
                    self.entries[name] = TensorEntry(name, path, dtype, tuple(int(d) for d in sl.get_shape()))
        self._bf16_offsets: dict[str, dict[str, tuple[int, int]]] = {}

    def _shard_paths(self) -> list[str]:
        index = os.path.join(self.model_dir, INDEX_NAME)
        single = os.path.join(self.model_dir, SINGLE_NAME)
        if os.path.isfile(index):
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ConvertError(f"{index}: no 'weight_map'")
            paths = []
            for shard in sorted(set(weight_map.values())):
                p = os.path.join(self.model_dir, shard)
                if not os.path.isfile(p):
                    raise ConvertError(f"{index} names shard {shard!r}, but {p} is missing")
                paths.append(p)
            return paths
        if os.path.isfile(single):
            return [single]
        raise ConvertError(
            f"{self.model_dir}: no {SINGLE_NAME} or {INDEX_NAME} (only safetensors checkpoints are supported)"
        )

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def load(self, name: str) -> np.ndarray:
        """The tensor as float32 (treat as read-only: transforms make new arrays)."""
        e = self.entries[name]
        if e.dtype == "BF16":
            return self._read_bf16(e)
        with safe_open(e.path, framework="np") as f:
            return np.asarray(f.get_tensor(name), dtype=np.float32)

    def _read_bf16(self, e: TensorEntry) -> np.ndarray:
        # numpy has no bfloat16: read the raw 16-bit words and put them in the top half of
        # a float32 (bf16 is float32 with the low 16 mantissa bits dropped).
        offsets = self._bf16_offsets.get(e.path)
        if offsets is None:
            offsets = _read_data_offsets(e.path)
            self._bf16_offsets[e.path] = offsets
        start, end = offsets[e.name]
        n = int(np.prod(e.shape, dtype=np.int64))
        if end - start != 2 * n:
            raise ConvertError(f"{e.path}: tensor {e.name!r} holds {end - start} bytes, expected {2 * n}")
        with open(e.path, "rb") as f:
            header_len = struct.unpack("<Q", f.read(8))[0]
            f.seek(8 + header_len + start)
            raw = np.fromfile(f, dtype="<u2", count=n)
        if raw.size != n:
            raise ConvertError(f"{e.path}: tensor {e.name!r} is truncated")
        out = np.empty(n, dtype=np.uint32)  # one float32-sized buffer next to the raw words
        np.left_shift(raw, np.uint32(16), out=out, dtype=np.uint32)
        return out.view(np.float32).reshape(e.shape)


def _read_data_offsets(path: str) -> dict[str, tuple[int, int]]:
    """The safetensors header: name -> (start, end) byte offsets into the data section."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ConvertError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        header_len = struct.unpack("<Q", head)[0]
        header = json.loads(f.read(header_len))
    return {k: tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__"}
