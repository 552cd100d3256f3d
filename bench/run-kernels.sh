#!/usr/bin/env bash
# Every kernel benchmark in one command: read bandwidth, matmul at TinyLlama-1.1B and
# Gemma 3 270M shapes (gemv and gemm, 1 and 2 threads), other ops, tokenizer, and the
# llvm-mca estimate of the NEON Q4_K block. Medians of REPS repetitions.
#
#   bash bench/run-kernels.sh [FILTER]     # FILTER: a Google Benchmark regex for matmul_bench
#
# Environment: HPL_BUILD_DIR (default <repo>/build), REPS (5), OUT (JSON output dir).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HPL_BUILD_DIR:-$REPO/build}"
REPS="${REPS:-5}"
OUT="${OUT:-$BUILD/bench-results}"
FILTER="${1:-}"
mkdir -p "$OUT"
cmake --build "$BUILD" --target bandwidth_bench matmul_bench ops_bench tokenizer_bench >&2

common=(--benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true
        --benchmark_display_aggregates_only=true)
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in bandwidth_bench matmul_bench ops_bench tokenizer_bench; do
  args=("${common[@]}" --benchmark_out="$OUT/$b.json" --benchmark_out_format=json)
  if [ "$b" = matmul_bench ] && [ -n "$FILTER" ]; then args+=(--benchmark_filter="$FILTER"); fi
  echo "== $b"
  "$BUILD/bin/$b" "${args[@]}" | grep -E "median|^-|Benchmark"
done
echo "== llvm-mca (cortex-a76), NEON Q4_K x Q8_K super-block"
bash "$REPO/bench/mca_q4k_neon.sh"
echo "== JSON in $OUT"
