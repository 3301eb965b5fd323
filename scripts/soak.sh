#!/usr/bin/env bash
# Long soak of the torture test: back-to-back torture runs (fresh shared state,
# full final checks each time) with consecutive seeds until MINUTES have
# passed, then the totals. Stops at the first failing run and prints its seed.
#   scripts/soak.sh [MINUTES=30] [WORKERS=12] [RUN_SECONDS=300] [FIRST_SEED=random]
# Builds build-soak/tests/torture if missing. Example (the documented long soak):
#   scripts/soak.sh 30 12
set -uo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}; workers=${2:-12}; run_s=${3:-300}; seed=${4:-$(date +%s)}
exe=${TORTURE:-build-soak/tests/torture}
if [ ! -x "$exe" ]; then
  [ -d build-soak ] || meson setup build-soak -Dbench=false -Dexamples=false >/dev/null || exit 1
  meson compile -C build-soak torture >/dev/null || exit 1
fi
end=$(( $(date +%s) + minutes * 60 ))
runs=0; ops=0; kills=0; stops=0; repairs=0; commits=0; secs=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
while [ "$(date +%s)" -lt "$end" ]; do
  left=$(( end - $(date +%s) )); this=$(( left < run_s ? left : run_s )); [ "$this" -lt 5 ] && break
  if ! "$exe" --seconds "$this" --workers "$workers" --seed "$seed" >"$log" 2>&1; then
    cat "$log"; echo "soak: FAILED in run $((runs + 1)) (rerun: $exe --seconds $this --workers $workers --seed $seed)"
    exit 1
  fi
  line=$(grep '^torture: [0-9.]* s,' "$log")
  echo "$line"
  num() { echo "$line" | grep -o "[0-9]* $1" | head -1 | cut -d' ' -f1; }
  ops=$((ops + $(num ops))); kills=$((kills + $(num kills))); stops=$((stops + $(num stops)))
  repairs=$((repairs + $(num 'lock repairs'))); commits=$((commits + $(num 'lock commits')))
  secs=$((secs + this)); runs=$((runs + 1)); seed=$((seed + 1))
done
echo "soak: PASSED: $runs runs, ${secs} s, $workers workers, $ops ops, $commits lock commits, $kills SIGKILLs, $stops SIGSTOPs, $repairs lock repairs after owner death"
