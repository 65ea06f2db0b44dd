/* SPDX-License-Identifier: MIT */
/*
 * spawn.c - spawn + run + join of a trivial green thread on one hub with
 * pooled stacks: in batches (spawn 1000, then join them all, as the Go
 * anchor does with a WaitGroup), one at a time, and 20,000 spawned before
 * the first join (the shape that costs Go most). ns per task.
 */
#include <juggle.h>

#include "bench.h"

#define BATCH 1000
#define BATCHES 50              /* 50,000 tasks per repetition */
#define SERIAL 100000L
#define ALL 20000               /* below vm.max_map_count / 2 */

static void *nop(void *arg)
{
    return arg;
}

static double batch_once(void *arg)
{
    static struct jg_green *g[BATCH];
    int rc;
    (void)arg;

    int64_t t0 = bench_now();
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            rc = jg_spawn(&g[i], nop, NULL, NULL);
            if (rc < 0)
                bench_die("jg_spawn", rc);
        }
        for (int i = 0; i < BATCH; i++) {
            rc = jg_join(g[i], NULL, JG_FOREVER);
            if (rc < 0)
                bench_die("jg_join", rc);
        }
    }
    return bench_per(t0, bench_now(), (long)BATCH * BATCHES);
}

static double serial_once(void *arg)
{
    struct jg_green *g;
    int rc;
    (void)arg;

    int64_t t0 = bench_now();
    for (long i = 0; i < SERIAL; i++) {
        rc = jg_spawn(&g, nop, NULL, NULL);
        if (rc < 0)
            bench_die("jg_spawn", rc);
        rc = jg_join(g, NULL, JG_FOREVER);
        if (rc < 0)
            bench_die("jg_join", rc);
    }
    return bench_per(t0, bench_now(), SERIAL);
}

static double all_once(void *arg)
{
    struct jg_green **g = arg;
    int rc;

    int64_t t0 = bench_now();
    for (int i = 0; i < ALL; i++) {
        rc = jg_spawn(&g[i], nop, NULL, NULL);
        if (rc < 0)
            bench_die("jg_spawn", rc);
    }
    for (int i = 0; i < ALL; i++) {
        rc = jg_join(g[i], NULL, JG_FOREVER);
        if (rc < 0)
            bench_die("jg_join", rc);
    }
    return bench_per(t0, bench_now(), ALL);
}

int main(void)
{
    bench_print("spawn.join", bench_run(batch_once, NULL), "ns");
    bench_print("spawn.join.serial", bench_run(serial_once, NULL), "ns");
    struct jg_green **g = calloc(ALL, sizeof(*g));
    if (!g)
        bench_die("calloc", 0);
    bench_print("spawn.join.all", bench_run(all_once, g), "ns");
    free(g);
    if (jg_count() != 0)
        bench_die("green threads left", (long)jg_count());
    return 0;
}
