#!/usr/bin/env python3
"""Writes a random-weight Hugging Face Llama folder (config.json, model.safetensors in F16,
tokenizer.json, tokenizer_config.json) for speed benchmarks. Default shape: TinyLlama-1.1B
(hidden 2048, 22 layers, FFN 5632, 32 heads, 4 KV heads, vocab 32000).

Weights: normal with std 0.02 (TinyLlama's initializer_range; trained matrices are of that
order), norms 1.0. The safetensors file is streamed one tensor at a time, so memory stays at
about one tensor. The tokenizer is a SentencePiece-style BPE vocab: <unk> <s> </s>, the 256
<0xXX> byte tokens, printable ASCII characters with and without the '▁' space marker, then
filler tokens up to the vocab size (no merges: text tokenizes to characters; enough for
benchmarks, which feed token ids).

    python3 bench/make_synthetic_hf.py OUT_DIR [--layers 22 --hidden 2048 ...]
"""
from __future__ import annotations

import argparse
import json
import os
import struct

import numpy as np


def tokenizer_json(n_vocab: int) -> dict:
    specials = ["<unk>", "<s>", "</s>"]
    toks = specials + [f"<0x{b:02X}>" for b in range(256)]
    chars = [chr(c) for c in range(33, 127)]
    toks += ["\u2581"] + chars + ["\u2581" + c for c in chars]
    if len(toks) > n_vocab:
        raise SystemExit(f"vocab {n_vocab} is smaller than the {len(toks)} base tokens")
    toks += [f"\u2581tok{i}" for i in range(n_vocab - len(toks))]
    vocab = {t: i for i, t in enumerate(toks)}
    return {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(specials)],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "},
                                                           "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }


def tensor_shapes(a) -> list[tuple[str, tuple[int, ...]]]:
    hd = a.hidden // a.heads
    out = [("model.embed_tokens.weight", (a.vocab, a.hidden))]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (a.hidden,)),
                (p + "self_attn.q_proj.weight", (a.heads * hd, a.hidden)),
                (p + "self_attn.k_proj.weight", (a.kv_heads * hd, a.hidden)),
                (p + "self_attn.v_proj.weight", (a.kv_heads * hd, a.hidden)),
                (p + "self_attn.o_proj.weight", (a.hidden, a.heads * hd)),
                (p + "post_attention_layernorm.weight", (a.hidden,)),
                (p + "mlp.gate_proj.weight", (a.ffn, a.hidden)),
                (p + "mlp.up_proj.weight", (a.ffn, a.hidden)),
                (p + "mlp.down_proj.weight", (a.hidden, a.ffn))]
    out += [("model.norm.weight", (a.hidden,)), ("lm_head.weight", (a.vocab, a.hidden))]
    return out


def write_safetensors(path: str, shapes, rng, std: float) -> None:
    header, offset = {}, 0
    for name, shp in shapes:
        n = int(np.prod(shp)) * 2
        header[name] = {"dtype": "F16", "shape": list(shp), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shp in shapes:
            if len(shp) == 1:
                a = np.ones(shp, dtype=np.float16)
            else:
                a = (rng.standard_normal(shp, dtype=np.float32) * np.float32(std)).astype(np.float16)
            f.write(a.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--std", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.hidden,
           "intermediate_size": a.ffn, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
           "num_key_value_heads": a.kv_heads, "vocab_size": a.vocab, "max_position_embeddings": 2048,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"}
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(a.out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(a.vocab), f, ensure_ascii=False)
    with open(os.path.join(a.out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                   "add_eos_token": False}, f)
    write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensor_shapes(a),
                      np.random.default_rng(a.seed), a.std)
    print(f"make_synthetic_hf: wrote {a.out_dir}")


if __name__ == "__main__":
    main()
