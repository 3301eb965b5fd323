#!/usr/bin/env bash
# The main job (README command 1): installs what is missing, builds the
# benchmarks in release mode, and runs the short lock-contention benchmark
# summary: serial vs locked modification throughput against pthread,
# Boost.Interprocess and sem_t, each benchmark run 3 times (ratios as medians
# with their spread). Output, JSON and plots go to build-release/bench-results/:
# the work tree stays clean (bench/results/ holds the committed reference run,
# refreshed only by scripts/bench-reference.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec bash scripts/bench-summary.sh build-release
