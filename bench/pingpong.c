/* SPDX-License-Identifier: MIT */
/*
 * pingpong.c - two green threads that block and wake each other through
 * the hub: A wakes B and parks, B wakes A and parks. Until the sync layer
 * has events this uses the one internal parking primitive every blocking
 * call is built on (jg__park / jg__wake, src/green/hub.h). ns per round trip, and
 * its ratio to the jg_switch round trip measured in the same process.
 */
#include <juggle.h>

#include "hub.h"
#include "bench.h"

#define PP_N 1000000L
#define RT_N 2000000L

struct pp {
    struct jg_green *a, *b;
    int stop;
    double ns;
};

/* B: park until A wakes it, then wake A and park again. */
static void *pp_b(void *arg)
{
    struct pp *p = arg;

    p->b = jg__park_prepare();
    for (;;) {
        int rc = jg__park(INT64_MAX);
        if (rc < 0)
            bench_die("jg__park (B)", rc);
        if (p->stop)
            return NULL;
        /* Arm before waking A: A runs only once B has parked. */
        p->b = jg__park_prepare();
        if (!jg__wake(p->a, 0))
            bench_die("jg__wake (A)", 0);
    }
}

static double pp_once(void *arg)
{
    struct pp *p = arg;

    int64_t t0 = bench_now();
    for (long i = 0; i < PP_N; i++) {
        p->a = jg__park_prepare();
        if (!jg__wake(p->b, 0))
            bench_die("jg__wake (B)", 0);
        int rc = jg__park(INT64_MAX);
        if (rc < 0)
            bench_die("jg__park (A)", rc);
    }
    return bench_per(t0, bench_now(), PP_N);
}

/* A: the whole measurement runs here, B already parked. */
static void *pp_a(void *arg)
{
    struct pp *p = arg;

    p->ns = bench_run(pp_once, p);
    p->stop = 1;
    if (!jg__wake(p->b, 0))
        bench_die("jg__wake (B, stop)", 0);
    return NULL;
}

int main(void)
{
    struct pp p;
    struct jg_green *a, *b;
    int rc;

    memset(&p, 0, sizeof(p));
    /* B first: the ready queue is FIFO, so B parks before A starts. */
    rc = jg_spawn(&b, pp_b, &p, NULL);
    if (rc < 0)
        bench_die("jg_spawn (B)", rc);
    rc = jg_spawn(&a, pp_a, &p, NULL);
    if (rc < 0)
        bench_die("jg_spawn (A)", rc);
    rc = jg_join(a, NULL, JG_FOREVER);
    if (rc < 0)
        bench_die("jg_join (A)", rc);
    rc = jg_join(b, NULL, JG_FOREVER);
    if (rc < 0)
        bench_die("jg_join (B)", rc);

    double rt = bench_rt(JG_STACK_DEDICATED, RT_N);
    bench_print("pingpong.hub", p.ns, "ns");
    bench_print("pingpong.ratio", p.ns / rt, "x");
    return 0;
}
