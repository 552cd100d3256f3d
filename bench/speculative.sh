#!/usr/bin/env bash
# Speculative decoding: speedup and acceptance, hpl (and llama.cpp's tools where they apply).
#
#   bash bench/speculative.sh
#
# 1. TinyStories-656K F16 (/work/shared/models or tests/data/models) with its own Q4_0
#    requantization (`hpl quantize ... q4_0`) as the draft: hpl run --draft, greedy.
# 2. Gemma 3 270M Q4_K_M (scripts/default-model.sh) with prompt lookup (--lookup 3) on a chat
#    prompt that asks it to repeat a passage, greedy.
# 3. llama.cpp's llama-speculative (case 1) and llama-lookup (case 2) on the same files, if
#    built (LLAMA_BIN, default /work/llamacpp-build/bin), and llama-bench tg for the plain rate
#    (OMP_WAIT_POLICY=passive unless LLAMA_OMP_WAIT_POLICY says otherwise: on a loaded
#    machine spinning OpenMP workers collapse its speed, see compare_llamacpp.sh).
# Plain and speculative runs alternate (A, B, A, B, ...) REPS times; the medians (and min-max)
# of the effective rate (tokens after the first over their time, drafting included) and the
# acceptance are printed with the load average before and after. Same output is checked:
# greedy speculative text must equal the plain text.
#
# Environment: HPL_BUILD_DIR (default <repo>/build), THREADS (2), REPS (5), N (128 tokens),
# DRAFT_MAX (hpl and llama.cpp, case 1: 4; case 2: 8).
set -uo pipefail  # a failed or silent run is recorded as nan, the rest goes on
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HPL_BUILD_DIR:-$REPO/build}"
HPL="$BUILD/bin/hpl"
THREADS="${THREADS:-2}"
REPS="${REPS:-5}"
N="${N:-128}"
LLAMA_BIN="${LLAMA_BIN:-/work/llamacpp-build/bin}"
OUT="$BUILD/bench-speculative"
mkdir -p "$OUT"
[[ -x "$HPL" ]] || { echo "build hpl first" >&2; exit 1; }

TS_F16="${TS_F16:-/work/shared/models/TinyStories-656K.f16.gguf}"
[[ -f "$TS_F16" ]] || TS_F16="$REPO/tests/data/models/TinyStories-656K.f16.gguf"
TS_Q4="$OUT/TinyStories-656K.q4_0.gguf"
[[ -f "$TS_Q4" ]] || "$HPL" quantize "$TS_F16" "$TS_Q4" q4_0 -t "$THREADS" >&2
GEMMA="${GEMMA:-$(bash "$REPO/scripts/default-model.sh")}"

PASSAGE="The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips. Every evening the keeper climbed the ninety-two steps to light the lamp, and every morning he wrote the weather in a small blue notebook. Ships passed far out at sea, and none of them knew his name, but all of them knew his light."
GEMMA_PROMPT="Repeat the following passage exactly, word for word, then stop.

$PASSAGE"
TS_PROMPT="Once upon a time"

median() { grep -vE '^(nan|-)?$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "-"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f (%.2f-%.2f)", m, a[1], a[NR]}'; }

# hpl_once NAME ARGS...: one run; appends "rate accept" to $OUT/NAME.txt, the text to NAME.out
hpl_once() {
  local name=$1; shift
  "$HPL" run -t "$THREADS" -n "$N" --temp 0 -v "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rate acc
  rate=$(grep -oE 'effective [0-9.]+ tok/s' "$OUT/$name.err" | awk '{print $2}' || true)
  acc=$(grep -oE 'accepted \([0-9.]+%\)' "$OUT/$name.err" | grep -oE '[0-9.]+' || echo "-")
  echo "$rate $acc" >>"$OUT/$name.txt"
}

# llama_once NAME BIN ARGS...: "speed: X t/s" and "accept = Y%" of llama-speculative / lookup
llama_once() {
  local name=$1 bin=$2; shift 2
  OMP_WAIT_POLICY="${LLAMA_OMP_WAIT_POLICY:-passive}" \
    "$LLAMA_BIN/$bin" -t "$THREADS" -n "$N" --temp 0 "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || {
    echo "nan -" >>"$OUT/$name.txt"; return; }
  local rate acc
  rate=$(grep -oE 'speed: +[0-9.]+ t/s' "$OUT/$name.err" | tail -1 | awk '{print $2}' || true)
  acc=$(grep -oE 'accept += +[0-9.]+%' "$OUT/$name.err" | grep -oE '[0-9.]+' | tail -1 || echo "-")
  echo "${rate:-nan} ${acc:--}" >>"$OUT/$name.txt"
}

