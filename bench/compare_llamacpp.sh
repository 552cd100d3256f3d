#!/usr/bin/env bash
# hpl vs llama.cpp on the same GGUF file, same threads, same machine, one run.
#
#   bash bench/compare_llamacpp.sh [--prepare]
#
# 1. Builds (once, cached in $BUILD/bench-models/) a random-weight model of TinyLlama-1.1B
#    shape (hidden 2048, 22 layers, FFN 5632, 32 heads, 4 KV heads, vocab 32000) with the
#    project's own tools: bench/make_synthetic_hf.py -> hpl-convert --outtype f16 ->
#    hpl quantize q4_k_m.
# 2. Builds llama.cpp's llama-bench (once, cached in $BUILD/llamacpp/) from the PyPI sdist of
#    llama-cpp-python, which vendors llama.cpp; or uses LLAMA_BENCH=/path/to/llama-bench.
# 3. Runs `hpl bench` and `llama-bench` with -p $PP -n $TG -t $THREADS -r $REPS -o json and
#    prints both, the ratios hpl / llama.cpp for pp and tg, and the load average.
# --prepare stops after steps 1-2.
#
# Environment: HPL_BUILD_DIR (default <repo>/build; needs bin/hpl), THREADS (2), PP (512),
# TG (128), REPS (3), LLAMA_BENCH, MODEL (use this GGUF instead of building one),
# LLAMA_ARGS (extra llama-bench options, e.g. "--poll 0": its threads then sleep instead of
# spinning at barriers, which matters when other processes share the cores),
# LLAMA_OMP_WAIT_POLICY (default passive): this llama.cpp build runs its threads with OpenMP,
# whose idle workers spin by default; on a shared, loaded machine a spinning worker holds a
# core another process wants and decode collapses (measured here at load ~5 on 2 cores:
# tg64 5.3 tok/s active vs 21.0 passive). hpl's pool spins 200 us (no yields) then sleeps. Set it to
# "active" to measure llama.cpp's out-of-the-box behaviour on an idle machine.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HPL_BUILD_DIR:-$REPO/build}"
HPL="$BUILD/bin/hpl"
THREADS="${THREADS:-2}"
PP="${PP:-512}"
TG="${TG:-128}"
REPS="${REPS:-3}"
PREPARE_ONLY=0
[[ "${1:-}" == "--prepare" ]] && PREPARE_ONLY=1

