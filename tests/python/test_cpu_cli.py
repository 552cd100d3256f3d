"""Threads and CPUs in the CLI: `hpl info --cpu` on fake sysfs trees, --cpus / --cpu-mask
pinning (a refused mask is a warning naming the CPUs, a malformed one an error), and the
topology in --verbose."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HPL_BUILD_DIR", REPO / "build"))
HPL = BUILD / "bin" / "hpl"
MODEL = REPO / "tests" / "data" / "models" / "stories260K.gguf"
TREES = REPO / "tests" / "data" / "cpu"


@pytest.fixture(scope="module")
def hpl():
    if not HPL.exists():
        pytest.skip(f"{HPL} not built (set HPL_BUILD_DIR)")
    return HPL


def run(hpl, *args, check=True):
    return subprocess.run([str(hpl), *args], check=check, capture_output=True, text=True)


@pytest.mark.parametrize("tree,threads,cpus", [
    ("sd8gen3", 6, "2-7"), ("tensor_g3", 5, "4-8"), ("dim9300", 8, "0-7"),
    ("a55_budget", 8, "0-7"), ("pi5", 4, "0-3"), ("desktop_smt", 8, "0-7"),
    ("missing", 6, "0-5")])
def test_info_cpu_on_fake_trees(hpl, tree, threads, cpus):
    out = run(hpl, "info", "--cpu-root", str(TREES / tree)).stdout
    assert f"default threads: {threads} (CPUs {cpus}:" in out, out
    assert "tier 0: CPUs" in out


def test_info_cpu_on_this_machine(hpl):
    out = run(hpl, "info", "--cpu").stdout
    assert "default threads:" in out and "CPUs online:" in out


def gen(hpl, *extra, check=True):
    return run(hpl, "run", "-m", str(MODEL), "-p", "Once upon a time", "-n", "8", "--temp", "0",
               *extra, check=check)


def test_pinned_run_gives_the_same_text(hpl):
    plain = gen(hpl, "-t", "2").stdout
    pinned = gen(hpl, "-t", "2", "--cpus", "0")
    assert pinned.stdout == plain
    assert "warning" not in pinned.stderr
    assert gen(hpl, "-t", "2", "--cpu-mask", "0x1").stdout == plain


def test_refused_mask_is_a_warning_naming_the_cpus(hpl):
    r = gen(hpl, "-t", "2", "--cpus", "1000")
    assert "warning: pinning" in r.stderr and "1000" in r.stderr, r.stderr
    assert r.stdout  # still generates


@pytest.mark.parametrize("opt,value", [("--cpus", "3-1"), ("--cpus", "x"), ("--cpu-mask", "0x0"),
                                       ("--cpu-mask", "zz")])
def test_malformed_cpu_lists_are_errors(hpl, opt, value):
    r = gen(hpl, opt, value, check=False)
    assert r.returncode != 0
    assert opt in r.stderr, r.stderr


def test_verbose_shows_the_topology_and_threads(hpl):
    r = gen(hpl, "-t", "1", "--cpus", "0", "--verbose")
    assert "default threads:" in r.stderr
    assert "using 1 threads, pinned to CPUs 0" in r.stderr


def test_serve_takes_the_thread_options_and_names_refused_cpus(hpl):
    # serve pins when a request first opens a session, so a refused CPU is named at start.
    p = subprocess.Popen([str(hpl), "serve", "-m", str(MODEL), "--port", "0", "--template",
                          "llama2", "--cpus", "1000", "-t", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if line.startswith("listening on"):
                break
        text = "".join(lines)
        assert "warning: pinning: CPUs 1000 are not available" in text, text
        assert "1 threads" in text, text
    finally:
        p.terminate()
        p.wait(timeout=30)
    bad = run(hpl, "serve", "-m", str(MODEL), "--cpus", "x-y", check=False)
    assert bad.returncode != 0 and "--cpus" in bad.stderr, bad.stderr
