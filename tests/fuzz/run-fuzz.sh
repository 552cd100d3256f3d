#!/usr/bin/env bash
# Builds one of the engine-level libFuzzer targets with clang++ (g++ has no libFuzzer, so this
# is not part of the CMake build) and fuzzes it for SECONDS (default 60):
#   chat_template  tokenizer/chat_template.cc: rendering, incremental turns, detection
#   session_file   load_session_file (needs the whole engine; model: stories260K)
#   quantize       quantize_model, i.e. `hpl quantize`, on corrupt GGUF files
#   grammar        GBNF parser, JSON Schema -> GBNF, matcher and token mask (seeds: tests/fuzz/grammar_seeds)
# The engine sources are compiled once per run into $OUT/obj (ccache is used when present).
# Findings go to $OUT/crashes; the corpus grows in $OUT/corpus. Reproduce one with
# `HPL_TEST_DATA=tests/data $OUT/TARGET_fuzz FILE`; once fixed, keep it in
# tests/fuzz/regressions/TARGET/ (run as a seed every time).
#   usage: tests/fuzz/run-fuzz.sh TARGET [SECONDS]
#   env: OUT (default build-fuzz-TARGET), JOBS (parallel fuzz jobs), BUILD_JOBS (default 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${1:?usage: tests/fuzz/run-fuzz.sh chat_template|session_file|quantize|grammar [SECONDS]}
SECONDS_TO_RUN=${2:-60}
OUT=${OUT:-build-fuzz-$TARGET}
CXX=${CXX_FUZZ:-clang++}
command -v ccache >/dev/null && CXX="ccache $CXX"
mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/crashes" "$OUT/obj"

case "$(uname -m)" in
  x86_64) ARCH_FLAGS="-mavx2 -mfma -mf16c" ;;  # as CMakeLists.txt
  aarch64) ARCH_FLAGS="-march=armv8.2-a+dotprod+fp16" ;;
  *) ARCH_FLAGS="" ;;
esac
FLAGS="-std=c++20 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all -I. $ARCH_FLAGS"

# Library sources the target needs, compiled with -fsanitize=fuzzer-no-link.
case "$TARGET" in
  chat_template) SOURCES="tokenizer/chat_template.cc" ;;
  grammar) SOURCES=$(echo grammar/*.cc) ;;
  session_file | quantize)
    shopt -s nullglob
    SOURCES=$(echo kernel/*.cc tokenizer/*.cc engine/*.cc gguf/*.cc runtime/*.cc tools/*.cc) ;;
  *) echo "unknown target '$TARGET'" >&2; exit 2 ;;
esac
OBJS=()
for src in $SOURCES; do OBJS+=("$OUT/obj/$(echo "$src" | tr / _).o"); done
export CXX FLAGS OUT
# kernel/ (block formats, K-quant scale search: tested against scalar references elsewhere) is
# built -O2 without sanitizers: under ASan the scale search made one q4_k_m run take ~0.7 s.
printf '%s\n' $SOURCES | xargs -P "${BUILD_JOBS:-2}" -I{} sh -c '
  case {} in kernel/*) SAN="-O2" ;; *) SAN="-fsanitize=fuzzer-no-link,address,undefined" ;; esac
  $CXX $FLAGS $SAN -c {} -o "$OUT/obj/$(echo {} | tr / _).o"'
$CXX $FLAGS -fsanitize=fuzzer,address,undefined "tests/fuzz/${TARGET}_fuzz.cc" "${OBJS[@]}" \
  -lpthread -o "$OUT/${TARGET}_fuzz"

MAX_LEN=4096
case "$TARGET" in
  session_file)
    HPL_TEST_DATA=tests/data HPL_FUZZ_SEEDS="$OUT/seeds" "$OUT/session_file_fuzz" -runs=0 >/dev/null 2>&1
    MAX_LEN=65536 ;;
  quantize)  # small models only (< 64 KiB): a run takes milliseconds, not seconds
    python3 tests/fuzz/make_gguf_seeds.py "$OUT/seeds"
    python3 tests/fuzz/make_quantize_seeds.py "$OUT/seeds"
    for f in "$OUT"/seeds/*.gguf; do  # first byte: the mix (0 q8_0, 1 q4_0, 2 q4_k_m, 3 q5_k_m, 4 q6_k)
      for m in 0 1 2 3 4; do { printf "\\x0$m"; cat "$f"; } > "$f.$m.mix"; done
      rm "$f"
    done
    MAX_LEN=65536 ;;
  grammar)  # first byte: 0 GBNF, 1 JSON Schema
    for f in tests/fuzz/grammar_seeds/*; do
      case "$f" in *.json) m=1 ;; *) m=0 ;; esac
      { printf "\\x0$m"; cat "$f"; } > "$OUT/seeds/$(basename "$f")"
    done ;;
esac

# The targets write their files under TMPDIR: tmpfs when there is one (the quantizer's fsync
# costs ~0.1 s per run on a disk).
[ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && export TMPDIR=/dev/shm

# Inputs that once failed (tests/fuzz/regressions/TARGET) are seeds too: each must pass now.
cp tests/fuzz/regressions/"$TARGET"/* "$OUT/seeds/" 2>/dev/null || true

HPL_TEST_DATA=tests/data "$OUT/${TARGET}_fuzz" "$OUT/corpus" "$OUT/seeds" -max_len="$MAX_LEN" \
  -rss_limit_mb=4096 -timeout=30 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 \
  -artifact_prefix="$OUT/crashes/" ${JOBS:+-jobs=$JOBS}
