#!/usr/bin/env bash
# Renders the deadlock pictures in docs/img/ from real runs: each example
# (lock_inversion, dining_philosophers) runs with --keep, leaving its named
# segment behind; procsync-shm deadlock SEGMENT --dot writes the registry as
# Graphviz; `dot` draws it as SVG and PNG. Nothing is drawn by hand: rerun
# this after changing the examples or the tool's --dot output.
#
#   bash scripts/render-graphs.sh [BUILD_DIR]     (default: build)
#
# Needs Graphviz's `dot` (Debian package graphviz): installed with apt-get
# (through sudo when not root) if missing. Builds the examples and the tool in
# BUILD_DIR (configured with defaults if it does not exist).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"

if ! command -v dot >/dev/null; then
  echo "render-graphs: installing graphviz (for dot)"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq graphviz
fi
[ -d "$build" ] || meson setup "$build" -Dbench=false
ninja -C "$build" examples/lock_inversion examples/dining_philosophers tools/procsync-shm

tool="$build/tools/procsync-shm"
mkdir -p docs/img
for example in lock_inversion dining_philosophers; do
  segment="render-$example-$$"
  trap '"$tool" rm --force "$segment" >/dev/null 2>&1 || true' EXIT
  "$build/examples/$example" --keep "$segment" >/dev/null
  # The pids in the picture change on every run; the segment name would too:
  # call it after the example in the picture.
  "$tool" deadlock "$segment" --dot | sed "s/$segment/$example/g" > "docs/img/$example.dot"
  "$tool" rm --force "$segment" >/dev/null
  dot -Tsvg "docs/img/$example.dot" -o "docs/img/$example.svg"
  dot -Tpng -Gdpi=110 "docs/img/$example.dot" -o "docs/img/$example.png"
  echo "render-graphs: docs/img/$example.{dot,svg,png}"
done
trap - EXIT
