#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the anchors (bench/compare: boost.context, glibc swapcontext, Go),
# then runs ours and theirs alternately, BENCH_PAIRS pairs (default 9; in
# each pair ours first, then the anchor, all pinned to CPU 1), and prints
# the medians over the pairs, the ratios and whether each target is met.
#   bench/compare/run.sh [build-dir]    (default build-release;
#                                        make bench-compare)
# BENCH_REPS: timed repetitions inside each program run (default here 5).
set -u

build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
ours=$build/bench
out=$build/bench/compare
pairs=${BENCH_PAIRS:-9}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=9
BENCH_REPS=${BENCH_REPS:-5}
export BENCH_REPS
start=$(date +%s)

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)         # go wants absolute cache paths
pin="taskset -c 1"
if ! $pin true 2>/dev/null; then
    echo "compare: taskset -c 1 failed; running unpinned" >&2
    pin=""
fi

# ---- build the anchors; a missing toolchain skips its anchor, loudly ----

# stale OUT SRC: true when OUT is missing or older than SRC.
stale() {
    [ ! -x "$1" ] || [ "$2" -nt "$1" ] || [ "$here/../bench.h" -nt "$1" ]
}

anchors=""
cc=${CC:-cc}
if stale "$out/swapcontext" "$here/swapcontext.c"; then
    $cc -O2 -o "$out/swapcontext" "$here/swapcontext.c" ||
        echo "compare: skipped swapcontext: build failed" >&2
fi
[ -x "$out/swapcontext" ] && anchors="$anchors swapcontext"

if ! command -v g++ >/dev/null 2>&1; then
    echo "compare: skipped boost.context: no g++" >&2
elif [ ! -f /usr/include/boost/context/continuation.hpp ]; then
    echo "compare: skipped boost.context: no libboost-context-dev" >&2
else
    if stale "$out/callcc" "$here/callcc.cpp"; then
        g++ -O2 -o "$out/callcc" "$here/callcc.cpp" -lboost_context ||
            echo "compare: skipped boost.context: build failed" >&2
    fi
    [ -x "$out/callcc" ] && anchors="$anchors callcc"
fi

if ! command -v go >/dev/null 2>&1; then
    echo "compare: skipped Go: no go toolchain (golang-go)" >&2
else
    # Standard library only: no modules, no network, caches in the build.
    for p in spawn mem pingpong; do
        if stale "$out/${p}_go" "$here/$p.go"; then
            GO111MODULE=off GOFLAGS= GOCACHE="$out/go-cache" \
            GOPATH="$out/go-path" \
                go build -o "$out/${p}_go" "$here/$p.go" ||
                echo "compare: skipped Go $p: build failed" >&2
        fi
        [ -x "$out/${p}_go" ] && anchors="$anchors ${p}_go"
    done
fi
echo "compare: anchors:$anchors; $pairs pairs, BENCH_REPS=$BENCH_REPS" >&2

# ---- alternate: ours, then the anchor, pair after pair ----

log=$out/compare.log
: >"$log"

# run PAIR PROG [ENV...]: run PROG pinned, record its BENCH lines.
run() {
    p=$1
    prog=$2
    shift 2
    if [ ! -x "$prog" ]; then
        [ "$p" = 1 ] && echo "compare: skipped $prog: not built" >&2
        return 0
    fi
    env "$@" $pin "$prog" >"$out/last.out" 2>"$out/last.err" || {
        echo "compare: $(basename "$prog") failed (pair $p):" >&2
        tail -3 "$out/last.err" >&2
    }
    awk -v p="$p" '$1 == "BENCH" { print p, $2, $3, $4 }' \
        "$out/last.out" >>"$log"
}

has() {
    case " $anchors " in *" $1 "*) return 0 ;; esac
    return 1
}

i=1
while [ $i -le "$pairs" ]; do
    echo "compare: pair $i/$pairs" >&2
    run $i "$ours/bench_switch"
    has callcc && run $i "$out/callcc"
    has swapcontext && run $i "$out/swapcontext"
    run $i "$ours/bench_spawn"
    has spawn_go && run $i "$out/spawn_go" GOMAXPROCS=1
    run $i "$ours/bench_mem"
    has mem_go && run $i "$out/mem_go" GOMAXPROCS=1
    run $i "$ours/bench_pingpong"
    has pingpong_go && run $i "$out/pingpong_go" GOMAXPROCS=1
    i=$((i + 1))
