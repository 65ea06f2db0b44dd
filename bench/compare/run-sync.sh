#!/bin/sh
# SPDX-License-Identifier: MIT
# The sync layer beside Go (bench/sync.c vs bench/compare/sync.go): builds
# the Go anchor (no modules, no network, caches in the build dir), runs ours
# and Go's alternately, BENCH_PAIRS pairs (default 9) pinned to CPU 1 with
# GOMAXPROCS=1, and prints the medians, the ratios ours/Go and whether each
# target (<= 0.5x Go's time) is met. Called by run.sh with the build dir.
#   bench/compare/run-sync.sh [build-dir]    (default build-release)
set -u

build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
ours=$build/bench/bench_sync
cmp_init compare-sync 9
pin="taskset -c 1"
if ! $pin true 2>/dev/null; then
    echo "compare-sync: taskset -c 1 failed; running unpinned" >&2
    pin=""
fi
if [ ! -x "$ours" ]; then
    echo "compare-sync: $ours not built (make bench)" >&2
    exit 1
fi

gobin=$out/sync_go
if ! command -v go >/dev/null 2>&1; then
    echo "compare-sync: skipped Go: no go toolchain (golang-go)" >&2
    gobin=""
elif [ ! -x "$gobin" ] || [ "$here/sync.go" -nt "$gobin" ]; then
    GO111MODULE=off GOFLAGS= GOCACHE="$out/go-cache" GOPATH="$out/go-path" \
        go build -o "$gobin" "$here/sync.go" || {
        echo "compare-sync: skipped Go: build failed" >&2
        gobin=""
    }
fi
echo "compare-sync: $pairs pairs, BENCH_REPS=$BENCH_REPS" >&2

i=1
while [ $i -le "$pairs" ]; do
    echo "compare-sync: pair $i/$pairs" >&2
    cmp_run $i $pin "$ours"
    [ -n "$gobin" ] && cmp_run $i env GOMAXPROCS=1 $pin "$gobin"
    i=$((i + 1))
done

# Each figure against Go's: target <= 0.5x Go's time.
cmp_report '
    stat_all()
    split("sync.queue.handoff sync.select4 sync.sem.uncontended " \
          "sync.sem.contended sync.pool.map", figs, " ")
    for (k = 1; k <= 5; k++)
        ratio("ratio." figs[k] ".go", figs[k], figs[k] ".go", "<=", 0.5)
    report()'
cmp_done
