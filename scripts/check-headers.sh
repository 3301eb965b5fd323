#!/usr/bin/env bash
# Every public header must compile on its own (only it included), warning-free
# with -Wall -Wextra -Wpedantic -Werror, on g++ and on clang++ (when installed).
set -u
root=${1:-$(dirname "$0")/..}
cd "$root/include" || exit 1
status=0
compilers=(g++)
command -v clang++ >/dev/null && compilers+=(clang++)
# procsync::pg's headers include libpq-fe.h: checked only where libpq is installed.
pq_flags=$(pkg-config --cflags libpq 2>/dev/null) || pq_flags=skip
for cxx in "${compilers[@]}"; do
  for header in $(find procsync -name '*.hpp' | sort); do
    extra=""
    case "$header" in procsync/pg.hpp | procsync/pg/*)
      if [ "$pq_flags" = skip ]; then echo "skip $cxx $header (no libpq)"; continue; fi
      extra=$pq_flags ;;
    esac
    # shellcheck disable=SC2086
    if ! echo "#include <$header>" | "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I. $extra -x c++ - 2>/tmp/check-headers.$$; then
      echo "FAIL $cxx $header"; cat /tmp/check-headers.$$; status=1
    else
      echo "ok   $cxx $header"
    fi
  done
done
rm -f /tmp/check-headers.$$
exit $status
