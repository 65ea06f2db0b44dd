/* SPDX-License-Identifier: MIT */
/*
 * future_deadlock.c - deadlock detection is the same whatever the main
 * context waits with: jg_join on a green thread that can never finish gives
 * -EDEADLK, and so do jg_future_result, jg_wait and jg_as_completed_next on
 * that green thread's future. A future another thread may complete (a pool
 * task) is a cross-thread wait, and is never called a deadlock.
 */
#include <juggle.h>
#include "t.h"

/* Parks for good: a created green thread nobody starts never finishes. */
static void *stuck(void *arg)
{
    struct jg_green *never = arg;

    return (void *)(intptr_t)jg_join(never, NULL, JG_FOREVER);
}

static void *ret_arg(void *arg)
{
    return arg;
}

struct pair {
    struct jg_green *never, *g;
    struct jg_future *f;
};

static void start(struct pair *p)
{
    T_OK(jg_create(&p->never, ret_arg, NULL, NULL));
    T_OK(jg_spawn(&p->g, stuck, p->never, NULL));
    T_OK(jg_green_future(p->g, &p->f));
    T_OK(jg_yield());           /* g parks in its join */
}

static void finish(struct pair *p)
{
    /* Resolve it: start the never-run one; g's join then returns. */
    T_ASSERT(!JG_IS_ERR(jg_switch(p->never, NULL)));
    T_OK(jg_join(p->never, NULL, JG_FOREVER));
    T_OK(jg_join(p->g, NULL, JG_FOREVER));
    T_EQ(jg_future_state(p->f), JG_FUTURE_DONE);
    jg_future_unref(p->f);
}

/* Before: each of these hung for good, where jg_join says -EDEADLK. */
static void test_future_result_deadlock(void)
{
    struct pair p;
    void *v;

    start(&p);
    T_ERR(jg_future_result(p.f, &v, JG_FOREVER), -EDEADLK);
    T_EQ(jg_future_state(p.f), JG_FUTURE_RUNNING);
    finish(&p);
}

static void test_wait_deadlock(void)
{
    struct pair a, b;

    start(&a);
    start(&b);
    struct jg_future *fs[2] = { a.f, b.f };
    T_ERR(jg_wait(fs, 2, JG_WAIT_FIRST, JG_FOREVER), -EDEADLK);
    finish(&a);
    finish(&b);
}

static void test_as_completed_deadlock(void)
{
    struct jg_as_completed *it;
    struct jg_future *got;
    struct pair p;

    start(&p);
    T_OK(jg_as_completed_create(&it, &p.f, 1));
    T_ERR(jg_as_completed_next(it, &got, JG_FOREVER), -EDEADLK);
    jg_as_completed_destroy(it);
    finish(&p);
}

/* A promise another OS thread may complete is not a deadlock: the wait
 * times out as asked. */
static void test_promise_wait_times_out(void)
{
    struct jg_future *f;
    void *v;

    T_OK(jg_future_create(&f));
    T_ERR(jg_future_result(f, &v, JG_MS(30)), -ETIMEDOUT);
    jg_future_unref(f);
}

T_MAIN(T_CASE(test_future_result_deadlock), T_CASE(test_wait_deadlock),
       T_CASE(test_as_completed_deadlock), T_CASE(test_promise_wait_times_out))