log() { echo "compare_llamacpp: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x "$HPL" ]] || die "$HPL not found: build hpl first (cmake --build $BUILD --target hpl)"

# --- 1. the model ---------------------------------------------------------------------------
MODELS="$BUILD/bench-models"
NAME=tinyllama-1.1b-shape-random
if [[ -z "${MODEL:-}" ]]; then
  MODEL="$MODELS/$NAME.q4_k_m.gguf"
  if [[ ! -f "$MODEL" ]]; then
    mkdir -p "$MODELS"
    HF="$MODELS/$NAME-hf"
    F16="$MODELS/$NAME.f16.gguf"
    if [[ ! -f "$F16" ]]; then
      log "writing the random-weight HF folder $HF"
      python3 "$REPO/bench/make_synthetic_hf.py" "$HF"
      log "hpl-convert -> $F16"
      PYTHONPATH="$REPO/model${PYTHONPATH:+:$PYTHONPATH}" HPL_BUILD_DIR="$BUILD" \
        python3 -m hpl_convert "$HF" -o "$F16.part" --outtype f16 --quiet --no-validate
      mv "$F16.part" "$F16"
      rm -rf "$HF"
    fi
    log "hpl quantize -> $MODEL"
    "$HPL" quantize "$F16" "$MODEL.part" q4_k_m -t "$THREADS"
    mv "$MODEL.part" "$MODEL"
  fi
fi
log "model: $MODEL ($(du -h "$MODEL" | cut -f1))"

# --- 2. llama-bench -------------------------------------------------------------------------
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
    cmake --build "$LCPP/build" --target llama-bench -j "$THREADS" >&2
  fi
fi
[[ -x "$LLAMA_BENCH" ]] || die "llama-bench not found at $LLAMA_BENCH"
log "llama-bench: $LLAMA_BENCH"
[[ $PREPARE_ONLY == 1 ]] && exit 0

# --- 3. run both ----------------------------------------------------------------------------
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
if "$HPL" bench --help >/dev/null 2>&1; then
  log "hpl bench -m $MODEL -p $PP -n $TG -t $THREADS -r $REPS -o json"
  "$HPL" bench -m "$MODEL" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json >"$OUT/hpl.json"
else
  # No `hpl bench` in this build: time prefill and decode with `hpl run --verbose`
  # (a PP-token prompt of ids, then TG sampled tokens), REPS times.
  log "no 'hpl bench' in $HPL: using 'hpl run --verbose' timings"
  IDS="$(python3 -c "import random; r=random.Random(0); print(' '.join(str(r.randrange(300, 32000)) for _ in range($PP)))")"
  for i in $(seq "$REPS"); do
    "$HPL" run -m "$MODEL" --ids "$IDS" -n "$TG" -t "$THREADS" --temp 1 --seed "$i" --verbose \
      >/dev/null 2>>"$OUT/hpl-run.log"
  done
  python3 - "$OUT/hpl-run.log" "$PP" "$TG" "$THREADS" >"$OUT/hpl.json" <<'EOF'
import json, re, statistics, sys
text = open(sys.argv[1]).read()
pp, tg, th = (int(a) for a in sys.argv[2:5])
rows = []
for kind, n_p, n_g in (("prompt", pp, 0), ("decode", 0, tg)):
    ts = [float(m) for m in re.findall(kind + r": \d+ tokens in [\d.]+ ms \(([\d.]+) tok/s\)", text)]
    rows.append({"n_prompt": n_p, "n_gen": n_g, "n_threads": th, "avg_ts": statistics.mean(ts),
                 "stddev_ts": statistics.stdev(ts) if len(ts) > 1 else 0.0, "source": "hpl run --verbose"})
print(json.dumps(rows))
EOF
fi
log "OMP_WAIT_POLICY=${LLAMA_OMP_WAIT_POLICY:-passive} $LLAMA_BENCH -m $MODEL -p $PP -n $TG -t $THREADS -r $REPS -o json ${LLAMA_ARGS:-}"
# shellcheck disable=SC2086  # LLAMA_ARGS is a list of options
OMP_WAIT_POLICY="${LLAMA_OMP_WAIT_POLICY:-passive}" \
  "$LLAMA_BENCH" -m "$MODEL" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json ${LLAMA_ARGS:-} >"$OUT/llama.json" \
  2>"$OUT/llama.err" || { cat "$OUT/llama.err" >&2; die "llama-bench failed"; }
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT/hpl.json" "$OUT/llama.json" "$MODEL" "$THREADS" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import json, os, sys
hpl_path, llama_path, model, threads, load0, load1 = sys.argv[1:7]

def load(path):
    data = json.load(open(path))
    recs = data if isinstance(data, list) else data.get("results", data.get("tests", [data]))
    out = {}
    for r in recs:
        kind = f"pp{r['n_prompt']}" if r.get("n_prompt") and not r.get("n_gen") else f"tg{r['n_gen']}"
        out[kind] = (float(r["avg_ts"]), float(r.get("stddev_ts", 0.0)),
                     [round(float(x), 2) for x in r.get("samples_ts", [])])
    return out

hpl, lcpp = load(hpl_path), load(llama_path)
print(f"model: {model} ({os.path.getsize(model) / 2**20:.0f} MiB), threads: {threads}")
print(f"load average (1/5/15 min) before: {load0}, after: {load1}; cores: {os.cpu_count()}")
print(f"{'test':<8} {'hpl tok/s':>16} {'llama.cpp tok/s':>18} {'hpl/llama.cpp':>14}")
for k in sorted(set(hpl) | set(lcpp), key=lambda s: (s[:2] != "pp", s)):
    h, l = hpl.get(k), lcpp.get(k)
    hs = f"{h[0]:8.2f} ± {h[1]:5.2f}" if h else "-"
    ls = f"{l[0]:8.2f} ± {l[1]:5.2f}" if l else "-"
    ratio = f"{h[0] / l[0]:.2f}x" if h and l and l[0] > 0 else "-"
    print(f"{k:<8} {hs:>16} {ls:>18} {ratio:>14}")
for name, res in (("hpl", hpl), ("llama.cpp", lcpp)):
    for k, v in sorted(res.items()):
        print(f"{name} {k} samples tok/s: {v[2]}")
print("\nhpl json:", json.dumps(json.load(open(hpl_path))))
EOF
