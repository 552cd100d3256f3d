#!/usr/bin/env bash
# hpl vs llama.cpp (and ik_llama.cpp when given) on the same GGUF files, same threads, same
# machine, one run, interleaved: every ratio of issue 13's targets in one table.
#
#   bash bench/compare_llamacpp.sh [--prepare]
#
# 1. Models (built once, cached in $BUILD/bench-models/): a random-weight model of
#    TinyLlama-1.1B shape (hidden 2048, 22 layers, FFN 5632, 32 heads, 4 KV heads, vocab
#    32000) made with the project's own tools (bench/make_synthetic_hf.py -> hpl-convert
#    --outtype f16 -> hpl quantize), in Q4_K_M and in Q4_0 (both from the same f16), and
#    Gemma 3 270M Q4_K_M (scripts/default-model.sh).
# 2. llama.cpp's llama-bench: LLAMA_BENCH, else /work/llamacpp-build/bin/llama-bench, else
#    built once into $BUILD/llamacpp/ from the PyPI sdist of llama-cpp-python (which vendors
#    llama.cpp) with GGML_NATIVE=ON.
# 3. ROUNDS rounds; in each, for every model and thread count, each engine runs once
#    (`hpl bench` / `llama-bench` -p $PP -n $TG -r $REPS, each with its own warm-up), the
#    engine order reversed every other round (A, B, A, B ...). Prints one line per run, then
#    per model x threads x test the median (min-max) tok/s of each engine, the ratio of the
#    medians and the range of the per-round ratios, with the load average.
# --prepare stops after steps 1-2.
#
# Environment:
#   HPL_BUILD_DIR   default <repo>/build; needs bin/hpl
#   MODELS          "name=path ..." instead of the three models above
#   THREADS         thread counts (default "1 2")
#   PP, TG          prompt / generated tokens (512, 128); REPS per run (1); ROUNDS (3)
#   LLAMA_BENCH     llama.cpp's llama-bench; LLAMA_ARGS extra options for it
#   LLAMA_OMP_WAIT_POLICY (default passive): llama.cpp's OpenMP workers spin at barriers by
#                   default; on a shared, loaded machine a spinning worker holds a core another
#                   process wants and decode collapses (measured here at load ~5 on 2 cores:
#                   tg64 5.3 tok/s active vs 21.0 passive). hpl's pool spins 200 us then
#                   sleeps. "active" measures llama.cpp out of the box on an idle machine.
#   IK_LLAMA_BENCH  ik_llama.cpp's llama-bench: adds its columns; IK_ARGS its extra options
#                   (default "-rtr 1": its run-time repack into the interleaved _R4/_R8 types,
#                   the fast path its README recommends for CPU prefill)
#   BG_LOAD         N busy loops (at nice BG_NICE, default 0) running through every run: a
#                   measured round under an explicit background load (default 0)
#   RAW_DIR         keep every run's JSON and the results table there (default: a temp dir)
#   WARMUP          1 (default): each engine's own warm-up run before its timed one; 0 skips it
#                   (hpl and llama-bench --no-warmup; halves the time on a loaded machine)
# `bash bench/compare_llamacpp.sh --table RAW_DIR` prints the table of a (partial) earlier run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HPL_BUILD_DIR:-$REPO/build}"
HPL="$BUILD/bin/hpl"
THREADS="${THREADS:-1 2}"
PP="${PP:-512}"
TG="${TG:-128}"
REPS="${REPS:-1}"
ROUNDS="${ROUNDS:-3}"
BG_LOAD="${BG_LOAD:-0}"
BG_NICE="${BG_NICE:-0}"
IK_ARGS="${IK_ARGS:--rtr 1}"
WARMUP="${WARMUP:-1}"
PREPARE_ONLY=0
TABLE_ONLY=""
[[ "${1:-}" == "--prepare" ]] && PREPARE_ONLY=1
[[ "${1:-}" == "--table" ]] && TABLE_ONLY="${2:?--table needs the RAW_DIR of a run}"

