"""BERT encoders: BertModel (embeddings) and BertForSequenceClassification (cross-encoder
rerankers) -> GGUF architecture `bert`, with llama.cpp's tensor names and metadata keys so its
loader reads our files and ours reads its files.

  HF tensor (an optional "bert." prefix dropped)      GGUF tensor
  embeddings.word_embeddings.weight                   token_embd.weight
  embeddings.position_embeddings.weight               position_embd.weight
  embeddings.token_type_embeddings.weight             token_types.weight
  embeddings.LayerNorm.{weight,bias}                  token_embd_norm.{weight,bias}
  encoder.layer.N.attention.self.{query,key,value}    blk.N.attn_{q,k,v}.{weight,bias}
  encoder.layer.N.attention.output.dense              blk.N.attn_output.{weight,bias}
  encoder.layer.N.attention.output.LayerNorm          blk.N.attn_output_norm.{weight,bias}
  encoder.layer.N.intermediate.dense                  blk.N.ffn_up.{weight,bias}
  encoder.layer.N.output.dense                        blk.N.ffn_down.{weight,bias}
  encoder.layer.N.output.LayerNorm                    blk.N.layer_output_norm.{weight,bias}
  pooler.dense (sequence classification only)         cls.{weight,bias}  (dense + tanh)
  classifier                                          cls.output.{weight,bias}

The vocabulary (vocab.txt or a WordPiece tokenizer.json) is written in llama.cpp's "phantom
space" form: a word-start piece as "\u2581" + piece, a "##" continuation without the "##",
special tokens verbatim.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .arch import SizeHparams, TensorPlan, check_plan_shapes, refuse_leftover, write_size_keys
from .errors import ConvertError
from .vocab import CONTROL, NORMAL, Vocab

ARCHITECTURES = {"BertModel": "bert", "BertForSequenceClassification": "bert"}

_EMBED = [
    ("embeddings.word_embeddings.weight", "token_embd.weight"),
    ("embeddings.position_embeddings.weight", "position_embd.weight"),
    ("embeddings.token_type_embeddings.weight", "token_types.weight"),
    ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
    ("embeddings.LayerNorm.bias", "token_embd_norm.bias"),
]
_LAYER = [
    ("attention.self.query", "attn_q"),
    ("attention.self.key", "attn_k"),
    ("attention.self.value", "attn_v"),
    ("attention.output.dense", "attn_output"),
    ("attention.output.LayerNorm", "attn_output_norm"),
    ("intermediate.dense", "ffn_up"),
    ("output.dense", "ffn_down"),
    ("output.LayerNorm", "layer_output_norm"),
]
# Kept F32 whatever the output type, as llama.cpp's converter does (its graph adds the
# token-type row to F32 activations, which needs an F32 tensor).
ALWAYS_F32 = {"position_embd.weight", "token_types.weight"}
_HEAD = [("pooler.dense", "cls"), ("classifier", "cls.output")]
# Checkpoint tensors with nothing the encoder needs (masked-LM / NSP heads, buffers).
_IGNORED_PREFIXES = ("cls.predictions.", "cls.seq_relationship.")
_IGNORED = ("embeddings.position_ids",)


@dataclass
class BertHparams(SizeHparams):
    norm_eps: float
    n_token_types: int
    pooling: str  # "mean", "cls", "last", "rank"
    labels: list = field(default_factory=list)  # classifier labels (rerankers)
    lowercase: bool = True
    warnings: list = field(default_factory=list)


def is_bert(config) -> bool:
    return any(a in ARCHITECTURES for a in (getattr(config, "architectures", None) or []))


def _pooling_of(model_dir: str, hf_arch: str) -> str:
    """sentence-transformers' Pooling module config when present (as llama.cpp reads it), else
    mean for embedders; rank for rerankers."""
    if hf_arch == "BertForSequenceClassification":
        return "rank"
    modules = os.path.join(model_dir, "modules.json")
    if os.path.isfile(modules):
        with open(modules, encoding="utf-8") as f:
            for mod in json.load(f):
                if str(mod.get("type", "")).endswith("Pooling"):
                    with open(os.path.join(model_dir, mod["path"], "config.json"), encoding="utf-8") as g:
                        p = json.load(g)
                    if p.get("pooling_mode_mean_tokens"):
                        return "mean"
                    if p.get("pooling_mode_cls_token"):
                        return "cls"
                    if p.get("pooling_mode_lasttoken"):
                        return "last"
                    if p.get("pooling_mode") in ("mean", "cls"):
                        return p["pooling_mode"]
                    if p.get("pooling_mode") == "lasttoken":
                        return "last"
                    raise ConvertError(f"{model_dir}: pooling config {p} is not mean, cls or last")
    return "mean"


def hparams_of(config, model_dir: str) -> BertHparams:
    hf_arch = next(a for a in config.architectures if a in ARCHITECTURES)

    def need(name):
        v = getattr(config, name, None)
        if v is None:
            raise ConvertError(f"config.json: {hf_arch} needs {name!r}")
        return v

    act = getattr(config, "hidden_act", "gelu")
    if act != "gelu":
        raise ConvertError(f"config.json: {hf_arch} hidden_act {act!r} is not supported (gelu, the exact erf form)")
    pos = getattr(config, "position_embedding_type", "absolute") or "absolute"
    if pos != "absolute":
        raise ConvertError(f"config.json: position_embedding_type {pos!r} is not supported (absolute)")
    if getattr(config, "is_decoder", False):
        raise ConvertError("config.json: is_decoder is set; only bidirectional BERT encoders are supported")
    hp = BertHparams(
        arch="bert",
        hf_arch=hf_arch,
        n_ctx=int(need("max_position_embeddings")),
        n_embd=int(need("hidden_size")),
        n_layer=int(need("num_hidden_layers")),
        n_ff=int(need("intermediate_size")),
        n_head=int(need("num_attention_heads")),
        norm_eps=float(getattr(config, "layer_norm_eps", 1e-12)),
        n_token_types=int(getattr(config, "type_vocab_size", 1) or 1),
        pooling=_pooling_of(model_dir, hf_arch),
    )
    if hp.n_embd % hp.n_head:
        raise ConvertError(f"config.json: hidden_size {hp.n_embd} is not a multiple of num_attention_heads {hp.n_head}")
    if hf_arch == "BertForSequenceClassification":
        id2label = getattr(config, "id2label", None) or {}
        hp.labels = [id2label[k] for k in sorted(id2label)]
    return hp


def write_hparams(w, hp: BertHparams) -> None:
    """llama.cpp's bert keys ({arch}.xxx)."""
    import gguf

    write_size_keys(w, hp)
    w.add_layer_norm_eps(hp.norm_eps)
    w.add_causal_attention(False)
    w.add_pooling_type({"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS,
                        "last": gguf.PoolingType.LAST, "rank": gguf.PoolingType.RANK}[hp.pooling])
    if hp.labels and not (len(hp.labels) == 2 and hp.labels[0] == "LABEL_0"):
        w.add_classifier_output_labels(hp.labels)  # llama.cpp skips AutoConfig's dummy labels too


