# SPDX-License-Identifier: MIT
# The anchor of bench/cpu.c: the seeds' CPU-bound case in Python, with the
# same arithmetic (s = s*31 + i*i, kept to 64 bits) over 20 inputs N + k,
# sequentially, on a ThreadPoolExecutor and on a multiprocessing.Pool (2
# workers, or BENCH_CPU_WORKERS). Python runs about 100x slower per item
# than C, so N is scaled down (sequential ~1 s; BENCH_CPU_PY_N overrides):
# compare speed-ups, and per-item times (cpu.item.python, ns).
# BENCH_REPS timed repetitions (default 5), each checked against sequential.
import multiprocessing as mp
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

MASK = (1 << 64) - 1


def sumsq(n):
    s = 0
    for i in range(n):
        s = (s * 31 + i * i) & MASK
    return s


def show(name, v, unit):
    prec = 2 if v < 10 else 1 if v < 1000 else 0
    print("BENCH %s %.*f %s" % (name, prec, v, unit), flush=True)


def main():
    reps = max(5, int(os.environ.get("BENCH_REPS", "5")))
    workers = int(os.environ.get("BENCH_CPU_WORKERS", "2"))
    n = int(os.environ.get("BENCH_CPU_PY_N", "0"))
    if n == 0:
        probe = 200000
        t0 = time.perf_counter()
        sumsq(probe)
        per = (time.perf_counter() - t0) / probe
        n = int(1.0 / (per * 20))
    inputs = [n + k for k in range(20)]
    seq, thr, prc, su_t, su_p = [], [], [], [], []
    with ThreadPoolExecutor(workers) as tp, mp.Pool(workers) as pp:
        for _ in range(reps):
            t0 = time.perf_counter()
            want = [sumsq(x) for x in inputs]
            t1 = time.perf_counter()
            got_t = list(tp.map(sumsq, inputs))
            t2 = time.perf_counter()
            got_p = pp.map(sumsq, inputs, chunksize=1)
            t3 = time.perf_counter()
            if got_t != want or got_p != want:
                raise SystemExit("cpu.py: results differ from sequential")
            seq.append(t1 - t0)
            thr.append(t2 - t1)
            prc.append(t3 - t2)
            su_t.append((t1 - t0) / (t2 - t1))
            su_p.append((t1 - t0) / (t3 - t2))
    ms = statistics.median(seq)
    show("cpu.sequential.python", ms, "s")
    show("cpu.threads.python", statistics.median(thr), "s")
    show("cpu.processes.python", statistics.median(prc), "s")
    show("cpu.threads.speedup.python", statistics.median(su_t), "x")
    show("cpu.processes.speedup.python", statistics.median(su_p), "x")
    show("cpu.item.python", ms * 1e9 / (n * 20), "ns")


if __name__ == "__main__":
    main()
