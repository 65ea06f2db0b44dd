/* SPDX-License-Identifier: MIT */
/*
 * green_slice.c - the hub polls its loop while green threads run back to
 * back (docs/green.md: at most 64 green threads or 1 ms per slice): green
 * threads that compute and finish, or compute and yield, one after
 * another, still let the loop poll between them, also on a hub that has
 * just run ordinary slices. Counted with a prepare hook, which runs once
 * per loop iteration.
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

static void run(jg_green_fn fn, long n, long switches, long slack)
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
    /* Each green thread computes 2 ms, past the 1 ms slice: the loop is
     * polled at (nearly) every switch - at every finish once a kernel tick
     * (1-4 ms) has passed, and at every yield once a slice has overrun
     * (so all but a few, or up to 16 yields). */
    printf("%ld switches, %ld polls\n", switches, polls);
    T_ASSERT(polls >= switches - slack);
    free(g);
}

static void test_finishing_threads_let_the_loop_poll(void)
{
    long n = t_scale(100);

    run(compute_and_finish, n, n, 4);
}

/* The same on a hub that just ran an ordinary slice (a short sleep):
 * before, the clock was read only every 16 finishes there, and 16 green
 * threads of 2 ms held the loop off for 32 ms at a time. */
static void test_finishing_threads_poll_on_a_warm_hub(void)
{
    long n = t_scale(100);

    T_OK(jg_sleep(JG_MS(2)));
    run(compute_and_finish, n, n, 4);
}

static void test_yielding_threads_let_the_loop_poll(void)
{
    long n = t_scale(40);

    run(compute_and_yield, n, 3 * n, 16);
}

T_MAIN(T_CASE(test_finishing_threads_poll_on_a_warm_hub),
       T_CASE(test_finishing_threads_let_the_loop_poll),
       T_CASE(test_yielding_threads_let_the_loop_poll))
