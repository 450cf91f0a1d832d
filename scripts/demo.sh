#!/usr/bin/env bash
# Builds openwfp and runs the main job on its bundled default: `openwfp replay`
# over data/sample-http.pcap with the built-in example callouts (arguments are
# passed on, e.g. --json, or captures of your own).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
owfp_ensure_packages "${OWFP_BUILD_PACKAGES[@]}"
[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
exec build/openwfp replay "$@"
