"""The bert encoder against Hugging Face transformers itself, through the converter.

tests/data/hf-tiny-bert/ holds a tiny random-weight BertModel (mean pooling) and a
BertForSequenceClassification reranker (one label) with what transformers' PyTorch forward gave,
made by tests/reference/make_bert_fixtures.py (PyTorch is not needed here). The weights are
float16-exact, so F32 and F16 GGUFs hold exactly what transformers ran in float32.

Tolerances: max |engine - transformers| <= 1e-4 (F32) / 1e-3 (F16) on hidden states (every row
of every text), pooled L2-normalized embeddings (mean and CLS) and reranker scores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
DUMP = BUILD / "bin" / "bert_dump"
FIXTURES = REPO / "tests" / "data" / "hf-tiny-bert"
sys.path.insert(0, str(REPO / "model"))
from hpl_convert.convert import convert  # noqa: E402

TOL = {"f32": 1e-4, "f16": 1e-3}


@pytest.fixture(scope="module")
def dump():
    if not DUMP.exists():
        pytest.skip(f"{DUMP} not built (set HPL_BUILD_DIR)")
    return DUMP


@pytest.fixture(scope="module", params=["f32", "f16"])
def outtype(request):
    return request.param


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-tiny-bert-gguf")


def converted(name, out_dir, outtype):
    out = out_dir / f"{name}.{outtype}.gguf"
    if not out.exists():
        convert(str(FIXTURES / name), str(out), outtype=outtype, progress=False, log=lambda *_: None)
    return out


def run(dump, model, mode, lines, tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.f32"
    src.write_text("\n".join(lines) + "\n")
    p = subprocess.run([str(dump), str(model), mode, str(src), str(dst)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return np.fromfile(dst, dtype=np.float32)


def test_converted_metadata(gguf_dir):
    import gguf

    r = gguf.GGUFReader(converted("bert-rerank", gguf_dir, "f32"))
    f = {k: v.contents() for k, v in r.fields.items() if k not in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type")}
    assert f["general.architecture"] == "bert"
    assert f["bert.pooling_type"] == 4  # rank
    assert f["bert.attention.causal"] is False
    assert f["tokenizer.ggml.model"] == "bert"
    assert f["tokenizer.ggml.token_type_count"] == 2
    names = {t.name for t in r.tensors}
    assert {"cls.weight", "cls.bias", "cls.output.weight", "cls.output.bias", "token_types.weight",
            "position_embd.weight", "blk.1.layer_output_norm.bias"} <= names
    r = gguf.GGUFReader(converted("bert", gguf_dir, "f16"))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["token_types.weight"] == types["position_embd.weight"] == "F32"  # as llama.cpp writes them
    assert types["blk.0.attn_q.weight"] == "F16"
    assert r.fields["bert.pooling_type"].contents() == 1  # mean, from 1_Pooling/config.json
    assert not any(t.name.startswith("cls") for t in r.tensors)


def test_hidden_states(dump, gguf_dir, outtype, tmp_path):
    exp = json.loads((FIXTURES / "bert" / "expected.json").read_text())
    hz = np.load(FIXTURES / "bert" / "hidden.npz")
    want = np.concatenate([hz[f"hidden_{i}"] for i in range(len(exp["ids"]))])
    got = run(dump, converted("bert", gguf_dir, outtype), "hidden", [" ".join(map(str, x)) for x in exp["ids"]],
              tmp_path).reshape(want.shape)
    err = float(np.abs(got - want).max())
    assert err <= TOL[outtype], f"{outtype}: max |hidden - transformers| = {err}"


@pytest.mark.parametrize("mode,key", [("mean", "mean_normalized"), ("cls", "cls_normalized")])
def test_pooled_normalized(dump, gguf_dir, outtype, tmp_path, mode, key):
    exp = json.loads((FIXTURES / "bert" / "expected.json").read_text())
    want = np.array(exp[key], dtype=np.float32)
    # All texts in one call: the engine packs them into one batch (several when they overflow it).
    got = run(dump, converted("bert", gguf_dir, outtype), mode, [" ".join(map(str, x)) for x in exp["ids"]],
              tmp_path).reshape(want.shape)
    err = float(np.abs(got - want).max())
    assert err <= TOL[outtype], f"{outtype} {mode}: max diff {err}"
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_rerank_scores(dump, gguf_dir, outtype, tmp_path):
    exp = json.loads((FIXTURES / "bert-rerank" / "expected.json").read_text())
    lines = [" ".join(map(str, p["query_ids"])) + "|" + " ".join(map(str, p["document_ids"])) for p in exp["pairs"]]
    got = run(dump, converted("bert-rerank", gguf_dir, outtype), "rerank", lines, tmp_path)
    err = float(np.abs(got - np.array(exp["scores"])).max())
    assert err <= TOL[outtype], f"{outtype}: max |score - transformers| = {err}"
    # The pair layout transformers used is the one the engine builds.
    for p in exp["pairs"]:
        assert p["ids"] == [2] + p["query_ids"] + [3] + p["document_ids"] + [3]
        assert p["type_ids"] == [0] * (len(p["query_ids"]) + 2) + [1] * (len(p["document_ids"]) + 1)
