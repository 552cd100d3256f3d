#!/usr/bin/env bash
# Builds the GGUF libFuzzer target with clang++ (g++ has no libFuzzer, so this is not part of
# the CMake build) and fuzzes GgufFile::from_memory for SECONDS (default 60).
# Seeds: small synthetic GGUFs (every metadata type, nested arrays, block types) and the
# tests/data GGUF files under 2 MB. Findings go to $OUT/crashes; corpus grows in $OUT/corpus.
#   usage: tests/fuzz/run-gguf-fuzz.sh [SECONDS]
#   env: OUT (default build-gguf-fuzz), MAX_LEN (input size cap, default 2 MiB), JOBS
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
OUT=${OUT:-build-gguf-fuzz}
CXX=${CXX_FUZZ:-clang++}
mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/crashes"

# The reader is gguf/gguf.cc plus kernel/types.cc (type traits); nothing else is needed.
"$CXX" -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -I. tests/fuzz/gguf_fuzz.cc gguf/gguf.cc kernel/types.cc \
  -o "$OUT/gguf_fuzz"

python3 tests/fuzz/make_gguf_seeds.py "$OUT/seeds"
find tests/data -name '*.gguf' -size -2048k -exec cp {} "$OUT/seeds/" \;

"$OUT/gguf_fuzz" "$OUT/corpus" "$OUT/seeds" -max_len="${MAX_LEN:-2097152}" -rss_limit_mb=4096 \
  -timeout=20 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 \
  -artifact_prefix="$OUT/crashes/" ${JOBS:+-jobs=$JOBS}
