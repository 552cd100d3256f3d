#!/usr/bin/env bash
# Static cost (llvm-mca-16) of the packed 32-element gemm block loops on ARM, hpl vs llama.cpp's
# repacked kernels, in cycles per 256 weights x 1 token (lower is better).
#
#   hpl  sdot  : kernel/matmul_neon.cc packed_sdot_tile<PackQ4_0 | PackQ8_0, 4>, 8 rows x 4
#                tokens per 32-element block (dotprod body, -DHPL_NEON_LEVEL=1)
#   hpl  smmla : packed_mmla_tile<.., 2>, 8 rows x 2 token pairs (i8mm body, level 2)
#   llama.cpp  : ggml_gemm_q4_0_4x4_q8_0 (sdot) / ggml_gemm_q4_0_4x8_q8_0 (smmla), from
#                ggml-cpu/arch/arm/repack.cpp (their q8_0 gemm is intrinsics: hpl only): their 16-token x 4-column
#                block loop ("3:" .. "bgt 3b"), taken from the inline asm text (.inst lines
#                replaced by the instruction in their comment, operands %x[..] by x0).
# hpl's loop is GCC 12 -O3 output of the real source (LLVM-MCA-BEGIN/END markers around the
# block body, HPL_MCA_MARKERS), compiled for the same -mcpu as llvm-mca models.
#
# Usage: bench/mca_packed_neon.sh [LLAMA_REPACK_CPP]
#   default: the llama.cpp vendored in /work/llamacpp-src (llama-cpp-python sdist)
# CPUs: dotprod kernels on cortex-a76 and cortex-a55; smmla kernels on neoverse-n2 (neither
# A76 nor A55 has i8mm).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
llama="${1:-$(ls -d /work/llamacpp-src/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | tail -1)/ggml/src/ggml-cpu/arch/arm/repack.cpp}"
[ -f "$llama" ] || { echo "llama.cpp repack.cpp not found: $llama" >&2; exit 1; }
tmp="$(mktemp -d)"
if [ -n "${KEEP:-}" ]; then echo "kept: $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi

# cycles per iteration of the loop body in file $1 on cpu $2
mca_cycles() {
  llvm-mca-16 -mtriple=aarch64-linux-gnu -mcpu="$2" -iterations=200 "$1" 2>/dev/null |
    awk '/^Total Cycles:/ {c = $3} /^Iterations:/ {i = $2} END {printf "%.1f", c / i}'
}

# hpl: the body of one block-loop iteration of a packed tile, compiled for cpu $3.
# $1 level (1 dotprod, 2 i8mm), $2 the call inside the wrapper
hpl_body() {
  local level="$1" call="$2" cpu="$3" out="$4"
  cat > "$tmp/w.cc" <<CC
#include "kernel/matmul_neon.cc"
namespace hpl::kernel::HPL_NEON_BODY {
__attribute__((flatten)) void mca_wrapper(const uint8_t* g, const BlockQ8_0* const* x,
    const int8_t* const* xp, const float* const* xd, const int32_t* const* xo, int64_t nb,
    float (*out)[kPackRows]) {
  (void)x; (void)xp;
  $call;
}
}
CC
  aarch64-linux-gnu-g++ -std=c++20 -O3 -mcpu="$cpu" -DHPL_NEON_LEVEL="$level" -DHPL_MCA_MARKERS \
    -I"$root" -S -fno-asynchronous-unwind-tables -w -o "$tmp/all.s" "$tmp/w.cc"
  awk '/^_Z.*mca_wrapper.*:$/ {on = 1} on {print} on && /^\t\.size/ {exit}' "$tmp/all.s" |
    awk '/LLVM-MCA-BEGIN/ {on = 1; next} /LLVM-MCA-END/ {on = 0} on' > "$out"
  [ -s "$out" ] || { echo "no LLVM-MCA region in $call" >&2; exit 1; }
}

# llama.cpp: the first block loop of function $1, as plain assembly
llama_body() {
  awk -v fn="$1" '$0 ~ "^void " fn "\\(" {f = 1} f && /"3:"/ {on = 1; next}
       on && /bgt 3b/ {exit} on {print}' "$llama" |
    sed -E 's/^\s*"//; s/\\n"\s*$//; s/^\.inst 0x[0-9a-f]+ +\/\/ //; s/%x\[[a-z_]+\]/x0/g' > "$2"
  [ -s "$2" ] || { echo "no block loop in $1" >&2; exit 1; }
}

printf '%-8s %-12s %-40s %9s %14s\n' type cpu kernel "cyc/iter" "cyc/256w/tok"
row() {  # type cpu name file weights-x-tokens-per-iteration
  local c
  c=$(mca_cycles "$5" "$2")
  printf '%-8s %-12s %-40s %9s %14.1f\n' "$1" "$2" "$3" "$c" "$(echo "$c * 256 / $4" | bc -l)"
}

for cpu in cortex-a76 cortex-a55; do
  for t in q4_0 q8_0; do
    P=$([ $t = q4_0 ] && echo PackQ4_0 || echo PackQ8_0)
    hpl_body 1 "packed_sdot_tile<$P, 4>(g, xp, xd, nb, out)" "$cpu" "$tmp/h.s"
    row $t $cpu "hpl packed_sdot_tile<$P,4> 8x4" $((8 * 4 * 32)) "$tmp/h.s"
    [ $t = q4_0 ] || continue  # llama.cpp's q8_0 gemm is intrinsics, not extractable asm
    llama_body "ggml_gemm_${t}_4x4_q8_0" "$tmp/l.s"
    row $t $cpu "llama.cpp gemm_${t}_4x4 (16 tok x 4 col)" $((16 * 4 * 32)) "$tmp/l.s"
  done
done
for cpu in neoverse-n2; do
  for t in q4_0 q8_0; do
    P=$([ $t = q4_0 ] && echo PackQ4_0 || echo PackQ8_0)
    hpl_body 2 "packed_mmla_tile<$P, 2>(g, xp, xd, xo, nb, out)" "$cpu" "$tmp/h.s"
    row $t $cpu "hpl packed_mmla_tile<$P,2> 8x4" $((8 * 4 * 32)) "$tmp/h.s"
    [ $t = q4_0 ] || continue
    llama_body "ggml_gemm_${t}_4x8_q8_0" "$tmp/l.s"
    row $t $cpu "llama.cpp gemm_${t}_4x8 (16 tok x 4 col)" $((16 * 4 * 32)) "$tmp/l.s"
  done
done
