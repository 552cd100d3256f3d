#!/usr/bin/env bash
# Fails when an instruction above the build's baseline (AVX-512 / AVX-VNNI on x86-64;
# sdot / smmla / usdot on ARM64) sits in a function outside the body that may use it: such
# code would fault on a CPU without the extension even though dispatch never picks the body.
# usage: isa_isolation.sh OBJDUMP BINARY
set -euo pipefail
objdump=$1 bin=$2
leaks=$("$objdump" -d --no-show-raw-insn -C "$bin" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; next }
  /%zmm|%k[1-7]|vpdpbusd|vpdpwssd|\tsdot|\tudot|\tusdot|\tsmmla|\tummla/ {
    if (fn !~ /hpl::kernel::(avxvnni|avx512vnni|dotprod|i8mm)::/) print fn
  }' | sort -u)
if [[ -n "$leaks" ]]; then
  echo "instructions above the baseline outside their body in $bin:" >&2
  echo "$leaks" | head -20 >&2
  exit 1
fi
echo "ok: extension instructions only inside their bodies ($bin)"
