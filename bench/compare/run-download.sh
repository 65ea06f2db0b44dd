#!/bin/sh
# SPDX-License-Identifier: MIT
# The seeds' I/O case beside gevent: one bench_download --serve process
# pinned to CPU 0 serves both; bench_download --port (ours, under the
# preload library) and bench/compare/download.py (gevent + monkey.patch_all)
# run alternately on CPU 1, BENCH_PAIRS pairs (default 9; ours first), then
# the medians over the pairs, the ratio and whether the target is met.
#   bench/compare/run-download.sh [build-dir]     (default build-release)
# BENCH_REPS: repetitions inside each program run (default here 5).
set -u

build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
ours=$build/bench/bench_download
out=$build/bench/compare
pairs=${BENCH_PAIRS:-9}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=9
BENCH_REPS=${BENCH_REPS:-5}
export BENCH_REPS

mkdir -p "$out" || exit 1
if [ ! -x "$ours" ]; then
    echo "compare-download: skipped: $ours not built" >&2
    exit 0
fi
# Debian's gevent belongs to Debian's python3, not to another one in PATH.
py=""
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import gevent' 2>/dev/null; then
        py=$p
        break
    fi
done
[ -n "$py" ] || echo "compare-download: skipped gevent: no python3-gevent" >&2
pin0="taskset -c 0"
pin1="taskset -c 1"
if ! $pin1 true 2>/dev/null; then
    echo "compare-download: taskset failed; running unpinned" >&2
    pin0=""
    pin1=""
fi

# The server lives while fd 3 (its stdin, a FIFO) is open.
fifo=$out/dl.fifo
rm -f "$fifo" "$out/dl.port"
mkfifo "$fifo" || exit 1
$pin0 "$ours" --serve <"$fifo" >"$out/dl.port" &
server=$!
exec 3>"$fifo"
i=0
while [ ! -s "$out/dl.port" ] && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
port=$(cat "$out/dl.port")
stop() {
    exec 3>&-
    wait "$server" 2>/dev/null
    rm -f "$fifo" "$out/dl.port"
}
if [ -z "$port" ]; then
    echo "compare-download: the server did not start" >&2
    kill "$server" 2>/dev/null
    stop
    exit 1
fi

log=$out/download.log
: >"$log"
run() {
    p=$1
    shift
    "$@" >"$out/dl-last.out" 2>"$out/dl-last.err" || {
        echo "compare-download: $* failed (pair $p):" >&2
        tail -3 "$out/dl-last.err" >&2
    }
    awk -v p="$p" '$1 == "BENCH" { print p, $2, $3, $4 }' \
        "$out/dl-last.out" >>"$log"
}

i=1
while [ $i -le "$pairs" ]; do
    echo "compare-download: pair $i/$pairs" >&2
    run $i $pin1 "$ours" --port "$port"
    [ -n "$py" ] && run $i $pin1 "$py" "$here/download.py" "$port"
    i=$((i + 1))
done
stop

awk '
function median(a, n,    i, j, x) {
    for (i = 2; i <= n; i++) {
        x = a[i]
        for (j = i - 1; j >= 1 && a[j] > x; j--)
            a[j + 1] = a[j]
        a[j + 1] = x
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ v[$2, ++n[$2]] = $3; val[$2, $1] = $3; pairs[$1] = 1 }
END {
    split("io.download.preload io.download.gevent", names, " ")
    for (k = 1; k <= 2; k++) {
        nm = names[k]
        if (!n[nm]) continue
        for (i = 1; i <= n[nm]; i++) a[i] = v[nm, i]
        m[nm] = median(a, n[nm])
        printf "BENCH %s %.3f s\n", nm, m[nm]
    }
    r = 0
    for (p in pairs)
        if ((("io.download.preload", p) in val) &&
            (("io.download.gevent", p) in val))
            b[++r] = val["io.download.preload", p] / \
                     val["io.download.gevent", p]
    if (r) printf "BENCH ratio.io.download.gevent %.2f x\n", median(b, r)
    if ("io.download.preload" in m)
        printf "io.download.preload %.3f s  target <= 0.060 s: %s\n",
            m["io.download.preload"],
            m["io.download.preload"] <= 0.060 ? "met" : "not met"
}' "$log"
