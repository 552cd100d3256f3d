#!/usr/bin/env bash
# Decode and prefill on a busy machine: hpl vs llama.cpp's llama-bench, same GGUF, same
# threads, interleaved (A, B, A, B ...) under each load, with the load average printed.
#
#   bash bench/loaded_decode.sh [SCENARIO...]
#
# Scenarios (default: all), C = cores this process may use:
#   idle        threads = C, nothing else started
#   over1       threads = C + 1 (oversubscribed)
#   over2       threads = 2C
#   rival       threads = C, one CPU-bound process (nice 0) competing for one core
#   niced       threads = C, a `nice -n 15` busy loop on every core (a phone's background work,
#               a niced compile)
#   niced1      threads = 1, the same niced load
#   default     no load; no -t (each engine's own default thread count)
#   tN          no load; threads = N (e.g. t1, t3)
# The load processes are started by this script and ended by their pid when a scenario ends.
#
# Environment: MODEL (default: scripts/default-model.sh, Gemma 3 270M Q4_K_M), HPL_BUILD_DIR
# (default <repo>/build; needs bin/hpl), LLAMA_BENCH (default /work/llamacpp-build/bin/
# llama-bench if present, else llama-bench on PATH; "none" = hpl only; build one with
# `bash bench/compare_llamacpp.sh --prepare`), HPL_BASELINE (another hpl binary to run in the
# same rounds, e.g. an older build: before/after), PP (128), TG (64), REPS (3), ROUNDS (2),
# LLAMA_ENV (extra environment for llama-bench, e.g. "OMP_WAIT_POLICY=passive"; default:
# none, llama.cpp out of the box), GROUP_NICE (default: unset): with the kernel's autogroup
# scheduling on (/proc/sys/kernel/sched_autogroup_enabled), nice levels only order processes
# of one session, and every session gets an equal share of the CPUs; GROUP_NICE=-20 runs this
# script in a session of its own with that autogroup nice, so other sessions' work (other
# users' builds on a shared machine) becomes low-priority background load, as a phone's
# background apps are to the foreground one. The engines run at nice 0 and the niced load at
# nice 15 inside it either way.
# Output: one line per run, then a table of medians (tok/s) and hpl / llama.cpp ratios.
set -euo pipefail

if [[ -n "${GROUP_NICE:-}" && -z "${_LOADED_DECODE_GROUP:-}" ]]; then
  export _LOADED_DECODE_GROUP=1
  exec setsid -w bash "${BASH_SOURCE[0]}" "$@"
fi
if [[ -n "${GROUP_NICE:-}" ]]; then
  echo "$GROUP_NICE" >"/proc/$$/autogroup" || echo "loaded_decode: cannot set the autogroup nice" >&2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HPL_BUILD_DIR:-$REPO/build}"
HPL="$BUILD/bin/hpl"
MODEL="${MODEL:-$(bash "$REPO/scripts/default-model.sh")}"
PP="${PP:-128}"
TG="${TG:-64}"
REPS="${REPS:-3}"
ROUNDS="${ROUNDS:-2}"
if [[ -z "${LLAMA_BENCH:-}" ]]; then
  if [[ -x /work/llamacpp-build/bin/llama-bench ]]; then
    LLAMA_BENCH=/work/llamacpp-build/bin/llama-bench
  else
    LLAMA_BENCH="$(command -v llama-bench || echo none)"
  fi
fi
CORES="$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')"
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=(idle over1 over2 rival niced niced1)

log() { echo "loaded_decode: $*" >&2; }
[[ -x "$HPL" ]] || { log "error: $HPL not found: build hpl first"; exit 1; }
[[ -f "$MODEL" ]] || { log "error: model $MODEL not found"; exit 1; }

LOAD_PIDS=()
stop_load() {
  for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  LOAD_PIDS=()
}
trap stop_load EXIT
busy() {  # busy NICE: one CPU-bound process at that nice level
  nice -n "$1" bash -c 'while :; do :; done' &
  LOAD_PIDS+=($!)
}

OUT="$(mktemp -d)"
trap 'stop_load; rm -rf "$OUT"' EXIT
RESULTS="$OUT/results.tsv"  # scenario threads engine test tok/s load1