log() { echo "compare_llamacpp: $*" >&2; }
die() { log "error: $*"; exit 1; }

NOWARM=()
[[ "$WARMUP" == 0 ]] && NOWARM=(--no-warmup)

# print_table RESULTS LOAD_BEFORE LOAD_AFTER BG_LOAD: the medians and ratios of a results file
print_table() {
  python3 - "$1" "$2" "$3" "$4" "$(nproc)" <<'EOF'
import collections, statistics, sys
path, load0, load1, bg, cores = sys.argv[1:6]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
ts = collections.defaultdict(list)  # (model, threads, engine, test) -> samples
per_round = collections.defaultdict(dict)  # (model, threads, test, engine) -> round -> median
loads = collections.defaultdict(list)
keys = []
for rnd, model, t, eng, test, v, load in rows:
    ts[(model, t, eng, test)].append(float(v))
    per_round[(model, t, test, eng)].setdefault(rnd, []).append(float(v))
    loads[(model, t)].append(float(load))
    if (model, t, test) not in keys:
        keys.append((model, t, test))
engines = [e for e in ("hpl", "llama.cpp", "ik_llama.cpp") if any(k[2] == e for k in ts)]
target = {"pp": 1.3, "tg": 1.1}

def cell(v):
    return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})" if v else "-"

def ratio(model, t, test, other):
    h, o = ts.get((model, t, "hpl", test)), ts.get((model, t, other, test))
    if not h or not o:
        return "-"
    pr = per_round[(model, t, test, "hpl")]
    po = per_round[(model, t, test, other)]
    rr = [statistics.median(pr[r]) / statistics.median(po[r]) for r in pr if r in po]
    s = f"{statistics.median(h) / statistics.median(o):.2f}x"
    return s + (f" ({min(rr):.2f}-{max(rr):.2f})" if len(rr) > 1 else "")

print(f"load average (1/5/15 min) before: {load0}, after: {load1}; cores: {cores}; "
      f"background busy loops: {bg}")
print("tok/s: median (min-max) over rounds; ratio: hpl median / other median (range of the "
      "per-round ratios)\n")
head = ["model", "threads", "test", "load1"] + engines
head += [f"hpl/{e}" for e in engines[1:]] + ["target (vs llama.cpp)"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for model, t, test in sorted(keys, key=lambda k: (k[0], int(k[1]), k[2][:2] != "pp")):
    line = [model, t, test, f"{statistics.median(loads[(model, t)]):.1f}"]
    line += [cell(ts.get((model, t, e, test), [])) for e in engines]
    line += [ratio(model, t, test, e) for e in engines[1:]]
    h, l = ts.get((model, t, "hpl", test)), ts.get((model, t, "llama.cpp", test))
    goal = target[test[:2]]
    met = h and l and statistics.median(h) / statistics.median(l) >= goal
    line.append(f">= {goal}x: {'met' if met else 'NOT met'}")
    print("| " + " | ".join(line) + " |")
EOF
}
if [[ -n "$TABLE_ONLY" ]]; then
  print_table "$TABLE_ONLY/results.tsv" "?" "$(cut -d' ' -f1-3 /proc/loadavg) (now)" "?"
  exit 0
fi

[[ -x "$HPL" ]] || die "$HPL not found: build hpl first (cmake --build $BUILD --target hpl)"

