#!/usr/bin/env bash
# Counts the futex system calls the contended benchmarks make, by kind and by
# outcome, with perf's syscall tracepoints: how many waits slept and how many
# returned at once (EAGAIN: the word changed before the kernel looked), how
# many wakes woke someone and how many woke nobody. Under contention almost
# every futex call of a lock that sleeps is one of those wasted pairs; the
# counts show how many each lock makes per operation, in bench_contention's
# counter rows (a lock per increment) and in bench_wait's rows (a lock per 8
# increments, with local work between: the wait-time distribution).
#
#   scripts/count-futex-calls.sh [BUILD_DIR] [P ...]     (default: build-release, P = 2 4)
#
# Needs perf with tracepoint access (root, or kernel.perf_event_paranoid <= -1).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
shift || true
procs=("$@")
[ ${#procs[@]} -gt 0 ] || procs=(2 4)
command -v perf >/dev/null || { echo "count-futex-calls: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
if [ ! -d "$build" ]; then
  meson setup "$build" --buildtype=release -Dtests=false -Dexamples=false -Dtools=false >/dev/null
fi
meson compile -C "$build" bench/bench_contention bench/bench_wait >/dev/null
export PROCSYNC_BENCH_OPS=${PROCSYNC_BENCH_OPS:-1000000}
export PROCSYNC_BENCH_WAIT_OPS=${PROCSYNC_BENCH_WAIT_OPS:-400000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints one row: the futex calls of benchmark `row` of `program`, whose every
# iteration (one forked run) makes `ops` operations.
trace() {  # program row ops impl P
  perf record -q -o "$work/perf.data" -e syscalls:sys_enter_futex -e syscalls:sys_exit_futex \
    "$build/bench/$1" --benchmark_filter="^$2/" --benchmark_repetitions=1 >"$work/out.txt" 2>&1 ||
    { cat "$work/out.txt" >&2; exit 1; }
  local iters
  iters=$(grep -oE "^$2/iterations:[0-9]+" "$work/out.txt" | head -n1 | sed 's/.*iterations://')
  perf script -i "$work/perf.data" 2>/dev/null | python3 -c '
import re, sys
ops = float(sys.argv[1]) * float(sys.argv[2])
pending, n = {}, {"slept": 0, "eagain": 0, "woke": 0, "nobody": 0, "other": 0}
for line in sys.stdin:
    m = re.match(r"\s*\S+\s+(\d+)\s.*sys_enter_futex:.*op: 0x([0-9a-f]+)", line)
    if m:
        pending[m.group(1)] = int(m.group(2), 16) & 0x7f
        continue
    m = re.match(r"\s*\S+\s+(\d+)\s.*sys_exit_futex:\s+0x([0-9a-f]+)", line)
    if not m or m.group(1) not in pending:
        continue
    op, ret = pending.pop(m.group(1)), int(m.group(2), 16)
    ret = ret - (1 << 64) if ret >= 1 << 63 else ret
    if op in (0, 9):  # FUTEX_WAIT, FUTEX_WAIT_BITSET
        n["slept" if ret == 0 else "eagain" if ret == -11 else "other"] += 1
    elif op in (1, 10):  # FUTEX_WAKE, FUTEX_WAKE_BITSET
        n["nobody" if ret == 0 else "woke"] += 1
    else:
        n["other"] += 1
total = sum(n.values())
print("%-16s %2s %10.4f %12d %12d %12d %12d %10d" % (sys.argv[3], sys.argv[4], total / ops, n["slept"], n["eagain"],
      n["woke"], n["nobody"], n["other"]))
' "$3" "$iters" "$4" "$5"
}

# One table: every impl at every P, for rows named by `pattern` (IMPL and P
# stand for the impl and the process count).
table() {  # title program pattern ops
  echo "$1"
  printf '%-16s %2s %10s %12s %12s %12s %12s %10s\n' impl P "calls/op" "wait slept" "wait EAGAIN" "wake woke" \
    "wake nobody" "other"
  local p impl row
  for p in "${procs[@]}"; do
    for impl in procsync pthread pthread_robust; do
      row=${3//IMPL/$impl}
      trace "$2" "${row//P/$p}" "$4" "$impl" "$p"
    done
  done
}

table "bench_contention, counter rows ($PROCSYNC_BENCH_OPS increments per run, a lock per increment):" \
  bench_contention "contention/IMPL/counter/procs:P" "$PROCSYNC_BENCH_OPS"
echo
table "bench_wait ($PROCSYNC_BENCH_WAIT_OPS acquisitions per run; calls/op per acquisition):" \
  bench_wait "wait/IMPL/procs:P" "$PROCSYNC_BENCH_WAIT_OPS"
echo "(the counts are totals over the runs; the traced process and its workers only; tracing slows each call)"
