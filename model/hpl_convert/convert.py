"""Hugging Face folder -> GGUF file, streaming one tensor at a time.

Pass 1 plans every tensor (name, shape, output type) from the safetensors headers alone and
writes the GGUF header, metadata and tensor table. Pass 2 reads each tensor from disk,
transforms it (Q/K permutation, Gemma 1 + w), encodes it and appends it, so peak memory is
about one tensor (in float32) plus its encoded copy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import arch as archmod
from . import bert as bertmod
from .errors import ConvertError
from .vocab import Vocab, load_vocab, write_vocab
from .weights import Checkpoint

OUTTYPES = ("f32", "f16", "bf16", "q8_0")
QK8_0 = 32  # Q8_0 block: 32 weights, one f16 scale -> 34 bytes


@dataclass
class PlannedTensor:
    plan: archmod.TensorPlan
    qtype: object  # gguf.GGMLQuantizationType


def load_config(model_dir: str):
    if not os.path.isdir(model_dir):
        raise ConvertError(f"{model_dir}: not a directory")
    cfg_path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise ConvertError(f"{model_dir}: no config.json")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" notice
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_dir)
    except (ValueError, KeyError, OSError) as e:
        raise ConvertError(f"{cfg_path}: transformers cannot read it: {e}") from None


def choose_type(shape: tuple[int, ...], outtype: str):
    """Output type of one tensor: 1-D tensors (norms, biases) stay F32; 2-D weights take the
    requested type, except Q8_0 needs rows that are whole 32-blocks (else F16)."""
    from gguf import GGMLQuantizationType as T

    if len(shape) != 2 or outtype == "f32":
        return T.F32
    if outtype == "f16":
        return T.F16
    if outtype == "bf16":
        return T.BF16
    if outtype == "q8_0":
        return T.Q8_0 if shape[1] % QK8_0 == 0 else T.F16
    raise ConvertError(f"unknown outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")


def file_type_of(outtype: str):
    from gguf import LlamaFileType as F

    return {"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0}[outtype]


def encode(data: np.ndarray, qtype) -> np.ndarray:
    """float32 (rows, cols) -> the bytes GGUF stores, as the array GGUFWriter writes."""
    import gguf
    from gguf import GGMLQuantizationType as T

    if qtype == T.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == T.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)  # uint8 bytes


def nbytes_of(shape: tuple[int, ...], qtype) -> int:
    from gguf.constants import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape, dtype=np.int64)) // block * size


def add_tensor_info(w, name: str, shape: tuple[int, ...], qtype) -> None:
    from gguf import GGMLQuantizationType as T
    from gguf.quants import quant_shape_to_byte_shape

    n = nbytes_of(shape, qtype)
    if qtype == T.F32:
        w.add_tensor_info(name, shape, np.dtype(np.float32), n)
    elif qtype == T.F16:
        w.add_tensor_info(name, shape, np.dtype(np.float16), n)
    else:
        w.add_tensor_info(name, quant_shape_to_byte_shape(shape, qtype), np.dtype(np.uint8), n, raw_dtype=qtype)


@dataclass
class Result:
    path: str
    arch: str
    tensors: list[PlannedTensor]
    vocab: Vocab
    hparams: archmod.Hparams
    n_bytes: int


def convert(model_dir: str, out_path: str, outtype: str = "f16", name: str | None = None,
            progress: bool = True, log=print) -> Result:
    """Convert model_dir to out_path; returns what was written (for validation)."""
    import gguf
    from tqdm import tqdm

    if outtype not in OUTTYPES:
        raise ConvertError(f"unknown outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    config = load_config(model_dir)
    encoder = bertmod.is_bert(config)
    mod = bertmod if encoder else archmod
    hp = bertmod.hparams_of(config, model_dir) if encoder else archmod.hparams_of(config)
    ckpt = Checkpoint(model_dir)
    plans = mod.plan_tensors(hp, ckpt)
    n_vocab = plans[0].shape[0]  # token_embd rows
    vocab = bertmod.load_vocab(model_dir, n_vocab, hp) if encoder else load_vocab(model_dir, n_vocab, config)
    for warning in hp.warnings + vocab.warnings:
        log(f"hpl-convert: warning: {warning}")
    always_f32 = bertmod.ALWAYS_F32 if encoder else ()
    planned = [PlannedTensor(p, choose_type(tuple(p.shape), "f32" if p.gguf_name in always_f32 else outtype))
               for p in plans]

    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{out_path}: directory {out_dir} does not exist")
    tmp_path = out_path + ".part"
    w = gguf.GGUFWriter(tmp_path, hp.arch)
    try:
        w.add_name(name or os.path.basename(os.path.normpath(model_dir)))
        w.add_file_type(file_type_of(outtype))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_vocab_size(n_vocab)
        mod.write_hparams(w, hp)
        if encoder:
            bertmod.write_vocab(w, vocab, hp)
        else:
            write_vocab(w, vocab)
        for t in planned:
            add_tensor_info(w, t.plan.gguf_name, tuple(t.plan.shape), t.qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        total = sum(nbytes_of(tuple(t.plan.shape), t.qtype) for t in planned)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(out_path), disable=not progress)
        for t in planned:
            p = t.plan
            data = p.values if p.values is not None else ckpt.load(p.hf_name)
            data = mod.apply_transform(p, data, hp)
            blob = encode(data, t.qtype)
            del data
            w.write_tensor_data(blob)
            bar.update(blob.nbytes)
            del blob
        bar.close()
        w.close()
    except BaseException:
        w.close()
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    os.replace(tmp_path, out_path)
    return Result(out_path, hp.arch, planned, vocab, hp, os.path.getsize(out_path))