# --- 1. the models --------------------------------------------------------------------------
DIR="$BUILD/bench-models"
NAME=tinyllama-1.1b-shape-random
# tiny_model QUANT: the TinyLlama-shape model in QUANT (q4_k_m, q4_0), made once
tiny_model() {
  local out="$DIR/$NAME.$1.gguf" f16="$DIR/$NAME.f16.gguf"
  if [[ ! -f "$out" ]]; then
    mkdir -p "$DIR"
    if [[ ! -f "$f16" ]]; then
      local hf="$DIR/$NAME-hf"
      log "writing the random-weight HF folder $hf"
      python3 "$REPO/bench/make_synthetic_hf.py" "$hf"
      log "hpl-convert -> $f16"
      PYTHONPATH="$REPO/model${PYTHONPATH:+:$PYTHONPATH}" HPL_BUILD_DIR="$BUILD" \
        python3 -m hpl_convert "$hf" -o "$f16.part" --outtype f16 --quiet --no-validate
      mv "$f16.part" "$f16"
      rm -rf "$hf"
    fi
    log "hpl quantize $1 -> $out"
    "$HPL" quantize "$f16" "$out.part" "$1" -t 2 >&2
    mv "$out.part" "$out"
  fi
  echo "$out"
}
if [[ -z "${MODELS:-}" ]]; then
  MODELS="tinyllama-q4_k_m=$(tiny_model q4_k_m) tinyllama-q4_0=$(tiny_model q4_0)"
  MODELS+=" gemma3-270m-q4_k_m=$(bash "$REPO/scripts/default-model.sh")"
fi
for m in $MODELS; do
  [[ -f "${m#*=}" ]] || die "model ${m#*=} not found"
  log "model ${m%%=*}: ${m#*=} ($(du -h "${m#*=}" | cut -f1))"
done

# --- 2. llama-bench -------------------------------------------------------------------------
if [[ -z "${LLAMA_BENCH:-}" && -x /work/llamacpp-build/bin/llama-bench ]]; then
  LLAMA_BENCH=/work/llamacpp-build/bin/llama-bench
fi
if [[ -z "${LLAMA_BENCH:-}" ]]; then
  LCPP="$BUILD/llamacpp"
  LLAMA_BENCH="$LCPP/build/bin/llama-bench"
  if [[ ! -x "$LLAMA_BENCH" ]]; then
    mkdir -p "$LCPP"
    if ! ls "$LCPP"/llama_cpp_python-*/vendor/llama.cpp/CMakeLists.txt >/dev/null 2>&1; then
      log "downloading the llama-cpp-python sdist (vendors llama.cpp)"
      python3 -m pip download --no-deps --no-binary :all: llama-cpp-python -d "$LCPP" >&2
      tar -xzf "$(ls "$LCPP"/llama_cpp_python-*.tar.gz | head -1)" -C "$LCPP"
    fi
    SRC="$(ls -d "$LCPP"/llama_cpp_python-*/vendor/llama.cpp | head -1)"
    log "building llama-bench from $SRC"
    cmake -S "$SRC" -B "$LCPP/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
    cmake --build "$LCPP/build" --target llama-bench -j 2 >&2
  fi
fi
[[ -x "$LLAMA_BENCH" ]] || die "llama-bench not found at $LLAMA_BENCH"
log "llama-bench: $LLAMA_BENCH"
ENGINES=(hpl llama.cpp)
if [[ -n "${IK_LLAMA_BENCH:-}" ]]; then
  [[ -x "$IK_LLAMA_BENCH" ]] || die "IK_LLAMA_BENCH=$IK_LLAMA_BENCH is not executable"
  log "ik_llama.cpp llama-bench: $IK_LLAMA_BENCH $IK_ARGS"
  ENGINES+=(ik_llama.cpp)
fi
[[ $PREPARE_ONLY == 1 ]] && exit 0

# --- 3. run, interleaved --------------------------------------------------------------------
if [[ -n "${RAW_DIR:-}" ]]; then
  OUT="$RAW_DIR"
  mkdir -p "$OUT"
else
  OUT="$(mktemp -d)"
fi
LOAD_PIDS=()
cleanup() {
  for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n "${RAW_DIR:-}" ]] || rm -rf "$OUT"
}
trap cleanup EXIT
for _ in $(seq "$BG_LOAD"); do
  nice -n "$BG_NICE" bash -c 'while :; do :; done' &
  LOAD_PIDS+=($!)
