/* SPDX-License-Identifier: MIT */
/*
 * pool_thread.c - thread-pool throughput as BENCHMARKS.md defines it:
 * submit N trivial tasks back to back, then wait for every one; N / elapsed
 * in tasks/s. pool.thread.submit uses plain calls (jg_executor_call, the
 * analogue of ThreadPoolExecutor.submit(fn)); pool.thread.submit.task
 * goes through the task registry with an 8-byte input and result.
 *   BENCH_N: tasks per repetition (default 1,000,000).
 */
#include <juggle.h>
#include "bench.h"

static long n_tasks = 1000000;
static struct jg_executor *ex;
static struct jg_future **fs;

static void *trivial(void *arg)
{
    return arg;
}

static int echo8(const void *in, size_t n, struct jg_task_out *out)
{
    return jg_task_out_write(out, in, n);
}
JG_TASK("bench.echo8", echo8)

/* Wait for fs[0..n) in submission order and drop them. */
static void wait_all(long n)
{
    for (long i = 0; i < n; i++) {
        int rc = jg_future_result(fs[i], NULL, JG_FOREVER);
        if (rc < 0)
            bench_die("jg_future_result", rc);
        jg_future_unref(fs[i]);
    }
}

static double run_calls(void *arg)
{
    int64_t t0 = bench_now();

    (void)arg;
    for (long i = 0; i < n_tasks; i++) {
        int rc = jg_executor_call(ex, &fs[i], trivial, (void *)(intptr_t)i);
        if (rc < 0)
            bench_die("jg_executor_call", rc);
    }
    wait_all(n_tasks);
    return (double)n_tasks * 1e9 / (double)(bench_now() - t0);
}

static double run_tasks(void *arg)
{
    int64_t t0 = bench_now();

    (void)arg;
    for (long i = 0; i < n_tasks; i++) {
        uint64_t x = (uint64_t)i;
        int rc = jg_executor_submit(ex, &fs[i], "bench.echo8", &x, sizeof(x));
        if (rc < 0)
            bench_die("jg_executor_submit", rc);
    }
    wait_all(n_tasks);
    return (double)n_tasks * 1e9 / (double)(bench_now() - t0);
}

int main(void)
{
    const char *s = getenv("BENCH_N");
    int rc;

    if (s && atol(s) > 0)
        n_tasks = atol(s);
    fs = malloc((size_t)n_tasks * sizeof(*fs));
    if (!fs)
        bench_die("malloc", 0);
    /* Workers = CPUs (2 here), as ThreadPoolExecutor would be sized. */
    rc = jg_thread_pool_create(&ex, NULL);
    if (rc < 0)
        bench_die("jg_thread_pool_create", rc);
    bench_print("pool.thread.submit", bench_run(run_calls, NULL), "tasks/s");
    bench_print("pool.thread.submit.task", bench_run(run_tasks, NULL),
                "tasks/s");
    jg_executor_destroy(ex);
    free(fs);
    return 0;
}
