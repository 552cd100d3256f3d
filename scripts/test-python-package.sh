#!/usr/bin/env bash
# The pip package from a clean checkout (the committed HEAD, cloned into a temp dir):
#   pip wheel . -> exactly one wheel; pip install . in a fresh venv (reusing that CMake build
#   dir, so the engine is compiled once); the package's pytest suite (tests/python_package)
#   against the installed package only; then the wheel alone in a second fresh venv.
# Uncommitted changes are not tested: commit first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/hpl-pypkg.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
run() { echo "== $(date +%T) $*" >&2; "$@"; }
PIP=(-q --disable-pip-version-check)
unset HPL_LIB HPL_BUILD_DIR PYTHONPATH
# ccache (when present) makes a rerun cheap; the same launcher in both pip calls keeps the
# second one from reconfiguring and rebuilding.
if command -v ccache >/dev/null; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_BASEDIR="$TMP" CCACHE_NOHASHDIR=1
fi
DEFAULT_MODEL="$(bash scripts/default-model.sh 2>/dev/null || true)"

run git clone -q "$REPO" "$TMP/src"
run python3 -m venv "$TMP/venv"
run "$TMP/venv/bin/pip" install "${PIP[@]}" pytest
cd "$TMP/src"
run "$TMP/venv/bin/pip" wheel "${PIP[@]}" --no-deps -w "$TMP/dist" -C build-dir="$TMP/build" .
n_wheels=$(find "$TMP/dist" -name '*.whl' | wc -l)
[ "$n_wheels" = 1 ] || { echo "expected one wheel, got $n_wheels" >&2; exit 1; }
run "$TMP/venv/bin/pip" install "${PIP[@]}" -C build-dir="$TMP/build" .
cd "$TMP"  # not the checkout: `import hpl` must find the installed package
HPL_TEST_MODELS="$TMP/src/tests/data/models" HPL_DEFAULT_MODEL="$DEFAULT_MODEL" \
  run "$TMP/venv/bin/python" -m pytest -q -p no:cacheprovider "$TMP/src/tests/python_package"

# The wheel alone, in another fresh venv: the commands and the API work. This venv sees the
# system's packages, so the converter's dependencies (transformers: thousands of files) are not
# unpacked a second time; the first venv above proved they resolve from PyPI.
run python3 -m venv --system-site-packages "$TMP/venv2"
run "$TMP/venv2/bin/pip" install "${PIP[@]}" "$TMP"/dist/*.whl
M="$TMP/src/tests/data/models/stories260K.gguf"
run "$TMP/venv2/bin/hpl" info "$M" >/dev/null
run "$TMP/venv2/bin/hpl-convert" --help >/dev/null
run "$TMP/venv2/bin/python" - "$M" <<'PY'
import sys
from pathlib import Path
import hpl
assert Path(hpl.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), hpl.__file__
with hpl.Model(sys.argv[1], n_ctx=128, n_threads=1) as m:
    text = m.generate("Once upon a time", max_tokens=8, temperature=0)
assert text.startswith(", there was"), text
print("wheel in a fresh venv: ok:", repr(text))
PY
