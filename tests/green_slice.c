/* SPDX-License-Identifier: MIT */
/*
 * green_slice.c - the hub polls its loop while green threads run back to
 * back (docs/green.md: at most 64 green threads or 1 ms per slice): green
 * threads that compute and finish, or compute and yield, one after
 * another, still let the loop poll between them. Counted with a prepare
 * hook, which runs once per loop iteration.
 */
#include <juggle.h>
#include "t.h"

static long polls;

static void count_poll(struct jg_hook *w)
{
    (void)w;
    polls++;
}

static void compute_ms(int ms)
{
    int64_t end = t_now_ns() + JG_MS(ms);

    while (t_now_ns() < end)
        ;
}

static void *compute_and_finish(void *arg)
{
    (void)arg;
    compute_ms(2);
    return NULL;
}

static void *compute_and_yield(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        compute_ms(2);
        T_OK(jg_yield());
    }
    return NULL;
}

static void run(jg_green_fn fn, long n, long switches)
{
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_hook hook;

    T_ASSERT(g);
    jg_hook_init(&hook, JG_HOOK_PREPARE, count_poll);
    jg_watcher_unref(&hook.base);
    T_OK(jg_hook_start(jg_loop_default(), &hook));
    for (long i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], fn, NULL, NULL));
    polls = 0;
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_OK(jg_hook_stop(&hook));
    /* Every switch after the first overrun of a slice goes back to the
     * loop: one poll per switch, less the first 16 or so. Before: 0. */
    printf("%ld switches, %ld polls\n", switches, polls);
    T_ASSERT(polls >= switches / 2);
    free(g);
}

static void test_finishing_threads_let_the_loop_poll(void)
{
    long n = t_scale(100);

    run(compute_and_finish, n, n);
}

static void test_yielding_threads_let_the_loop_poll(void)
{
    long n = t_scale(40);

    run(compute_and_yield, n, 3 * n);
}

T_MAIN(T_CASE(test_finishing_threads_let_the_loop_poll),
       T_CASE(test_yielding_threads_let_the_loop_poll))
