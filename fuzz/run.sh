#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, engine instrumented for
# coverage) and runs each for a bounded time, printing how many inputs it
# tried. Exits non-zero when a target crashes, times out or leaks; the
# offending input is left in the artifacts directory printed.
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 60
#   TARGET              stream, mgmt, decode, reasm, replay (default: all)
# Environment:
#   OWFP_FUZZ_BUILD     build directory (default build-fuzz)
#
# Each target reads the committed seeds and regressions of fuzz/corpus/<t>/
# and writes what it finds to $OWFP_FUZZ_BUILD/fuzz-work/<t>/corpus, which
# is kept between runs. To keep a crashing input as a regression, copy it to
# fuzz/corpus/<t>/regress-<what> (meson test runs fuzz_<t>_corpus over it).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stream mgmt decode reasm replay)
build=${OWFP_FUZZ_BUILD:-build-fuzz}

if ! command -v clang >/dev/null; then
    echo "fuzz/run.sh: clang is needed (apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi
if [ -f "$build/build.ninja" ]; then
    meson configure "$build" -Dfuzz=true >/dev/null
else
    CC=clang meson setup "$build" -Dfuzz=true -Dtests=disabled -Dbuildtype=debugoptimized \
        >/dev/null
fi
mkdir -p "$build/fuzz-work"
if ! meson compile -C "$build" "${targets[@]/#/fuzz_}" >"$build/fuzz-work/build.log" 2>&1; then
    echo "fuzz/run.sh: the build failed; $build/fuzz-work/build.log ends with:" >&2
    tail -20 "$build/fuzz-work/build.log" >&2
    exit 1
fi

status=0
for t in "${targets[@]}"; do
    work="$build/fuzz-work/$t"
    mkdir -p "$work/corpus" "$work/artifacts"
    log="$work/last-run.log"
    echo "fuzz_$t: fuzzing for ${secs}s ..."
    rc=0
    # -timeout: an input running 20 s is a hang (e.g. a deadlock).
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        "$work/corpus" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$t: ${runs:-?} runs in ${secs}s, no failure (${cov:-no coverage line}; corpus $(ls "$work/corpus" | wc -l) inputs)"
    else
        status=1
        echo "fuzz_$t: FAILED after ${runs:-?} runs (exit $rc); log: $log" >&2
        grep -E 'invariant violated|ERROR:|SUMMARY:' "$log" | head -5 >&2 || true
        for a in "$work"/artifacts/*; do
            [ -e "$a" ] || continue
            echo "  input: $a  (reproduce: $build/fuzz/fuzz_$t $a)" >&2
        done
    fi
done
exit $status
