# SPDX-License-Identifier: MIT
# The thread-pool anchor: Python's concurrent.futures.ThreadPoolExecutor
# doing what bench/pool_thread.c does - submit N trivial tasks back to back,
# then wait for every one - as the median of BENCH_REPS repetitions after
# one warm-up. N defaults to 200,000 (the rate is per task, so it compares
# with our 1,000,000; a million Python submissions take too long per run).
#   BENCH pool.thread.submit.python <tasks/s> tasks/s
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor


def trivial(x):
    return x


def once(ex, n):
    t0 = time.perf_counter()
    fs = [ex.submit(trivial, i) for i in range(n)]
    for f in fs:
        f.result()
    return n / (time.perf_counter() - t0)


def main():
    n = int(os.environ.get("BENCH_PY_N", "200000"))
    reps = max(5, min(99, int(os.environ.get("BENCH_REPS", "9") or 9)))
    # Workers = CPUs, as bench_pool_thread sizes its pool.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as ex:
        once(ex, n)
        rates = [once(ex, n) for _ in range(reps)]
    v = statistics.median(rates)
    print("BENCH pool.thread.submit.python %.0f tasks/s" % v, flush=True)


if __name__ == "__main__":
    main()
