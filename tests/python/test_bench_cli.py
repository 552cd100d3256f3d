"""hpl bench output formats: llama-bench-compatible JSON records, CSV and the markdown table."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
MODEL = REPO / "tests" / "data" / "models" / "stories260K.gguf"


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


F32_EPS = 2.0 ** -24  # avg_ts and samples_ts are written at float32 precision (cli/json_writer)


def close_at_digits(written: float, exact: float, digits: int) -> bool:
    """written is exact printed with `digits` significant digits (%.{digits}g), so they differ by
    at most half a unit in the last digit written; exact is computed from avg_ts, itself off by
    up to F32_EPS relative, hence the slack."""
    if exact == 0:
        return written == 0
    half_unit = 0.5 * 10.0 ** (math.floor(math.log10(abs(exact))) + 1 - digits)
    return abs(written - exact) <= half_unit + 2 * F32_EPS * abs(exact)


def bench(hpl, *extra):
    r = subprocess.run([str(hpl), "bench", "-m", str(MODEL), "-p", "16,32", "-n", "8", "-t",
                        "1,2", "-r", "2", "--no-warmup", *extra],
                       check=True, capture_output=True, text=True)
    return r.stdout


def test_json_has_one_llama_bench_record_per_test(hpl):
    recs = json.loads(bench(hpl, "-o", "json", "--no-bandwidth"))
    tests = {(r["n_prompt"], r["n_gen"], r["n_threads"]) for r in recs}
    assert tests == {(16, 0, 1), (32, 0, 1), (0, 8, 1), (16, 0, 2), (32, 0, 2), (0, 8, 2)}
    for r in recs:
        assert r["avg_ts"] > 0 and r["stddev_ts"] >= 0
        assert len(r["samples_ts"]) == 2 and len(r["samples_ns"]) == 2
        n = r["n_prompt"] or r["n_gen"]
        mean = sum(r["samples_ts"]) / 2  # each written at float32 precision, as avg_ts
        assert abs(mean - r["avg_ts"]) <= 3 * F32_EPS * mean
        # t/s and ns agree sample by sample
        for ts, ns in zip(r["samples_ts"], r["samples_ns"]):
            assert abs(ts - n / (ns * 1e-9)) <= 1e-3 * ts
        assert r["model_n_params"] == 292800 and r["model_size"] == MODEL.stat().st_size
        if r["n_gen"]:
            assert r["weights_gbps"] > 0
            # weights_gbps is written with 6 significant digits
            exact = r["weight_bytes_per_token"] * r["avg_ts"] / 1e9
            assert close_at_digits(r["weights_gbps"], exact, 6), (r["weights_gbps"], exact)
        else:
            assert r["gops"] > 0


def test_csv_and_markdown(hpl):
    rows = list(csv.DictReader(io.StringIO(bench(hpl, "-o", "csv", "--no-bandwidth"))))
    assert len(rows) == 6
    assert {r["n_threads"] for r in rows} == {"1", "2"}
    assert all(float(r["avg_ts"]) > 0 for r in rows)
    md = bench(hpl).splitlines()
    assert md[0].startswith("| model |") and "t/s" in md[0] and "% bw" in md[0]
    body = [line for line in md[2:] if line.startswith("|")]
    assert len(body) == 6
    tg = [line for line in body if "| tg8 |" in line]
    assert len(tg) == 2
    for line in tg:  # decode rows carry GB/s and the share of the measured bandwidth
        cells = [c.strip() for c in line.strip("|").split("|")]
        # printed as %.2f and %.1f: a slow machine may round them to 0, so only >= 0
        assert re.fullmatch(r"\d+\.\d\d", cells[7]) and re.fullmatch(r"\d+\.\d", cells[8]), cells
    for line in body:
        if "| tg8 |" not in line:  # prefill rows: no GB/s, GOPS instead
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[7] == "-" and cells[8] == "-" and re.fullmatch(r"\d+\.\d", cells[9]), cells


def test_bad_arguments_are_reported(hpl):
    r = subprocess.run([str(hpl), "bench", "-m", str(MODEL), "-o", "xml"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "-o" in r.stderr
    r = subprocess.run([str(hpl), "bench", "-m", str(MODEL), "-t", "1,x"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "'x'" in r.stderr
