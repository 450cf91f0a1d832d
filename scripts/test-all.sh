#!/usr/bin/env bash
# Builds openwfp three ways and runs every test: plain (with -Werror), under
# ASan+UBSan+LSan, and the concurrency tests under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
owfp_ensure_packages "${OWFP_BUILD_PACKAGES[@]}" "${OWFP_PROXY_TEST_PACKAGES[@]}" clang \
    libclang-rt-14-dev tshark python3-scapy

run() { echo "+ $*" >&2; "$@"; }
# A fresh configuration every time: options and compilers differ per run.
setup() { local dir=$1; shift; rm -rf "$dir"; run meson setup "$dir" "$@" >/dev/null; }

setup build-ci -Dwerror=true -Dtests=enabled
run meson compile -C build-ci
run meson test -C build-ci --print-errorlogs

CC=clang setup build-asan -Dwerror=true -Dtests=enabled \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
    -Dc_args=-fno-sanitize-recover=all
run meson compile -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run meson test -C build-asan --print-errorlogs

CC=clang setup build-tsan -Dwerror=true -Dtests=enabled -Dtsan_tests=true \
    -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug
run meson compile -C build-tsan
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run meson test -C build-tsan --print-errorlogs

# The fuzz targets' regression corpora ran above as meson tests; now each
# libFuzzer target explores for a minute from a fresh build, and each
# example driver half a minute.
rm -rf build-fuzz-ci
OWFP_FUZZ_BUILD=build-fuzz-ci run fuzz/run.sh 60
# `openwfp fuzz` over each example driver, and the faulty driver caught.
OWFP_FUZZ_BUILD=build-fuzz-ci run fuzz/drivers.sh 30

echo "openwfp: all test runs passed"
