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
. "$here/lib.sh"
ours=$build/bench
cmp_init compare-pool-process 3 "${BENCH_PAIRS_POOL_PROCESS:-}"
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

# run PAIR PROG...: run it pinned, record its BENCH lines.
run() {
    if [ ! -x "$2" ] && [ "$2" != "$py" ]; then
        [ "$1" = 1 ] && echo "compare: skipped $2: not built" >&2
        return 0
    fi
    p=$1
    shift
    cmp_run "$p" $pin "$@"
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

cmp_report '
    stat_all()
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
    report()'
cmp_done
exit $cmp_status
