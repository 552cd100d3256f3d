"""Per-architecture knowledge: hyper-parameters from the HF config, and how each HF tensor
becomes a GGUF tensor (name and any change to its values).

  HF architecture                              GGUF general.architecture
  LlamaForCausalLM, MistralForCausalLM          llama   (Q/K rows permuted for adjacent-pair RoPE)
  Qwen2ForCausalLM                              qwen2   (Q/K/V biases; rotate-half RoPE, no permutation)
  Qwen3ForCausalLM                              qwen3   (per-head RMSNorm of q and k; rotate-half RoPE)
  Phi3ForCausalLM                               phi3    (fused qkv_proj / gate_up_proj kept fused; partial
                                                         rotary; LongRoPE factors as tensors)
  Gemma3ForCausalLM, Gemma3ForConditionalGeneration (text part only)
                                                gemma3  (norm weights stored as 1 + w; QK-norm;
                                                         post-attention / post-FFN norms)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import ConvertError

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Phi3ForCausalLM": "phi3",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
}

# Per-layer HF suffix -> GGUF suffix, in the order tensors are written.
_LAYER_COMMON = [
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.q_proj.bias", "attn_q.bias"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.k_proj.bias", "attn_k.bias"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.v_proj.bias", "attn_v.bias"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.o_proj.bias", "attn_output.bias"),
]
_LAYER_LLAMA = _LAYER_COMMON + [
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
]
_LAYER_GEMMA3 = _LAYER_COMMON + [
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("post_attention_layernorm.weight", "post_attention_norm.weight"),
    ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
    ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
]
_LAYER_QWEN3 = _LAYER_LLAMA + [
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
]
_LAYER_PHI3 = [
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.qkv_proj.weight", "attn_qkv.weight"),  # rows q, k, v (llama.cpp's layout)
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_up_proj.weight", "ffn_up.weight"),  # rows gate, then up
    ("mlp.down_proj.weight", "ffn_down.weight"),
]
_LAYER_MAPS = {"llama": _LAYER_LLAMA, "qwen2": _LAYER_LLAMA, "qwen3": _LAYER_QWEN3, "gemma3": _LAYER_GEMMA3,
               "phi3": _LAYER_PHI3}
_REQUIRED_LAYER = {
    "llama": ["attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
              "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"],
}
_REQUIRED_LAYER["qwen2"] = _REQUIRED_LAYER["llama"] + ["attn_q.bias", "attn_k.bias", "attn_v.bias"]
_REQUIRED_LAYER["qwen3"] = _REQUIRED_LAYER["llama"] + ["attn_q_norm.weight", "attn_k_norm.weight"]
_REQUIRED_LAYER["phi3"] = [g for _, g in _LAYER_PHI3]
_REQUIRED_LAYER["gemma3"] = _REQUIRED_LAYER["llama"] + [
    "attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight"]

# Checkpoint tensors that carry nothing the GGUF needs.
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$|^(model\.)?(vision_tower|multi_modal_projector)\.")


@dataclass
class TensorPlan:
    """One GGUF tensor: where it comes from and how its values change on the way."""

    gguf_name: str
    hf_name: str | None  # None: computed (rope_freqs)
    shape: tuple[int, ...]  # numpy order (rows, cols)
    transform: str = ""  # "", "permute_q", "permute_k", "plus_one"
    values: np.ndarray | None = None  # for computed tensors


@dataclass
class SizeHparams:
    """What every architecture has (the keys write_size_keys writes), decoders and bert."""

    arch: str
    hf_arch: str
    n_ctx: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int


@dataclass
class Hparams(SizeHparams):
    n_head_kv: int
    head_dim: int
    rms_eps: float
    rope_base: float
    tied: bool
    sliding_window: int = 0
    rope_base_swa: float = 0.0
    rope_scaling: dict = field(default_factory=dict)  # HF rope scaling of full-attention layers
    rot_dim: int = 0  # rotated dims per head (phi3 partial_rotary_factor); 0 = head_dim
    n_ctx_orig: int = 0  # phi3 LongRoPE original context
    attn_scale_override: float = 0.0  # gemma3 query_pre_attn_scalar**-0.5 when != head_dim**-0.5
    warnings: list = field(default_factory=list)


def architecture_of(config) -> tuple[str, str]:
    archs = list(getattr(config, "architectures", None) or [])
    for a in archs:
        if a in ARCHITECTURES:
            return a, ARCHITECTURES[a]
    supported = ", ".join(ARCHITECTURES)
    found = ", ".join(archs) if archs else "(config.json has no 'architectures')"
    raise ConvertError(f"unsupported architecture {found}; supported: {supported}")


def _rope_of(cfg, layer_type: str) -> tuple[float, dict]:
    """(rope theta, scaling dict or {}) for a layer type, for transformers v4 and v5 configs."""
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and rp:
        if layer_type in rp and isinstance(rp[layer_type], dict):
            rp = rp[layer_type]
        elif "full_attention" in rp and isinstance(rp["full_attention"], dict):
            rp = rp["full_attention"]
        theta = float(rp.get("rope_theta", 10000.0))
        kind = rp.get("rope_type", rp.get("type", "default"))
        return theta, ({} if kind in (None, "default") else dict(rp, rope_type=kind))
    if layer_type == "sliding_attention":
        return float(getattr(cfg, "rope_local_base_freq", 10000.0)), {}
    theta = float(getattr(cfg, "rope_theta", 10000.0))
    scaling = getattr(cfg, "rope_scaling", None) or {}
    kind = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    return theta, ({} if kind in (None, "default") else dict(scaling, rope_type=kind))


def hparams_of(config) -> Hparams:
    hf_arch, arch = architecture_of(config)
    cfg = config
    if hf_arch == "Gemma3ForConditionalGeneration":
        cfg = getattr(config, "text_config", None)
        if cfg is None:
            raise ConvertError("Gemma3ForConditionalGeneration config has no text_config")

    def need(name):
        v = getattr(cfg, name, None)
        if v is None:
            raise ConvertError(f"config.json: {hf_arch} needs {name!r}")
        return v

    n_embd = int(need("hidden_size"))
    n_head = int(need("num_attention_heads"))
    head_dim = getattr(cfg, "head_dim", None) or n_embd // n_head
    layer_types = list(getattr(cfg, "layer_types", None) or [])
    rope_base, rope_scaling = _rope_of(cfg, "full_attention")
    tied_default = arch == "gemma3"
    tied = getattr(config, "tie_word_embeddings", None)
    if tied is None:
        tied = getattr(cfg, "tie_word_embeddings", tied_default)
    hp = Hparams(
        arch=arch,
        hf_arch=hf_arch,
        n_ctx=int(need("max_position_embeddings")),
        n_embd=n_embd,
        n_layer=int(need("num_hidden_layers")),
        n_ff=int(need("intermediate_size")),
        n_head=n_head,
        n_head_kv=int(getattr(cfg, "num_key_value_heads", None) or n_head),
        head_dim=int(head_dim),
        rms_eps=float(getattr(cfg, "rms_norm_eps", 1e-6)),
        rope_base=rope_base,
        tied=bool(tied),
        rope_scaling=rope_scaling,
    )
    partial = getattr(cfg, "partial_rotary_factor", None) or (getattr(cfg, "rope_parameters", None) or {}).get(
        "partial_rotary_factor") or 1.0
    hp.rot_dim = int(hp.head_dim * float(partial))
    if hp.rot_dim != hp.head_dim and arch != "phi3":
        raise ConvertError(f"config.json: partial_rotary_factor {partial} is only supported for phi3")
    if hp.rot_dim % 2 or hp.rot_dim <= 0:
        raise ConvertError(f"config.json: partial_rotary_factor {partial} gives {hp.rot_dim} rotary dims (must be even)")
    if arch == "phi3":
        window = getattr(cfg, "sliding_window", None)
        if window and window < hp.n_ctx:
            hp.sliding_window = int(window)  # phi3 slides every layer (Phi-3-mini-4k)
        kind = hp.rope_scaling.get("rope_type") if hp.rope_scaling else None
        if kind not in (None, "longrope", "su"):
            raise ConvertError(f"config.json: phi3 rope type {kind!r} is not supported (default, longrope)")
        if kind:
            hp.n_ctx_orig = int(hp.rope_scaling.get("original_max_position_embeddings")
                                or getattr(cfg, "original_max_position_embeddings", 0) or 0)
            if not hp.n_ctx_orig:
                raise ConvertError("config.json: phi3 longrope needs original_max_position_embeddings")
            for key in ("short_factor", "long_factor"):
                if len(hp.rope_scaling.get(key) or []) != hp.rot_dim // 2:
                    raise ConvertError(f"config.json: phi3 rope {key} must have {hp.rot_dim // 2} entries "
                                       f"(rotary dims / 2)")
        act = getattr(cfg, "hidden_act", "silu")
        if act != "silu":
            raise ConvertError(f"config.json: {hf_arch} hidden_act {act!r} is not supported (silu)")
    elif arch == "gemma3":
        hp.sliding_window = int(getattr(cfg, "sliding_window", 0) or 0)
        hp.rope_base_swa, _ = _rope_of(cfg, "sliding_attention")
        # The engine (like llama.cpp) makes every 6th layer global and the rest sliding.
        if layer_types:
            expect = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(hp.n_layer)]
            if layer_types != expect:
                raise ConvertError(
                    f"config.json: gemma3 layer_types {layer_types} differ from the 5 sliding : 1 global "
                    "pattern the engine implements"
                )
        qpas = getattr(cfg, "query_pre_attn_scalar", None)
        if qpas and int(qpas) != hp.head_dim:
            hp.attn_scale_override = float(qpas) ** -0.5
        act = getattr(cfg, "hidden_activation", None) or getattr(cfg, "hidden_act", "gelu_pytorch_tanh")
        if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
            raise ConvertError(f"config.json: gemma3 hidden_activation {act!r} is not supported (gelu_pytorch_tanh)")
        for cap in ("final_logit_softcapping", "attn_logit_softcapping"):
            if getattr(cfg, cap, None):
                raise ConvertError(f"config.json: gemma3 {cap} is set; the engine does not implement it")
    else:
        # Mistral v0.1 / Qwen2 may declare a sliding window; the llama and qwen2 GGUF layouts
        # (and llama.cpp) have none, so attention is full-length.
        window = getattr(cfg, "sliding_window", None)
        if window and (arch == "llama" or getattr(cfg, "use_sliding_window", False)) and window < hp.n_ctx:
            hp.warnings.append(f"config.json sliding_window {window} is not carried over: the engine attends to "
                               f"the whole context, so outputs past {window} tokens differ from Hugging Face")
        act = getattr(cfg, "hidden_act", "silu")
        if act != "silu":
            raise ConvertError(f"config.json: {hf_arch} hidden_act {act!r} is not supported (silu)")
    if hp.n_head % hp.n_head_kv != 0:
        raise ConvertError(f"config.json: num_attention_heads {hp.n_head} is not a multiple of "
                           f"num_key_value_heads {hp.n_head_kv}")
    return hp


def write_size_keys(w, hp: SizeHparams) -> None:
    """The size keys every architecture has (decoders and bert): context, width, layers, FFN
    width, heads."""
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)


def refuse_leftover(hf_arch: str, leftover: list[str]) -> None:
    """Checkpoint tensors no rule took are an error naming the first few."""
    if leftover:
        more = f" (and {len(leftover) - 5} more)" if len(leftover) > 5 else ""
        raise ConvertError(f"checkpoint tensors not understood for {hf_arch}: {', '.join(leftover[:5])}{more}")


def check_plan_shapes(plans: list[TensorPlan], want: dict) -> None:
    """Each planned tensor's shape against want (keyed by GGUF name, without blk.N.)."""
    for p in plans:
        if p.hf_name is None:
            continue
        key = p.gguf_name.split(".", 2)[2] if p.gguf_name.startswith("blk.") else p.gguf_name
        if key in want and tuple(p.shape) != want[key]:
            raise ConvertError(
                f"tensor {p.hf_name} has shape {list(p.shape)}, but config.json implies {list(want[key])}")