def plan_tensors(hp: BertHparams, checkpoint) -> list[TensorPlan]:
    """Every GGUF tensor in file order, checked against the checkpoint and the config."""
    by_name = {}
    for name in checkpoint.names():
        n = name[5:] if name.startswith("bert.") else name
        if n.endswith(".gamma"):
            n = n[:-6] + ".weight"
        elif n.endswith(".beta"):
            n = n[:-5] + ".bias"
        if n in _IGNORED or n.startswith(_IGNORED_PREFIXES):
            continue
        by_name[n] = name
    used = set()
    plans: list[TensorPlan] = []

    def take(hf: str, gguf_name: str, required: bool) -> None:
        src = by_name.get(hf)
        if src is None:
            if required:
                raise ConvertError(f"checkpoint has no {hf} (needed for {hp.hf_arch})")
            return
        used.add(hf)
        plans.append(TensorPlan(gguf_name, src, checkpoint.shape(src)))

    for hf, g in _EMBED:
        take(hf, g, required=g != "token_types.weight")
    for il in range(hp.n_layer):
        for hf, g in _LAYER:
            take(f"encoder.layer.{il}.{hf}.weight", f"blk.{il}.{g}.weight", True)
            take(f"encoder.layer.{il}.{hf}.bias", f"blk.{il}.{g}.bias", g.endswith("norm"))
    if hp.hf_arch == "BertForSequenceClassification":
        for hf, g in _HEAD:
            take(f"{hf}.weight", f"{g}.weight", hf == "classifier")
            take(f"{hf}.bias", f"{g}.bias", False)
    else:
        # BertModel's pooler is not part of an embedding (llama.cpp drops it as well).
        used.update(n for n in by_name if n.startswith("pooler."))
    refuse_leftover(hp.hf_arch, sorted(by_name[n] for n in by_name if n not in used))
    _check_shapes(hp, plans)
    return plans


def _check_shapes(hp: BertHparams, plans: list[TensorPlan]) -> None:
    d, f = hp.n_embd, hp.n_ff
    want = {"position_embd.weight": (hp.n_ctx, d), "token_types.weight": (hp.n_token_types, d),
            "token_embd_norm.weight": (d,), "token_embd_norm.bias": (d,), "cls.weight": (d, d), "cls.bias": (d,)}
    for g in ("attn_q", "attn_k", "attn_v", "attn_output"):
        want[g + ".weight"], want[g + ".bias"] = (d, d), (d,)
    for g in ("attn_output_norm", "layer_output_norm"):
        want[g + ".weight"], want[g + ".bias"] = (d,), (d,)
    want["ffn_up.weight"], want["ffn_up.bias"] = (f, d), (f,)
    want["ffn_down.weight"], want["ffn_down.bias"] = (d, f), (d,)
    if plans[0].shape[1] != d:
        raise ConvertError(f"embeddings.word_embeddings has rows of {plans[0].shape[1]}, config says {d}")
    check_plan_shapes(plans, want)


