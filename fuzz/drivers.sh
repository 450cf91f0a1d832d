#!/usr/bin/env bash
# `openwfp fuzz` end to end: fuzzes each example driver for a bounded time
# and expects nothing found, then fuzzes the faulty test driver and expects
# the verifier's finding to be caught, saved, and replayed by
# `openwfp replay --fuzz-input` with the same rule id.
#
# Usage: fuzz/drivers.sh [SECONDS_PER_DRIVER]   (default 60)
# Environment: OWFP_FUZZ_BUILD  build directory (default build-fuzz), a
#              clang build with -Dfuzz=true (made here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
build=${OWFP_FUZZ_BUILD:-build-fuzz}
if [ -f "$build/build.ninja" ]; then
    meson configure "$build" -Dfuzz=true >/dev/null
else
    CC=clang meson setup "$build" -Dfuzz=true -Dtests=disabled -Dbuildtype=debugoptimized \
        >/dev/null
fi
work="$build/fuzz-work/drivers"
rm -rf "$work"
mkdir -p "$work"
if ! meson compile -C "$build" >"$work/build.log" 2>&1; then
    echo "fuzz/drivers.sh: the build failed; $work/build.log ends with:" >&2
    tail -20 "$work/build.log" >&2
    exit 1
fi
openwfp=$build/openwfp
d=$build/drivers
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1

status=0
# name, then the callout options
fuzz_clean() {
    local name=$1
    shift
    local log=$work/$name.log rc=0
    echo "openwfp fuzz $name: ${secs}s ..."
    "$openwfp" fuzz "$@" --time "$secs" --corpus "$work/$name/corpus" \
        --artifacts "$work/$name" -- -print_final_stats=1 >"$log" 2>&1 || rc=$?
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ] && ! grep -q 'openwfp: verify' "$log"; then
        echo "openwfp fuzz $name: ${runs:-?} inputs, nothing found"
    else
        status=1
        echo "openwfp fuzz $name: FAILED (exit $rc); log: $log" >&2
        grep -E 'openwfp: verify|ERROR:|SUMMARY:|replay --fuzz-input' "$log" | head -8 >&2 || true
    fi
}

fuzz_clean flow_monitor --driver "$d/flow_monitor.so"
fuzz_clean content_block --driver "$d/content_block.so" --driver-param Pattern=secret
fuzz_clean stream_edit --driver "$d/stream_edit.so" --driver-param Find=secret \
    --driver-param Replace=XY
fuzz_clean stream_edit_oob --driver "$d/stream_edit.so" --driver-param Mode=oob \
    --driver-param Find=secret --driver-param Replace=XY --driver-param QueueLimit=4096
# Editing received data, so a client's RST comes in the direction the
# driver does not edit (it once kept injecting after it: S10).
fuzz_clean stream_edit_oob_receive --driver "$d/stream_edit.so" --driver-param Mode=oob \
    --driver-param Find=secret --driver-param Replace=XY --driver-param QueueLimit=4096 \
    --driver-param Direction=1
# Seeded with real TLS handshakes (the shared corpus, beside the checkout).
tls=../shared/corpus/pcap/suricata-verify
fuzz_clean tls_sni_block --driver "$d/tls_sni_block.so" --driver-param BlockedNames=.apple.com \
    --seed-from "$tls/tcp-empty-sack/tcp-opt.pcap" --seed-from "$tls/community-id-ipv6/input.pcap"

# A driver that cannot be loaded is a setup error, not a finding.
rc=0
"$openwfp" fuzz --driver "$work/no-such-driver.so" --time 1 --corpus "$work/none/corpus" \
    --artifacts "$work/none" >"$work/none.log" 2>&1 || rc=$?
if [ "$rc" -eq 2 ] && grep -q 'no-such-driver' "$work/none.log"; then
    echo "openwfp fuzz: a driver that does not load: exit 2"
else
    status=1
    echo "openwfp fuzz: a driver that does not load: expected exit 2, got $rc; log: $work/none.log" >&2
fi

# The faulty driver answers DEFER to outbound data (S19): the fuzzer must
# stop on it with a saved input that the replay turns into the same finding.
faulty=(--driver "$build/fuzz/faulty_driver.so" --driver-param Fault=defer-on-send)
log=$work/faulty.log
rc=0
"$openwfp" fuzz "${faulty[@]}" --time "$secs" --corpus "$work/faulty/corpus" \
    --artifacts "$work/faulty" >"$log" 2>&1 || rc=$?
input=$(ls "$work"/faulty/crash-* 2>/dev/null | head -1 || true)
if [ "$rc" -ne 1 ] || [ -z "$input" ] || ! grep -q 'openwfp: verify S19 defer-on-send' "$log" ||
    ! grep -q -- "--fuzz-input $input" "$log"; then
    status=1
    echo "openwfp fuzz faulty_driver: FAILED: expected exit 1, an S19 finding and a saved input (exit $rc); log: $log" >&2
    tail -5 "$log" >&2
else
    rc=0
    "$openwfp" replay --fuzz-input "$input" "${faulty[@]}" --verify=strict --quiet \
        >"$work/faulty-replay.log" 2>&1 || rc=$?
    if [ "$rc" -eq 4 ] && grep -q 'verify S19 defer-on-send' "$work/faulty-replay.log"; then
        echo "openwfp fuzz faulty_driver: caught S19 defer-on-send; the saved input replays it"
    else
        status=1
        echo "openwfp fuzz faulty_driver: the saved input did not replay the finding (exit $rc); log: $work/faulty-replay.log" >&2
    fi
fi
exit $status
