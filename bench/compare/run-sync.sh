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
ours=$build/bench/bench_sync
out=$build/bench/compare
pairs=${BENCH_PAIRS:-9}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=9
BENCH_REPS=${BENCH_REPS:-5}
export BENCH_REPS
start=$(date +%s)

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
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

log=$out/compare-sync.log
: >"$log"

# run PAIR PROG [ENV...]: run PROG pinned, record its BENCH lines.
run() {
    p=$1
    prog=$2
    shift 2
    env "$@" $pin "$prog" >"$out/last-sync.out" 2>"$out/last-sync.err" || {
        echo "compare-sync: $(basename "$prog") failed (pair $p):" >&2
        tail -3 "$out/last-sync.err" >&2
    }
    awk -v p="$p" '$1 == "BENCH" { print p, $2, $3, $4 }' \
        "$out/last-sync.out" >>"$log"
}

i=1
while [ $i -le "$pairs" ]; do
    echo "compare-sync: pair $i/$pairs" >&2
    run $i "$ours"
    [ -n "$gobin" ] && run $i "$gobin" GOMAXPROCS=1
    i=$((i + 1))
done

awk -v pairs="$pairs" '
function fmt(v) {
    if (v < 10) return sprintf("%.2f", v)
    if (v < 1000) return sprintf("%.1f", v)
    return sprintf("%.0f", v)
}
function median(a, n,    i, j, x) {
    for (i = 2; i <= n; i++) {
        x = a[i]
        for (j = i - 1; j >= 1 && a[j] > x; j--)
            a[j + 1] = a[j]
        a[j + 1] = x
    }
    if (n == 0) return ""
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    val[$2, $1] = $3; unit[$2] = $4
    if (!($2 in order)) { order[$2] = ++names; byidx[names] = $2 }
}
function stat(name,    n, p, a) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((name, p) in val) a[++n] = val[name, p]
    med[name] = median(a, n)
    lo[name] = n ? a[1] : ""; hi[name] = n ? a[n] : ""; cnt[name] = n
}
# Per-pair ratio ours/Go, its median, and the verdict against <= target.
function ratio(name, num, den, target,    n, p, a, r, verdict) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((num, p) in val && (den, p) in val && val[den, p] > 0)
            a[++n] = val[num, p] / val[den, p]
    if (n == 0) {
        rows[++nrows] = sprintf("%-34s %10s  %-8s %s", name, "n/a",
                                "<=" target, "not measured")
        return
    }
    r = median(a, n)
    printf "BENCH %s %s x\n", name, fmt(r)
    verdict = r <= target ? "met" : "not met"
    rows[++nrows] = sprintf("%-34s %9sx  %-8s %s (%s vs %s ns)", name,
                            fmt(r), "<=" target, verdict, fmt(med[num]),
                            fmt(med[den]))
}
END {
    for (k = 1; k <= names; k++) stat(byidx[k])
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "BENCH %s %s %s\n", nm, fmt(med[nm]), unit[nm]
    }
    split("sync.queue.handoff sync.select4 sync.sem.uncontended " \
          "sync.sem.contended sync.pool.map", figs, " ")
    for (k = 1; k <= 5; k++)
        ratio("ratio." figs[k] ".go", figs[k], figs[k] ".go", 0.5)
    print ""
    print "figure                              median    target   verdict"
    for (k = 1; k <= nrows; k++) print rows[k]
    print ""
    print "spread over the pairs (min-max):"
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "  %-34s %s-%s %s (%d runs)\n", nm, fmt(lo[nm]),
               fmt(hi[nm]), unit[nm], cnt[nm]
    }
}' "$log"

echo "compare-sync: $(( $(date +%s) - start )) s" >&2
