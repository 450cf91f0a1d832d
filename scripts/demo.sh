#!/usr/bin/env bash
# Builds openwfp and runs the main job on its bundled default.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
owfp_ensure_packages "${OWFP_BUILD_PACKAGES[@]}"
[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
exec build/examples/flow_demo "$@"
