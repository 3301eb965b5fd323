#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the lock-contention
# benchmark summary (until it exists: the demo program).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build-release ] || meson setup build-release --buildtype=release -Dtests=false >/dev/null
meson compile -C build-release
if [ -x scripts/bench-summary.sh ]; then
  exec bash scripts/bench-summary.sh build-release
fi
exec ./build-release/examples/demo
