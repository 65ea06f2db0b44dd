#!/bin/sh
# SPDX-License-Identifier: MIT
# Did a change make anything slower? Runs the benchmarks of two Release
# builds alternately - the previous version (the anchor) first, then the
# new one, program by program, BENCH_PAIRS pairs (default 9), pinned to
# CPU 1 - and prints for every figure both medians, the previous version's
# spread over the pairs, and whether the new median lies within it or
# below (BENCHMARKS.md: a 1.0x target counts as met within the anchor's
# own spread). Lower is better for every figure these programs print.
#   bench/compare/versus.sh OLD_BUILD NEW_BUILD
# OLD_BUILD is a Release build of the previous commit, e.g.
#   git worktree add /tmp/old COMMIT
#   cmake -S /tmp/old -B /tmp/old/b -DCMAKE_BUILD_TYPE=Release
#   cmake --build /tmp/old/b
set -u

[ $# -eq 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD" >&2; exit 2; }
old=$1
build=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cmp_init compare-versus 9
pin="taskset -c 1"
if ! $pin true 2>/dev/null; then
    echo "compare-versus: taskset -c 1 failed; running unpinned" >&2
    pin=""
fi
progs="bench_switch bench_spawn bench_mem bench_pingpong bench_sync"
for p in $progs; do
    for b in "$old" "$build"; do
        [ -x "$b/bench/$p" ] || {
            echo "compare-versus: $b/bench/$p not built" >&2; exit 1; }
    done
done
echo "compare-versus: $pairs pairs, BENCH_REPS=$BENCH_REPS" >&2

newlog=$log
oldlog=$out/compare-versus-old.log
: >"$oldlog"
i=1
while [ $i -le "$pairs" ]; do
    echo "compare-versus: pair $i/$pairs" >&2
    for p in $progs; do
        log=$oldlog
        cmp_run $i $pin "$old/bench/$p"
        log=$newlog
        cmp_run $i $pin "$build/bench/$p"
    done
    i=$((i + 1))
done
# The previous version's figures go in as "old.<name>".
awk '{ $2 = "old." $2; print }' "$oldlog" >>"$log"

cmp_report '
    for (k = 1; k <= names; k++) stat(byidx[k])
    printf "%-28s %10s %21s %10s %7s  %s\n", "figure", "previous",
           "(spread)", "new", "new/old", "verdict"
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        # Ratios ("x") are information, not times: skipped.
        if (nm ~ /^old\./ || !(("old." nm) in med) || unit[nm] == "x")
            continue
        o = "old." nm
        v = med[nm] < lo[o] ? "faster than the previous spread" : \
            med[nm] <= hi[o] ? "within the previous spread" : \
            "SLOWER: above the previous spread"
        if (v ~ /^SLOWER/) slower++
        r = (med[o] > 0) ? med[nm] / med[o] : 0
        printf "%-28s %10s %10s-%-10s %10s %6.3fx  %s\n", nm, fmt(med[o]),
               fmt(lo[o]), fmt(hi[o]), fmt(med[nm]), r, v
        printf "BENCH versus.%s %.3f x\n", nm, r
    }
    printf "%d figure(s) above the previous spread\n", slower'
cmp_done
exit $cmp_status
