/* SPDX-License-Identifier: MIT */
/*
 * tour_cpu.c - part 2 of the tour, the seeds' CPU-bound case: the "sum of
 * squares" of inputs n_k = N + k, sequentially, on a thread pool (C has no
 * GIL), on a process pool and in green threads (one OS thread: no
 * parallelism). The same registered task runs in both pools. Each child
 * reports a checksum of its results; the parent compares it with the
 * sequential one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <juggle.h>

#include "tour.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The result, and when the task started and ended (CLOCK_MONOTONIC is one
 * clock for every process of the machine): the parent counts from these
 * how many ran at once, in threads and in worker processes alike. */
static int sumsq_task(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t x, r[3];
    if (n != sizeof(x))
        return -EINVAL;
    memcpy(&x, in, sizeof(x));
    r[1] = now_ns();
    r[0] = tour_sumsq(x);
    r[2] = now_ns();
    return jg_task_out_write(out, r, sizeof(r));
}
JG_TASK("tour.sumsq", sumsq_task)

static uint64_t *in, *res, *t_beg, *t_end;

static void *green_sumsq(void *arg)
{
    uint64_t *slot = arg;
    t_beg[slot - res] = now_ns();
    *slot = tour_sumsq(in[slot - res]);
    t_end[slot - res] = now_ns();
    return NULL;
}

/* The most tasks whose [start, end] intervals overlap. */
static int peak_of(int k)
{
    int peak = 0;

    for (int i = 0; i < k; i++) {
        /* At task i's start: the tasks running then, i included. */
        int at = 0;
        for (int j = 0; j < k; j++)
            if (t_beg[j] <= t_beg[i] && t_end[j] > t_beg[i])
                at++;
        if (at > peak)
            peak = at;
    }
    return peak;
}

/* Submit every input to ex and collect the results in order. */
static int on_pool(struct jg_executor *ex, int k)
{
    struct jg_future **f = calloc((size_t)k, sizeof(*f));
    int rc = 0;

    if (!f)
        return -ENOMEM;
    for (int i = 0; i < k; i++) {
        rc = jg_executor_submit(ex, &f[i], "tour.sumsq", &in[i],
                                sizeof(in[i]));
        if (rc < 0)
            tour_fail("jg_executor_submit", rc);
    }
    for (int i = 0; i < k; i++) {
        const void *p;
        size_t n;
        int r = jg_future_bytes(f[i], &p, &n, JG_FOREVER);
        if (r == 0 && n == 3 * sizeof(uint64_t)) {
            uint64_t v[3];
            memcpy(v, p, n);
            res[i] = v[0];
            t_beg[i] = v[1];
            t_end[i] = v[2];
        } else if (rc == 0)
            rc = r < 0 ? r : -EMSGSIZE;
        jg_future_unref(f[i]);
    }
    free(f);
    return rc;
}

int tour_cpu_child(const struct tour_opts *o, const char *approach)
{
    int k = o->cpu_inputs, rc = 0;
    int workers = o->workers ? o->workers : tour_ncpu();
    struct jg_executor *ex = NULL;

    in = calloc((size_t)k, sizeof(*in));
    res = calloc((size_t)k, sizeof(*res));
    t_beg = calloc((size_t)k, sizeof(*t_beg));
    t_end = calloc((size_t)k, sizeof(*t_end));
    if (!in || !res || !t_beg || !t_end)
        tour_fail("calloc", -ENOMEM);
    for (int i = 0; i < k; i++)
        in[i] = (uint64_t)o->cpu_n + (uint64_t)i;

    double t0 = tour_now();
    if (strcmp(approach, "sequential") == 0) {
        for (int i = 0; i < k; i++) {
            t_beg[i] = now_ns();
            res[i] = tour_sumsq(in[i]);
            t_end[i] = now_ns();
        }
    } else if (strcmp(approach, "threads") == 0) {
        struct jg_thread_pool_opts po = { .workers = workers };
        rc = jg_thread_pool_create(&ex, &po);
        if (rc == 0)
            rc = on_pool(ex, k);
    } else if (strcmp(approach, "procpool") == 0) {
        struct jg_process_pool_opts po = { .workers = workers };
        rc = jg_process_pool_create(&ex, &po);
        if (rc == 0)
            rc = on_pool(ex, k);
    } else if (strcmp(approach, "green") == 0) {
        struct jg_green **g = calloc((size_t)k, sizeof(*g));
        if (!g)
            tour_fail("calloc", -ENOMEM);
        for (int i = 0; i < k && rc == 0; i++)
            rc = jg_spawn(&g[i], green_sumsq, &res[i], NULL);
        for (int i = 0; i < k; i++)
            if (g[i])
                jg_join(g[i], NULL, JG_FOREVER);
        free(g);
    } else {
        tour_fail("unknown approach", 0);
    }
    if (ex)
        jg_executor_destroy(ex);
    double wall = tour_now() - t0;
    if (rc < 0)
        tour_fail(approach, rc);

    /* FNV-1a over the results: one figure the parent can compare. */
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < k; i++)
        for (int b = 0; b < 8; b++) {
            h ^= (res[i] >> (8 * b)) & 0xff;
            h *= 1099511628211ULL;
        }
    if (strcmp(approach, "procpool") == 0)
        tour_put("mem_kb", "%ld", tour_maxrss_self() +
                 (long)workers * tour_maxrss_children());
    tour_put("workers", "%d", workers);
    tour_put("peak", "%d", peak_of(k));
    tour_put("check", "%016llx", (unsigned long long)h);
    tour_put("wall_s", "%.6f", wall);
    tour_put("ok", "1");
    return 0;
}
