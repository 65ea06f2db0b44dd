#!/bin/sh
# SPDX-License-Identifier: MIT
# The process pool and the CPU-bound case beside Python's multiprocessing:
# runs ours (bench_pool_process, bench_cpu) and the anchors
# (pool_process.py, cpu.py) alternately, BENCH_PAIRS pairs (default here 3:
# the Python runs take about 40 s a pair), on both CPUs (these figures are
# about using 2 cores), and prints medians over the pairs, ratios and
# whether each target is met. Called by bench/compare/run.sh.
#   bench/compare/run-pool-process.sh [build-dir]   (default build-release)
# BENCH_REPS: timed repetitions inside each program run (default 5).
set -u

build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
ours=$build/bench
out=$build/bench/compare
pairs=${BENCH_PAIRS_POOL_PROCESS:-3}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=3
BENCH_REPS=${BENCH_REPS:-5}
export BENCH_REPS
start=$(date +%s)

mkdir -p "$out" || exit 1
pin="taskset -c 0,1"
if ! $pin true 2>/dev/null; then
    echo "compare: taskset -c 0,1 failed; running unpinned" >&2
    pin=""
fi
py=""
if command -v python3 >/dev/null 2>&1; then
    py=python3
else
    echo "compare: skipped multiprocessing: no python3" >&2
fi
echo "compare: process pool, cpu; $pairs pairs, BENCH_REPS=$BENCH_REPS" >&2

log=$out/compare-pool-process.log
: >"$log"
status=0

# run PAIR PROG...: run it, record its BENCH lines.
run() {
    p=$1
    shift
    if [ ! -x "$1" ] && [ "$1" != "$py" ]; then
        [ "$p" = 1 ] && echo "compare: skipped $1: not built" >&2
        return 0
    fi
    $pin "$@" >"$out/last-pp.out" 2>"$out/last-pp.err" || {
        echo "compare: $* failed (pair $p):" >&2
        tail -3 "$out/last-pp.err" >&2
        status=1
    }
    awk -v p="$p" '$1 == "BENCH" { print p, $2, $3, $4 }' \
        "$out/last-pp.out" >>"$log"
}

i=1
while [ $i -le "$pairs" ]; do
    echo "compare: pool-process pair $i/$pairs" >&2
    run $i "$ours/bench_pool_process"
    [ -n "$py" ] && run $i $py "$here/pool_process.py"
    run $i "$ours/bench_cpu"
    [ -n "$py" ] && run $i $py "$here/cpu.py"
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
function verdict(r, op, target) {
    if (op == "") return "(information)"
    if (op == ">=" && r >= target) return "met"
    if (op == "<=" && r <= target) return "met"
    return "not met"
}
# ratio NAME NUM DEN OP TARGET: per-pair NUM/DEN, their median, verdict.
function ratio(name, num, den, op, target,    n, p, a, r) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((num, p) in val && (den, p) in val && val[den, p] > 0)
            a[++n] = val[num, p] / val[den, p]
    if (n == 0) {
        rows[++nrows] = sprintf("%-40s %10s  %-8s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    r = median(a, n)
    printf "BENCH %s %s x\n", name, fmt(r)
    rows[++nrows] = sprintf("%-40s %9sx  %-8s %s", name, fmt(r),
                            op target, verdict(r, op, target))
}
# absolute NAME OP TARGET: a median against a fixed bound.
function absolute(name, op, target,    u) {
    if (!(name in med) || med[name] == "") {
        rows[++nrows] = sprintf("%-40s %10s  %-8s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    u = unit[name]
    rows[++nrows] = sprintf("%-40s %9s%s  %-8s %s", name,
                            fmt(med[name]) (u == "x" ? "" : " "), u,
                            op target, verdict(med[name], op, target))
}
END {
    for (k = 1; k <= names; k++) stat(byidx[k])
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "BENCH %s %s %s\n", nm, fmt(med[nm]), unit[nm]
    }
    ratio("ratio.pool.process.submit.multiprocessing",
          "pool.process.submit", "pool.process.submit.multiprocessing",
          ">=", 10)
    ratio("ratio.pool.process.map.multiprocessing", "pool.process.map",
          "pool.process.map.multiprocessing", ">=", 3)
    absolute("cpu.threads.speedup", ">=", 1.8)
    absolute("cpu.processes.speedup", ">=", 1.8)
    # The machine own ceiling in the same run: plain pthreads, no pool.
    absolute("cpu.pthreads.speedup", "", "")
    ratio("ratio.cpu.threads.pthreads", "cpu.threads.speedup",
          "cpu.pthreads.speedup", "", "")
    ratio("ratio.cpu.processes.pthreads", "cpu.processes.speedup",
          "cpu.pthreads.speedup", "", "")
    absolute("cpu.processes.speedup.python", "", "")
    # Python runs ~100x fewer items: per item is the fair comparison.
    ratio("ratio.cpu.item.python", "cpu.item.python", "cpu.item", "", "")
    print ""
    print "figure                                    median    target   verdict"
    for (k = 1; k <= nrows; k++) print rows[k]
    print ""
    print "spread over the pairs (min-max):"
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "  %-40s %s-%s %s (%d runs)\n", nm, fmt(lo[nm]),
               fmt(hi[nm]), unit[nm], cnt[nm]
    }
}' "$log"

echo "compare: pool-process $(( $(date +%s) - start )) s" >&2
exit $status
