#!/usr/bin/env bash
# Builds the libFuzzer target with clang++ (-fsanitize=fuzzer,address,undefined)
# and runs it for a short while over a copy of the seed corpus.
#   run.sh SOURCE_ROOT WORK_DIR [SECONDS]
# Exit 0: no crash, sanitizer report or hang; 77 (meson: skipped) when clang++
# or its libFuzzer runtime is missing; anything else: a finding (the crashing
# input is left in WORK_DIR, the command to reproduce it is printed).
set -uo pipefail
root=$1; work=$2; seconds=${3:-20}
cxx=${FUZZ_CXX:-clang++}
mkdir -p "$work"
if ! command -v "$cxx" >/dev/null; then echo "fuzz: $cxx not found: skipped"; exit 77; fi
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$work/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer "$work/probe.cpp" -o "$work/probe" 2>/dev/null; then
  echo "fuzz: $cxx has no libFuzzer runtime (libclang-rt-dev): skipped"; exit 77
fi
exe="$work/fuzz_segment_open"
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/include" "$root/tests/fuzz/fuzz_segment_open.cpp" -o "$exe" || exit 1
rm -rf "$work/corpus"; cp -r "$root/tests/fuzz/corpus" "$work/corpus"
cd "$work" || exit 1
# -timeout: an input that takes 5 s is a hang; -rss_limit_mb keeps it polite.
"$exe" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 corpus
rc=$?
if [ $rc -ne 0 ]; then echo "fuzz: finding; reproduce with: $exe $work/crash-* (or leak-*/timeout-*)"; fi
exit $rc
