"""Tokenizer of a Hugging Face folder -> GGUF tokenizer metadata.

  tokenizer.json, BPE with a ByteLevel pre-tokenizer  -> 'gpt2': tokens, merges, token types,
                                                          pre-tokenizer name from its regex
  tokenizer.json, BPE without ByteLevel (SentencePiece-style, usually byte_fallback)
                                                       -> 'llama': tokens, scores = -(merge rank)
                                                          so the engine's highest-score-first
                                                          merging replays the BPE merge order
  tokenizer.json, Unigram                              -> 'llama': tokens, the Unigram scores
  tokenizer.model only (SentencePiece protobuf)        -> 'llama': pieces, scores, types
Special ids and add_bos/add_eos come from tokenizer_config.json (then config.json,
generation_config.json), the chat template from tokenizer_config.json or chat_template.jinja.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from .errors import ConvertError
from .spm_model import read_spm_model

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")

# Pre-tokenizer regexes of byte-level BPE tokenizers -> llama.cpp's tokenizer.ggml.pre name.
_GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_BY_REGEX = {
    _GPT2_REGEX: "gpt-2",
    _LLAMA3_REGEX: "llama-bpe",
    _QWEN2_REGEX: "qwen2",
}
# Chat-turn end markers, written as tokenizer.ggml.eot_token_id when present.
_EOT_TEXTS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")


@dataclass
class Vocab:
    model: str  # "llama" or "gpt2"
    pre: str
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] | None = None
    add_space_prefix: bool | None = None
    special_ids: dict[str, int] = field(default_factory=dict)  # bos, eos, unk, pad, eot
    add_bos: bool | None = None
    add_eos: bool | None = None
    chat_template: str | None = None
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, int | None] = field(default_factory=dict)  # bert: cls, sep, mask ids


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConvertError(f"{path}: invalid JSON ({e})") from None


def _walk(node):
    """Every dict inside a tokenizer.json component (Sequence nests them)."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _is_byte_level(tj: dict) -> bool:
    return any(d.get("type") == "ByteLevel" for d in _walk(tj.get("pre_tokenizer")))


def detect_pre(tj: dict) -> tuple[str, str | None]:
    """(llama.cpp pre-tokenizer name, warning or None) for a byte-level BPE tokenizer.json."""
    nodes = list(_walk(tj.get("pre_tokenizer")))
    splits = [d for d in nodes if d.get("type") == "Split" and isinstance(d.get("pattern"), dict)]
    regexes = [d["pattern"].get("Regex") for d in splits]
    regexes = [r for r in regexes if r]
    byte_level = [d for d in nodes if d.get("type") == "ByteLevel"]
    digits = [d for d in nodes if d.get("type") == "Digits"]
    if len(regexes) == 1 and regexes[0] in PRE_BY_REGEX:
        return PRE_BY_REGEX[regexes[0]], None
    if not regexes and byte_level and byte_level[0].get("use_regex", True):
        if digits and digits[0].get("individual_digits"):
            return "starcoder", None  # digits split one by one, then the GPT-2 regex
        return "gpt-2", None
    return "default", (f"unknown pre-tokenizer (regexes {regexes}); wrote tokenizer.ggml.pre = 'default', "
                       "tokenization may differ from Hugging Face")


def _add_space_prefix(tj: dict) -> bool:
    for d in _walk(tj.get("normalizer")):
        if d.get("type") == "Prepend" and d.get("prepend") == "\u2581":
            return True
    for d in _walk(tj.get("pre_tokenizer")):
        if d.get("type") == "Metaspace":
            scheme = d.get("prepend_scheme")
            if scheme is not None:
                return scheme in ("always", "first")
            return bool(d.get("add_prefix_space", True))
    return False


def _template_adds(tj: dict) -> tuple[bool | None, bool | None]:
    """(adds BOS, adds EOS) from a TemplateProcessing post-processor, None when unknown."""
    for d in _walk(tj.get("post_processor")):
        if d.get("type") == "TemplateProcessing":
            single = d.get("single") or []
            if not single:
                return None, None
            return "SpecialToken" in single[0], "SpecialToken" in single[-1]
    return None, None


