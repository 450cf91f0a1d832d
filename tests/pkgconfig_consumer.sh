#!/usr/bin/env bash
# A consumer outside the build compiles a WDK-style callout host with only
# what `pkg-config openwfp-wdk` gives it, from the uninstalled build tree.
set -euo pipefail
build=$1 src=$2 out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export PKG_CONFIG_PATH="$build/meson-uninstalled"
flags=$(pkg-config --cflags --libs openwfp-wdk)
cc -std=c17 -Wall -Wextra -Werror $flags "$src/examples/flow_demo.c" $flags -o "$out/demo"
LD_LIBRARY_PATH="$build/src" "$out/demo" >"$out/log"
grep -q "flowDeleteFn" "$out/log"
echo "1 passed, 0 failed"
