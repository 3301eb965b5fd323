#!/usr/bin/env bash
# Installs the Debian packages procsync needs, only those that are missing.
set -euo pipefail
packages=(meson ninja-build g++ clang libclang-rt-dev libboost-dev libboost-test-dev libboost-program-options-dev libbenchmark-dev pkg-config cmake python3 python3-matplotlib postgresql libpq-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "procsync: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
