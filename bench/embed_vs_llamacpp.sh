#!/usr/bin/env bash
# Embeddings/s of hpl embed vs llama.cpp's llama-embedding on the same bert GGUF, same threads,
# runs interleaved (hpl, llama, hpl, llama, ...) so load changes hit both alike.
#   bench/embed_vs_llamacpp.sh MODEL.gguf [THREADS] [REPS] [BATCHES...]
# Texts: BATCH texts of 64 tokens ([CLS] + 62 words + [SEP]) over a synthetic vocabulary whose
# words are w0 .. w29999 (bench/make_bert_base.py). Time counted: hpl --timings (embedding of
# the tokenized batch, model loaded) and, for llama-embedding, from its log's timestamps the
# start of its batch decode to its perf print (model loaded and warmed up; the span includes
# writing the vectors to /dev/null; all texts in one batch, -b/-ub 4096).
set -euo pipefail
MODEL=$1
THREADS=${2:-2}
REPS=${3:-3}
shift 3 || true
BATCHES=("${@:-1 8 32}")
[[ ${#BATCHES[@]} -eq 1 ]] && read -r -a BATCHES <<<"${BATCHES[0]}"
HPL=${HPL:-build/bin/hpl}
LLAMA=${LLAMA:-/work/llamacpp-build/bin/llama-embedding}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$TMP" "${BATCHES[@]}" <<'PY'
import random, sys
random.seed(1)
for n in sys.argv[2:]:
    with open(f"{sys.argv[1]}/texts{n}.txt", "w") as f:
        for _ in range(int(n)):
            f.write(" ".join(f"w{random.randrange(30000)}" for _ in range(62)) + "\n")
PY
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $THREADS; $(date -u +%FT%TZ)"
for n in "${BATCHES[@]}"; do
  for ((r = 0; r < REPS; r++)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    h=$("$HPL" embed -m "$MODEL" -f "$TMP/texts$n.txt" -t "$THREADS" --timings 2>&1 >/dev/null |
      sed -n 's/.* in \([0-9.]*\) ms.*/\1/p')
    # From its log timestamps (min.s.ms.us since start): the batch's decode starts .. perf printed.
    l=$("$LLAMA" -m "$MODEL" -f "$TMP/texts$n.txt" -t "$THREADS" -c 4096 -b 4096 -ub 4096 -lv 4 \
      --embd-output-format array 2>&1 >/dev/null |
      awk '/batch_decode:/ && !t0 {t0 = ts($1)} /llama_perf_context_print: *load time/ {t1 = ts($1)}
           function ts(s, a) {split(s, a, "."); return a[1] * 60 + a[2] + a[3] / 1e3 + a[4] / 1e6}  # m.s.ms.us
           END {printf "%.2f", (t1 - t0) * 1000}')
    echo "texts=$n rep=$r load=$load hpl_ms=$h llama_ms=$l"
  done
done
