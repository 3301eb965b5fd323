#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test in a
# normal build (g++) and again under AddressSanitizer + UndefinedBehaviorSanitizer
# (clang++, so every target is also compiled warning-free by the second
# compiler), then prints `N passed, N failed` (counted per Boost.Test case).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1

jobs=$(nproc)
status=0
# procsync::pg's tests need a PostgreSQL server: a throwaway cluster, removed on
# exit whatever happens. PROCSYNC_SKIP_PG=1 leaves procsync::pg out (local use only).
pg_opt=-Dpg=enabled
if [ "${PROCSYNC_SKIP_PG:-0}" = 1 ]; then pg_opt=-Dpg=disabled; else
  pg_dir=$(mktemp -d /tmp/procsync-pg.XXXXXX)
  trap 'bash scripts/pg-cluster.sh stop "$pg_dir"' EXIT
  pg_env=$(bash scripts/pg-cluster.sh start "$pg_dir") || { echo "test.sh: cannot start PostgreSQL"; status=1; }
  eval "$pg_env"; export PROCSYNC_PG_CONNINFO PROCSYNC_PG_TCP_CONNINFO PROCSYNC_PG_CLUSTER
fi
run_suite() {  # build-dir, meson setup args...
  local dir=$1; shift
  if [ ! -d "$dir" ]; then meson setup "$dir" "$@" >/dev/null || return 1; fi
  meson configure "$dir" "$pg_opt" >/dev/null || return 1
  meson compile -C "$dir" || return 1
  rm -rf "$dir/tests/reports"; mkdir -p "$dir/tests/reports"
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs
}
# The plain build compiles the benchmarks too (not run here: timings are not
# tests), so a change that breaks one fails the suite. Compile time is most of
# this script's time, so: the plain build is -O2 without debug information
# (which costs a third of its compile time), and the sanitizer build -O0
# (a quarter of -O2's; the instruction sweeps stay -O2, see tests/meson.build).
run_suite build -Dbench=true -Ddebug=false || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  CXX=clang++ run_suite build-sanitize -Dbench=false -Db_sanitize=address,undefined -Db_lundef=false \
  -Doptimization=0 || status=1
python3 scripts/tally.py build build-sanitize || status=1
exit $status
