"""hpl embed / hpl rerank end to end (text -> WordPiece -> bert -> pooled vector or score) on the
tiny transformers fixtures of tests/data/hf-tiny-bert, and their errors on bad input."""
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
HPL = BUILD / "bin" / "hpl"
FIXTURES = REPO / "tests" / "data" / "hf-tiny-bert"
DECODER = REPO / "tests" / "data" / "models" / "TinyLLama-v0.Q4_0.from-ggmlv3.gguf"
sys.path.insert(0, str(REPO / "model"))
from hpl_convert.convert import convert  # noqa: E402


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("embed-cli")
    out = {}
    for name in ("bert", "bert-rerank"):
        out[name] = d / f"{name}.f32.gguf"
        convert(str(FIXTURES / name), str(out[name]), outtype="f32", progress=False, log=lambda *_: None)
    return out


def hpl_run(hpl, *args, ok=True):
    p = subprocess.run([str(hpl), *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def test_embed_texts_match_transformers(hpl, models, tmp_path):
    exp = json.loads((FIXTURES / "bert" / "expected.json").read_text())
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(exp["texts"]) + "\n", encoding="utf-8")
    out = json.loads(hpl_run(hpl, "embed", "-m", models["bert"], "-f", f, "-o", "json", "-t", "2").stdout)
    assert out["pooling"] == "mean" and out["normalized"] is True and out["n_embd"] == 64
    got = np.array([d["embedding"] for d in out["data"]], dtype=np.float32)
    assert [d["n_tokens"] for d in out["data"]] == [len(x) for x in exp["ids"]]
    assert np.abs(got - np.array(exp["mean_normalized"])).max() <= 1e-4
    # text output: the same numbers, one line per text; CLS pooling on request
    lines = hpl_run(hpl, "embed", "-m", models["bert"], "-p", exp["texts"][0], "--pooling", "cls").stdout.split("\n")
    v = np.array([float(x) for x in lines[0].split()])
    assert np.abs(v - np.array(exp["cls_normalized"][0])).max() <= 1e-4
    raw = hpl_run(hpl, "embed", "-m", models["bert"], "-p", exp["texts"][0], "--no-normalize").stdout
    assert abs(np.linalg.norm([float(x) for x in raw.split()]) - 1.0) > 1e-3


def test_rerank_matches_transformers(hpl, models):
    exp = json.loads((FIXTURES / "bert-rerank" / "expected.json").read_text())
    for p, want in zip(exp["pairs"], exp["scores"]):
        out = json.loads(hpl_run(hpl, "rerank", "-m", models["bert-rerank"], "-q", p["query"], "-d", p["document"],
                                 "-d", "a", "-o", "json").stdout)
        first = next(r for r in out["results"] if r["index"] == 0)
        assert abs(first["relevance_score"] - want) <= 1e-4
        scores = [r["relevance_score"] for r in out["results"]]
        assert scores == sorted(scores, reverse=True)


def test_bad_inputs(hpl, models, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    p = hpl_run(hpl, "embed", "-m", models["bert"], "-f", empty, ok=False)
    assert p.returncode == 1 and "no texts" in p.stderr
    holes = tmp_path / "holes.txt"
    holes.write_text("one\n\nthree\n")
    p = hpl_run(hpl, "embed", "-m", models["bert"], "-f", holes, ok=False)
    assert p.returncode == 1 and "line 2 is empty" in p.stderr
    p = hpl_run(hpl, "embed", "-m", models["bert"], "-p", "", ok=False)
    assert p.returncode == 1 and "empty" in p.stderr
    long_text = " ".join(["hello world"] * 10)
    p = hpl_run(hpl, "embed", "-m", models["bert"], "-p", long_text, "-c", "8", ok=False)
    assert p.returncode == 1 and "context of 8" in p.stderr and "truncat" in p.stderr
    out = hpl_run(hpl, "embed", "-m", models["bert"], "-p", long_text, "-c", "8", "--truncate", "-o", "json").stdout
    assert json.loads(out)["data"][0]["n_tokens"] == 8
    # the model's own limit (64 positions) applies without -c
    p = hpl_run(hpl, "embed", "-m", models["bert"], "-p", " ".join(["hello"] * 70), ok=False)
    assert p.returncode == 1 and "context of 64" in p.stderr
    p = hpl_run(hpl, "rerank", "-m", models["bert-rerank"], "-q", "x", "-d", long_text, "-c", "8", ok=False)
    assert p.returncode == 1 and "context of 8" in p.stderr
    hpl_run(hpl, "rerank", "-m", models["bert-rerank"], "-q", "x", "-d", long_text, "-c", "8", "--truncate")
    p = hpl_run(hpl, "rerank", "-m", models["bert"], "-q", "x", "-d", "y", ok=False)
    assert p.returncode == 1 and "no classification head" in p.stderr
    p = hpl_run(hpl, "rerank", "-m", DECODER, "-q", "x", "-d", "y", ok=False)
    assert p.returncode == 1 and "llama" in p.stderr and "cannot rerank" in p.stderr
    p = hpl_run(hpl, "embed", "-m", models["bert"], "-p", "x", "--pooling", "max", ok=False)
    assert p.returncode != 0 and "unknown pooling" in p.stderr
    p = hpl_run(hpl, "embed", "-m", models["bert"], "--ids", "2 99999 3", ok=False)
    assert p.returncode == 1 and "outside the vocabulary" in p.stderr


def test_decoder_embedding(hpl):
    out = json.loads(hpl_run(hpl, "embed", "-m", DECODER, "-p", "Once upon a time", "-p", "there was", "-o",
                             "json", "-c", "64").stdout)
    assert out["pooling"] == "last" and len(out["data"]) == 2
    v = np.array(out["data"][0]["embedding"])
    assert abs(np.linalg.norm(v) - 1.0) < 1e-5
    mean = json.loads(hpl_run(hpl, "embed", "-m", DECODER, "-p", "Once upon a time", "--pooling", "mean", "-o",
                              "json", "-c", "64").stdout)
    assert mean["pooling"] == "mean" and not np.allclose(mean["data"][0]["embedding"], v)