def _dense(id_to_text: dict[int, str], n_vocab: int, where: str) -> list[str | None]:
    if id_to_text and max(id_to_text) >= n_vocab:
        raise ConvertError(
            f"{where}: token id {max(id_to_text)} does not fit the model's {n_vocab} embedding rows")
    out: list[str | None] = [None] * n_vocab
    for i, t in id_to_text.items():
        out[i] = t
    return out


def _from_tokenizer_json(path: str, n_vocab: int) -> Vocab:
    tj = _read_json(path)
    model = tj.get("model") or {}
    mtype = model.get("type")
    added = tj.get("added_tokens") or []
    special_added = {a["id"] for a in added if a.get("special")}
    plain_added = {a["id"] for a in added if not a.get("special")}
    byte_fallback = bool(model.get("byte_fallback"))

    id_to_text: dict[int, str] = {}
    scores_by_id: dict[int, float] = {}
    unk_id = None
    if mtype == "BPE":
        vocab = model.get("vocab") or {}
        id_to_text.update({int(i): t for t, i in vocab.items()})
        # tokenizers < 0.20 writes "a b", later versions ["a", "b"]
        pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
        merges = [" ".join(p) for p in pairs]
        if model.get("unk_token") in vocab:
            unk_id = vocab[model["unk_token"]]
    elif mtype == "Unigram":
        for i, (piece, score) in enumerate(model.get("vocab") or []):
            id_to_text[i] = piece
            scores_by_id[i] = float(score)
        unk_id = model.get("unk_id")
        pairs, merges = [], []
    else:
        raise ConvertError(f"{path}: tokenizer model type {mtype!r} is not supported (BPE, Unigram)")
    for a in added:
        id_to_text[int(a["id"])] = a["content"]
    texts = _dense(id_to_text, n_vocab, path)

    byte_level = mtype == "BPE" and _is_byte_level(tj)
    v = Vocab(model="gpt2" if byte_level else "llama", pre="default", tokens=[], types=[], source=path)
    if byte_level:
        v.pre, warn = detect_pre(tj)
        if warn:
            v.warnings.append(warn)
        v.merges = merges
    else:
        v.add_space_prefix = _add_space_prefix(tj)
        if mtype == "BPE":
            # SentencePiece-style BPE: the token made by merge number r scores -r, so merging the
            # highest-scoring adjacent pair first replays the merge list in order.
            text_to_id = {t: i for i, t in enumerate(texts) if t is not None}
            for rank, (a, b) in enumerate(pairs):
                tid = text_to_id.get(a + b)
                if tid is not None and tid not in scores_by_id:
                    scores_by_id[tid] = -float(rank)
            unreachable = -float(len(merges))
            for i, t in enumerate(texts):
                if i not in scores_by_id and t is not None and len(t) > 1 and not _BYTE_TOKEN.fullmatch(t):
                    scores_by_id[i] = unreachable  # in the vocab but made by no merge
        v.scores = []
    for i, t in enumerate(texts):
        if t is None:
            t, typ = f"[PAD{i}]", UNUSED
        elif i == unk_id:
            typ = UNKNOWN
        elif i in special_added:
            typ = CONTROL
        elif i in plain_added:
            typ = USER_DEFINED
        elif not byte_level and byte_fallback and _BYTE_TOKEN.fullmatch(t):
            typ = BYTE
        else:
            typ = NORMAL
        v.tokens.append(t)
        v.types.append(typ)
        if v.scores is not None:
            v.scores.append(scores_by_id.get(i, 0.0 if typ != UNUSED else -1e9))
    if unk_id is not None:
        v.special_ids["unk"] = int(unk_id)
    v.add_bos, v.add_eos = _template_adds(tj)
    if byte_level and v.add_bos is None:
        v.add_bos, v.add_eos = False, False  # a byte-level post-processor adds no special tokens
    return v


def _from_spm_model(path: str, n_vocab: int) -> Vocab:
    m = read_spm_model(path)
    texts = _dense(dict(enumerate(m.pieces)), n_vocab, path)
    v = Vocab(model="llama", pre="default", tokens=[], types=[], scores=[], source=path,
              add_space_prefix=m.add_dummy_prefix, add_bos=True, add_eos=False)
    for i, t in enumerate(texts):
        if t is None:
            v.tokens.append(f"[PAD{i}]")
            v.types.append(UNUSED)
            v.scores.append(-1e9)
        else:
            v.tokens.append(t)
            v.types.append(m.types[i])
            v.scores.append(m.scores[i])
    for key, i in (("unk", m.unk_id), ("bos", m.bos_id), ("eos", m.eos_id), ("pad", m.pad_id)):
        if 0 <= i < n_vocab:
            v.special_ids[key] = i
    return v


