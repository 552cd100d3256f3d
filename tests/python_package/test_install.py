"""What pip installed: the package from site-packages with its libhpl, py.typed, and the hpl
and hpl-convert commands in the venv's bin."""
import os
import subprocess
import sys
from pathlib import Path

import hpl
from conftest import MODELS, STORY, STORY_TEXT

BIN = Path(sys.executable).parent


def test_imported_from_site_packages_with_bundled_library():
    pkg = Path(hpl.__file__).resolve().parent
    assert pkg.parent.name == "site-packages", pkg
    assert Path(sys.prefix).resolve() in pkg.parents
    assert Path(hpl._capi.library_path).resolve() == pkg / "libhpl.so"
    assert (pkg / "py.typed").exists()
    assert "HPL_LIB" not in os.environ and "HPL_BUILD_DIR" not in os.environ
    assert hpl.version() == hpl.__version__


def test_hpl_command_runs_the_bundled_engine():
    out = subprocess.run([str(BIN / "hpl"), "run", "-m", STORY, "-p", "Once upon a time",
                          "-n", "12", "-t", "1", "--temp", "0"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert STORY_TEXT in out.stdout
    info = subprocess.run([str(BIN / "hpl"), "info", STORY], capture_output=True, text=True,
                          timeout=300)
    assert info.returncode == 0 and "llama" in info.stdout
    bad = subprocess.run([str(BIN / "hpl"), "run", "-m", str(MODELS / "missing.gguf"), "-p", "x"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "missing.gguf" in bad.stderr


def test_hpl_convert_command_converts_and_the_engine_loads_the_result(tmp_path):
    out_file = tmp_path / "ts.gguf"
    r = subprocess.run([str(BIN / "hpl-convert"), str(MODELS / "TinyStories-656K"), "-o",
                        str(out_file), "--outtype", "f16"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with hpl.Model(out_file, n_threads=1, n_ctx=128) as m:
        assert m.generate("Once upon a time", max_tokens=8, temperature=0)
