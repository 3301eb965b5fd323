#!/usr/bin/env bash
# The lock-contention benchmarks, short version (about a minute on 2 cores):
# runs every bench/ program 3 times (Google Benchmark repetitions, interleaved
# at random), writes the JSON, the console output, the load average before
# and after (load.txt) and the plots to BUILD_DIR/bench-results/, and prints a
# summary: ratios against pthread and Boost.Interprocess as the median of the
# per-run ratios with their min-max, and the design targets. The committed
# reference results in bench/results/ are refreshed only on purpose, by
# scripts/bench-reference.sh.
#
#   scripts/bench-summary.sh [BUILD_DIR]      (default: build-release)
#
# Knobs (environment): PROCSYNC_BENCH_OUT (output folder, default
# BUILD_DIR/bench-results), PROCSYNC_BENCH_REPS (runs per benchmark, default 3),
# PROCSYNC_BENCH_OPS / _ITERS / _ROUNDS (see bench/bench_common.hpp),
# PROCSYNC_BENCH_ARGS (extra Google Benchmark flags for every program).
# scripts/bench-full.sh is the long run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
out=${PROCSYNC_BENCH_OUT:-$build/bench-results}
reps=${PROCSYNC_BENCH_REPS:-3}
benches=(bench_contention bench_mutex bench_semaphore bench_latency bench_shared_value bench_shared_mutex bench_wait)

if [ ! -d "$build" ]; then
  meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false -Dtools=false >/dev/null
fi
# Every benchmark named above must exist: a missing one is an error, not a skip.
targets=()
for b in "${benches[@]}"; do
  [ -f "bench/$b.cpp" ] || { echo "bench-summary: bench/$b.cpp is missing" >&2; exit 1; }
  targets+=("bench/$b")
done
meson compile -C "$build" "${targets[@]}" >/dev/null

export PROCSYNC_BENCH_OPS=${PROCSYNC_BENCH_OPS:-1000000}
export PROCSYNC_BENCH_ITERS=${PROCSYNC_BENCH_ITERS:-1}  # per repetition
export PROCSYNC_BENCH_ROUNDS=${PROCSYNC_BENCH_ROUNDS:-20000}
# Google Benchmark 1.7 takes the minimum time in seconds as a bare number.
read -r -a extra <<<"${PROCSYNC_BENCH_ARGS:---benchmark_min_time=0.1}"
# Repetitions interleaved at random: run i of every benchmark is taken at about
# the same time, so the per-run ratios compare like with like.
extra+=("--benchmark_repetitions=$reps" --benchmark_report_aggregates_only=false
        --benchmark_enable_random_interleaving=true)

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cpus=$(nproc)
warn_if_busy() {  # when
  local one
  one=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$one" -v c="$cpus" 'BEGIN { exit !(l > c) }'; then
    echo "!!! WARNING ($1): load average $one > $cpus CPUs: other work competes with the"
    echo "!!! benchmarks; their numbers will be noisy and the ratios may mislead."
  fi
}

mkdir -p "$out"
echo "before $(loadavg)" >"$out/load.txt"
warn_if_busy "before the run"
start=$SECONDS
for b in "${benches[@]}"; do
  exe="$build/bench/$b"
  [ -x "$exe" ] || { echo "bench-summary: $exe was not built" >&2; exit 1; }
  printf 'running %-20s' "$b"
  t=$SECONDS
  "$exe" "${extra[@]}" --benchmark_out="$out/$b.json" --benchmark_out_format=json >"$out/$b.txt" 2>&1 || {
    echo " FAILED (see $out/$b.txt)"; exit 1; }
  echo " $((SECONDS - t)) s"
done
echo "after $(loadavg)" >>"$out/load.txt"
echo "cpus $cpus" >>"$out/load.txt"
# The load average after the run counts the benchmarks' own processes (up to 8
# runnable at once in the last programs), so it cannot tell whether anything
# else competed. What is still running once they are gone can: the median of
# 20 samples over 2 s of the processes in state R, less ps itself.
others=()
for _ in $(seq 20); do
  others+=("$(($(ps -eo stat= | grep -c '^R') - 1))")
  sleep 0.1
done
echo "others_running $(printf '%s\n' "${others[@]}" | sort -n | sed -n 10p)" >>"$out/load.txt"
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

