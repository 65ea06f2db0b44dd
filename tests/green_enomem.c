/* SPDX-License-Identifier: MIT */
/*
 * green_enomem.c - past vm.max_map_count, jg_spawn of a dedicated green
 * thread fails with -ENOMEM instead of crashing or handing out a stack
 * without its guard; the sliced model still works there, and everything
 * spawned before is killed and joined cleanly. Plain build only (the
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

static void test_map_count_enomem(void)
{
    long max = max_map_count();

    if (!t_plain())
        T_SKIP("the vm.max_map_count test runs in the plain build only");
    if (max <= 0)
        T_SKIP("cannot read vm.max_map_count");
    if (max > 300000)
        T_SKIP("vm.max_map_count too large to exhaust quickly");

    /* Two mappings per dedicated stack (guard + usable part): the limit
     * is reached near max / 2 spawns. */
    long cap = max / 2 + 2000;
    struct jg_green **g = calloc((size_t)cap, sizeof *g);
    long n = 0;
    int rc = 0;

    T_ASSERT(g != NULL);
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

T_MAIN(T_CASE(test_map_count_enomem))
