/* SPDX-License-Identifier: MIT */
/*
 * cpu.c - the seeds' CPU-bound case in C: for 20 inputs n_k = N + k, the
 * "sum of squares" s = s*31 + i*i over uint64_t (no closed form for the
 * compiler, no overflow question), sequentially, on a thread pool and on a
 * process pool (2 workers each, or BENCH_CPU_WORKERS). N is sized so the
 * sequential run takes about 2 s (BENCH_CPU_N overrides). Each repetition
 * runs the three approaches back to back and checks every result against
 * the sequential ones; medians of seconds and of per-repetition speed-ups.
 * Plain pthreads pulling inputs from a counter (cpu.pthreads) show what the
 * machine itself allows: on a shared VM the second core may not be free.
 */
#include <juggle.h>
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

#define INPUTS 20

/* The work; noinline and volatile-free, so each approach runs this code. */
static __attribute__((noinline)) uint64_t sumsq(uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s = s * 31 + i * i;
    return s;
}

static int sumsq_task(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t x;
    if (n != sizeof(x))
        return -EINVAL;
    memcpy(&x, in, sizeof(x));
    x = sumsq(x);
    return jg_task_out_write(out, &x, sizeof(x));
}
JG_TASK("bench.sumsq", sumsq_task)

static uint64_t inputs[INPUTS], want[INPUTS];

static double sequential(void)
{
    int64_t t0 = bench_now();
    for (int k = 0; k < INPUTS; k++)
        want[k] = sumsq(inputs[k]);
    return (double)(bench_now() - t0) / 1e9;
}

/* Submit the 20 inputs, wait for all, check them: seconds. */
static double on_pool(struct jg_executor *ex, const char *what)
{
    struct jg_future *fs[INPUTS];
    int64_t t0 = bench_now();

    for (int k = 0; k < INPUTS; k++) {
        int rc = jg_executor_submit(ex, &fs[k], "bench.sumsq", &inputs[k],
                                    8);
        if (rc < 0)
            bench_die(what, rc);
    }
    uint64_t got[INPUTS];
    for (int k = 0; k < INPUTS; k++) {
        const void *p;
        size_t n;
        int rc = jg_future_bytes(fs[k], &p, &n, JG_FOREVER);
        if (rc < 0 || n != 8)
            bench_die(what, rc);
        memcpy(&got[k], p, 8);
        jg_future_unref(fs[k]);
    }
    double s = (double)(bench_now() - t0) / 1e9;
    for (int k = 0; k < INPUTS; k++)
        if (got[k] != want[k]) {
            fprintf(stderr, "bench cpu: %s: input %d: %llu != %llu\n", what,
                    k, (unsigned long long)got[k],
                    (unsigned long long)want[k]);
            exit(1);
        }
    return s;
}

static _Atomic int next_input;
static uint64_t raw_got[INPUTS];

static void *raw_worker(void *arg)
{
    int k;
    (void)arg;
    while ((k = atomic_fetch_add(&next_input, 1)) < INPUTS)
        raw_got[k] = sumsq(inputs[k]);
    return NULL;
}

/* The machine's own limit: plain pthreads, no pool. */
static double raw_threads(int workers)
{
    pthread_t th[64];
    int64_t t0 = bench_now();

    atomic_store(&next_input, 0);
    for (int i = 0; i < workers && i < 64; i++)
        if (pthread_create(&th[i], NULL, raw_worker, NULL) != 0)
            bench_die("pthread_create", i);
    for (int i = 0; i < workers && i < 64; i++)
        pthread_join(th[i], NULL);
    double s = (double)(bench_now() - t0) / 1e9;
    for (int k = 0; k < INPUTS; k++)
        if (raw_got[k] != want[k])
            bench_die("pthreads: wrong result", k);
    return s;
}

int main(int argc, char **argv)
{
    struct jg_executor *tp, *pp;
    int rc = jg_main_init(argc, argv);
    const char *s;

    if (rc < 0)
        bench_die("jg_main_init", rc);
    int workers = (s = getenv("BENCH_CPU_WORKERS")) ? atoi(s) : 2;
    uint64_t n = (s = getenv("BENCH_CPU_N")) ? strtoull(s, NULL, 10) : 0;
    if (n == 0) {
        /* Calibrate: 20 inputs of n take about 2 s in total. */
        uint64_t probe = 20000000;
        int64_t t0 = bench_now();
        volatile uint64_t sink = sumsq(probe);
        (void)sink;
        double per = (double)(bench_now() - t0) / (double)probe;
        n = (uint64_t)(2e9 / (per * INPUTS));
    }
    for (int k = 0; k < INPUTS; k++)
        inputs[k] = n + (uint64_t)k;

    struct jg_thread_pool_opts to = { .workers = workers };
    struct jg_process_pool_opts po = { .workers = workers };
    if ((rc = jg_process_pool_create(&pp, &po)) < 0)
        bench_die("jg_process_pool_create", rc);
    if ((rc = jg_thread_pool_create(&tp, &to)) < 0)
        bench_die("jg_thread_pool_create", rc);

    int reps = bench_reps();
    double seq[BENCH_MAX_REPS], thr[BENCH_MAX_REPS], prc[BENCH_MAX_REPS];
    double su_t[BENCH_MAX_REPS], su_p[BENCH_MAX_REPS];
    double raw[BENCH_MAX_REPS], su_r[BENCH_MAX_REPS];
    for (int r = 0; r < reps; r++) {
        seq[r] = sequential();
        thr[r] = on_pool(tp, "threads");
        prc[r] = on_pool(pp, "processes");
        raw[r] = raw_threads(workers);
        su_r[r] = seq[r] / raw[r];
        su_t[r] = seq[r] / thr[r];
        su_p[r] = seq[r] / prc[r];
    }
    double ms = bench_median(seq, reps);
    bench_print("cpu.sequential", ms, "s");
    bench_print("cpu.threads", bench_median(thr, reps), "s");
    bench_print("cpu.processes", bench_median(prc, reps), "s");
    bench_print("cpu.threads.speedup", bench_median(su_t, reps), "x");
    bench_print("cpu.processes.speedup", bench_median(su_p, reps), "x");
    bench_print("cpu.pthreads", bench_median(raw, reps), "s");
    bench_print("cpu.pthreads.speedup", bench_median(su_r, reps), "x");
    /* Per item, to set beside Python's (which runs far fewer items). */
    bench_print("cpu.item", ms * 1e9 / ((double)n * INPUTS), "ns");
    jg_executor_destroy(tp);
    jg_executor_destroy(pp);
    return 0;
}
