#!/usr/bin/env bash
# Refreshes the committed reference results in bench/results/ on purpose:
# runs the benchmarks (scripts/bench-full.sh by default, or
# scripts/bench-summary.sh with --short) into bench/results/ and records where
# they came from in bench/results/PROVENANCE.md (machine, kernel, compiler,
# date, load, command). Run it on an otherwise idle machine, then review and
# commit the result. scripts/demo.sh never writes here.
#
#   scripts/bench-reference.sh [--short] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
script=scripts/bench-full.sh
if [ "${1:-}" = --short ]; then script=scripts/bench-summary.sh; shift; fi
build=${1:-build-release}
out=bench/results
# bench_queue is refreshed separately (PROVENANCE.md's "## bench_queue"
# section says how): its files and that section are kept.
find "$out" -maxdepth 1 \( -name '*.json' -o -name '*.txt' -o -name '*.png' \) \
  ! -name 'bench_queue.*' ! -name 'queue_*.png' -delete
queue_provenance=$(sed -n '/^## bench_queue/,$p' "$out/PROVENANCE.md" 2>/dev/null || true)
PROCSYNC_BENCH_OUT=$out bash "$script" "$build" | tee "$out/summary.txt.tmp"
mv "$out/summary.txt.tmp" "$out/summary.txt"
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  echo "# Where the reference results come from"
  echo
  echo "Written by \`scripts/bench-reference.sh\`; \`summary.txt\` is the printed summary."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}; $(uname -srm)"
  echo "- compiler: $(c++ --version | head -n 1)"
  echo "- command: \`$script $build\`"
  echo "- load average (1, 5, 15 min): $(sed -n 's/^before /before /p; s/^after /after /p' "$out/load.txt" | paste -sd';' -)"
  echo "- other tasks running once the benchmarks had ended: $(sed -n 's/^others_running //p' "$out/load.txt")"
  if [ -n "$queue_provenance" ]; then
    echo
    echo "$queue_provenance"
  fi
} >"$out/PROVENANCE.md"
echo "reference results and PROVENANCE.md written to $out/; review, then commit them"