def write_hparams(w, hp: Hparams) -> None:
    """All hyper-parameter keys, named as llama.cpp reads them ({arch}.xxx)."""
    write_size_keys(w, hp)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    w.add_rope_dimension_count(hp.rot_dim or hp.head_dim)
    w.add_rope_freq_base(hp.rope_base)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    if hp.arch == "gemma3":
        w.add_sliding_window(hp.sliding_window)
        w.add_rope_freq_base_swa(hp.rope_base_swa)
        if hp.attn_scale_override:
            w.add_attention_scale(hp.attn_scale_override)
    if hp.arch == "phi3" and hp.sliding_window:
        w.add_sliding_window(hp.sliding_window)
    sc = hp.rope_scaling
    if hp.arch == "phi3" and sc:
        # LongRoPE (llama.cpp's keys): factors go in rope_factors_long/short (extra_tensors);
        # q and k rotated dims are scaled by the attention factor, from the context extension.
        w.add_rope_scaling_orig_ctx_len(hp.n_ctx_orig)
        w.add_rope_scaling_attn_factors(_longrope_attn_factor(hp))
        return
    if sc:
        kind = sc["rope_type"]
        if kind == "linear":
            w.add_rope_scaling_type(_rope_scaling_type("LINEAR"))
            w.add_rope_scaling_factor(float(sc["factor"]))
        elif kind == "yarn":
            w.add_rope_scaling_type(_rope_scaling_type("YARN"))
            w.add_rope_scaling_factor(float(sc["factor"]))
            if sc.get("original_max_position_embeddings"):
                w.add_rope_scaling_orig_ctx_len(int(sc["original_max_position_embeddings"]))
        elif kind == "llama3":
            pass  # carried by the rope_freqs tensor (see extra_tensors)
        else:
            raise ConvertError(f"config.json: rope scaling type {kind!r} is not supported (linear, yarn, llama3)")


