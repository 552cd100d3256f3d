"""`hpl serve` with several models: POST /v1/embeddings (OpenAI shape: string, list, token
arrays; float and base64), POST /v1/rerank (llama.cpp / Jina / Cohere shape), their 400s for
wrong inputs and wrong model kinds, startup refusals, and swapping under a memory budget that
holds one model at a time: a request for the unloaded model waits for the other model's
request and succeeds. Decoder models (stories260K, TinyStories-656K) give pooled embeddings.
"""
import base64
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

requests = pytest.importorskip("requests")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "tests", "data", "models")
GEN = os.path.join(MODELS, "stories260K.gguf")
EMB = os.path.join(MODELS, "TinyStories-656K.f16.gguf")
CTX = 256


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "serve", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl was built without serve (no nlohmann-json for this target)")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, hpl, log, *args):
        self.port = free_port()
        self.log = log
        with open(log, "w") as lf:
            self.proc = subprocess.Popen([hpl, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                          "-c", str(CTX), "-t", "1", *args],
                                         stdout=lf, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {open(log).read()}")
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.time() > deadline:
                self.stop()
                raise AssertionError(f"server not healthy in 60 s: {open(log).read()}")
            time.sleep(0.1)

    def post(self, path, body):
        return requests.post(self.base + path, json=body, timeout=120)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "killed"
        text = open(self.log).read()
        assert rc == 0 and "hpl serve: stopped" in text, f"exit {rc}: {text[-4000:]}"
        assert "runtime error" not in text and "Sanitizer" not in text, text[-4000:]


@pytest.fixture(scope="module")
def server(hpl, tmp_path_factory):
    s = Server(hpl, tmp_path_factory.mktemp("serve_embed") / "server.log", "-m", GEN,
               "--embedding-model", EMB)
    try:
        yield s
        assert s.proc.poll() is None, f"server died: {open(s.log).read()}"
    finally:
        s.stop()


def tokens(hpl, model, text):
    r = subprocess.run([hpl, "tokenize", "-m", model, "-p", text, "--pieces"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [int(line.split("\t")[0]) for line in r.stdout.splitlines() if line]


def norm(v):
    return sum(x * x for x in v) ** 0.5


def error(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_models_lists_each_model_with_its_kind(server):
    data = requests.get(server.base + "/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["kind"]) for m in data] == [("stories260K", "generate"),
                                                    ("TinyStories-656K.f16", "generate")]


def test_embeddings_string_list_tokens_and_base64(hpl, server):
    texts = ["Once upon a time", "The cat sat on the mat.", "Once upon a time"]
    r = server.post("/v1/embeddings", {"input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "TinyStories-656K.f16"
    data = body["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and all(d["object"] == "embedding" for d in data)
    dim = len(data[0]["embedding"])
    assert dim > 0 and all(len(d["embedding"]) == dim for d in data)
    assert all(abs(norm(d["embedding"]) - 1) < 1e-4 for d in data)  # normalized
    assert data[0]["embedding"] == data[2]["embedding"] != data[1]["embedding"]
    ids = [tokens(hpl, EMB, t) for t in texts]
    assert body["usage"] == {"prompt_tokens": sum(map(len, ids)), "total_tokens": sum(map(len, ids))}

    # One string, and the same text as token ids (with the BOS the text gets): same vector.
    one = server.post("/v1/embeddings", {"input": texts[0]}).json()["data"]
    assert len(one) == 1 and one[0]["embedding"] == data[0]["embedding"]
    tok = server.post("/v1/embeddings", {"input": ids[0]}).json()["data"]
    assert tok[0]["embedding"] == data[0]["embedding"]
    toks = server.post("/v1/embeddings", {"input": ids[:2]}).json()["data"]
    assert [t["embedding"] for t in toks] == [d["embedding"] for d in data[:2]]

    # base64: little-endian float32 bytes of the same vectors.
    b = server.post("/v1/embeddings", {"input": texts[:2], "encoding_format": "base64"}).json()["data"]
    for d, want in zip(b, data[:2]):
        raw = base64.b64decode(d["embedding"])
        got = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert list(got) == pytest.approx(want["embedding"], abs=0)

    # The generation model by name: its own (pooled decoder) embeddings, another size.
    g = server.post("/v1/embeddings", {"input": "Once upon a time", "model": "stories260K"}).json()
    assert g["model"] == "stories260K" and abs(norm(g["data"][0]["embedding"]) - 1) < 1e-4
    assert len(g["data"][0]["embedding"]) != dim


def test_openai_client_reads_the_embeddings(server):
    """The official client asks for base64 by default and decodes it itself."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="none")
    texts = ["Once upon a time", "The cat sat on the mat."]
    got = client.embeddings.create(model="TinyStories-656K.f16", input=texts)
    want = server.post("/v1/embeddings", {"input": texts}).json()["data"]
    assert [d.index for d in got.data] == [0, 1]
    for d, w in zip(got.data, want):
        assert list(d.embedding) == pytest.approx(w["embedding"], abs=0)
    assert got.usage.prompt_tokens == got.usage.total_tokens > 0
    plain = client.embeddings.create(model="TinyStories-656K.f16", input=texts[0],
                                     encoding_format="float")
    assert list(plain.data[0].embedding) == pytest.approx(want[0]["embedding"], abs=0)


def test_embeddings_errors_name_the_field(server):
    e = error(server.post("/v1/embeddings", {"input": []}), 400)
    assert e["param"] == "input" and "empty array" in e["message"]
    e = error(server.post("/v1/embeddings", {"input": ["a", ""]}), 400)
    assert e["param"] == "input[1]" and "empty string" in e["message"]
    e = error(server.post("/v1/embeddings", {}), 400)
    assert e["param"] == "input" and e["code"] == "missing_required_parameter"
    e = error(server.post("/v1/embeddings", {"input": ["ok", "word " * 400]}), 400)
    assert e["param"] == "input[1]" and e["code"] == "context_length_exceeded"
    assert f"more than the context of {CTX} tokens" in e["message"]
    ok = server.post("/v1/embeddings", {"input": ["word " * 400], "truncate": True})
    assert ok.status_code == 200 and ok.json()["usage"]["prompt_tokens"] == CTX
    e = error(server.post("/v1/embeddings", {"input": [[1, 2], [1, 10 ** 9]]}), 400)
    assert e["param"] == "input[1]" and "outside the vocab" in e["message"]
    e = error(server.post("/v1/embeddings", {"input": ["a", [1, 2]]}), 400)
    assert "mixes strings and token arrays" in e["message"]
    e = error(server.post("/v1/embeddings", {"input": "a", "encoding_format": "int8"}), 400)
    assert e["param"] == "encoding_format"
    e = error(server.post("/v1/embeddings", {"input": "a", "dimensions": 7}), 400)
    assert e["param"] == "dimensions" and "embedding size" in e["message"]
    e = error(server.post("/v1/embeddings", {"input": "a", "pooling": "mean"}), 400)
    assert e["code"] == "unsupported_parameter" and "'pooling'" in e["message"]
    e = error(server.post("/v1/embeddings", {"input": "a", "model": "nope"}), 404)
    assert e["code"] == "model_not_found" and "stories260K" in e["message"]


def test_rerank_refuses_without_a_reranker_and_for_other_kinds(server):
    e = error(server.post("/v1/rerank", {"query": "cat", "documents": ["The cat sat."]}), 400)
    assert "no reranker" in e["message"] and "--rerank-model" in e["message"]
    e = error(server.post("/v1/rerank", {"query": "cat", "documents": ["The cat sat."],
                                         "model": "stories260K"}), 400)
    assert "generation model with no classification head: it cannot rerank" in e["message"]
    e = error(server.post("/v1/rerank", {"query": "cat", "documents": []}), 400)
    assert e["param"] == "documents"
    e = error(server.post("/v1/rerank", {"query": "", "documents": ["a"]}), 400)
    assert e["param"] == "query"
    e = error(server.post("/v1/rerank", {"query": "a", "documents": ["a"], "top_n": 0}), 400)
    assert e["param"] == "top_n"


def test_startup_refuses_a_model_of_the_wrong_kind(hpl, tmp_path):
    r = subprocess.run([hpl, "serve", "--port", "0", "--rerank-model", GEN], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "a model of kind 'generate' cannot serve as the rerank model (use -m)" in r.stderr


def test_embedding_model_alone_answers_completions_with_400(hpl, tmp_path):
    s = Server(hpl, tmp_path / "alone.log", "--embedding-model", EMB)
    try:
        assert s.post("/v1/embeddings", {"input": "hi"}).status_code == 200
        e = error(s.post("/v1/completions", {"prompt": "hi", "max_tokens": 2}), 400)
        assert "no generation model" in e["message"]
    finally:
        s.stop()


def test_swap_under_a_budget_for_one_model(hpl, tmp_path):
    budget = max(os.path.getsize(GEN), os.path.getsize(EMB)) + 65536  # one model at a time
    s = Server(hpl, tmp_path / "swap.log", "-m", GEN, "--embedding-model", EMB,
               "--memory-budget", str(budget))
    try:
        def weights():
            return requests.get(s.base + "/metrics", timeout=10).json()["memory"]["weights_bytes"]

        # Alternating requests each unload the other model and load theirs.
        ref = None
        for i in range(6):
            if i % 2 == 0:
                r = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 8,
                                               "temperature": 0})
            else:
                r = s.post("/v1/embeddings", {"input": ["Once upon a time", "Lily"]})
                vec = r.json()["data"][0]["embedding"]
                assert ref is None or vec == ref  # a reloaded model gives the same vectors
                ref = vec
            assert r.status_code == 200, r.text
            assert 0 < weights() <= budget

        # Concurrent: clients of both models at once; a request whose model is out waits for
        # the other model's request instead of failing (no 500 "over the memory budget").
        results = []
        lock = threading.Lock()

        def client(k):
            for i in range(6):
                if (i + k) % 2 == 0:
                    r = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 64,
                                                   "temperature": 0})
                else:
                    r = s.post("/v1/embeddings", {"input": ["Once upon a time", "Lily"]})
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(results) == 24
        for r in results:
            assert r.status_code == 200, r.text
            if "data" in r.json():
                assert r.json()["data"][0]["embedding"] == ref
        assert 0 < weights() <= budget
    finally:
        s.stop()


# ---- bert: the tiny transformers fixtures (tests/data/hf-tiny-bert) converted to GGUF ----

BERT_FIXTURES = os.path.join(REPO, "tests", "data", "hf-tiny-bert")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """{"embed": path, "rerank": path, "expected": ..., "expected_rerank": ...}: F32 GGUFs."""
    pytest.importorskip("gguf")
    import json
    import sys
    sys.path.insert(0, os.path.join(REPO, "model"))
    from hpl_convert.convert import convert
    out = tmp_path_factory.mktemp("bert-gguf")
    paths = {}
    for key, name in (("embed", "bert"), ("rerank", "bert-rerank")):
        paths[key] = str(out / f"{name}.gguf")
        convert(os.path.join(BERT_FIXTURES, name), paths[key], outtype="f32", progress=False,
                log=lambda *_: None)
    paths["expected"] = json.load(open(os.path.join(BERT_FIXTURES, "bert", "expected.json")))
    paths["expected_rerank"] = json.load(open(os.path.join(BERT_FIXTURES, "bert-rerank", "expected.json")))
    return paths


@pytest.fixture(scope="module")
def bert_server(hpl, bert, tmp_path_factory):
    s = Server(hpl, tmp_path_factory.mktemp("serve_bert") / "server.log", "-m", GEN,
               "--embedding-model", bert["embed"], "--rerank-model", bert["rerank"])
    try:
        yield s
    finally:
        s.stop()


def test_bert_embeddings_match_transformers(bert, bert_server):
    exp = bert["expected"]
    data = requests.get(bert_server.base + "/v1/models", timeout=10).json()["data"]
    assert [m["kind"] for m in data] == ["generate", "embed", "rerank"]
    assert data[1]["context_length"] == 64  # the encoder's position embeddings
    r = bert_server.post("/v1/embeddings", {"input": exp["texts"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "bert" and len(body["data"]) == len(exp["texts"])
    for d, want in zip(body["data"], exp["mean_normalized"]):  # the GGUF's pooling: mean
        assert d["embedding"] == pytest.approx(want, abs=1e-4)
    assert body["usage"]["prompt_tokens"] == sum(len(ids) for ids in exp["ids"])
    # Token arrays ([CLS] ... [SEP] as the tokenizer made them) give the same vectors.
    t = bert_server.post("/v1/embeddings", {"input": exp["ids"][:2]}).json()["data"]
    for d, want in zip(t, exp["mean_normalized"]):
        assert d["embedding"] == pytest.approx(want, abs=1e-4)
    # Longer than the encoder's 64 positions: refused, or cut on request.
    e = error(bert_server.post("/v1/embeddings", {"input": "the " * 80}), 400)
    assert e["code"] == "context_length_exceeded" and "context of 64 tokens" in e["message"]
    ok = bert_server.post("/v1/embeddings", {"input": "the " * 80, "truncate": True})
    assert ok.status_code == 200 and ok.json()["usage"]["prompt_tokens"] == 64
    # A reranker does not embed.
    e = error(bert_server.post("/v1/embeddings", {"input": "hi", "model": "bert-rerank"}), 400)
    assert "is a reranker" in e["message"]


def test_bert_rerank_matches_transformers_sorted_with_top_n(bert, bert_server):
    pairs, scores = bert["expected_rerank"]["pairs"], bert["expected_rerank"]["scores"]
    query = pairs[0]["query"]
    idx = [i for i, p in enumerate(pairs) if p["query"] == query]
    assert len(idx) >= 2
    docs = [pairs[i]["document"] for i in idx]
    want = [scores[i] for i in idx]
    r = bert_server.post("/v1/rerank", {"query": query, "documents": docs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "bert-rerank" and body["object"] == "list"
    res = body["results"]
    assert sorted(x["index"] for x in res) == list(range(len(docs)))
    assert [x["relevance_score"] for x in res] == sorted((x["relevance_score"] for x in res), reverse=True)
    for x in res:
        assert x["relevance_score"] == pytest.approx(want[x["index"]], abs=1e-4)
        assert "document" not in x
    best = max(range(len(docs)), key=lambda i: want[i])
    top = bert_server.post("/v1/rerank", {"query": query, "documents": [{"text": d} for d in docs],
                                          "top_n": 1, "return_documents": True}).json()["results"]
    assert len(top) == 1 and top[0]["index"] == best and top[0]["document"] == {"text": docs[best]}
    # An embedding model has no classification head.
    e = error(bert_server.post("/v1/rerank", {"query": query, "documents": docs, "model": "bert"}), 400)
    assert "embedding model with no classification head: it cannot rerank" in e["message"]
    # A document that does not fit beside the query: refused, or cut on request.
    e = error(bert_server.post("/v1/rerank", {"query": query, "documents": ["the " * 80]}), 400)
    assert "documents[0]" in e["message"] and "context of 64 tokens" in e["message"]
    ok = bert_server.post("/v1/rerank", {"query": query, "documents": ["the " * 80], "truncate": True})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 1


def test_bert_startup_refuses_wrong_roles(hpl, bert):
    r = subprocess.run([hpl, "serve", "--port", "0", "-m", bert["embed"]], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "kind 'embed' cannot serve as the generate model (use --embedding-model)" in r.stderr
    r = subprocess.run([hpl, "serve", "--port", "0", "--embedding-model", bert["rerank"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "kind 'rerank' cannot serve as the embed model (use --rerank-model)" in r.stderr


def test_three_models_swap_under_a_budget_for_one(hpl, bert, tmp_path):
    """Generation, embedding and rerank clients at once, with room for one model: every request
    waits for its model's turn and succeeds, with the same results as without a budget."""
    budget = max(os.path.getsize(p) for p in (GEN, bert["embed"], bert["rerank"])) + 65536
    s = Server(hpl, tmp_path / "swap3.log", "-m", GEN, "--embedding-model", bert["embed"],
               "--rerank-model", bert["rerank"], "--memory-budget", str(budget))
    exp, rr = bert["expected"], bert["expected_rerank"]
    try:
        results = []
        lock = threading.Lock()

        def client(k):
            for i in range(6):
                kind = (i + k) % 3
                if kind == 0:
                    r = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 32,
                                                   "temperature": 0})
                elif kind == 1:
                    r = s.post("/v1/embeddings", {"input": exp["texts"][:2]})
                else:
                    r = s.post("/v1/rerank", {"query": rr["pairs"][0]["query"],
                                              "documents": [rr["pairs"][0]["document"]]})
                with lock:
                    results.append((kind, r))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(results) == 18
        for kind, r in results:
            assert r.status_code == 200, r.text
            if kind == 1:
                for d, want in zip(r.json()["data"], exp["mean_normalized"]):
                    assert d["embedding"] == pytest.approx(want, abs=1e-4)
            elif kind == 2:
                assert r.json()["results"][0]["relevance_score"] == pytest.approx(rr["scores"][0], abs=1e-4)
        m = requests.get(s.base + "/metrics", timeout=10).json()["memory"]
        assert 0 < m["weights_bytes"] <= budget
    finally:
        s.stop()
