#!/usr/bin/env bash
# Compile-time diagnostics and compiler-independent kind names, on g++ and on
# clang++ (when installed):
#  - each file below must fail to compile, and its first error must be the
#    message procsync wrote for that mistake (not an internal assertion or a
#    failed constraint), with no other error after it;
#  - cxx17.cpp with -std=c++17: procsync's #error first, and no diagnostic
#    from any other procsync header (the only other line is the deliberate
#    stop that follows the #error);
#  - kinds.cpp prints the same kind names from every compiler.
set -u
root=${1:-$(dirname "$0")/../..}
here="$root/tests/compile_checks"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
compilers=(g++)
command -v clang++ >/dev/null && compilers+=(clang++)
flags=(-Wall -Wextra -Wpedantic -Werror -I"$root/include")

# file|expected text of the first (and only) error
cases=(
  "anonymous_struct_in_segment.cpp|must name itself the same way on every compiler: declare \`static constexpr const char* kind_name"
  "shared_value_of_string.cpp|T is copied byte-wise between processes, so it must be trivially copyable"
  "shared_array_of_string.cpp|T is copied byte-wise between processes, so it must be trivially copyable"
  "lock_view_of_lock_free_value.cpp|shared_value<T>::lock() is not available when T is lock-free"
)

for cxx in "${compilers[@]}"; do
  for entry in "${cases[@]}"; do
    file=${entry%%|*}
    expected=${entry#*|}
    out="$work/$cxx-$file.txt"
    if "$cxx" -std=c++20 "${flags[@]}" -fsyntax-only "$here/$file" >"$out" 2>&1; then
      echo "FAIL $cxx $file: compiled, expected an error"; status=1; continue
    fi
    errors=$(grep -E '(^|: )(fatal )?error: ' "$out")
    first=$(printf '%s\n' "$errors" | head -n 1)
    count=$(printf '%s\n' "$errors" | grep -c .)
    if [[ "$first" != *"$expected"* ]]; then
      echo "FAIL $cxx $file: first error is not procsync's message"; echo "$first"; status=1
    elif [[ $count -ne 1 ]]; then
      echo "FAIL $cxx $file: $count errors, expected 1"; cat "$out"; status=1
    else
      echo "ok   $cxx $file"
    fi
  done

  out="$work/$cxx-cxx17.txt"
  if "$cxx" -std=c++17 -I"$root/include" -fsyntax-only "$here/cxx17.cpp" >"$out" 2>&1; then
    echo "FAIL $cxx cxx17.cpp: compiled with -std=c++17"; status=1
  else
    errors=$(grep -E '(^|: )(fatal )?error: ' "$out")
    first=$(printf '%s\n' "$errors" | head -n 1)
    others=$(printf '%s\n' "$errors" | tail -n +2 | grep -v 'procsync: stopped here, see the error above')
    if [[ "$first" != *"procsync needs C++20: compile with -std=c++20"* ]]; then
      echo "FAIL $cxx cxx17.cpp: first error is not the #error"; cat "$out"; status=1
    elif [[ -n "$others" ]]; then
      echo "FAIL $cxx cxx17.cpp: more errors after the #error"; cat "$out"; status=1
    else
      echo "ok   $cxx cxx17.cpp"
    fi
  fi

  if ! "$cxx" -std=c++20 "${flags[@]}" -pthread "$here/kinds.cpp" -o "$work/kinds-$cxx" >"$work/kinds-$cxx.log" 2>&1; then
    echo "FAIL $cxx kinds.cpp does not compile"; cat "$work/kinds-$cxx.log"; status=1
  elif ! "$work/kinds-$cxx" >"$work/kinds-$cxx.txt"; then
    echo "FAIL $cxx kinds.cpp did not run"; status=1
  fi
done

if [[ ${#compilers[@]} -gt 1 && -s "$work/kinds-g++.txt" && -s "$work/kinds-clang++.txt" ]]; then
  if diff "$work/kinds-g++.txt" "$work/kinds-clang++.txt"; then
    echo "ok   kind names identical on g++ and clang++ ($(wc -l <"$work/kinds-g++.txt") types)"
  else
    echo "FAIL kind names differ between g++ and clang++ (diff above)"; status=1
  fi
fi
[[ -s "$work/kinds-g++.txt" ]] && cat "$work/kinds-g++.txt"
exit $status
