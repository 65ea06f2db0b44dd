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
. "$here/lib.sh"
ours=$build/bench/bench_pool_thread
cmp_init compare-pool-thread 9
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

i=1
while [ $i -le "$pairs" ]; do
    echo "compare-pool-thread: pair $i/$pairs" >&2
    cmp_run $i "$ours"
    [ -n "$py" ] && cmp_run $i $py "$here/pool_thread.py"
    i=$((i + 1))
done

cmp_report '
    stat_all()
    absolute("pool.thread.submit", ">=", 2000000)
    absolute("pool.thread.submit.task", ">=", 2000000)
    ratio("ratio.pool.thread.submit.python", "pool.thread.submit",
          "pool.thread.submit.python", "", "")
    report()'
cmp_done
