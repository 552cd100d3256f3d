#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12 (apt-get + pip).
# Idempotent and non-interactive: only missing Debian packages are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  cmake make g++ git python3 python3-pip python3-venv
  libgtest-dev googletest libbenchmark-dev
  g++-aarch64-linux-gnu qemu-user-static
  clang libclang-rt-14-dev llvm-16
  nlohmann-json3-dev openjdk-17-jdk-headless
)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
fi

PIP_FLAGS=(-q --disable-pip-version-check --root-user-action=ignore)
# Debian's own python3 refuses system-wide pip installs unless told otherwise.
if python3 -m pip install --help 2>/dev/null | grep -q break-system-packages &&
   [ -f "$(python3 -c 'import sysconfig;print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
  PIP_FLAGS+=(--break-system-packages)
fi
python3 -m pip install "${PIP_FLAGS[@]}" -r requirements.txt >&2
# hpl-convert on the PATH (the tests import model/ directly).
python3 -m pip install "${PIP_FLAGS[@]}" ./model >&2
