"""Tiny random-weight BERT models (BertModel, BertForSequenceClassification) and what
transformers' own PyTorch forward pass gives for them: hidden states, pooled and normalized
embeddings, reranker scores. The oracle for the engine's bert encoder.

Run once with PyTorch installed (it is not needed to run the tests):
    /work/torchvenv/bin/python tests/reference/make_bert_fixtures.py [--out tests/data/hf-tiny-bert]

Per folder (bert: BertModel with mean pooling via sentence-transformers' modules.json;
bert-rerank: BertForSequenceClassification with one label): config.json, model.safetensors
(weights rounded to float16, so F32 and F16 GGUFs hold exactly what transformers ran in float32),
vocab.txt / tokenizer.json / tokenizer_config.json (a small uncased WordPiece vocabulary),
expected.json (texts, their ids and type ids, pooled vectors or scores) and hidden.npz
(hidden_<i>: (len(ids_i), hidden) float32, each text run alone).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

WORDS = ("the a of to and in is it that for on with as was he she they we you are this be at or "
         "by from not but have his her their what which when where who how phone model text search "
         "note message document query answer rank embed token device memory fast small local "
         "cat dog runs jumped over lazy quick brown fox hello world café naïve 日 本 語").split()
PIECES = ["##s", "##ing", "##ed", "##er", "##ly", "##e", "##a", "##o", "##i", "##n", "##t", ".", ",", "!", "?",
          "'", "-", "(", ")", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

TEXTS = [
    "hello world",
    "The quick brown fox jumped over the lazy dog.",
    "search notes, messages and documents on the phone",
    "a",
    "naïve café: 日本語 text (2024)!",
    "how fast is the small local model? it runs on the device with little memory, and it embeds text "
    "for search and rank.",
]
PAIRS = [
    ("how to embed text", "the model embeds text on the phone"),
    ("how to embed text", "the cat jumped over the lazy dog"),
    ("fast local search", "search is fast when the index is local"),
    ("what is a token", "a token is a piece of text the model reads"),
]


def vocab_list():
    seen, out = set(), []
    for t in SPECIALS + WORDS + PIECES + LETTERS + ["##" + c for c in LETTERS]:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def init_weights(model, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def build(kind, out: Path, seed):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    folder = out / kind
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    vocab = vocab_list()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(folder)
    cfg = dict(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=128, max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu",
               layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
               pad_token_id=0)
    torch.manual_seed(seed)
    if kind == "bert":
        config = BertConfig(**cfg, architectures=["BertModel"])
        model = BertModel(config, add_pooling_layer=False)
    else:
        config = BertConfig(**cfg, num_labels=1, architectures=["BertForSequenceClassification"])
        model = BertForSequenceClassification(config)
    init_weights(model, seed)
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    model = model.to(torch.float32).eval()
    model.config._attn_implementation = "eager"
    exp = {"seed": seed, "transformers": __import__("transformers").__version__, "torch": torch.__version__}
    if kind == "bert":
        # sentence-transformers' pooling config: what llama.cpp's converter (and ours) read.
        (folder / "modules.json").write_text(json.dumps(
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True}))
        ids = [tok(t)["input_ids"] for t in TEXTS]
        hidden, mean, cls = {}, [], []
        with torch.no_grad():
            for i, x in enumerate(ids):
                h = model(input_ids=torch.tensor([x])).last_hidden_state[0].numpy()
                hidden[f"hidden_{i}"] = h.astype(np.float32)
                m = h.mean(axis=0)
                mean.append((m / np.linalg.norm(m)).tolist())
                c = h[0]
                cls.append((c / np.linalg.norm(c)).tolist())
            # The same texts as one padded batch with an attention mask: transformers' batching,
            # whose masked result the engine's packed batch must equal.
            enc = tok(TEXTS, padding=True, return_tensors="pt")
            hb = model(**enc).last_hidden_state.numpy()
            batch_err = max(float(np.abs(hb[i, :len(x)] - hidden[f"hidden_{i}"]).max()) for i, x in enumerate(ids))
        np.savez_compressed(folder / "hidden.npz", **hidden)
        exp.update(texts=TEXTS, ids=ids, mean_normalized=mean, cls_normalized=cls,
                   padded_batch_max_diff=batch_err)
    else:
        pairs, scores = [], []
        with torch.no_grad():
            for q, d in PAIRS:
                enc = tok(q, d, return_tensors="pt")
                scores.append(float(model(**enc).logits[0, 0]))
                pairs.append({"query": q, "document": d, "ids": enc["input_ids"][0].tolist(),
                              "type_ids": enc["token_type_ids"][0].tolist(),
                              "query_ids": tok(q, add_special_tokens=False)["input_ids"],
                              "document_ids": tok(d, add_special_tokens=False)["input_ids"]})
        exp.update(pairs=pairs, scores=scores)
    (folder / "expected.json").write_text(json.dumps(exp, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{folder}: {sum(p.numel() for p in model.parameters())} parameters")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "hf-tiny-bert"))
    args = ap.parse_args()
    out = Path(args.out)
    build("bert", out, 1601)
    build("bert-rerank", out, 1602)


if __name__ == "__main__":
    main()
