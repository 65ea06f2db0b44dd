/* SPDX-License-Identifier: MIT */
/*
 * green_enomem.c - past vm.max_map_count, jg_spawn of a dedicated green
 * thread fails with -ENOMEM instead of crashing or handing out a stack
 * without its guard; the sliced model still works there, and everything
 * spawned before is killed and joined cleanly; a first sliced spawn at the
 * limit takes no stack that an unstarted green thread reserved. Plain
 * build only (the
 * sanitizers map shadow memory of their own); exit 77 elsewhere.
 */
#include <juggle.h>
#include <stdio.h>
#include "t.h"

static long started;

static void *park_hour(void *arg)
{
    (void)arg;
    started++;
    int rc = jg_sleep(JG_SEC(3600));
    return rc < 0 ? JG_ERR(rc) : NULL;
}

static void *seven(void *arg)
{
    (void)arg;
    return (void *)7;
}

static long max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = -1;

    if (!f)
        return -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

/* vm.max_map_count, when this build can exhaust it; else the test skips
 * (the sanitizers map shadow memory of their own). */
static long limit_or_skip(void)
{
    long max = max_map_count();

    if (!t_plain())
        T_SKIP("the vm.max_map_count test runs in the plain build only");
    if (max <= 0)
        T_SKIP("cannot read vm.max_map_count");
    if (max > 300000)
        T_SKIP("vm.max_map_count too large to exhaust quickly");
    return max;
}

static void test_map_count_enomem(void)
{
    long max = limit_or_skip();

    /* Two mappings per dedicated stack (guard + usable part): the limit
     * is reached near max / 2 spawns. */
    long cap = max / 2 + 2000;
    struct jg_green **g = calloc((size_t)cap, sizeof *g);
    long n = 0;
    int rc = 0;

    T_ASSERT(g != NULL);
    started = 0;
    /* The sliced model's shared stack is mapped at its first use: use it
     * once before the limit, as a program that plans for it would. */
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    struct jg_green *s;
    void *res = NULL;
    T_OK(jg_spawn(&s, seven, NULL, &sliced));
    T_OK(jg_join(s, &res, JG_FOREVER));

    while (n < cap) {
        rc = jg_spawn(&g[n], park_hour, NULL, NULL);
        if (rc < 0)
            break;
        n++;
        if (n % 1024 == 0)
            T_OK(jg_yield());   /* let them take their stacks and park */
    }
    T_ERR(rc, -ENOMEM);
    T_ASSERT(n > max / 4);      /* a real limit, not an early failure */
    T_ASSERT(n < cap);

    /* Every green thread that spawned gets its stack and runs. */
    T_OK(jg_yield());
    T_OK(jg_sleep(JG_MS(1)));
    T_EQ(started, n);

    /* At the limit, the sliced model still works: that is its purpose. */
    res = NULL;
    T_OK(jg_spawn(&s, seven, NULL, &sliced));
    T_OK(jg_join(s, &res, JG_FOREVER));
    T_PEQ(res, (void *)7);

    for (long i = 0; i < n; i++)
        T_OK(jg_kill(g[i]));
    for (long i = 0; i < n; i++)
        T_ERR(jg_join(g[i], NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_count(), 0);

    /* The stacks came back: spawning works again. */
    T_OK(jg_spawn(&s, seven, NULL, NULL));
    T_OK(jg_join(s, &res, JG_FOREVER));
    T_PEQ(res, (void *)7);
    free(g);
}

/*
 * The sliced model used for the first time at the limit, while green
 * threads that reserved their stacks have not started: the first sliced
 * spawn must not take their stacks (before: it did, and their first run
 * panicked, "no stack for a reserved green thread"). It fails with -ENOMEM
 * itself, and every reserved green thread runs. They wait on an event, so
 * that nothing needs memory past the limit (no timer heap to grow).
 */
static struct jg_event gate;

static void *wait_gate(void *arg)
{
    (void)arg;
    started++;
    int rc = jg_event_wait(&gate, JG_FOREVER);
    return rc < 0 ? JG_ERR(rc) : (void *)7;
}

static void test_sliced_first_use_keeps_reservations(void)
{
    long max = limit_or_skip();

    long cap = max / 2 + 2000;
    struct jg_green **g = calloc((size_t)cap, sizeof *g);
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    struct jg_green *s;
    long n = 0;
    int rc = 0;

    T_ASSERT(g != NULL);
    T_OK(jg_event_init(&gate));
    started = 0;
    /* No yield: they all stay unstarted, holding reservations. */
    while (n < cap && (rc = jg_spawn(&g[n], wait_gate, NULL, NULL)) == 0)
        n++;
    T_ERR(rc, -ENOMEM);
    T_ASSERT(n > max / 4);
    T_ERR(jg_spawn(&s, seven, NULL, &sliced), -ENOMEM);
    while (started < n)
        T_OK(jg_yield());
    T_OK(jg_event_set(&gate));
    for (long i = 0; i < n; i++) {
        void *res = NULL;
        T_OK(jg_join(g[i], &res, JG_FOREVER));
        T_PEQ(res, (void *)7);
    }
    T_EQ(jg_count(), 0);
    T_OK(jg_event_destroy(&gate));
    free(g);
}

/*
 * Past the limit the loop's timer heap may not grow (it needs a new
 * mapping): a timed park whose timer cannot be armed must fail with
 * -ENOMEM, not park with no timer. Before: such green threads slept for
 * good, and a jg_sleep of the main context hung the test.
 */
static long finished;

static void *nap(void *arg)
{
    (void)arg;
    started++;
    int rc = jg_sleep(JG_MS(300));
    finished++;
    return rc < 0 ? JG_ERR(rc) : NULL;
}

static void test_timed_park_without_memory_fails(void)
{
    long max = limit_or_skip();

    long cap = max / 2 + 2000;
    struct jg_green **g = calloc((size_t)cap, sizeof *g);
    long n = 0, nomem = 0;
    int rc = 0;

    T_ASSERT(g != NULL);
    started = finished = 0;
    while (n < cap && (rc = jg_spawn(&g[n], nap, NULL, NULL)) == 0)
        n++;
    T_ERR(rc, -ENOMEM);
    /* Wait by yielding (no timer of our own) for every nap to end. */
    int64_t end = t_now_ns() + JG_SEC(20);
    while (finished < n && t_now_ns() < end)
        T_OK(jg_yield());
    T_EQ(finished, n);
    for (long i = 0; i < n; i++) {
        /* Each nap slept its time (0) or could not (-ENOMEM). */
        rc = jg_join(g[i], NULL, JG_FOREVER);
        if (rc == -ENOMEM)
            nomem++;
        else
            T_OK(rc);
    }
    printf("%ld naps, %ld without a timer (-ENOMEM)\n", n, nomem);
    T_EQ(jg_count(), 0);
    free(g);
}

/* The sliced case first: it needs a hub whose sliced stack is not mapped
 * yet. */
T_MAIN(T_CASE(test_sliced_first_use_keeps_reservations),
       T_CASE(test_timed_park_without_memory_fails),
       T_CASE(test_map_count_enomem))