def _token_text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("content")
    return None


def _first_int(value) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if isinstance(value, int) else None


def _chat_template(model_dir: str, tok_cfg: dict) -> str | None:
    tmpl = tok_cfg.get("chat_template")
    if isinstance(tmpl, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
        tmpl = named.get("default") or next(iter(named.values()), None)
    if tmpl:
        return tmpl
    jinja = os.path.join(model_dir, "chat_template.jinja")
    if os.path.isfile(jinja):
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    cj = os.path.join(model_dir, "chat_template.json")
    if os.path.isfile(cj):
        return _read_json(cj).get("chat_template")
    return None


def load_vocab(model_dir: str, n_vocab: int, config) -> Vocab:
    """The GGUF vocab of a HF folder; n_vocab is the number of embedding rows."""
    tj_path = os.path.join(model_dir, "tokenizer.json")
    spm_path = os.path.join(model_dir, "tokenizer.model")
    if os.path.isfile(tj_path):
        v = _from_tokenizer_json(tj_path, n_vocab)
    elif os.path.isfile(spm_path):
        v = _from_spm_model(spm_path, n_vocab)
    else:
        raise ConvertError(f"{model_dir}: no tokenizer.json or tokenizer.model")

    tc_path = os.path.join(model_dir, "tokenizer_config.json")
    tok_cfg = _read_json(tc_path) if os.path.isfile(tc_path) else {}
    gen_path = os.path.join(model_dir, "generation_config.json")
    gen_cfg = _read_json(gen_path) if os.path.isfile(gen_path) else {}
    text_to_id = {}
    for i, t in enumerate(v.tokens):
        if v.types[i] in (CONTROL, USER_DEFINED, UNKNOWN) or t not in text_to_id:
            text_to_id[t] = i  # prefer the special/added entry when a text appears twice
    cfg = getattr(config, "text_config", None) or config
    cfg_sources = [gen_cfg]
    if config is not None:
        cfg_sources += [config.to_dict(), vars(cfg)]
    for key in ("bos", "eos", "unk", "pad"):
        text = _token_text(tok_cfg.get(f"{key}_token"))
        if text is not None:
            if text not in text_to_id:
                raise ConvertError(f"{tc_path}: {key}_token {text!r} is not in the vocabulary")
            v.special_ids[key] = text_to_id[text]
            continue
        if key in v.special_ids:
            continue
        for source in cfg_sources:
            i = _first_int(source.get(f"{key}_token_id"))
            if i is not None and 0 <= i < n_vocab:
                v.special_ids[key] = i
                break
    for t in _EOT_TEXTS:
        if t in text_to_id:
            v.special_ids["eot"] = text_to_id[t]
            break
    if isinstance(tok_cfg.get("add_bos_token"), bool):
        v.add_bos = tok_cfg["add_bos_token"]
    if isinstance(tok_cfg.get("add_eos_token"), bool):
        v.add_eos = tok_cfg["add_eos_token"]
    v.chat_template = _chat_template(model_dir, tok_cfg)
    return v


def write_vocab(w, v: Vocab) -> None:
    w.add_tokenizer_model(v.model)
    w.add_tokenizer_pre(v.pre)
    w.add_token_list(v.tokens)
    if v.scores is not None:
        w.add_token_scores(v.scores)
    w.add_token_types(v.types)
    if v.merges is not None:
        w.add_token_merges(v.merges)
    for key, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("unk", w.add_unk_token_id),
                     ("pad", w.add_pad_token_id), ("eot", w.add_eot_token_id)):
        if key in v.special_ids:
            add(v.special_ids[key])
    if v.add_bos is not None:
        w.add_add_bos_token(v.add_bos)
    if v.add_eos is not None:
        w.add_add_eos_token(v.add_eos)
    if v.add_space_prefix is not None:
        w.add_add_space_prefix(v.add_space_prefix)
    if v.chat_template:
        w.add_chat_template(v.chat_template)
