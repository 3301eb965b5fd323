#!/usr/bin/env bash
# Counts, for each lock, the instructions and the atomic read-modify-write
# instructions (callgrind's "global bus events") that one uncontended
# lock+unlock executes, library calls included, with Valgrind's callgrind
# (bench/bench_instructions.cpp says how). Counts, unlike times, do not move
# with the host or its load, so they show what a fast path costs in itself.
#
#   scripts/count-instructions.sh [BUILD_DIR]     (default: build-release)
#
# Needs valgrind (sudo apt-get install valgrind); the build and the tests do
# not, so scripts/install-deps.sh leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
pairs=${PROCSYNC_COUNT_PAIRS:-100000}
command -v valgrind >/dev/null || {
  echo "count-instructions: valgrind is not installed (apt-get install valgrind)" >&2
  exit 1
}
if [ ! -d "$build" ]; then
  meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false -Dtools=false >/dev/null
fi
# A build directory set up before bench_instructions existed learns of it on reconfiguring.
meson compile -C "$build" bench/bench_instructions >/dev/null 2>&1 ||
  { meson setup --reconfigure "$build" >/dev/null && meson compile -C "$build" bench/bench_instructions >/dev/null; }
exe=$build/bench/bench_instructions
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints "<instructions> <atomics>" counted inside measured_pairs for `pairs` pairs.
count() {  # impl
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_pairs*' --collect-bus=yes \
    --callgrind-out-file="$work/$1.out" "$exe" "$1" "$pairs" 2>"$work/$1.log" || {
    echo "count-instructions: $exe $1 failed under valgrind (see below)" >&2
    cat "$work/$1.log" >&2
    exit 1
  }
  awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
       /^(summary|totals):/ { print $(col["Ir"]), $(col["Ge"]) + 0; exit }' "$work/$1.out"
}

read -r loop_ir loop_ge < <(count empty)
printf '%-20s %14s %16s\n' "lock+unlock" "instructions" "atomic RMWs"
for impl in procsync procsync_recursive pthread pthread_robust cas_spin sem_t; do
  read -r ir ge < <(count "$impl")
  awk -v n="$impl" -v ir="$ir" -v ge="$ge" -v lir="$loop_ir" -v lge="$loop_ge" -v p="$pairs" \
    'BEGIN { printf "%-20s %14.1f %16.2f\n", n, (ir - lir) / p, (ge - lge) / p }'
done
echo "(per pair, the loop's own $(awk -v a="$loop_ir" -v p="$pairs" 'BEGIN { printf "%.1f", a / p }') instructions subtracted; $pairs pairs each, valgrind $(valgrind --version | sed 's/valgrind-//'))"