done

# ---- medians over the pairs, ratios per pair (then their median) ----

awk -v pairs="$pairs" '
function fmt(v) {
    if (v < 10) return sprintf("%.2f", v)
    if (v < 1000) return sprintf("%.1f", v)
    return sprintf("%.0f", v)
}
# Median of the values a[1..n] (sorted in place).
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
    val[$2, $1] = $3; unit[$2] = $4; seen[$2] = 1
    if (!($2 in order)) { order[$2] = ++names; byidx[names] = $2 }
}
function stat(name,    n, p, a) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((name, p) in val) a[++n] = val[name, p]
    med[name] = median(a, n)
    lo[name] = n ? a[1] : ""; hi[name] = n ? a[n] : ""; cnt[name] = n
}
# ratio NAME NUM DEN OP TARGET: per-pair NUM/DEN, median, verdict.
function ratio(name, num, den, op, target,    n, p, a, r, verdict) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((num, p) in val && (den, p) in val && val[den, p] > 0)
            a[++n] = val[num, p] / val[den, p]
    if (n == 0) {
        rows[++nrows] = sprintf("%-34s %10s  %-8s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    r = median(a, n)
    printf "BENCH %s %s x\n", name, fmt(r)
    verdict = "not met"
    if (op == "<=" && r <= target) verdict = "met"
    if (op == ">=" && r >= target) verdict = "met"
    # 1.0x counts as met within the anchor own spread (BENCHMARKS.md).
    if (verdict != "met" && target == 1 && op == "<=" && med[num] <= hi[den])
        verdict = "met (within anchor spread " fmt(lo[den]) "-" \
                  fmt(hi[den]) ")"
    if (op == "") verdict = "(information)"
    rows[++nrows] = sprintf("%-34s %9sx  %-8s %s", name, fmt(r),
                            op target, verdict)
}
# absolute NAME OP TARGET: a figure against a fixed bound.
function absolute(name, op, target, u,    verdict) {
    if (!(name in med) || med[name] == "") {
        rows[++nrows] = sprintf("%-34s %10s  %-8s %s", name, "n/a",
                                op target, "not measured")
        return
    }
    verdict = (med[name] <= target) ? "met" : "not met"
    rows[++nrows] = sprintf("%-34s %9s%s  %-8s %s", name,
                            fmt(med[name]) (u == "x" ? "" : " "), u,
                            op target, verdict)
}
END {
    for (k = 1; k <= names; k++) stat(byidx[k])
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "BENCH %s %s %s\n", nm, fmt(med[nm]), unit[nm]
    }
    ratio("ratio.switch.roundtrip.callcc", "switch.roundtrip",
          "switch.roundtrip.callcc", "<=", 1)
    ratio("ratio.switch.roundtrip.fcontext", "switch.roundtrip",
          "switch.roundtrip.fcontext", "", "")
    ratio("ratio.switch.swapcontext", "switch.roundtrip.swapcontext",
          "switch.roundtrip", ">=", 20)
    ratio("ratio.spawn.join.go", "spawn.join", "spawn.join.go",
          "<=", 0.167)
    ratio("ratio.spawn.join.all.go", "spawn.join.all", "spawn.join.all.go",
          "<=", 0.167)
    ratio("ratio.spawn.join.serial.go", "spawn.join.serial",
          "spawn.join.serial.go", "", "")
    absolute("mem.idle.dedicated", "<=", 8704, "B")
    absolute("mem.idle.sliced", "<=", 640, "B")
    ratio("ratio.mem.idle.sliced.go", "mem.idle.sliced", "mem.idle.go",
          "<=", 0.25)
    # Block + wake against the raw switch, both measured in one process.
    absolute("pingpong.ratio", "<=", 3, "x")
    ratio("ratio.pingpong.go", "pingpong.hub", "pingpong.go", "", "")
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

echo "compare: $(( $(date +%s) - start )) s" >&2

# ---- the other layers' comparisons, each in its own script --------------
for s in "$here"/run-*.sh; do
    [ -f "$s" ] || continue
    sh "$s" "$build" || status=1
done
exit ${status:-0}