# llama_tg NAME MODEL: llama-bench tg N (no sampling), the plain llama.cpp decode rate
llama_tg() {
  local rate
  rate=$(OMP_WAIT_POLICY="${LLAMA_OMP_WAIT_POLICY:-passive}" "$LLAMA_BIN/llama-bench" -m "$2" \
    -p 0 -n "$N" -t "$THREADS" -r 1 -o csv 2>/dev/null | python3 -c \
    'import csv,sys; r=list(csv.DictReader(sys.stdin)); print(r[-1]["avg_ts"] if r else "nan")' || echo nan)
  echo "$rate -" >>"$OUT/$1.txt"
}

report() {  # NAME LABEL (n: runs that reported a rate; llama.cpp's logger may lose its last lines)
  local f="$OUT/$1.txt"
  printf "| %-46s | %-22s | %-14s |\n" "$2 (n=$(cut -d' ' -f1 "$f" | grep -cvE '^(nan)?$'))" "$(cut -d' ' -f1 "$f" | median)" \
    "$(cut -d' ' -f2 "$f" | median)"
}

rm -f "$OUT"/*.txt
HAVE_SPEC=0; [[ -x "$LLAMA_BIN/llama-speculative" ]] && HAVE_SPEC=1
HAVE_LOOKUP=0; [[ -x "$LLAMA_BIN/llama-lookup" ]] && HAVE_LOOKUP=1
echo "load before: $(cat /proc/loadavg)"
for ((i = 0; i < REPS; i++)); do
  hpl_once ts_plain -m "$TS_F16" -p "$TS_PROMPT"
  hpl_once ts_draft -m "$TS_F16" -p "$TS_PROMPT" --draft "$TS_Q4" --draft-max "${DRAFT_MAX:-4}"
  hpl_once gemma_plain -m "$GEMMA" --chat -p "$GEMMA_PROMPT"
  hpl_once gemma_lookup -m "$GEMMA" --chat -p "$GEMMA_PROMPT" --lookup 3 --draft-max "${DRAFT_MAX:-8}"
  if ((HAVE_SPEC)); then
    llama_tg ll_ts_plain "$TS_F16"
    llama_once ll_ts_draft llama-speculative -m "$TS_F16" -md "$TS_Q4" -p "$TS_PROMPT" \
      --spec-draft-n-max "${DRAFT_MAX:-4}" --spec-draft-n-min 0 -c 512
  fi
  if ((HAVE_LOOKUP)); then
    llama_tg ll_gemma_plain "$GEMMA"
    # llama-lookup takes a raw prompt: the same chat turn, formatted as Gemma's template does.
    llama_once ll_gemma_lookup llama-lookup -m "$GEMMA" --spec-draft-n-max "${DRAFT_MAX:-8}" -c 2048 \
      -p "<start_of_turn>user
$GEMMA_PROMPT<end_of_turn>
<start_of_turn>model
"
  fi
done
echo "load after: $(cat /proc/loadavg)"
cmp -s "$OUT/ts_plain.out" "$OUT/ts_draft.out" && echo "TinyStories: speculative text == plain text" \
  || echo "TinyStories: TEXT DIFFERS"
cmp -s "$OUT/gemma_plain.out" "$OUT/gemma_lookup.out" && echo "Gemma: lookup text == plain text" \
  || echo "Gemma: TEXT DIFFERS"
echo
echo "$(lscpu | grep 'Model name' | sed 's/ \+/ /g'), $THREADS threads, $N tokens, greedy, $REPS interleaved runs, $(date -u +%F)"
printf "| %-46s | %-22s | %-14s |\n" "run" "tok/s median (min-max)" "accepted %"
printf "|%s|%s|%s|\n" "$(printf -- '-%.0s' {1..48})" "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..16})"
report ts_plain "hpl TinyStories-656K F16"
report ts_draft "hpl F16 + Q4_0 draft (--draft-max ${DRAFT_MAX:-4})"
((HAVE_SPEC)) && report ll_ts_plain "llama-bench tg$N TinyStories-656K F16"
((HAVE_SPEC)) && report ll_ts_draft "llama-speculative F16 + Q4_0 draft"
report gemma_plain "hpl Gemma 3 270M Q4_K_M, repeat passage"
report gemma_lookup "hpl + prompt lookup (--lookup 3)"
((HAVE_LOOKUP)) && report ll_gemma_plain "llama-bench tg$N Gemma 3 270M"
((HAVE_LOOKUP)) && report ll_gemma_lookup "llama-lookup (n-gram cache)"
exit 0
