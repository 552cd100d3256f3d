#!/usr/bin/env bash
# Static cost of the NEON Q4_K x Q8_K gemv inner loop (one 256-weight super-block) on a
# Cortex-A76, by llvm-mca. Compiles kernel/matmul_neon.cc's Q4_K tile for 1 token with
# aarch64-linux-gnu-g++ -O3 -mcpu=cortex-a76, keeps the loop body between the
# LLVM-MCA-BEGIN/END markers (HPL_MCA_MARKERS) and prints llvm-mca's summary.
# Usage: bench/mca_q4k_neon.sh [mcpu]   (default cortex-a76)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mcpu="${1:-cortex-a76}"
tmp="$(mktemp -d)"
if [ -n "${KEEP:-}" ]; then echo "kept: $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi  # KEEP=1 keeps files

# A wrapper translation unit: the 1-token Q4_K tile as an extern function, so the region we
# measure is exactly the gemv inner loop.
cat > "$tmp/mca_q4k.cc" <<'CC'
#include "kernel/matmul_neon.cc"
namespace hpl::kernel::neon {
void mca_q4k_gemv(const uint8_t* w, const uint8_t* const* x, int64_t nb, float* out) {
  TileK4<false>::run<1>(w, x, nullptr, nb, 0, out);
}
}  // namespace hpl::kernel::neon
CC
aarch64-linux-gnu-g++ -std=c++20 -O3 -mcpu="$mcpu" -DHPL_MCA_MARKERS -I"$root" -S \
  -fno-asynchronous-unwind-tables -o "$tmp/all.s" "$tmp/mca_q4k.cc"

# Only the wrapper function (its mangled name contains mca_q4k_gemv).
awk '/^_Z.*mca_q4k_gemv.*:$/ {on = 1} on {print} on && /^\t\.size/ {exit}' "$tmp/all.s" > "$tmp/fn.s"
if ! grep -q "LLVM-MCA-BEGIN" "$tmp/fn.s"; then
  echo "no LLVM-MCA region found in the Q4_K tile" >&2
  exit 1
fi
# The region body: one super-block; llvm-mca repeats it as a loop would.
awk '/LLVM-MCA-BEGIN/ {on = 1; next} /LLVM-MCA-END/ {on = 0} on' "$tmp/fn.s" > "$tmp/body.s"
echo "== loop body: $(grep -cE '^\s+[a-z]' "$tmp/body.s") instructions ($mcpu)"
llvm-mca-16 -mtriple=aarch64-linux-gnu -mcpu="$mcpu" -iterations=200 -bottleneck-analysis \
  "$tmp/body.s" > "$tmp/mca.txt"
sed -n '1,/^Block RThroughput/p' "$tmp/mca.txt"                   # summary
cycles=$(awk '/^Total Cycles:/ {c = $3} /^Iterations:/ {i = $2} END {printf "%.1f", c / i}' "$tmp/mca.txt")
echo "== cycles per 256-weight super-block (1 token, $mcpu): $cycles"
