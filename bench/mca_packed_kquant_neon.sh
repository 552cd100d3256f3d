#!/usr/bin/env bash
# Static cost (llvm-mca-16) of the packed K-quant gemm / gemv block loops on ARM, hpl vs
# llama.cpp's repacked kernels, in cycles per 256 weights x 1 token (lower is better).
#
#   hpl sdot  : kernel/packed_kquant_neon.inc q4k_sdot_tile<false, 4> (Q4_K), q6k_sdot_tile<4>,
#               q4k_sdot_tile<true, 4> (Q5_K): 4 rows x 4 tokens per super-block (the dotprod
#               body's gemm); <.., 1>: 4 rows x 1 token, the gemv of both bodies
#   hpl smmla : q4k_mmla_tile<.., 3>, q6k_mmla_tile<3>: 4 rows x 3 token pairs (i8mm gemm)
#   llama.cpp : ggml_gemm_<t>_8x4_q8_K (sdot, 8 columns x 4 tokens), ggml_gemm_<t>_8x8_q8_K
#               (smmla, its NEON path), ggml_gemv_<t>_8x4 / 8x8 (8 columns x 1 token), from
#               ggml-cpu/arch/arm/repack.cpp (C++ intrinsics, no asm).
# Both are GCC -O3 -mcpu=<cpu> output of the real sources, the region being one iteration of the
# super-block loop. hpl marks it in its source (HPL_MCA_MARKERS). For llama.cpp a copy of
# repack.cpp gets the same markers around the body of the function's (NEON) `for b` loop and
# `#pragma GCC unroll 16` before each loop inside it, since GCC leaves its 4-step sub-block loop
# rolled and llvm-mca would count one step of four. hpl's tiles are compiled without GCC's
# pre-RA scheduler (HPL_KTILE); llama.cpp is measured both with and without it
# (-fno-schedule-insns) and the lower count is shown. A region with a branch left in it is an
# error (its cycles would be wrong).
#
# Usage: bench/mca_packed_kquant_neon.sh [LLAMA_REPACK_CPP]
#   default: the llama.cpp vendored in /work/llamacpp-src (llama-cpp-python sdist)
# CPUs: sdot on cortex-a76, cortex-a55 and neoverse-n2; smmla on neoverse-n2 (neither A76 nor
# A55 has i8mm). (llvm-mca-16 models cortex-a76 with the Cortex-A57 scheduling model.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
llama="${1:-$(ls -d /work/llamacpp-src/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | tail -1)/ggml/src/ggml-cpu/arch/arm/repack.cpp}"
[ -f "$llama" ] || { echo "llama.cpp repack.cpp not found: $llama" >&2; exit 1; }
ggml="$(cd "$(dirname "$llama")/../../../.." && pwd)"  # ggml/
tmp="$(mktemp -d)"
if [ -n "${KEEP:-}" ]; then echo "kept: $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi

# cycles per iteration of the loop body in file $1 on cpu $2
mca_cycles() {
  llvm-mca-16 -mtriple=aarch64-linux-gnu -mcpu="$2" -iterations=200 "$1" 2>/dev/null |
    awk '/^Total Cycles:/ {c = $3} /^Iterations:/ {i = $2} END {printf "%.1f", c / i}'
}

# the marked region of the function whose label matches $2 in assembly $1 -> $3
region() {
  awk -v f="$2" '$0 ~ f {on = 1} on {print} on && /^\t\.size/ {exit}' "$1" |
    awk '/LLVM-MCA-BEGIN/ {on = 1; next} /LLVM-MCA-END/ {on = 0} on' > "$3"
  [ -s "$3" ] || { echo "no LLVM-MCA region in $2" >&2; exit 1; }
  if grep -qE '^\s+(b|b\.?(eq|ne|gt|ge|lt|le|hi|ls|hs|lo|mi|pl)|cbnz|cbz|tbz|tbnz)\s' "$3"; then
    echo "a loop is left in the region of $2: llvm-mca would miscount it" >&2
    exit 1
  fi
}

# hpl: tile call $3 (instantiated through a wrapper), mangled name fragment $4, body level $1
# (1 dotprod, 2 i8mm), cpu $2 -> $5
hpl_body() {
  cat > "$tmp/w.cc" <<CC
#include "kernel/matmul_neon.cc"
namespace hpl::kernel::HPL_NEON_BODY {
__attribute__((used)) void mca_wrapper(const uint8_t* g, const KSdotAct* const* xa,
    const KMmlaAct* const* xp, int64_t nb, float32x4_t* o, float32x4_t (*o2)[2]) {
  (void)xa; (void)xp; (void)o; (void)o2;
  $3;
}
}
CC
  aarch64-linux-gnu-g++ -std=c++20 -O3 -mcpu="$2" -DHPL_NEON_LEVEL="$1" -DHPL_MCA_MARKERS \
    -I"$root" -S -fno-asynchronous-unwind-tables -w -o "$tmp/all.s" "$tmp/w.cc"
  region "$tmp/all.s" "^_Z.*$4.*:\$" "$5"
}

