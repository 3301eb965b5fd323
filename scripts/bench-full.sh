#!/usr/bin/env bash
# The full benchmark run: more operations per run, and every benchmark
# repeated 5 times (the summary and plots use the medians, with the spread). Takes
# several minutes; run it on an otherwise idle machine.
#
#   scripts/bench-full.sh [BUILD_DIR]      (default: build-release)
set -euo pipefail
cd "$(dirname "$0")/.."
export PROCSYNC_BENCH_OPS=${PROCSYNC_BENCH_OPS:-4000000}
export PROCSYNC_BENCH_ITERS=${PROCSYNC_BENCH_ITERS:-1}
export PROCSYNC_BENCH_REPS=${PROCSYNC_BENCH_REPS:-5}
export PROCSYNC_BENCH_ROUNDS=${PROCSYNC_BENCH_ROUNDS:-100000}
export PROCSYNC_BENCH_ARGS=${PROCSYNC_BENCH_ARGS:---benchmark_min_time=0.5}
exec bash scripts/bench-summary.sh "${1:-build-release}"