def _longrope_attn_factor(hp: Hparams) -> float:
    sc = hp.rope_scaling
    if sc.get("attention_factor") is not None:
        return float(sc["attention_factor"])
    scale = hp.n_ctx / hp.n_ctx_orig
    return 1.0 if scale <= 1.0 else math.sqrt(1.0 + math.log(scale) / math.log(hp.n_ctx_orig))


def _rope_scaling_type(name: str):
    import gguf

    return getattr(gguf.RopeScalingType, name)


def _normalize_hf_name(name: str) -> str:
    """Gemma3ForConditionalGeneration keeps the text model under language_model."""
    for prefix, repl in (("model.language_model.", "model."), ("language_model.model.", "model."),
                         ("language_model.lm_head.", "lm_head.")):
        if name.startswith(prefix):
            return repl + name[len(prefix):]
    return name


def plan_tensors(hp: Hparams, checkpoint) -> list[TensorPlan]:
    """Every GGUF tensor in file order, checked against the checkpoint and the config."""
    by_norm = {}
    for name in checkpoint.names():
        if _IGNORED.search(name):
            continue
        by_norm[_normalize_hf_name(name)] = name

    layer_map = _LAYER_MAPS[hp.arch]
    plans: list[TensorPlan] = []
    used = set()

    def take(norm_name: str, gguf_name: str) -> TensorPlan | None:
        hf = by_norm.get(norm_name)
        if hf is None:
            return None
        used.add(norm_name)
        p = TensorPlan(gguf_name, hf, checkpoint.shape(hf))
        if hp.arch == "gemma3" and gguf_name.endswith("norm.weight") and not gguf_name.startswith("rope"):
            p.transform = "plus_one"
        elif hp.arch == "llama" and gguf_name.startswith("blk.") and gguf_name.split(".", 2)[2] in (
                "attn_q.weight", "attn_q.bias"):
            p.transform = "permute_q"
        elif hp.arch == "llama" and gguf_name.startswith("blk.") and gguf_name.split(".", 2)[2] in (
                "attn_k.weight", "attn_k.bias"):
            p.transform = "permute_k"
        plans.append(p)
        return p

    emb = take("model.embed_tokens.weight", "token_embd.weight")
    if emb is None:
        # Some tied checkpoints (TinyStories-656K) store the shared matrix only as lm_head.
        if hp.tied and "lm_head.weight" in by_norm:
            emb = take("lm_head.weight", "token_embd.weight")
        else:
            raise ConvertError("checkpoint has no model.embed_tokens.weight")
    plans.extend(extra_tensors(hp))
    for il in range(hp.n_layer):
        for hf_suffix, gguf_suffix in layer_map:
            take(f"model.layers.{il}.{hf_suffix}", f"blk.{il}.{gguf_suffix}")
        have = {p.gguf_name for p in plans}
        for req in _REQUIRED_LAYER[hp.arch]:
            if f"blk.{il}.{req}" not in have:
                hf_suffix = next((h for h, g in layer_map if g == req), req)
                raise ConvertError(f"checkpoint has no model.layers.{il}.{hf_suffix} (needed for {hp.arch})")
    if take("model.norm.weight", "output_norm.weight") is None:
        raise ConvertError("checkpoint has no model.norm.weight")
    if hp.tied:
        used.add("lm_head.weight")  # the same matrix as token_embd
    elif take("lm_head.weight", "output.weight") is None:
        raise ConvertError("config says tie_word_embeddings is false, but the checkpoint has no lm_head.weight")

    refuse_leftover(hp.hf_arch, sorted(by_norm[n] for n in by_norm if n not in used))
    _check_shapes(hp, plans)
    return plans


