#!/usr/bin/env bash
# Builds the tokenizer libFuzzer target with clang++ (not part of the CMake build) and fuzzes
# encode/decode on the tests/data/tokenizer vocabs and tests/data/wordpiece's for SECONDS (default 60). Seeds: the
# conformance inputs. Findings go to $OUT/crashes.
#   usage: tests/fuzz/run-tokenizer-fuzz.sh [SECONDS]
#   env: OUT (default build-tokenizer-fuzz), JOBS
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
OUT=${OUT:-build-tokenizer-fuzz}
CXX=${CXX_FUZZ:-clang++}
mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/crashes"

"$CXX" -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -I. tests/fuzz/tokenizer_fuzz.cc tokenizer/*.cc gguf/gguf.cc \
  engine/vocab_loader.cc kernel/types.cc -o "$OUT/tokenizer_fuzz"

# One seed per conformance case, for each selector byte family.
python3 - "$OUT/seeds" <<'PY'
import glob, os, sys
out = sys.argv[1]
n = 0
for f in sorted(glob.glob("tests/data/tokenizer/*.inp") + glob.glob("tests/data/wordpiece/*.inp")):
    for case in open(f, encoding="utf-8", newline="").read().split("\n__ggml_vocab_test__\n"):
        for sel in (0, 1, 2, 3, 4, 5, 0x81, 0xC2, 0x84, 0xC5):
            open(os.path.join(out, "s%05d" % n), "wb").write(bytes([sel]) + case.encode())
            n += 1
PY

HPL_TEST_DATA=tests/data "$OUT/tokenizer_fuzz" "$OUT/corpus" "$OUT/seeds" -max_len=4096 \
  -timeout=20 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 \
  -artifact_prefix="$OUT/crashes/" ${JOBS:+-jobs=$JOBS}
