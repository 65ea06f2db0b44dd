/* SPDX-License-Identifier: MIT */
/*
 * pool_process.c - the process pool's throughput (workers = CPUs):
 * pool.process.submit: one trivial task per submit, N submitted back to
 * back, then all waited for (tasks/s; N = BENCH_PP_TASKS, default 1M);
 * pool.process.map: map with the executor's default chunks over
 * BENCH_PP_ITEMS items (default 10M; items/s, reported as tasks/s).
 * Every result is checked.
 */
#include <juggle.h>

#include "bench.h"

static int sq(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t x;
    if (n != sizeof(x))
        return -EINVAL;
    memcpy(&x, in, sizeof(x));
    x *= x;
    return jg_task_out_write(out, &x, sizeof(x));
}
JG_TASK("bench.sq", sq)

struct ctx {
    struct jg_executor *ex;
    long tasks;
    long items;
    struct jg_future **fs;
    uint64_t *in, *out;
};

static long env_long(const char *name, long def)
{
    const char *s = getenv(name);
    long v = s && *s ? strtol(s, NULL, 10) : def;
    return v > 0 ? v : def;
}

static double submit_once(void *arg)
{
    struct ctx *c = arg;
    int64_t t0 = bench_now();

    for (long i = 0; i < c->tasks; i++) {
        uint64_t x = (uint64_t)i;
        int rc = jg_executor_submit(c->ex, &c->fs[i], "bench.sq", &x,
                                    sizeof(x));
        if (rc < 0)
            bench_die("jg_executor_submit", rc);
    }
    for (long i = 0; i < c->tasks; i++) {
        const void *p;
        size_t n;
        uint64_t v;
        int rc = jg_future_bytes(c->fs[i], &p, &n, JG_FOREVER);
        if (rc < 0 || n != sizeof(v))
            bench_die("jg_future_bytes", rc);
        memcpy(&v, p, sizeof(v));
        if (v != (uint64_t)i * (uint64_t)i)
            bench_die("wrong result", i);
        jg_future_unref(c->fs[i]);
    }
    int64_t t1 = bench_now();
    return (double)c->tasks * 1e9 / (double)(t1 - t0);
}

static double map_once(void *arg)
{
    struct ctx *c = arg;
    int64_t t0 = bench_now();

    int rc = jg_executor_map(c->ex, "bench.sq", c->in, 8, (size_t)c->items,
                             c->out, 8, 0, JG_FOREVER);
    int64_t t1 = bench_now();
    if (rc < 0)
        bench_die("jg_executor_map", rc);
    for (long i = 0; i < c->items; i++)
        if (c->out[i] != (uint64_t)i * (uint64_t)i)
            bench_die("wrong map result", i);
    memset(c->out, 0, (size_t)c->items * 8);
    return (double)c->items * 1e9 / (double)(t1 - t0);
}

int main(int argc, char **argv)
{
    struct ctx c;
    int rc = jg_main_init(argc, argv);

    if (rc < 0)
        bench_die("jg_main_init", rc);
    memset(&c, 0, sizeof(c));
    c.tasks = env_long("BENCH_PP_TASKS", 1000000);
    c.items = env_long("BENCH_PP_ITEMS", 10000000);
    rc = jg_process_pool_create(&c.ex, NULL);
    if (rc < 0)
        bench_die("jg_process_pool_create", rc);
    c.fs = calloc((size_t)c.tasks, sizeof(*c.fs));
    c.in = malloc((size_t)c.items * 8);
    c.out = calloc((size_t)c.items, 8);
    if (!c.fs || !c.in || !c.out)
        bench_die("malloc", 0);
    for (long i = 0; i < c.items; i++)
        c.in[i] = (uint64_t)i;

    bench_print("pool.process.submit", bench_run(submit_once, &c),
                "tasks/s");
    bench_print("pool.process.map", bench_run(map_once, &c), "tasks/s");
    jg_executor_destroy(c.ex);
    free(c.fs);
    free(c.in);
    free(c.out);
    return 0;
}
