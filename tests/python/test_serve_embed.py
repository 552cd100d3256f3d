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
