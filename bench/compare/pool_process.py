# SPDX-License-Identifier: MIT
# The anchor of bench/pool_process.c: Python's multiprocessing.Pool (one
# worker per CPU) doing the same work through its public API.
#   pool.process.submit.multiprocessing: Pool.map(chunksize=1) over
#     BENCH_PP_PY_TASKS trivial tasks (default 100k: Python is ~10x slower
#     per task, a rate does not depend on the count), tasks/s;
#   pool.process.map.multiprocessing: Pool.map with its default chunks over
#     BENCH_PP_ITEMS items (default 10M, as ours), items/s.
# One warm-up, then BENCH_REPS timed runs (default 5); the median is printed.
import multiprocessing as mp
import os
import statistics
import time


def sq(x):
    return x * x


def rate(fn, n, reps):
    fn()
    vals = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        vals.append(n / (time.perf_counter() - t0))
    return statistics.median(vals)


def show(name, v):
    print("BENCH %s %.0f tasks/s" % (name, v), flush=True)


def main():
    reps = max(5, int(os.environ.get("BENCH_REPS", "5")))
    n_sub = int(os.environ.get("BENCH_PP_PY_TASKS", "100000"))
    n_map = int(os.environ.get("BENCH_PP_ITEMS", "10000000"))
    want_sub = [x * x for x in range(n_sub)]
    with mp.Pool(os.cpu_count()) as pool:
        def submit():
            if pool.map(sq, range(n_sub), chunksize=1) != want_sub:
                raise SystemExit("wrong results")
        show("pool.process.submit.multiprocessing", rate(submit, n_sub, reps))
        del want_sub
        want_map = [x * x for x in range(n_map)]

        def bigmap():
            if pool.map(sq, range(n_map)) != want_map:
                raise SystemExit("wrong results")
        show("pool.process.map.multiprocessing", rate(bigmap, n_map, reps))


if __name__ == "__main__":
    main()
