#!/usr/bin/env bash
# Static and dynamic analysis that is too slow for scripts/test.sh:
#  1. clang-tidy (config: .clang-tidy) over every public header, each compiled
#     alone as a translation unit;
#  2. cppcheck (suppressions: .cppcheck-suppressions) over the headers;
#  3. ThreadSanitizer over the thread-based tests (build dir build-tsan,
#     clang++; test_threads).
# Usage: scripts/analyze.sh [tidy|cppcheck|tsan]...   (default: all three)
# Exit 0 when every selected step is clean.
set -uo pipefail
cd "$(dirname "$0")/.."
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(tidy cppcheck tsan)
status=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for step in "${steps[@]}"; do
  case $step in
  tidy)
    echo "== clang-tidy"
    for h in include/procsync/*.hpp include/procsync/detail/*.hpp; do
      rel=${h#include/}
      echo "#include <$rel>" > "$tmp/tu.cpp"
      if ! out=$(clang-tidy --quiet "$tmp/tu.cpp" -- -std=c++20 -Iinclude -pthread 2>&1); then
        echo "$out" | grep -v "warnings generated" ; echo "clang-tidy: $h: FAILED"; status=1
      fi
    done ;;
  cppcheck)
    echo "== cppcheck"
    cppcheck --quiet --error-exitcode=1 --std=c++20 --language=c++ --enable=warning,performance,portability \
      --inline-suppr --suppressions-list=.cppcheck-suppressions -Iinclude \
      include/procsync/*.hpp include/procsync/detail/*.hpp || { echo "cppcheck: FAILED"; status=1; } ;;
  tsan)
    echo "== ThreadSanitizer (test_threads)"
    if [ ! -d build-tsan ]; then
      CXX=clang++ meson setup build-tsan -Dbench=false -Dexamples=false -Db_sanitize=thread -Db_lundef=false >/dev/null || { status=1; continue; }
    fi
    meson compile -C build-tsan test_threads >/dev/null || { echo "tsan: build FAILED"; status=1; continue; }
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/tests/test_threads || { echo "tsan: FAILED"; status=1; } ;;
  *) echo "unknown step $step (tidy, cppcheck, tsan)"; exit 2 ;;
  esac
done
[ $status -eq 0 ] && echo "analyze: clean" || echo "analyze: FINDINGS"
exit $status
