"""Reads a SentencePiece `tokenizer.model` (a protobuf ModelProto) without the sentencepiece
package: only the few fields a GGUF vocab needs.

  ModelProto      1: pieces (repeated SentencePiece)  2: trainer_spec  3: normalizer_spec
  SentencePiece   1: piece (string)  2: score (float)  3: type (enum, NORMAL=1 .. BYTE=6)
  TrainerSpec     3: model_type (1 unigram, 2 bpe)  35: byte_fallback
                  40: unk_id  41: bos_id  42: eos_id  43: pad_id
  NormalizerSpec  3: add_dummy_prefix (default true)
The piece type numbers are the same as GGUF's token types.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import ConvertError


@dataclass
class SpmModel:
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    model_type: int = 1
    byte_fallback: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    add_dummy_prefix: bool = True


def _varint(buf: bytes, i: int, path: str) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ConvertError(f"{path}: truncated protobuf varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 70:
            raise ConvertError(f"{path}: bad protobuf varint")


def _fields(buf: bytes, path: str):
    """(field number, wire type, value) for each field of one message; value is int or bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i, path)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i, path)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i, path)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ConvertError(f"{path}: unsupported protobuf wire type {wt}")
        if i > len(buf):
            raise ConvertError(f"{path}: truncated protobuf field {num}")
        yield num, wt, v


def _int32(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def read_spm_model(path: str) -> SpmModel:
    with open(path, "rb") as f:
        buf = f.read()
    m = SpmModel()
    for num, wt, v in _fields(buf, path):
        if num == 1 and wt == 2:
            piece, score, typ = None, 0.0, 1
            for n2, w2, v2 in _fields(v, path):
                if n2 == 1 and w2 == 2:
                    piece = v2.decode("utf-8")
                elif n2 == 2 and w2 == 5:
                    score = struct.unpack("<f", v2)[0]
                elif n2 == 3 and w2 == 0:
                    typ = v2
            if piece is None:
                raise ConvertError(f"{path}: piece {len(m.pieces)} has no text")
            m.pieces.append(piece)
            m.scores.append(score)
            m.types.append(typ)
        elif num == 2 and wt == 2:
            for n2, w2, v2 in _fields(v, path):
                if w2 != 0:
                    continue
                if n2 == 3:
                    m.model_type = v2
                elif n2 == 35:
                    m.byte_fallback = bool(v2)
                elif n2 == 40:
                    m.unk_id = _int32(v2)
                elif n2 == 41:
                    m.bos_id = _int32(v2)
                elif n2 == 42:
                    m.eos_id = _int32(v2)
                elif n2 == 43:
                    m.pad_id = _int32(v2)
        elif num == 3 and wt == 2:
            for n2, w2, v2 in _fields(v, path):
                if n2 == 3 and w2 == 0:
                    m.add_dummy_prefix = bool(v2)
    if not m.pieces:
        raise ConvertError(f"{path}: no pieces (not a SentencePiece model?)")
    return m
