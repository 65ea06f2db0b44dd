#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every benchmark program of a build (bench_* in <build>/bench), each
# pinned to CPU 1 as BENCHMARKS.md asks, and prints their BENCH lines.
#   bench/run.sh [build-dir]     (default build-release; make bench)
# BENCH_REPS sets the timed repetitions of each figure (default 9, min 5).
set -u

build=${1:-build-release}
dir=$build/bench
if [ ! -d "$dir" ]; then
    echo "bench/run.sh: no $dir; build first (make bench)" >&2
    exit 1
fi

# Single-hub work runs on CPU 1; without taskset (or CPU 1) run unpinned.
pin="taskset -c 1"
if ! $pin true 2>/dev/null; then
    echo "bench/run.sh: taskset -c 1 failed; running unpinned" >&2
    pin=""
fi

status=0
found=0
for b in "$dir"/bench_*; do
    [ -f "$b" ] && [ -x "$b" ] || continue
    found=1
    if ! $pin "$b"; then
        echo "bench/run.sh: $(basename "$b") failed" >&2
        status=1
    fi
done
if [ $found -eq 0 ]; then
    echo "bench/run.sh: no bench_* programs in $dir" >&2
    exit 1
fi
exit $status
