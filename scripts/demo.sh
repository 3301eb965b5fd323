#!/usr/bin/env bash
# The main job (README command 1): installs what is missing, builds the
# benchmarks in release mode, and runs the short lock-contention benchmark
# summary: serial vs locked modification throughput against pthread,
# Boost.Interprocess and sem_t, with plots written to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec bash scripts/bench-summary.sh build-release