def _check_shapes(hp: Hparams, plans: list[TensorPlan]) -> None:
    d, hd = hp.n_embd, hp.head_dim
    q, kv = hp.n_head * hd, hp.n_head_kv * hd
    n_vocab = plans[0].shape[0]
    want = {
        "token_embd.weight": (n_vocab, d), "output.weight": (n_vocab, d), "output_norm.weight": (d,),
        "attn_norm.weight": (d,), "attn_q.weight": (q, d), "attn_k.weight": (kv, d), "attn_v.weight": (kv, d),
        "attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,), "attn_output.weight": (d, q),
        "attn_output.bias": (d,), "ffn_norm.weight": (d,), "ffn_gate.weight": (hp.n_ff, d),
        "ffn_up.weight": (hp.n_ff, d), "ffn_down.weight": (d, hp.n_ff), "attn_q_norm.weight": (hd,),
        "attn_k_norm.weight": (hd,), "post_attention_norm.weight": (d,), "post_ffw_norm.weight": (d,),
        "attn_qkv.weight": (q + 2 * kv, d),
    }
    if hp.arch == "phi3":
        want["ffn_up.weight"] = (2 * hp.n_ff, d)
    check_plan_shapes(plans, want)
    if hp.head_dim % 2:
        raise ConvertError(f"head_dim {hp.head_dim} is odd; RoPE needs pairs")


