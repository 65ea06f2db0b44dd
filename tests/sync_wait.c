/* SPDX-License-Identifier: MIT */
/*
 * sync_wait.c - jg_wait_green (gevent.joinall / wait): all, any, first N,
 * timeout, deadline scope, kill while waiting (dedicated and sliced
 * waiters), killed targets counting as finished, handles kept, bad
 * arguments, and cross-hub -EXDEV.
 */
#include <juggle.h>
#include <pthread.h>
#include "t.h"

#define P(x) ((void *)(uintptr_t)(x))
#define U(p) ((uintptr_t)(p))

static const struct jg_spawn_opts sliced = { NULL, 0, JG_STACK_SLICED };

static void *sleeper(void *arg)
{
    int rc = jg_sleep(JG_MS(U(arg)));

    return rc < 0 ? JG_ERR(rc) : arg;
}

static void spawn_set(struct jg_green **g, const int *ms, int n)
{
    for (int i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], sleeper, P(ms[i]), i & 1 ? &sliced : NULL));
}

static void join_set(struct jg_green **g, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = jg_join(g[i], NULL, JG_FOREVER);
        T_ASSERT(rc == 0 || rc == -ECANCELED);
    }
}

static void test_all_any_n(void)
{
    static const int ms[5] = { 200, 5, 20, 10, 300 };
    struct jg_green *g[5];
    void *res;
    int rc;

    spawn_set(g, ms, 5);
    int64_t t0 = t_now_ns();
    /* At least count: under load two may end before the waiter runs. */
    rc = jg_wait_green(g, 5, 1, JG_FOREVER);
    T_ASSERT(rc >= 1 && rc <= 3);
    T_EQ(jg_state(g[1]), JG_GREEN_DONE);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(5));
    T_EQ(jg_wait_green(g, 5, 3, JG_FOREVER), 3);
    T_EQ(jg_state(g[2]), JG_GREEN_DONE);
    T_EQ(jg_state(g[3]), JG_GREEN_DONE);
    T_EQ(jg_state(g[0]), JG_GREEN_PARKED);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    /* Already satisfied: no wait. */
    T_EQ(jg_wait_green(g, 5, 2, JG_FOREVER), 3);
    T_EQ(jg_wait_green(g, 5, 0, JG_FOREVER), 5);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(300));
    /* Handles are kept: results still there. */
    for (int i = 0; i < 5; i++) {
        T_OK(jg_join(g[i], &res, 0));
        T_EQ(U(res), ms[i]);
    }
    T_EQ(jg_wait_green(NULL, 0, 0, JG_FOREVER), 0);
}

static void test_timeout(void)
{
    static const int ms[3] = { 5, 300, 300 };
    struct jg_green *g[3];
    struct jg_deadline d;

    spawn_set(g, ms, 3);
    /* timeout 0: a wait that is not over, like jg_wait and jg_join. */
    T_ERR(jg_wait_green(g, 3, 0, 0), -ETIMEDOUT);
    int64_t t0 = t_now_ns();
    T_ERR(jg_wait_green(g, 3, 2, JG_MS(20)), -ETIMEDOUT);
    T_EQ(jg_wait_green(g, 3, 1, 0), 1);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    /* Returned at its timeout: the 300 ms ones still sleep. */
    T_EQ(jg_state(g[1]), JG_GREEN_PARKED);
    T_EQ(jg_state(g[2]), JG_GREEN_PARKED);
    /* A deadline scope ends the wait the same way. */
    T_OK(jg_deadline_push(&d, JG_MS(10)));
    T_ERR(jg_wait_green(g, 3, 0, JG_FOREVER), -ETIMEDOUT);
    T_ASSERT(jg_deadline_expired(&d));
    T_OK(jg_deadline_pop(&d));
    /* Killed targets count as finished. */
    T_OK(jg_kill(g[1]));
    T_OK(jg_kill(g[2]));
    T_EQ(jg_wait_green(g, 3, 0, JG_FOREVER), 3);
    join_set(g, 3);
}

struct waitop {
    struct jg_green **gs;
    size_t n, count;
    int rc;
};

static void *waiter_fn(void *arg)
{
    struct waitop *w = arg;

    w->rc = jg_wait_green(w->gs, w->n, w->count, JG_FOREVER);
    return NULL;
}

static void test_kill_waiter(void)
{
    static const int ms[3] = { 20, 20, 20 };
    struct jg_green *g[3], *w;
    struct waitop op;

    for (int sl = 0; sl < 2; sl++) {
        spawn_set(g, ms, 3);
        op = (struct waitop){ g, 3, 0, 1 };
        T_OK(jg_spawn(&w, waiter_fn, &op, sl ? &sliced : NULL));
        T_OK(jg_yield());
        T_EQ(jg_state(w), JG_GREEN_PARKED);
        T_OK(jg_kill(w));
        T_ERR(jg_join(w, NULL, JG_FOREVER), -ECANCELED);
        T_ERR(op.rc, -ECANCELED);
        /* Its nodes are gone: the targets end without touching them
         * (ASan would see a use after free). */
        join_set(g, 3);
    }
    /* Several waiters on the same green threads, on both stack models. */
    spawn_set(g, ms, 3);
    struct waitop ops[4];
    struct jg_green *ws[4];
    for (int i = 0; i < 4; i++) {
        ops[i] = (struct waitop){ g, 3, (size_t)(i % 3 + 1), 1 };
        T_OK(jg_spawn(&ws[i], waiter_fn, &ops[i], i & 1 ? &sliced : NULL));
    }
    for (int i = 0; i < 4; i++) {
        T_OK(jg_join(ws[i], NULL, JG_FOREVER));
        T_ASSERT(ops[i].rc >= i % 3 + 1);
    }
    join_set(g, 3);
}

static void test_bad_args(void)
{
    static const int ms[2] = { 1, 1 };
    struct jg_green *g[3], *self = jg_current();

    spawn_set(g, ms, 2);
    g[2] = NULL;
    T_ERR(jg_wait_green(g, 3, 0, 0), -EINVAL);
    T_ERR(jg_wait_green(g, 2, 3, 0), -EINVAL);
    T_ERR(jg_wait_green(g, 2, 0, -5), -EINVAL);
    T_ERR(jg_wait_green(NULL, 2, 0, 0), -EINVAL);
    g[2] = self;
    T_ERR(jg_wait_green(g, 3, 0, JG_FOREVER), -EDEADLK);
    T_EQ(jg_wait_green(g, 2, 0, JG_FOREVER), 2);
    join_set(g, 2);
}

static void *other_thread(void *arg)
{
    struct jg_green **g = arg;

    return (void *)(intptr_t)(jg_wait_green(g, 1, 0, JG_FOREVER) !=
                              -EXDEV);
}

static void test_cross_hub(void)
{
    static const int ms[1] = { 1 };
    struct jg_green *g[1];
    pthread_t t;
    void *bad;

    spawn_set(g, ms, 1);
    T_EQ(pthread_create(&t, NULL, other_thread, g), 0);
    T_EQ(pthread_join(t, &bad), 0);
    T_PEQ(bad, NULL);
    join_set(g, 1);
}

T_MAIN(T_CASE(test_all_any_n), T_CASE(test_timeout),
       T_CASE(test_kill_waiter), T_CASE(test_bad_args),
       T_CASE(test_cross_hub))
