#!/usr/bin/env bash
# Every test: native ctest, aarch64 ctest under qemu (cpu max, then cortex-a53), ASan/UBSan
# ctest, TSan on the threaded parts, pytest, and the pip package (built from a clean clone, tested installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

run() { echo "== $*" >&2; "$@"; }
for preset in release aarch64 asan; do
  run cmake --preset "$preset" >/dev/null
  run cmake --build --preset "$preset"
  run ctest --preset "$preset"
done
# The aarch64 preset ran under qemu -cpu max (neon, dotprod and i8mm bodies all tested);
# once more on a CPU without dotprod / i8mm, where the ARMv8.0 body is the one chosen.
run ctest --preset aarch64-a53
# TSan: only the tests that run several threads (the pool, the runtime, its stress test).
run cmake --preset tsan >/dev/null
run cmake --build --preset tsan
run ctest --preset tsan -R 'thread_pool|runtime|c_api'
HPL_BUILD_DIR="$PWD/build" run python3 -m pytest -q tests/python
run bash scripts/test-python-package.sh
