#!/bin/sh
# SPDX-License-Identifier: MIT
# The HTTP server benchmark: examples/http_server (one hub) beside our raw
# epoll server (bench/compare/http_epoll.c) and Go net/http
# (bench/compare/http_go.go, GOMAXPROCS=1). Each server runs pinned to CPU 1,
# wrk -t1 on CPU 0 at 100 and 1,000 keep-alive connections, BENCH_PAIRS
# rounds (default 9; ours first in each, then the anchors). For each server
# and concurrency it prints req/s, p50 and p99 latency (wrk --latency), and
# req per server CPU-second (requests / the server's utime+stime over the
# run, from /proc/<pid>/stat), as medians over the rounds, then the ratios
# and whether each target is met. Called by bench/compare/run.sh with the
# build dir as $1.
#   bench/compare/run-http.sh [build-dir]      (default build-release)
# BENCH_HTTP_SECS: seconds per wrk run (default 5); BENCH_HTTP_CONNS: the
# concurrencies (default "100 1000").
set -u

build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
ours=$build/examples/http_server
out=$build/bench/compare
pairs=${BENCH_PAIRS:-9}
[ "$pairs" -ge 1 ] 2>/dev/null || pairs=9
secs=${BENCH_HTTP_SECS:-5}
conns=${BENCH_HTTP_CONNS:-100 1000}
start=$(date +%s)

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)         # go wants absolute cache paths
if [ ! -x "$ours" ]; then
    echo "compare-http: skipped: $ours not built" >&2
    exit 0
fi
if ! command -v wrk >/dev/null 2>&1; then
    echo "compare-http: skipped: no wrk (apt-get install wrk)" >&2
    exit 0
fi
spin="taskset -c 1"
lpin="taskset -c 0"
if ! $spin true 2>/dev/null || ! $lpin true 2>/dev/null; then
    echo "compare-http: taskset failed; running unpinned" >&2
    spin=""
    lpin=""
fi
# 1,000 connections need more than 1,024 fds in wrk and in the servers.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ---- build the anchors; a missing toolchain skips its anchor, loudly ----

stale() {
    [ ! -x "$1" ] || [ "$2" -nt "$1" ]
}
servers="ours"
cc=${CC:-cc}
if stale "$out/http_epoll" "$here/http_epoll.c"; then
    $cc -O2 -o "$out/http_epoll" "$here/http_epoll.c" ||
        echo "compare-http: skipped raw epoll: build failed" >&2
fi
[ -x "$out/http_epoll" ] && servers="$servers epoll"
if ! command -v go >/dev/null 2>&1; then
    echo "compare-http: skipped Go: no go toolchain (golang-go)" >&2
else
    if stale "$out/http_go" "$here/http_go.go"; then
        GO111MODULE=off GOFLAGS= GOCACHE="$out/go-cache" \
        GOPATH="$out/go-path" \
            go build -o "$out/http_go" "$here/http_go.go" ||
            echo "compare-http: skipped Go: build failed" >&2
    fi
    [ -x "$out/http_go" ] && servers="$servers go"
fi
echo "compare-http: servers: $servers; conns: $conns; $pairs rounds of" \
     "${secs}s" >&2

log=$out/http.log
: >"$log"

