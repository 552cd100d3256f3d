"""`hpl bench --compare A.json B.json`: tests matched by name and threads across hpl's and
llama-bench's JSON (array and jsonl), B/A ratios, one-sided tests listed, bad files named."""
import json
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    return p


def run(hpl, *args):
    return subprocess.run([hpl, "bench", *args], capture_output=True, text=True, timeout=60)


# As `hpl bench -o json` writes it (fields trimmed to what matters, plus one extra).
HPL = [
    {"model_filename": "/m/gemma-3-270m-Q4_K_M.gguf", "model_type": "gemma3", "n_threads": 2,
     "n_prompt": 512, "n_gen": 0, "avg_ts": 400.0, "stddev_ts": 4.0, "gops": 1.5},
    {"model_filename": "/m/gemma-3-270m-Q4_K_M.gguf", "model_type": "gemma3", "n_threads": 2,
     "n_prompt": 0, "n_gen": 128, "avg_ts": 50.0, "stddev_ts": 0.5},
    {"model_filename": "/m/gemma-3-270m-Q4_K_M.gguf", "model_type": "gemma3", "n_threads": 1,
     "n_prompt": 0, "n_gen": 128, "avg_ts": 30.0, "stddev_ts": 0.3},
]
# As llama-bench writes it: more fields, n_depth, a unicode escape in a string.
LLAMA = [
    {"build_commit": "abc", "cpu_info": "Xeon \u00ae", "model_filename": "gemma3.gguf",
     "model_type": "gemma3 270M Q4_K - Medium", "n_batch": 2048, "n_threads": 2, "n_prompt": 512,
     "n_gen": 0, "n_depth": 0, "avg_ns": 1, "avg_ts": 500.0, "stddev_ts": 5.0,
     "samples_ts": [500.0, 500.0]},
    {"build_commit": "abc", "model_filename": "gemma3.gguf", "n_threads": 2, "n_prompt": 0,
     "n_gen": 128, "n_depth": 0, "avg_ts": 40.0, "stddev_ts": 0.4, "samples_ts": []},
    {"build_commit": "abc", "model_filename": "gemma3.gguf", "n_threads": 2, "n_prompt": 0,
     "n_gen": 128, "n_depth": 512, "avg_ts": 35.0, "stddev_ts": 0.4, "samples_ts": []},
]


def rows(out):
    r = {}
    for m in re.finditer(r"^\| (\S+) \| (\S+) \| ([^|]+?) \| (\d+) \| ([0-9.]+) ± [0-9.]+ \| "
                         r"([0-9.]+) ± [0-9.]+ \| ([0-9.]+) \|$", out, re.M):
        r[(m.group(3), int(m.group(4)))] = (float(m.group(5)), float(m.group(6)), float(m.group(7)))
    return r


@pytest.mark.parametrize("jsonl", [False, True])
def test_hpl_vs_llama(hpl, tmp_path, jsonl):
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(HPL, indent=1))
    b.write_text("\n".join(json.dumps(x) for x in LLAMA) + "\n" if jsonl else json.dumps(LLAMA))
    r = run(hpl, "--compare", str(a), str(b))
    assert r.returncode == 0, r.stderr
    got = rows(r.stdout)
    assert got == {("pp512", 2): (400.0, 500.0, 1.25), ("tg128", 2): (50.0, 40.0, 0.8)}
    assert "only in A: gemma-3-270m-Q4_K_M.gguf tg128 t1" in r.stdout
    assert "only in B: gemma3.gguf tg128 @ d512 t2" in r.stdout


def test_same_file_is_one(hpl, tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(HPL))
    r = run(hpl, "--compare", str(a), str(a))
    assert r.returncode == 0
    got = rows(r.stdout)
    assert len(got) == 3 and all(v[2] == 1.0 for v in got.values())
    assert "only in" not in r.stdout


def test_bad_files(hpl, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(HPL))
    cases = {
        "trunc.json": ('[{"n_prompt": 512, "avg_ts": 1', "trunc.json"),
        "nots.json": ('[{"n_prompt": 512}]', "avg_ts"),
        "notest.json": ('[{"n_prompt": 0, "n_gen": 0, "avg_ts": 3}]', "n_gen"),
        "empty.json": ("", "empty"),
    }
    for name, (text, want) in cases.items():
        p = tmp_path / name
        p.write_text(text)
        r = run(hpl, "--compare", str(good), str(p))
        assert r.returncode != 0 and want in r.stderr and name in r.stderr, (name, r.stderr)
    r = run(hpl, "--compare", str(good))
    assert r.returncode != 0 and "two files" in r.stderr
    r = run(hpl, "--compare", str(good), str(tmp_path / "missing.json"))
    assert r.returncode != 0 and "missing.json" in r.stderr