# llama.cpp: function $1 on cpu $2, extra flags $3 -> $4
llama_body() {
  awk -v fn="$1" '
    { line[NR] = $0 }
    $0 ~ "^void " fn "\\(" { start = NR }
    start && !stop && NR > start && /^}/ { stop = NR }
    END {
      for (i = start; i <= stop; i++) if (line[i] ~ /for \(int b = 0; b < nb; b\+\+\) \{/) b = i
      for (i = b; i <= stop; i++) if (line[i] ~ /\}  \/\/ for b/) { e = i; break }
      if (!b || !e) exit 1
      for (i = 1; i <= NR; i++) {
        if (i == e) print "__asm__ volatile(\"// LLVM-MCA-END\");"
        if (i > b && i < e && line[i] ~ /^[ \t]*for \(/) print "#pragma GCC unroll 16"
        print line[i]
        if (i == b) print "__asm__ volatile(\"// LLVM-MCA-BEGIN block\");"
      }
    }' "$llama" > "$tmp/repack.cpp" || { echo "no super-block loop in $1" >&2; exit 1; }
  # shellcheck disable=SC2086
  aarch64-linux-gnu-g++ -std=c++17 -O3 -mcpu="$2" $3 -I"$ggml/include" -I"$ggml/src" \
    -I"$ggml/src/ggml-cpu" -I"$(dirname "$llama")" -S -fno-asynchronous-unwind-tables -w \
    -o "$tmp/rp.s" "$tmp/repack.cpp"
  region "$tmp/rp.s" "^$1:" "$4"
}

printf '%-5s %-5s %-12s %-44s %9s %14s\n' type op cpu kernel "cyc/iter" "cyc/256w/tok"
row() {  # type op cpu name cycles weights-x-tokens-per-iteration
  printf '%-5s %-5s %-12s %-44s %9s %14.1f\n' "$1" "$2" "$3" "$4" "$5" \
    "$(echo "$5 * 256 / $6" | bc -l)"
}
hpl_row() {  # type op level cpu call mangled-fragment name weights-x-tokens
  hpl_body "$3" "$4" "$5" "$6" "$tmp/h.s"
  row "$1" "$2" "$4" "$7" "$(mca_cycles "$tmp/h.s" "$4")" "$8"
}
llama_row() {  # type op cpu function weights-x-tokens
  local best="" c
  for extra in "" "-fno-schedule-insns"; do
    llama_body "$4" "$3" "$extra" "$tmp/l.s"
    c=$(mca_cycles "$tmp/l.s" "$3")
    if [ -z "$best" ] || [ "$(echo "$c < $best" | bc)" = 1 ]; then best=$c; fi
  done
  row "$1" "$2" "$3" "llama.cpp ${4#ggml_}" "$best" "$5"
}

declare -A hpl_t=([q4_K]="false, " [q5_K]="true, " [q6_K]="")
declare -A frag=([q4_K]="q4k_%s_tileILb0ELi%dE" [q5_K]="q4k_%s_tileILb1ELi%dE"
  [q6_K]="q6k_%s_tileILi%dE")
tiles() { [ "$1" = q6_K ] && echo q6k || echo q4k; }
for t in ${TYPES:-q4_K q6_K q5_K}; do
  k=$(tiles "$t")
  for cpu in cortex-a76 cortex-a55 neoverse-n2; do
    # shellcheck disable=SC2059
    hpl_row "$t" gemm 1 "$cpu" "${k}_sdot_tile<${hpl_t[$t]}4>(g, 1, xa, nb, o)" \
      "$(printf "${frag[$t]}" sdot 4)" "hpl ${k}_sdot_tile 4 rows x 4 tok" $((4 * 256 * 4))
    llama_row "$t" gemm "$cpu" "ggml_gemm_${t}_8x4_q8_K" $((8 * 256 * 4))
  done
  # shellcheck disable=SC2059
  hpl_row "$t" gemm 2 neoverse-n2 "${k}_mmla_tile<${hpl_t[$t]}3>(g, 1, xp, nb, o2)" \
    "$(printf "${frag[$t]}" mmla 3)" "hpl ${k}_mmla_tile 4 rows x 6 tok (smmla)" $((4 * 256 * 6))
  llama_row "$t" gemm neoverse-n2 "ggml_gemm_${t}_8x8_q8_K" $((8 * 256 * 4))
  for cpu in cortex-a76 cortex-a55 neoverse-n2; do
    # shellcheck disable=SC2059
    hpl_row "$t" gemv 1 "$cpu" "${k}_sdot_tile<${hpl_t[$t]}1>(g, 1, xa, nb, o)" \
      "$(printf "${frag[$t]}" sdot 1)" "hpl ${k}_sdot_tile 4 rows x 1 tok" $((4 * 256))
    llama_row "$t" gemv "$cpu" "ggml_gemv_${t}_8x4_q8_K" $((8 * 256))
    llama_row "$t" gemv "$cpu" "ggml_gemv_${t}_8x8_q8_K" $((8 * 256))
  done
done