# cpu_ticks PID: utime + stime of PID (all its threads), in clock ticks.
cpu_ticks() {
    # Fields after the ")" of the command name: utime is the 12th, stime
    # the 13th (fields 14 and 15 of proc(5)).
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# bench ROUND NAME SUFFIX PROG [ENV...]: start PROG (env exec's taskset,
# which exec's the server: $! is the server's PID), load it at each
# concurrency, record BENCH lines, stop it by its PID.
bench() {
    r=$1
    name=$2
    sfx=$3
    prog=$4
    shift 4
    env "$@" $spin "$prog" 0 >"$out/http-server.out" \
        2>"$out/http-server.err" &
    pid=$!
    port=""
    tries=0
    while [ $tries -lt 50 ] && [ -z "$port" ]; do
        sleep 0.1
        port=$(awk '/^listening on port/ { print $4 }' "$out/http-server.out")
        tries=$((tries + 1))
    done
    if [ -z "$port" ]; then
        echo "compare-http: $name did not start:" >&2
        tail -3 "$out/http-server.err" >&2
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 0
    fi
    url=http://127.0.0.1:$port/
    # Warm-up: connections, page cache, Go's heap.
    $lpin wrk -t1 -c100 -d1s "$url" >/dev/null 2>&1
    for c in $conns; do
        t0=$(cpu_ticks "$pid")
        $lpin wrk -t1 -c"$c" -d"${secs}s" --latency "$url" \
            >"$out/http-wrk.out" 2>&1
        t1=$(cpu_ticks "$pid")
        awk -v r="$r" -v c="$c" -v sfx="$sfx" -v cpu="$((t1 - t0))" \
            -v tck="$tck" '
        function ns(v) {    # wrk prints 465.00us, 1.06ms, 1.20s
            if (v ~ /us$/) return v * 1e3
            if (v ~ /ms$/) return v * 1e6
            if (v ~ /s$/) return v * 1e9
            return v
        }
        $1 == "50%" { p50 = ns($2) }
        $1 == "99%" { p99 = ns($2) }
        / requests in / { reqs = $1; t = $4; sub(/s,?$/, "", t) }
        $1 == "Requests/sec:" { rps = $2 }
        /Socket errors/ { err = $0 }
        END {
            if (rps == "") exit
            n = "http.c" c
            print r, n ".rps" sfx, rps, "req/s"
            print r, n ".p50" sfx, p50, "ns"
            print r, n ".p99" sfx, p99, "ns"
            if (cpu > 0 && t > 0) {
                print r, n ".percpu" sfx, reqs / (cpu / tck), "req/s"
                print r, n ".share" sfx, (cpu / tck) / t, "x"
            }
            if (err != "") print "compare-http: " c ": " err > "/dev/stderr"
        }' "$out/http-wrk.out" >>"$log"
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

has() {
    case " $servers " in *" $1 "*) return 0 ;; esac
    return 1
}

round=1
while [ $round -le "$pairs" ]; do
    echo "compare-http: round $round/$pairs" >&2
    bench $round ours "" "$ours"
    has epoll && bench $round epoll .epoll "$out/http_epoll"
    has go && bench $round go .go "$out/http_go" GOMAXPROCS=1
    round=$((round + 1))
done

awk -v pairs="$pairs" -v conns="$conns" '
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
# ratio NAME NUM DEN TARGET: per-round NUM/DEN, their median, verdict.
function ratio(name, num, den, target,    n, p, a, r, verdict) {
    n = 0
    for (p = 1; p <= pairs; p++)
        if ((num, p) in val && (den, p) in val && val[den, p] > 0)
            a[++n] = val[num, p] / val[den, p]
    if (n == 0) {
        rows[++nrows] = sprintf("%-34s %10s  %-8s %s", name, "n/a",
                                ">=" target, "not measured")
        return
    }
    r = median(a, n)
    printf "BENCH %s %s x\n", name, fmt(r)
    verdict = r >= target ? "met" : "not met"
    # 1.0x counts as met within the anchor own spread (BENCHMARKS.md).
    if (verdict != "met" && target == 1 && med[num] >= lo[den])
        verdict = "met (within anchor spread " fmt(lo[den]) "-" \
                  fmt(hi[den]) ")"
    rows[++nrows] = sprintf("%-34s %9sx  %-8s %s", name, fmt(r),
                            ">=" target, verdict)
}
END {
    for (k = 1; k <= names; k++) stat(byidx[k])
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "BENCH %s %s %s\n", nm, fmt(med[nm]), unit[nm]
    }
    nc = split(conns, cs, " ")
    for (k = 1; k <= nc; k++) {
        b = "http.c" cs[k] ".percpu"
        ratio("ratio." b ".epoll", b, b ".epoll", 1)
        ratio("ratio." b ".go", b, b ".go", 2)
    }
    print ""
    printf "%-7s %-6s %10s %10s %10s %12s %6s\n", "server", "conns",
           "req/s", "p50 us", "p99 us", "req/CPU-s", "CPU"
    split("ours epoll go", sv, " ")
    for (k = 1; k <= nc; k++)
        for (s = 1; s <= 3; s++) {
            sfx = sv[s] == "ours" ? "" : "." sv[s]
            b = "http.c" cs[k]
            if (med[b ".rps" sfx] == "") continue
            printf "%-7s %-6s %10s %10s %10s %12s %5.0f%%\n", sv[s], cs[k],
                   fmt(med[b ".rps" sfx]), fmt(med[b ".p50" sfx] / 1e3),
                   fmt(med[b ".p99" sfx] / 1e3), fmt(med[b ".percpu" sfx]),
                   100 * med[b ".share" sfx]
        }
    print ""
    print "figure                              median    target   verdict"
    for (k = 1; k <= nrows; k++) print rows[k]
    print ""
    print "spread over the rounds (min-max):"
    for (k = 1; k <= names; k++) {
        nm = byidx[k]
        printf "  %-34s %s-%s %s (%d runs)\n", nm, fmt(lo[nm]),
               fmt(hi[nm]), unit[nm], cnt[nm]
    }
}' "$log"

echo "compare-http: $(( $(date +%s) - start )) s" >&2
