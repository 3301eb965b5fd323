#!/usr/bin/env bash
# The lock-contention benchmarks, short version (about a minute on 2 cores):
# runs every bench/ program once with small run counts, writes the Google
# Benchmark JSON and the plots to bench/results/, and prints a summary table
# with ratios against pthread and Boost.Interprocess and the DESIGN.md targets.
#
#   scripts/bench-summary.sh [BUILD_DIR]      (default: build-release)
#
# Knobs (environment): PROCSYNC_BENCH_OUT (output folder, default bench/results),
# PROCSYNC_BENCH_OPS / _ITERS / _ROUNDS (see bench/bench_common.hpp),
# PROCSYNC_BENCH_ARGS (extra Google Benchmark flags for every program).
# scripts/bench-full.sh is the long, repeated run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
out=${PROCSYNC_BENCH_OUT:-bench/results}
benches=(bench_contention bench_mutex bench_semaphore bench_latency bench_shared_value)

if [ ! -d "$build" ]; then
  meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false >/dev/null
fi
targets=()
for b in "${benches[@]}"; do [ -f "bench/$b.cpp" ] && targets+=("bench/$b"); done
meson compile -C "$build" "${targets[@]}" >/dev/null

export PROCSYNC_BENCH_OPS=${PROCSYNC_BENCH_OPS:-1000000}
export PROCSYNC_BENCH_ITERS=${PROCSYNC_BENCH_ITERS:-3}
export PROCSYNC_BENCH_ROUNDS=${PROCSYNC_BENCH_ROUNDS:-20000}
# Google Benchmark 1.7 takes the minimum time in seconds as a bare number.
read -r -a extra <<<"${PROCSYNC_BENCH_ARGS:---benchmark_min_time=0.1}"

mkdir -p "$out"
start=$SECONDS
for b in "${benches[@]}"; do
  exe="$build/bench/$b"
  [ -x "$exe" ] || continue
  printf 'running %-20s' "$b"
  t=$SECONDS
  "$exe" "${extra[@]}" --benchmark_out="$out/$b.json" --benchmark_out_format=json >"$out/$b.txt" 2>&1 || {
    echo " FAILED (see $out/$b.txt)"; exit 1; }
  echo " $((SECONDS - t)) s"
done
echo "benchmarks took $((SECONDS - start)) s; JSON and console output in $out/"
echo

# The plots need matplotlib: Debian's python3-matplotlib lives in /usr/bin/python3,
# which may not be the python3 first in PATH.
python=python3
if ! python3 -c 'import matplotlib' 2>/dev/null && [ -x /usr/bin/python3 ] &&
   /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  python=/usr/bin/python3
fi
"$python" scripts/plot_bench.py --results "$out" --summary
