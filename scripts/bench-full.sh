#!/usr/bin/env bash
# The full benchmark run: more operations per run, more runs, and every
# benchmark repeated 3 times (the summary and plots use the medians). Takes
# several minutes; run it on an otherwise idle machine.
#
#   scripts/bench-full.sh [BUILD_DIR]      (default: build-release)
set -euo pipefail
cd "$(dirname "$0")/.."
export PROCSYNC_BENCH_OPS=${PROCSYNC_BENCH_OPS:-4000000}
export PROCSYNC_BENCH_ITERS=${PROCSYNC_BENCH_ITERS:-5}
export PROCSYNC_BENCH_ROUNDS=${PROCSYNC_BENCH_ROUNDS:-100000}
export PROCSYNC_BENCH_ARGS=${PROCSYNC_BENCH_ARGS:---benchmark_repetitions=3 --benchmark_report_aggregates_only=false --benchmark_min_time=0.5}
exec bash scripts/bench-summary.sh "${1:-build-release}"
