#!/usr/bin/env python3
"""WordPiece encode speed, hpl vs Hugging Face `tokenizers`, same vocab and texts.

    python3 bench/wordpiece_vs_hf.py [BUILD_DIR] [ROUNDS]

The vocab is llama.cpp's ggml-vocab-bert-bge.gguf (bert-base-uncased); the texts are
tokenizer_bench's 1 MiB "mixed" and "english" texts (tokenizer_bench --write-text). hpl:
tokenizer_bench's Encode/bert-bge (CPU time); tokenizers: BertWordPieceTokenizer built from the
same vocab, encode_batch() of the text's paragraphs (faster than one encode() of the whole
1 MiB, which tracks offsets over it), CPU time, RAYON_NUM_THREADS=1 (one thread). Rounds alternate
hpl, tokenizers, hpl, ...; prints /proc/loadavg and the median and range of MB/s.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "data", "wordpiece"))
import make_fixtures  # noqa: E402


def hpl_round(bench):
    r = subprocess.run([bench, "--benchmark_filter=Encode/bert-bge/", "--benchmark_format=json"],
                       capture_output=True, text=True, check=True)
    return {b["name"].split("/")[-1]: b["bytes_per_second"] / 1e6
            for b in json.loads(r.stdout)["benchmarks"]}


def hf_round(tk, texts):
    out = {}
    for name, t in texts.items():
        paragraphs = t.split("\n\n")
        t0 = time.process_time()
        tk.encode_batch(paragraphs)
        out[name] = len(t.encode("utf-8")) / (time.process_time() - t0) / 1e6
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    bench = os.path.join(build, "bin", "tokenizer_bench")
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    os.environ.setdefault("HPL_TEST_DATA", os.path.join(REPO, "tests", "data"))
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([bench, "--write-text", d], check=True)
        texts = {n: open(os.path.join(d, n + ".txt"), encoding="utf-8").read()
                 for n in ("mixed", "english")}
    path, lower, strip = make_fixtures.CONFIGS["bge-uncased"]
    tk = make_fixtures.hf_reference(path, lower, strip)
    print("loadavg before:", open("/proc/loadavg").read().strip())
    res = {"hpl": {n: [] for n in texts}, "tokenizers": {n: [] for n in texts}}
    for _ in range(rounds):
        for n, v in hpl_round(bench).items():
            res["hpl"][n].append(v)
        for n, v in hf_round(tk, texts).items():
            res["tokenizers"][n].append(v)
    print("loadavg after: ", open("/proc/loadavg").read().strip())
    for n in texts:
        line = []
        for who in ("hpl", "tokenizers"):
            v = res[who][n]
            line.append(f"{who} {statistics.median(v):.1f} MB/s ({min(v):.1f}-{max(v):.1f})")
        ratio = statistics.median(res["hpl"][n]) / statistics.median(res["tokenizers"][n])
        print(f"{n:8s} " + ", ".join(line) + f", hpl/tokenizers {ratio:.2f}x")


if __name__ == "__main__":
    main()
