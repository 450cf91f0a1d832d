#!/usr/bin/env bash
# Builds a release build of openwfp in build-bench/ and runs every benchmark,
# printing their tables and saving them to build-bench/bench-results.txt
# (or to the file named by the first argument).
#
#   bench/run.sh [output-file]
#
# Each benchmark is single-threaded and takes well under 60 s on a 2-core
# machine; the whole run takes about a minute and a half. The test suite is not built
# (-Dtests=disabled), so a test file being edited cannot break the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-bench/bench-results.txt}

. scripts/deps.sh
owfp_release_build build-bench
mkdir -p "$(dirname "$out")"

{
    echo "# openwfp benchmarks: $(git describe --always --dirty 2>/dev/null || echo 'no git'), buildtype=release, $(cc --version | head -n 1)"
    for cmd in "build-bench/bench/bench_classify" \
               "build-bench/bench/bench_filters" \
               "build-bench/bench/bench_flow_memory" \
               "build-bench/bench/bench_stream" \
               "build-bench/bench/bench_stream_memory"; do
        echo
        echo "\$ $cmd"
        if [ -x /usr/bin/time ]; then
            /usr/bin/time -f "# $cmd: %e s wall, %M KiB max RSS" "$cmd"
        else
            "$cmd"
        fi
    done
} 2>&1 | tee "$out"
echo "results saved to $out" >&2
