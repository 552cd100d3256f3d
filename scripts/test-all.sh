#!/usr/bin/env bash
# Every test: native ctest, aarch64 ctest under qemu, ASan/UBSan ctest, TSan on the
# threaded parts, pytest, and the pip package (built from a clean clone, tested installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

run() { echo "== $*" >&2; "$@"; }
for preset in release aarch64 asan; do
  run cmake --preset "$preset" >/dev/null
  run cmake --build --preset "$preset"
  run ctest --preset "$preset"
done
# i8mm (SMMLA) gemm bodies: only the matmul test, under qemu's default cpu (max).
run cmake --preset aarch64-i8mm >/dev/null
run cmake --build --preset aarch64-i8mm --target matmul_test
run ctest --preset aarch64-i8mm -R matmul_test
# TSan: only the tests that run several threads (the pool, the runtime, its stress test).
run cmake --preset tsan >/dev/null
run cmake --build --preset tsan
run ctest --preset tsan -R 'thread_pool|runtime|c_api'
HPL_BUILD_DIR="$PWD/build" run python3 -m pytest -q tests/python
run bash scripts/test-python-package.sh
