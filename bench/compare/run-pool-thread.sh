#!/bin/sh
# SPDX-License-Identifier: MIT
# Thread pool beside Python's ThreadPoolExecutor: runs bench_pool_thread and
# bench/compare/pool_thread.py alternately, BENCH_PAIRS pairs (default 9;
# ours first in each pair), unpinned (the figure is "on 2 cores"), then
# prints the medians over the pairs, the ratio and whether the target is
# met. Called by bench/compare/run.sh with the build dir as $1.
#   bench/compare/run-pool-thread.sh [build-dir]   (default build-release)
# BENCH_REPS: repetitions inside each program run (default here 5);
# BENCH_N / BENCH_PY_N: tasks per repetition (1,000,000 / 200,000).
set -u

build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
ours=$build/bench/bench_pool_thread
out=$build/bench/compare
pairs=${BENCH_PAIRS:-9}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=9
BENCH_REPS=${BENCH_REPS:-5}
export BENCH_REPS
start=$(date +%s)

mkdir -p "$out" || exit 1
if [ ! -x "$ours" ]; then
    echo "compare-pool-thread: skipped: $ours not built" >&2
    exit 0
fi
py=""
if command -v python3 >/dev/null 2>&1; then
    py=python3
else
    echo "compare-pool-thread: skipped Python anchor: no python3" >&2
fi
echo "compare-pool-thread: $pairs pairs, BENCH_REPS=$BENCH_REPS" >&2

log=$out/pool-thread.log
: >"$log"

# run PAIR CMD...: run CMD, record its BENCH lines tagged with the pair.
run() {
    p=$1
    shift
    "$@" >"$out/pt-last.out" 2>"$out/pt-last.err" || {
        echo "compare-pool-thread: $* failed (pair $p):" >&2
        tail -3 "$out/pt-last.err" >&2
    }
    awk -v p="$p" '$1 == "BENCH" { print p, $2, $3, $4 }' \
        "$out/pt-last.out" >>"$log"
}

i=1
while [ $i -le "$pairs" ]; do
    echo "compare-pool-thread: pair $i/$pairs" >&2
    run $i "$ours"
    [ -n "$py" ] && run $i $py "$here/pool_thread.py"
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
# ratio NAME NUM DEN OP TARGET: per-pair NUM/DEN, their median, verdict.
function ratio(name, num, den, op, target,    n, p, a, r, verdict) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((num, p) in val && (den, p) in val && val[den, p] > 0)
            a[++n] = val[num, p] / val[den, p]
    if (n == 0) {
        rows[++nrows] = sprintf("%-34s %12s  %-10s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    r = median(a, n)
    printf "BENCH %s %s x\n", name, fmt(r)
    verdict = "(information)"
    if (op == ">=") verdict = r >= target ? "met" : "not met"
    rows[++nrows] = sprintf("%-34s %11sx  %-10s %s", name, fmt(r),
                            op target, verdict)
}
# atleast NAME TARGET: a throughput against a fixed lower bound.
function atleast(name, target, u,    verdict) {
    if (!(name in med) || med[name] == "") {
        rows[++nrows] = sprintf("%-34s %12s  %-10s %s", name, "n/a",
                                ">=" target, "not measured")
        return
    }
    verdict = (med[name] >= target) ? "met" : "not met"
    rows[++nrows] = sprintf("%-34s %12s  %-10s %s", name,
                            fmt(med[name]) " " u, ">=" target, verdict)
}
END {
    for (k = 1; k <= names; k++) stat(byidx[k])
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "BENCH %s %s %s\n", nm, fmt(med[nm]), unit[nm]
    }
    atleast("pool.thread.submit", 2000000, "tasks/s")
    atleast("pool.thread.submit.task", 2000000, "tasks/s")
    ratio("ratio.pool.thread.submit.python", "pool.thread.submit",
          "pool.thread.submit.python", "", "")
    print ""
    print "figure                                median  target     verdict"
    for (k = 1; k <= nrows; k++) print rows[k]
    print ""
    print "spread over the pairs (min-max):"
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "  %-34s %s-%s %s (%d runs)\n", nm, fmt(lo[nm]),
               fmt(hi[nm]), unit[nm], cnt[nm]
    }
}' "$log"

echo "compare-pool-thread: $(( $(date +%s) - start )) s" >&2