# run_engine NAME SCENARIO THREADS: one bench run, appends its pp / tg means to RESULTS.
run_engine() {
  local name="$1" sc="$2" t="$3" json="$OUT/run.json" load targ=(-t "$3")
  [[ "$t" == default ]] && targ=()
  load="$(cut -d' ' -f1 /proc/loadavg)"
  case "$name" in
    hpl | baseline)
      local bin="$HPL"
      [[ "$name" == baseline ]] && bin="$HPL_BASELINE"
      "$bin" bench -m "$MODEL" -p "$PP" -n "$TG" "${targ[@]}" -r "$REPS" -o json --no-bandwidth \
        >"$json" 2>/dev/null || { log "$name failed"; return 0; }
      ;;
    llama.cpp)
      # shellcheck disable=SC2086  # LLAMA_ENV is a list of VAR=value
      env ${LLAMA_ENV:-} "$LLAMA_BENCH" -m "$MODEL" -p "$PP" -n "$TG" "${targ[@]}" -r "$REPS" -o json \
        >"$json" 2>"$OUT/llama.err" || { log "llama-bench failed: $(tail -1 "$OUT/llama.err")"; return 0; }
      ;;
  esac
  python3 - "$json" "$sc" "$t" "$name" "$load" >>"$RESULTS" <<'EOF'
import json, sys
path, sc, t, name, load = sys.argv[1:6]
data = json.load(open(path))
recs = data if isinstance(data, list) else data.get("results", data.get("tests", [data]))
for r in recs:
    test = f"pp{r['n_prompt']}" if r.get("n_prompt") and not r.get("n_gen") else f"tg{r['n_gen']}"
    print(f"{sc}\t{t}\t{name}\t{test}\t{float(r['avg_ts']):.2f}\t{load}")
EOF
  tail -n 2 "$RESULTS" | sed 's/^/  /' >&2
}

ENGINES=(hpl)
[[ -n "${HPL_BASELINE:-}" ]] && ENGINES+=(baseline)
[[ "$LLAMA_BENCH" != none ]] && ENGINES+=(llama.cpp)
log "model $MODEL, $CORES cores, pp$PP tg$TG, $REPS reps x $ROUNDS rounds, engines: ${ENGINES[*]}, $(cat /proc/$$/autogroup 2>/dev/null || echo "no autogroup")"
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

for sc in "${SCENARIOS[@]}"; do
  t="$CORES"
  case "$sc" in
    idle) ;;
    default) t=default ;;
    t[0-9]*) t="${sc#t}" ;;
    over1) t=$((CORES + 1)) ;;
    over2) t=$((2 * CORES)) ;;
    rival) busy 0 ;;
    niced) for _ in $(seq "$CORES"); do busy 15; done ;;
    niced1)
      t=1
      for _ in $(seq "$CORES"); do busy 15; done
      ;;
    *) log "unknown scenario $sc"; exit 2 ;;
  esac
  sleep 1
  log "scenario $sc: $t threads, load processes: ${#LOAD_PIDS[@]}"
  for r in $(seq "$ROUNDS"); do
    # Alternate which engine goes first, so neither always runs in the same phase.
    order=("${ENGINES[@]}")
    if (( r % 2 == 0 )); then
      order=()
      for ((i = ${#ENGINES[@]} - 1; i >= 0; i--)); do order+=("${ENGINES[$i]}"); done
    fi
    for e in "${order[@]}"; do run_engine "$e" "$sc" "$t"; done
  done
  stop_load
done

log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" <<'EOF'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(list)
loads = collections.defaultdict(list)
order = []
for sc, t, eng, test, ts, load in rows:
    key = (sc, t)
    if key not in order:
        order.append(key)
    by[(sc, t, eng, test)].append(float(ts))
    loads[key].append(float(load))
engines = sorted({r[2] for r in rows}, key=lambda e: ["hpl", "baseline", "llama.cpp"].index(e))
tests = sorted({r[3] for r in rows}, key=lambda s: (s[:2] != "tg", s))
def cell(v):
    if not v:
        return "-"
    m = statistics.median(v)
    return f"{m:.1f} ({min(v):.1f}-{max(v):.1f})" if len(v) > 1 else f"{m:.1f}"
head = ["scenario", "threads", "load1"]
for test in tests:
    head += [f"{e} {test}" for e in engines]
    if "llama.cpp" in engines:
        head.append(f"hpl/llama {test}")
    if "baseline" in engines:
        head.append(f"hpl/baseline {test}")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for sc, t in order:
    line = [sc, t, f"{statistics.median(loads[(sc, t)]):.1f}"]
    for test in tests:
        for e in engines:
            line.append(cell(by.get((sc, t, e, test), [])))
        h = by.get((sc, t, "hpl", test), [])
        for other, col in (("llama.cpp", "hpl/llama"), ("baseline", "hpl/baseline")):
            if other in engines:
                o = by.get((sc, t, other, test), [])
                line.append(f"{statistics.median(h) / statistics.median(o):.2f}x" if h and o else "-")
    print("| " + " | ".join(line) + " |")
EOF