done
RESULTS="$OUT/results.tsv"  # round model threads engine test tok/s load1
: >"$RESULTS"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "$(nproc) cores, pp$PP tg$TG, threads $THREADS, $ROUNDS rounds x $REPS reps, engines: ${ENGINES[*]}, background busy loops: $BG_LOAD (nice $BG_NICE), warm-up runs: $WARMUP"
log "load average at start: $LOAD_BEFORE"

# run_engine ENGINE ROUND NAME MODEL THREADS: one bench run; appends its samples to RESULTS.
run_engine() {
  local eng="$1" round="$2" name="$3" model="$4" t="$5" load
  local json="$OUT/r$round-$name-t$t-$eng.json"
  load="$(cut -d' ' -f1 /proc/loadavg)"
  case "$eng" in
    hpl)
      "$HPL" bench -m "$model" -p "$PP" -n "$TG" -t "$t" -r "$REPS" -o json --no-bandwidth \
        "${NOWARM[@]}" >"$json" 2>"$json.err" || { log "hpl bench failed: $(tail -1 "$json.err")"; return 0; }
      ;;
    llama.cpp)
      # shellcheck disable=SC2086  # LLAMA_ARGS is a list of options
      OMP_WAIT_POLICY="${LLAMA_OMP_WAIT_POLICY:-passive}" "$LLAMA_BENCH" -m "$model" -p "$PP" \
        -n "$TG" -t "$t" -r "$REPS" -o json "${NOWARM[@]}" ${LLAMA_ARGS:-} >"$json" 2>"$json.err" ||
        { log "llama-bench failed: $(tail -1 "$json.err")"; return 0; }
      ;;
    ik_llama.cpp)
      # shellcheck disable=SC2086  # IK_ARGS is a list of options
      OMP_WAIT_POLICY="${LLAMA_OMP_WAIT_POLICY:-passive}" "$IK_LLAMA_BENCH" -m "$model" -p "$PP" \
        -n "$TG" -t "$t" -r "$REPS" -o json "${NOWARM[@]}" $IK_ARGS >"$json" 2>"$json.err" ||
        { log "ik llama-bench failed: $(tail -1 "$json.err")"; return 0; }
      ;;
  esac
  python3 - "$json" "$round" "$name" "$t" "$eng" "$load" >>"$RESULTS" <<'EOF'
import json, sys
path, rnd, name, t, eng, load = sys.argv[1:7]
data = json.load(open(path))
recs = data if isinstance(data, list) else data.get("results", data.get("tests", [data]))
for r in recs:
    test = f"pp{r['n_prompt']}" if r.get("n_prompt") and not r.get("n_gen") else f"tg{r['n_gen']}"
    for ts in r.get("samples_ts") or [r["avg_ts"]]:
        print(f"{rnd}\t{name}\t{t}\t{eng}\t{test}\t{float(ts):.2f}\t{load}")
EOF
  grep -P "^$round\t$name\t$t\t$eng\t" "$RESULTS" | cut -f2- | tr '\t' ' ' | sed 's/^/  /' >&2
}

for r in $(seq "$ROUNDS"); do
  order=("${ENGINES[@]}")
  if ((r % 2 == 0)); then
    order=()
    for ((i = ${#ENGINES[@]} - 1; i >= 0; i--)); do order+=("${ENGINES[$i]}"); done
  fi
  log "round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg)), order: ${order[*]}"
  for m in $MODELS; do
    for t in $THREADS; do
      for e in "${order[@]}"; do run_engine "$e" "$r" "${m%%=*}" "${m#*=}" "$t"; done
    done
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

print_table "$RESULTS" "$LOAD_BEFORE" "$LOAD_AFTER" "$BG_LOAD" | tee "$OUT/table.md"
[[ -n "${RAW_DIR:-}" ]] && log "raw outputs in $RAW_DIR"
exit 0
