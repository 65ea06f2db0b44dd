#!/bin/sh
# SPDX-License-Identifier: MIT
# The patch's pass-through cost (bench/preload_read.c): read(2) from a plain
# thread, plain libc against libjuggle_preload.so in LD_PRELOAD. Prints
# the instruction delta per call under callgrind (repeatable: two call
# counts, so start-up cancels out) and the medians of BENCH_PAIRS
# alternating runs (default 15) pinned to CPU 1, with their difference.
# Called by run.sh with the build dir.
#   bench/compare/run-preload.sh [build-dir]    (default build-release)
set -u

build=${1:-build-release}
bin=$build/bench/bench_preload_read
lib=$build/src/preload/libjuggle_preload.so.0
pairs=${BENCH_PAIRS:-15}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=15
if [ ! -x "$bin" ] || [ ! -f "$lib" ]; then
    echo "compare-preload: $bin or $lib not built (make bench)" >&2
    exit 1
fi
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
pin="taskset -c 1"
$pin true 2>/dev/null || pin=""

# ---- instructions per call (callgrind's total Ir, user space only) ----
ir() {  # ir PRELOAD CALLS
    env ${1:+LD_PRELOAD=$1} valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null "$bin" calls "$2" 2>&1 |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
if command -v valgrind >/dev/null 2>&1; then
    a1=$(ir "" 100000); a2=$(ir "" 200000)
    b1=$(ir "$lib" 100000); b2=$(ir "$lib" 200000)
    if [ -n "$a1" ] && [ -n "$a2" ] && [ -n "$b1" ] && [ -n "$b2" ]; then
        awk -v a1="$a1" -v a2="$a2" -v b1="$b1" -v b2="$b2" 'BEGIN {
            libc = (a2 - a1) / 100000; pre = (b2 - b1) / 100000
            printf "BENCH preload.read.instr.libc %.1f x\n", libc
            printf "BENCH preload.read.instr.patched %.1f x\n", pre
            printf "BENCH preload.read.instr.delta %.1f x\n", pre - libc
        }'
    else
        echo "compare-preload: callgrind gave no totals" >&2
    fi
else
    echo "compare-preload: skipped callgrind: no valgrind" >&2
fi

# ---- time per call, alternating runs ----
tmp=$(mktemp) || exit 1
i=0
while [ "$i" -lt "$pairs" ]; do
    $pin "$bin" | grep '^BENCH preload.read' >> "$tmp"
    LD_PRELOAD=$lib $pin "$bin" | grep '^BENCH preload.read' >> "$tmp"
    i=$((i + 1))
done
awk '
    { v[$2, ++n[$2]] = $3 }
    function med(k,   m, i, j, t, a) {
        m = n[k]
        for (i = 1; i <= m; i++) a[i] = v[k, i]
        for (i = 2; i <= m; i++) { t = a[i]; j = i - 1
            while (j > 0 && a[j] > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        l = med("preload.read.passthrough.libc")
        p = med("preload.read.passthrough.patched")
        printf "BENCH preload.read.passthrough.libc %.1f ns\n", l
        printf "BENCH preload.read.passthrough.patched %.1f ns\n", p
        printf "BENCH preload.read.passthrough.delta %.1f ns\n", p - l
        printf "BENCH preload.read.passthrough.ratio %.3f x\n", p / l
    }' "$tmp"
rm -f "$tmp"
