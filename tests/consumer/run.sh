#!/usr/bin/env bash
# Installs procsync into a staging directory and builds a tiny consumer three
# ways: pkg-config, CMake find_package, and as a Meson subproject. Runs each
# consumer. Exits non-zero on any failure.
#   tests/consumer/run.sh SRC_ROOT WORK_DIR
set -euo pipefail
src=$(cd "${1:?usage: run.sh SRC_ROOT WORK_DIR}" && pwd)
work=${2:?usage: run.sh SRC_ROOT WORK_DIR}
here="$src/tests/consumer"
prefix=/opt/procsync
cxx=${CXX:-c++}

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
dest="$work/dest"
step() { echo "== $*"; }

step "install with --destdir $dest (prefix $prefix)"
meson setup "$work/build" "$src" --prefix "$prefix" -Dtests=false -Dbench=false -Dexamples=false -Dtools=false \
  >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
# Installing the header-only library with every optional part off builds nothing.
[ "$(meson introspect --targets "$work/build")" = "[]" ] || { echo "install with all parts off has build targets"; exit 1; }
meson install -C "$work/build" --destdir "$dest" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
for f in include/procsync/mutex.hpp include/procsync/segment.hpp include/procsync/error.hpp \
         lib/cmake/procsync/procsyncConfig.cmake lib/cmake/procsync/procsyncConfigVersion.cmake; do
  [ -f "$dest$prefix/$f" ] || { echo "missing after install: $prefix/$f"; exit 1; }
done
pc="$dest$prefix/share/pkgconfig/procsync.pc"  # header-only: arch-independent
[ -f "$pc" ] || { echo "missing after install: $prefix/share/pkgconfig/procsync.pc"; exit 1; }

step "pkg-config consumer"
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --cflags --libs procsync)
echo "pkg-config: $flags"
case "$flags" in *"$dest$prefix/include"*) ;; *) echo "pkg-config flags lack the staged include dir"; exit 1 ;; esac
[ "$(grep -o -- -pthread <<<"$flags" | wc -l)" -eq 1 ] || { echo "pkg-config flags should name -pthread once"; exit 1; }
# shellcheck disable=SC2086
"$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror "$here/main.cpp" -o "$work/consumer-pkgconfig" $flags
"$work/consumer-pkgconfig"

step "CMake consumer"
cmake -S "$here/cmake" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$dest$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake-build" >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
"$work/cmake-build/consumer"
# The version check refuses an incompatible request.
mkdir -p "$work/cmake-version"
cat >"$work/cmake-version/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(version_check NONE)
find_package(procsync 99 QUIET)
if(procsync_FOUND)
  message(FATAL_ERROR "procsync 99 accepted")
endif()
CMAKE
cmake -S "$work/cmake-version" -B "$work/cmake-version/build" -DCMAKE_PREFIX_PATH="$dest$prefix" \
  >"$work/cmake-version.log" 2>&1 || { cat "$work/cmake-version.log"; exit 1; }

# A subproject with default options must configure and build nothing but the
# consumer: no Boost.Test, no Google Benchmark, no tests/examples/benchmarks.
check_meson_consumer() {  # dir label
  local dir=$1 label=$2 t0 targets
  t0=$(date +%s)
  meson setup "$dir/build" "$dir" >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
  meson compile -C "$dir/build" >>"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
  targets=$(meson introspect --targets "$dir/build" | python3 -c 'import json, sys; print(" ".join(sorted(t["name"] for t in json.load(sys.stdin))))')
  echo "$label: targets: $targets; configured and built in $(( $(date +%s) - t0 )) s"
  # The consumer's own targets only: consumer, and consumer-pg where libpq is found.
  case "$targets" in
    consumer|"consumer consumer-pg") ;;
    *) echo "$label: procsync as a subproject built more than the consumer"; exit 1 ;;
  esac
  if grep -iE 'benchmark|unit_test_framework|program_options' "$dir/build/meson-logs/meson-log.txt"; then
    echo "$label: the subproject looked up a test/benchmark/tool dependency"; exit 1
  fi
  "$dir/build/consumer"
}

step "Meson subproject consumer (subprojects/procsync, default options)"
mkdir -p "$work/meson-consumer/subprojects"
cp "$here/meson/meson.build" "$here/main.cpp" "$here/pg_main.cpp" "$work/meson-consumer/"
ln -s "$src" "$work/meson-consumer/subprojects/procsync"
check_meson_consumer "$work/meson-consumer" subproject

# The shipped wrap, pointed at this repository's committed HEAD (skipped
# outside a git checkout: there is nothing to clone).
if command -v git >/dev/null && head=$(git -C "$src" rev-parse HEAD 2>/dev/null); then
  step "Meson wrap-git consumer (packaging/procsync.wrap at $head)"
  mkdir -p "$work/meson-wrap/subprojects"
  cp "$here/meson/meson.build" "$here/main.cpp" "$here/pg_main.cpp" "$work/meson-wrap/"
  sed -e "s|^url = .*|url = file://$src|" -e "s|^revision = .*|revision = $head|" -e '/^depth = /d' \
    "$src/packaging/procsync.wrap" >"$work/meson-wrap/subprojects/procsync.wrap"
  check_meson_consumer "$work/meson-wrap" wrap-git
else
  step "Meson wrap-git consumer: skipped ($src is not a git checkout)"
fi

# procsync::pg: pkg-config procsync-pg, CMake procsync::pg, Meson dependency('procsync-pg').
if pkg-config --exists libpq; then
  step "procsync-pg consumers"
  pgpc=$(find "$dest$prefix" -name procsync-pg.pc | head -n 1)
  [ -n "$pgpc" ] || { echo "missing after install: procsync-pg.pc"; exit 1; }
  # libpq is the system's: no sysroot; the staged .pc files point at the staged prefix instead.
  mkdir -p "$work/pc"
  for f in "$(dirname "$pgpc")"/procsync*.pc; do sed "s|^prefix=.*|prefix=$dest$prefix|" "$f" >"$work/pc/$(basename "$f")"; done
  flags=$(PKG_CONFIG_PATH="$work/pc" pkg-config --cflags --libs procsync-pg)
  echo "pkg-config procsync-pg: $flags"
  # shellcheck disable=SC2086
  "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror "$here/pg_main.cpp" -o "$work/consumer-pg-pkgconfig" $flags
  "$work/consumer-pg-pkgconfig"
  cmake -S "$here/cmake-pg" -B "$work/cmake-pg-build" -DCMAKE_PREFIX_PATH="$dest$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
    >"$work/cmake-pg.log" 2>&1 || { cat "$work/cmake-pg.log"; exit 1; }
  cmake --build "$work/cmake-pg-build" >>"$work/cmake-pg.log" 2>&1 || { cat "$work/cmake-pg.log"; exit 1; }
  "$work/cmake-pg-build/consumer"
  [ -x "$work/meson-consumer/build/consumer-pg" ] || { echo "Meson subproject: consumer-pg not built"; exit 1; }
  "$work/meson-consumer/build/consumer-pg"
fi

step "all consumers passed"