def extra_tensors(hp: Hparams) -> list[TensorPlan]:
    """Tensors computed from the config: llama3 RoPE frequency factors (rope_freqs.weight),
    phi3 LongRoPE factors (rope_factors_long.weight, rope_factors_short.weight)."""
    sc = hp.rope_scaling
    if hp.arch == "phi3" and sc:
        return [TensorPlan(f"rope_factors_{k}.weight", None, (hp.rot_dim // 2,),
                           values=np.asarray(sc[f"{k}_factor"], dtype=np.float32)) for k in ("long", "short")]
    if not sc or sc.get("rope_type") != "llama3":
        return []
    factor = float(sc.get("factor", 8.0))
    low = float(sc.get("low_freq_factor", 1.0))
    high = float(sc.get("high_freq_factor", 4.0))
    old_ctx = float(sc.get("original_max_position_embeddings", 8192))
    # Llama 3.1 scaling: long wavelengths are slowed down by `factor`, short ones kept,
    # the band between is blended. The engine divides each pair's frequency by its factor.
    freqs = hp.rope_base ** (-np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim)
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    vals = np.asarray(out, dtype=np.float32)
    return [TensorPlan("rope_freqs.weight", None, vals.shape, values=vals)]


def permute_for_adjacent_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF llama rotates (x[i], x[i + hd/2]) pairs; GGUF llama rotates (x[2i], x[2i+1]).
    Reorder each head's rows so row 2i comes from HF row i and row 2i+1 from HF row i + hd/2:
    W (n_heads * hd, n) -> (n_heads, 2, hd/2, n) -> swap the middle axes -> (n_heads * hd, n)."""
    rows = w.shape[0]
    hd = rows // n_heads
    return w.reshape(n_heads, 2, hd // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def apply_transform(p: TensorPlan, data: np.ndarray, hp: Hparams) -> np.ndarray:
    if p.transform == "permute_q":
        return permute_for_adjacent_rope(data, hp.n_head)
    if p.transform == "permute_k":
        return permute_for_adjacent_rope(data, hp.n_head_kv)
    if p.transform == "plus_one":
        return data + np.float32(1.0)  # Gemma's RMSNorm multiplies by (1 + w)
    return data
