#!/usr/bin/env bash
# Static cost (llvm-mca-16) of the packed 32-element (Q4_0_X8, Q5_0_X8, Q8_0_X8) block loops on
# ARM, hpl vs llama.cpp's repacked kernels, in cycles per 256 weights x 1 token (lower is
# better).
#
#   hpl  gemm sdot : kernel/matmul_neon.cc lane_sdot_tile<8>, 4 rows x 8 tokens per 32-element
#                    block (dotprod body, -DHPL_NEON_LEVEL=1), over the group's unpacked scratch
#   hpl  gemm smmla: mmla_tile<4>, 4 rows x 4 token pairs (i8mm body, level 2)
#   hpl  unpack    : unpack_lane<P> / unpack_mmla<P>, one packed block (8 rows x 32) into that
#                    scratch, done once per 8-row group and call: its cycles per 256 weights
#                    are paid once for all the call's tokens (/ ntok per token)
#   hpl  gemv      : packed_sdot_tile<P, 1>, 8 rows x 1 token, unpacking in the loop (decode)
#   llama.cpp      : ggml_gemm_q4_0_4x4_q8_0 (sdot) / ggml_gemm_q4_0_4x8_q8_0 (smmla), from
#                    ggml-cpu/arch/arm/repack.cpp: their 16-token x 4-column block loop ("3:" ..
#                    "bgt 3b"), which unpacks in the loop, taken from the inline asm text (.inst
#                    lines replaced by the instruction in their comment, operands %x[..] by x0).
#                    Their q8_0 gemm and their gemvs are intrinsics: not extracted.
# hpl's loops are GCC 12 -O3 output of the real source (LLVM-MCA-BEGIN/END markers around the
# block body, HPL_MCA_MARKERS), compiled for the same -mcpu as llvm-mca models. The hpl gemm
# tile is the same loop for the three types (the unpack makes them all signed int8).
#
# Usage: bench/mca_packed_neon.sh [LLAMA_REPACK_CPP]
#   default: the llama.cpp vendored in /work/llamacpp-src (llama-cpp-python sdist)
# CPUs: dotprod kernels on cortex-a76 and cortex-a55; smmla kernels on neoverse-n2 (neither
# A76 nor A55 has i8mm). (LLVM 16 models cortex-a76 with its Cortex-A57 model.)
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

# hpl: the body of one block-loop iteration of a packed kernel, compiled for cpu $3.
# $1 level (1 dotprod, 2 i8mm), $2 the code inside the wrapper (its arguments: g a packed
# group, ws a scratch, xa token activations, xp their pointers, xd scales, nb blocks, out / acc
# outputs)
# $5: the function holding the loop (default the wrapper, into which it is inlined)
hpl_body() {
  local level="$1" call="$2" cpu="$3" out="$4" fn="${5:-mca_wrapper}"
  cat > "$tmp/w.cc" <<CC
#include "kernel/matmul_neon.cc"
namespace hpl::kernel::HPL_NEON_BODY {
__attribute__((flatten)) void mca_wrapper(const uint8_t* g, int8_t* ws, const int8_t* xa,
    const int8_t* const* xp, const float* const* xd, int64_t nb, float (*out)[kPackRows]) {
  (void)g; (void)ws; (void)xa; (void)xp; (void)xd;
  $call;
}
}
CC
  aarch64-linux-gnu-g++ -std=c++20 -O3 -mcpu="$cpu" -DHPL_NEON_LEVEL="$level" -DHPL_MCA_MARKERS \
    -I"$root" -S -fno-asynchronous-unwind-tables -w -o "$tmp/all.s" "$tmp/w.cc"
  awk -v fn="$fn" '$0 ~ "^_Z.*" fn ".*:$" {on = 1} on {print} on && /^\t\.size/ {exit}' "$tmp/all.s" |
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

printf '%-8s %-12s %-44s %9s %14s\n' type cpu kernel "cyc/iter" "cyc/256w/tok"
row() {  # type cpu name file weights-x-tokens-per-iteration
  local c
  c=$(mca_cycles "$5" "$2")
  printf '%-8s %-12s %-44s %9s %14.1f\n' "$1" "$2" "$3" "$c" "$(echo "$c * 256 / $4" | bc -l)"
}
pack_of() { case $1 in q4_0) echo PackQ4_0 ;; q5_0) echo PackQ5_0 ;; *) echo PackQ8_0 ;; esac; }
unpack_loop() {  # the unpack of nb blocks of group g, the region around one block
  echo "for (int64_t b = 0; b < nb; ++b) { HPL_MCA_BEGIN(); $1<$2>(g + b * $2::kBlockBytes, ws + b * $3); HPL_MCA_END(); }"
}

for cpu in cortex-a76 cortex-a55; do
  # (lane_sdot_tile has its own schedule attributes, so it stays a function of its own)
  hpl_body 1 "lane_sdot_tile<8>(ws, xa, nb, out)" "$cpu" "$tmp/h.s" lane_sdot_tile
  row q*_0 $cpu "hpl gemm lane_sdot_tile<8> 4x8" $((4 * 8 * 32)) "$tmp/h.s"
  llama_body "ggml_gemm_q4_0_4x4_q8_0" "$tmp/l.s"
  row q4_0 $cpu "llama.cpp gemm_q4_0_4x4 (16 tok x 4 col)" $((16 * 4 * 32)) "$tmp/l.s"
  for t in q4_0 q5_0 q8_0; do
    P=$(pack_of $t)
    hpl_body 1 "$(unpack_loop unpack_lane $P LaneSdotTile::kScratch)" "$cpu" "$tmp/h.s"
    row $t $cpu "hpl unpack_lane<$P> (once per call; / ntok)" 256 "$tmp/h.s"
    hpl_body 1 "packed_sdot_tile<$P, 1>(g, xp, xd, nb, out)" "$cpu" "$tmp/h.s"
    row $t $cpu "hpl gemv packed_sdot_tile<$P,1> 8x1" $((8 * 32)) "$tmp/h.s"
  done
done
for cpu in neoverse-n2; do
  hpl_body 2 "mmla_tile<4>(ws, xp, nb, out, 8)" "$cpu" "$tmp/h.s"
  row q*_0 $cpu "hpl gemm mmla_tile<4> 4x8" $((4 * 8 * 32)) "$tmp/h.s"
  llama_body "ggml_gemm_q4_0_4x8_q8_0" "$tmp/l.s"
  row q4_0 $cpu "llama.cpp gemm_q4_0_4x8 (16 tok x 4 col)" $((16 * 4 * 32)) "$tmp/l.s"
  for t in q4_0 q5_0 q8_0; do
    P=$(pack_of $t)
    hpl_body 2 "$(unpack_loop unpack_mmla $P MmlaTile::kScratch)" "$cpu" "$tmp/h.s"
    row $t $cpu "hpl unpack_mmla<$P> (once per call; / ntok)" 256 "$tmp/h.s"
    hpl_body 2 "packed_sdot_tile<$P, 1>(g, xp, xd, nb, out)" "$cpu" "$tmp/h.s"
    row $t $cpu "hpl gemv packed_sdot_tile<$P,1> 8x1" $((8 * 32)) "$tmp/h.s"
  done
done