def apply_transform(p: TensorPlan, data, hp: BertHparams):
    return data


def _wordpiece_vocab(model_dir: str) -> tuple[list[str], set[str], bool | None]:
    """(pieces by id, special piece texts, lowercase or None) from vocab.txt or tokenizer.json."""
    tj_path = os.path.join(model_dir, "tokenizer.json")
    if os.path.isfile(tj_path):
        with open(tj_path, encoding="utf-8") as f:
            tj = json.load(f)
        model = tj.get("model") or {}
        if model.get("type") != "WordPiece":
            raise ConvertError(f"{tj_path}: model type {model.get('type')!r}; a BERT needs WordPiece")
        vocab = dict(model.get("vocab") or {})
        special = set()
        for t in tj.get("added_tokens") or []:
            vocab.setdefault(t["content"], t["id"])
            if t.get("special"):
                special.add(t["content"])
        pieces = [None] * len(vocab)
        for text, i in vocab.items():
            if not 0 <= i < len(pieces) or pieces[i] is not None:
                raise ConvertError(f"{tj_path}: vocabulary ids are not 0..{len(vocab) - 1} once each")
            pieces[i] = text
        lower = (tj.get("normalizer") or {}).get("lowercase")
        return pieces, special, lower
    vt_path = os.path.join(model_dir, "vocab.txt")
    if not os.path.isfile(vt_path):
        raise ConvertError(f"{model_dir}: no tokenizer.json or vocab.txt")
    with open(vt_path, encoding="utf-8") as f:
        pieces = [line.rstrip("\n") for line in f]
    while pieces and pieces[-1] == "":
        pieces.pop()
    return pieces, set(), None


def load_vocab(model_dir: str, n_vocab: int, hp: BertHparams) -> Vocab:
    pieces, special, lower = _wordpiece_vocab(model_dir)
    tc_path = os.path.join(model_dir, "tokenizer_config.json")
    tok_cfg = {}
    if os.path.isfile(tc_path):
        with open(tc_path, encoding="utf-8") as f:
            tok_cfg = json.load(f)
    names = {k: tok_cfg.get(f"{k}_token") for k in ("cls", "sep", "unk", "pad", "mask")}
    defaults = {"cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "pad": "[PAD]", "mask": "[MASK]"}
    ids = {}
    index = {t: i for i, t in enumerate(pieces)}
    for k, d in defaults.items():
        text = names[k] if isinstance(names[k], str) else d
        if text in index:
            ids[k] = index[text]
            special.add(text)
    if "cls" not in ids or "sep" not in ids:
        raise ConvertError(f"{model_dir}: the vocabulary has no [CLS] / [SEP] token")
    if len(pieces) > n_vocab:
        raise ConvertError(f"{model_dir}: {len(pieces)} vocabulary entries but {n_vocab} embedding rows")
    warnings = []
    while len(pieces) < n_vocab:  # embedding rows past the vocabulary (padded matrices)
        pieces.append(f"[PAD{len(pieces)}]")
        special.add(pieces[-1])
    types = [CONTROL if t in special else NORMAL for t in pieces]

    def phantom(t: str, ty: int) -> str:
        if ty == CONTROL:
            return t
        return t[2:] if t.startswith("##") else "\u2581" + t

    v = Vocab(model="bert", pre="default", tokens=[phantom(t, ty) for t, ty in zip(pieces, types)], types=types,
              source="wordpiece", warnings=warnings)
    v.special_ids = {"bos": ids["cls"], "unk": ids.get("unk"), "pad": ids.get("pad")}
    v.special_ids = {k: i for k, i in v.special_ids.items() if i is not None}
    v.add_bos = True
    v.extra = {"cls": ids["cls"], "sep": ids["sep"], "mask": ids.get("mask")}
    if lower is None:
        lower = tok_cfg.get("do_lower_case", True)
    hp.lowercase = bool(lower)
    return v


def write_vocab(w, v: Vocab, hp: BertHparams) -> None:
    from .vocab import write_vocab as write_common

    write_common(w, v)
    w.add_token_type_count(hp.n_token_types)
    w.add_uint32("tokenizer.ggml.cls_token_id", v.extra["cls"])
    w.add_sep_token_id(v.extra["sep"])
    if v.extra.get("mask") is not None:
        w.add_mask_token_id(v.extra["mask"])
    w.add_add_sep_token(True)
    w.add_bool("tokenizer.ggml.normalizer.lowercase", hp.lowercase)
