#!/usr/bin/env bash
# Grammar mask cost, hpl vs llama.cpp, on the same model, the same GBNF (hpl's compiled JSON
# Schema, fed to both) and the same threads, interleaved hpl, llama.cpp, hpl, llama.cpp:
#   bash bench/grammar_cost_llamacpp.sh [SCHEMA.json] [STEPS] [THREADS]
# Env: HPL_BUILD_DIR (needs bin/grammar_cost), MODEL (default scripts/default-model.sh),
# LLAMA_SRC (llama.cpp source with include/llama.h), LLAMA_LIB (dir with libllama.so),
# REPS (2). Prints /proc/loadavg before and after.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HPL_BUILD_DIR:-$REPO/build}"
MODEL="${MODEL:-$(bash "$REPO/scripts/default-model.sh")}"
SCHEMA="${1:-$REPO/bench/person.schema.json}"
STEPS="${2:-64}"
THREADS="${3:-2}"
LLAMA_SRC="${LLAMA_SRC:-/work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp}"
LLAMA_LIB="${LLAMA_LIB:-/work/llamacpp-build/bin}"
OUT="$BUILD/grammar-cost"
mkdir -p "$OUT"
if [ ! -x "$OUT/grammar_cost_llamacpp" ] || [ "$REPO/bench/grammar_cost_llamacpp.cc" -nt "$OUT/grammar_cost_llamacpp" ]; then
  g++ -std=c++17 -O2 -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" \
    "$REPO/bench/grammar_cost_llamacpp.cc" -L"$LLAMA_LIB" -lllama -lggml -lggml-base \
    -Wl,-rpath,"$LLAMA_LIB" -o "$OUT/grammar_cost_llamacpp"
fi
echo "load before: $(cat /proc/loadavg)"
for r in $(seq "${REPS:-2}"); do
  echo "== hpl (rep $r)"
  "$BUILD/bin/grammar_cost" "$MODEL" "$SCHEMA" "$STEPS" "$THREADS" --dump-gbnf "$OUT/schema.gbnf" | grep -v '^ \|^[{}]'
  echo "== llama.cpp (rep $r), same GBNF"
  OMP_WAIT_POLICY=passive "$OUT/grammar_cost_llamacpp" "$MODEL" "$OUT/schema.gbnf" "$STEPS" "$THREADS" | grep -v '^ \|^[{}]'
done
echo "load after: $(cat /proc/loadavg)"
