"""Tiny random-weight Hugging Face models of every architecture the engine runs, and their
logits from transformers' own PyTorch forward pass: the oracle nobody in this project wrote.

Run once with PyTorch installed (it is not needed to run the tests):
    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch transformers
    /tmp/tv/bin/python tests/reference/make_hf_fixtures.py [--out tests/data/hf-tiny]

Each fixture keeps the structure of the real config it is named after (GQA ratio, head_dim vs
hidden size, biases, QK-norm, tied or untied output, RoPE scaling, sliding window) with
2 layers (Gemma 3: 6, so one layer is global) and a hidden size of 48-64. Weights are
seeded random, scaled so the logits are peaked (HF's 0.02 init gives near-ties everywhere),
then rounded to float16 and saved; transformers runs them in float32 (eager attention), so an
F32 or F16 GGUF of the folder holds exactly the weights transformers used.

Per fixture folder: config.json, model.safetensors, tokenizer.json / tokenizer_config.json
(byte-level BPE: 256 byte tokens, 5 merges, specials; only so hpl-convert has a
vocabulary), expected.json (prompts, the engine context to use, greedy continuations) and
logits.npz (logits_<i>: (len(prompt_i), n_vocab) float32).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

N_VOCAB = 272  # 256 bytes + <s> </s> <pad> + 5 merged pairs + 8 spare specials
BOS, EOS, PAD = 256, 257, 258
GREEDY_NEW = 12

# name -> (model_type, config kwargs, what it mirrors)
FIXTURES = {
    # Llama 3.2 1B: GQA 4:1, head_dim 64, tied, llama3 RoPE scaling (factor 32, low 1, high 4).
    # original_max_position_embeddings is 64 (8192 in the real model) so that the scaled band
    # holds frequencies that rotate within a short prompt: ignoring the scaling must show.
    "llama3": ("llama", dict(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
        intermediate_size=128, rms_norm_eps=1e-5, tie_word_embeddings=True,
        max_position_embeddings=2048,
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=64)),
        "Llama-3.2-1B"),
    # Llama 2 7B: multi-head (no GQA), untied output.
    "llama2": ("llama", dict(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=4, intermediate_size=128,
        rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=4096,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
        "Llama-2-7b"),
    # SmolLM2-135M: GQA 3:1, head_dim 64 (here 16), tied.
    "smollm2": ("llama", dict(
        hidden_size=48, num_attention_heads=3, num_key_value_heads=1, intermediate_size=96,
        rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=8192,
        rope_parameters=dict(rope_type="default", rope_theta=100000.0)),
        "SmolLM2-135M"),
    # Qwen2.5-0.5B: GQA 7:1, Q/K/V biases, tied, theta 1e6.
    "qwen2": ("qwen2", dict(
        hidden_size=56, num_attention_heads=7, num_key_value_heads=1, intermediate_size=96,
        rms_norm_eps=1e-6, tie_word_embeddings=True, max_position_embeddings=32768,
        use_sliding_window=False, rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        "Qwen2.5-0.5B"),
    # Qwen3-0.6B: GQA 2:1, head_dim 128 with hidden 1024 (q_dim > hidden; here 32 x 4 > 64),
    # per-head RMSNorm of q and k, no biases, tied.
    "qwen3": ("qwen3", dict(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        intermediate_size=96, rms_norm_eps=1e-6, tie_word_embeddings=True,
        max_position_embeddings=40960, attention_bias=False,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        "Qwen3-0.6B"),
    # Gemma 3 (270M: 1 KV head, head_dim 256 > hidden / heads; 4B+: linear RoPE scaling 8 on
    # global layers; 27B: query_pre_attn_scalar != head_dim): 5 sliding layers then 1 global,
    # a 4-token window (512 in the real models) so the prompts cross it.
    "gemma3": ("gemma3_text", dict(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
        intermediate_size=96, num_hidden_layers=6, rms_norm_eps=1e-6, tie_word_embeddings=True,
        max_position_embeddings=32768, sliding_window=4, query_pre_attn_scalar=24,
        layer_types=["sliding_attention"] * 5 + ["full_attention"],
        final_logit_softcapping=None, attn_logit_softcapping=None,
        hidden_activation="gelu_pytorch_tanh",
        rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=10000.0),
                         "full_attention": dict(rope_type="linear", factor=8.0, rope_theta=1000000.0)}),
        "gemma-3-270m / 4b / 27b"),
    # Phi-4-mini: fused qkv_proj and gate_up_proj, GQA 3:1, partial rotary 0.75, tied,
    # LongRoPE with short and long factors. original_max_position_embeddings is 16 (4096 in the
    # real model) so a 24-token prompt takes the long factors; the attention factor
    # sqrt(1 + ln(4096/16) / ln 16) scales the rotated dims.
    "phi3": ("phi3", dict(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
        rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=4096,
        original_max_position_embeddings=16, partial_rotary_factor=0.75, sliding_window=None,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
        rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                             original_max_position_embeddings=16,
                             short_factor=[1.0, 1.1, 1.3, 1.7, 2.2, 3.0],
                             long_factor=[1.0, 1.5, 3.0, 6.0, 12.0, 24.0])),
        "Phi-4-mini-instruct"),
}


def prompts_for(name, rng):
    """BOS + random ids; lengths 6, 13 and 24 (longer than Gemma's window and phi3's 16)."""
    return [[BOS] + [int(x) for x in rng.integers(0, 256, n - 1)] for n in (6, 13, 24)]


def engine_ctx(name, hf_config, n):
    """The context the engine must run a sequence of n tokens with to match transformers.
    Phi-3 LongRoPE: transformers takes the long factors once the sequence exceeds the original
    context, the engine (like llama.cpp) once the context does."""
    if name == "phi3":
        orig = hf_config.rope_parameters.get("original_max_position_embeddings") or \
            hf_config.original_max_position_embeddings
        return orig if n <= orig else 64
    return 64


def tokenizer_json():
    # GPT-2's byte -> printable-unicode table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_char = dict(zip(bs, map(chr, cs)))
    vocab = {byte_char[b]: b for b in range(256)}
    merges = [["\u0120", "t"], ["h", "e"], ["i", "n"], ["e", "r"], ["a", "n"]]
    specials = ["<s>", "</s>", "<pad>"] + [f"<extra_{i}>" for i in range(N_VOCAB - 259 - len(merges))]
    added = []
    for i, t in enumerate(specials):
        vocab[t] = 256 + i
        added.append(dict(id=256 + i, content=t, single_word=False, lstrip=False, rstrip=False,
                          normalized=False, special=True))
    for a, b in merges:
        vocab[a + b] = len(vocab)
    byte_level = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=True, use_regex=True)
    return dict(version="1.0", truncation=None, padding=None, added_tokens=added, normalizer=None,
                pre_tokenizer=byte_level, post_processor=None, decoder=byte_level,
                model=dict(type="BPE", dropout=None, unk_token=None, continuing_subword_prefix=None,
                           end_of_word_suffix=None, fuse_unk=False, byte_fallback=False,
                           ignore_merges=False, vocab=vocab, merges=merges))


def init_weights(model, seed, gemma):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1:
                if "norm" in name:
                    p.copy_(0.1 * r if gemma else 1.0 + 0.1 * r)  # Gemma scales by (1 + w)
                else:
                    p.copy_(0.5 * r)  # biases
            elif "embed_tokens" in name:
                p.copy_(r)
            elif "lm_head" in name:
                p.copy_(r * 3.0 / math.sqrt(p.shape[1]))
            else:
                p.copy_(r / math.sqrt(p.shape[1]))


def build(name, out_dir: Path, seed):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, kw, mirrors = FIXTURES[name]
    kw = dict(kw)
    kw.setdefault("num_hidden_layers", 2)
    kw.setdefault("bos_token_id", BOS)
    kw.setdefault("eos_token_id", EOS)
    kw.setdefault("pad_token_id", PAD)
    cfg = AutoConfig.for_model(model_type, vocab_size=N_VOCAB, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    init_weights(model, seed, gemma=model_type.startswith("gemma"))
    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        if (folder / extra).exists():
            (folder / extra).unlink()
    write_tokenizer(folder)

    # transformers' forward in float32 on exactly the saved (float16-rounded) weights.
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()

    def logits_of(ids):
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float().numpy()

    rng = np.random.default_rng(seed)
    prompts = prompts_for(name, rng)
    logits, greedy, ctxs = {}, [], []
    for i, ids in enumerate(prompts):
        logits[f"logits_{i}"] = logits_of(ids).astype(np.float32)
        n_new = GREEDY_NEW
        if name == "phi3" and len(ids) <= 16:
            n_new = 16 - len(ids) + 1  # stay within the short-factor range (see engine_ctx)
        seq = list(ids)
        for _ in range(n_new):
            seq.append(int(logits_of(seq)[-1].argmax()))  # a full forward per step, no cache
        greedy.append(seq[len(ids):])
        ctxs.append(engine_ctx(name, model.config, len(seq) - 1))  # the last id is never fed
    np.savez_compressed(folder / "logits.npz", **logits)
    margins = []
    for i in range(len(prompts)):
        top2 = np.sort(logits[f"logits_{i}"], axis=-1)[:, -2:]
        margins.append(float((top2[:, 1] - top2[:, 0]).min()))
    (folder / "expected.json").write_text(json.dumps(dict(
        mirrors=mirrors, seed=seed, transformers=transformers.__version__, torch=torch.__version__,
        prompts=prompts, n_ctx=ctxs, greedy=greedy,
        min_top2_margin=margins), indent=1) + "\n")
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{name:8s} {size / 1024:7.1f} KiB  min top-2 margin {min(margins):.4f}  ({mirrors})")


def write_tokenizer(folder: Path):
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(), ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", add_bos_token=True, add_eos_token=False)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "hf-tiny"))
    ap.add_argument("names", nargs="*", default=list(FIXTURES))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for i, name in enumerate(a.names):
        build(name, out, seed=1000 + list(FIXTURES).index(name))


if __name__ == "__main__":
    main()
