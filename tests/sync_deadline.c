/* SPDX-License-Identifier: MIT */
/*
 * sync_deadline.c - scoped deadlines: LIFO push/pop and its errors, scopes
 * bounding jg_sleep and cooperative I/O, nesting (earliest wins, expired
 * tells which fired), move and cancel while active, per green thread
 * isolation, scopes on sliced stacks, and -EPERM from a loop callback.
 */
#include <juggle.h>
#include <unistd.h>
#include "t.h"
#include "t_late.h"

static struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };

static void test_push_pop_errors(void)
{
    struct jg_deadline a, b, c;

    T_EQ(jg_deadline_current(), INT64_MAX);
    T_ERR(jg_deadline_push(NULL, JG_MS(10)), -EINVAL);
    T_ERR(jg_deadline_push(&a, -2), -EINVAL);
    T_ERR(jg_deadline_pop(NULL), -EINVAL);
    T_ASSERT(!jg_deadline_expired(NULL));

    int64_t t0 = jg_now();
    T_OK(jg_deadline_push(&a, JG_SEC(10)));
    T_ASSERT(jg_deadline_current() >= t0 + JG_SEC(10));
    T_ERR(jg_deadline_push(&a, JG_SEC(1)), -EBUSY);
    T_OK(jg_deadline_push(&b, JG_SEC(5)));
    int64_t eff_b = jg_deadline_current();
    T_ASSERT(eff_b < t0 + JG_SEC(10));
    /* An inner scope cannot extend: the effective one stays b's. */
    T_OK(jg_deadline_push(&c, JG_SEC(60)));
    T_EQ(jg_deadline_current(), eff_b);
    /* Strictly LIFO. */
    T_ERR(jg_deadline_pop(&a), -EINVAL);
    T_ERR(jg_deadline_pop(&b), -EINVAL);
    T_OK(jg_deadline_pop(&c));
    T_ERR(jg_deadline_pop(&c), -EINVAL);
    T_ERR(jg_deadline_move(&c, JG_MS(1)), -EINVAL);
    T_ERR(jg_deadline_cancel(&c), -EINVAL);
    T_OK(jg_deadline_pop(&b));
    T_ASSERT(jg_deadline_current() >= t0 + JG_SEC(10));
    T_ASSERT(!jg_deadline_expired(&a));
    T_ERR(jg_deadline_move(&a, -5), -EINVAL);
    T_OK(jg_deadline_pop(&a));
    T_EQ(jg_deadline_current(), INT64_MAX);
    T_ASSERT(!jg_deadline_expired(&a));
    T_ASSERT(!jg_deadline_expired(&b));
    /* A popped scope may be pushed again. */
    T_OK(jg_deadline_push(&a, JG_FOREVER));
    T_EQ(jg_deadline_current(), INT64_MAX);
    T_OK(jg_deadline_pop(&a));
}

static void test_sleep_in_scope(void)
{
    struct jg_deadline d;
    int64_t t0 = t_now_ns();
    struct jg_green *late;

    T_OK(jg_deadline_push(&d, JG_MS(30)));
    late = t_late_start(JG_MS(60), NULL, 0);
    T_ERR(jg_sleep(JG_SEC(5)), -ETIMEDOUT);
    t_late_check(late);
    T_ASSERT(jg_deadline_expired(&d));
    /* Every blocking call after expiry fails at once. */
    T_ERR(jg_sleep(JG_MS(1)), -ETIMEDOUT);
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(jg_deadline_expired(&d));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    /* Outside the scope the same call works. */
    T_OK(jg_sleep(JG_MS(1)));

    /* A shorter sleep than the scope is a plain sleep. */
    T_OK(jg_deadline_push(&d, JG_SEC(5)));
    T_OK(jg_sleep(JG_MS(5)));
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(!jg_deadline_expired(&d));

    /* A zero scope has expired already. */
    T_OK(jg_deadline_push(&d, 0));
    T_ASSERT(jg_deadline_expired(&d));
    T_ERR(jg_sleep(JG_MS(1)), -ETIMEDOUT);
    T_OK(jg_deadline_pop(&d));
}

/* Scopes bound the core's cooperative I/O. */
static void test_read_in_scope(void)
{
    struct jg_deadline d;
    char buf[8];
    int p[2];
    int64_t t0;
    struct jg_green *late;

    T_EQ(pipe(p), 0);
    t0 = t_now_ns();
    T_OK(jg_deadline_push(&d, JG_MS(50)));
    late = t_late_start(JG_MS(100), NULL, 0);
    T_ERR(jg_read(p[0], buf, sizeof buf, JG_FOREVER), -ETIMEDOUT);
    t_late_check(late);
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(jg_deadline_expired(&d));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    /* With data, inside a live scope, the read succeeds. */
    T_EQ(write(p[1], "x", 1), 1);
    T_OK(jg_deadline_push(&d, JG_MS(50)));
    T_EQ(jg_read(p[0], buf, sizeof buf, JG_FOREVER), 1);
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(!jg_deadline_expired(&d));
    /* The call's own shorter timeout still applies; the scope did not
     * fire. */
    T_OK(jg_deadline_push(&d, JG_SEC(5)));
    T_ERR(jg_read(p[0], buf, sizeof buf, JG_MS(10)), -ETIMEDOUT);
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(!jg_deadline_expired(&d));
    close(p[0]);
    close(p[1]);
}

/* Nested scopes: the earliest fires, and expired() names it. */
static void test_nested(void)
{
    struct jg_deadline outer, inner;
    int64_t t0 = t_now_ns();
    struct jg_green *late;

    T_OK(jg_deadline_push(&outer, JG_MS(30)));
    T_OK(jg_deadline_push(&inner, JG_SEC(10)));
    T_ERR(jg_sleep(JG_SEC(10)), -ETIMEDOUT);
    T_ASSERT(!jg_deadline_expired(&inner));
    T_ASSERT(jg_deadline_expired(&outer));
    T_OK(jg_deadline_pop(&inner));
    T_OK(jg_deadline_pop(&outer));
    T_ASSERT(!jg_deadline_expired(&inner));
    T_ASSERT(jg_deadline_expired(&outer));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));

    t0 = t_now_ns();
    T_OK(jg_deadline_push(&outer, JG_SEC(10)));
    int64_t eff_outer = jg_deadline_current();
    T_OK(jg_deadline_push(&inner, JG_MS(30)));
    late = t_late_start(JG_MS(60), NULL, 0);
    T_ERR(jg_sleep(JG_SEC(10)), -ETIMEDOUT);
    t_late_check(late);
    T_ASSERT(jg_deadline_expired(&inner));
    T_ASSERT(!jg_deadline_expired(&outer));
    T_OK(jg_deadline_pop(&inner));
    /* The outer scope is live again: sleeping works. */
    T_EQ(jg_deadline_current(), eff_outer);
    T_OK(jg_sleep(JG_MS(1)));
    T_OK(jg_deadline_pop(&outer));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
}

static void test_move_cancel(void)
{
    struct jg_deadline outer, d;
    int64_t t0 = t_now_ns();
    struct jg_green *late;

    /* Earlier. */
    T_OK(jg_deadline_push(&d, JG_SEC(10)));
    T_OK(jg_deadline_move(&d, JG_MS(30)));
    late = t_late_start(JG_MS(60), NULL, 0);
    T_ERR(jg_sleep(JG_SEC(10)), -ETIMEDOUT);
    t_late_check(late);
    T_ASSERT(jg_deadline_expired(&d));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    /* Later again, after it fired: live once more. */
    T_OK(jg_deadline_move(&d, JG_SEC(10)));
    T_ASSERT(!jg_deadline_expired(&d));
    T_OK(jg_sleep(JG_MS(1)));
    T_OK(jg_deadline_pop(&d));

    /* Later. */
    t0 = t_now_ns();
    T_OK(jg_deadline_push(&d, JG_MS(20)));
    T_OK(jg_deadline_move(&d, JG_MS(300)));
    T_OK(jg_sleep(JG_MS(40)));
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(!jg_deadline_expired(&d));

    /* Cancelled: never expires, stays pushed. */
    T_OK(jg_deadline_push(&d, JG_MS(20)));
    T_OK(jg_deadline_cancel(&d));
    T_EQ(jg_deadline_current(), INT64_MAX);
    T_OK(jg_sleep(JG_MS(40)));
    T_ASSERT(!jg_deadline_expired(&d));
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(!jg_deadline_expired(&d));

    /* Moving an outer scope under an inner one recomputes the earliest. */
    T_OK(jg_deadline_push(&outer, JG_SEC(10)));
    T_OK(jg_deadline_push(&d, JG_SEC(20)));
    t0 = t_now_ns();
    T_OK(jg_deadline_move(&outer, JG_MS(20)));
    T_ERR(jg_sleep(JG_SEC(10)), -ETIMEDOUT);
    T_ASSERT(jg_deadline_expired(&outer));
    T_ASSERT(!jg_deadline_expired(&d));
    T_OK(jg_deadline_cancel(&outer));
    T_OK(jg_sleep(JG_MS(1)));
    T_OK(jg_deadline_pop(&d));
    T_OK(jg_deadline_pop(&outer));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
}

/* A popped scope's verdict is fixed at pop time. */
static void test_expired_frozen_at_pop(void)
{
    struct jg_deadline d;

    T_OK(jg_deadline_push(&d, JG_MS(10)));
    T_OK(jg_deadline_pop(&d));
    T_OK(jg_sleep(JG_MS(20)));
    T_ASSERT(!jg_deadline_expired(&d));
}

/* Scopes are per green thread; the struct may sit on a sliced stack. */
struct scoped {
    int64_t scope, sleep;
    int rc;
    bool expired;
    int64_t elapsed;
    int other_rc;
};

static void *scoped_sleeper(void *arg)
{
    struct scoped *s = arg;
    struct jg_deadline d;
    int64_t t0 = jg_now();

    T_OK(jg_deadline_push(&d, s->scope));
    s->rc = jg_sleep(s->sleep);
    s->elapsed = jg_now() - t0;
    T_OK(jg_deadline_pop(&d));
    s->expired = jg_deadline_expired(&d);
    return NULL;
}

static struct jg_deadline *foreign;

static void *pop_foreign(void *arg)
{
    struct scoped *s = arg;

    /* Not the caller's scope: refused without touching it. */
    s->other_rc = jg_deadline_pop(foreign);
    if (s->other_rc == -EINVAL)
        s->other_rc = jg_deadline_move(foreign, JG_MS(1));
    return NULL;
}

static void test_per_green_thread(void)
{
    int n = (int)t_scale(100);
    struct scoped *s = calloc((size_t)n, sizeof *s);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_deadline mine;
    struct scoped f = { 0 };
    struct jg_green *fg;

    for (int i = 0; i < n; i++) {
        /* Even ones time out at 20 ms; odd ones sleep 20 ms in 10 s. */
        s[i] = (struct scoped){ .scope = i & 1 ? JG_SEC(10) : JG_MS(20),
                                .sleep = i & 1 ? JG_MS(20) : JG_SEC(10),
                                .rc = 1 };
        T_OK(jg_spawn(&g[i], scoped_sleeper, &s[i],
                      i % 3 ? &sliced : NULL));
    }
    /* main's own scope does not leak into them. */
    T_OK(jg_deadline_push(&mine, JG_MS(5)));
    T_ERR(jg_sleep(JG_SEC(1)), -ETIMEDOUT);
    foreign = &mine;
    T_OK(jg_spawn(&fg, pop_foreign, &f, NULL));
    T_OK(jg_deadline_pop(&mine));
    T_OK(jg_join(fg, NULL, JG_FOREVER));
    T_ERR(f.other_rc, -EINVAL);
    for (int i = 0; i < n; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        if (i & 1) {
            T_OK(s[i].rc);
            T_ASSERT(!s[i].expired);
        } else {
            T_ERR(s[i].rc, -ETIMEDOUT);
            T_ASSERT(s[i].expired);
        }
        T_ASSERT(s[i].elapsed >= JG_MS(20));
    }
    free(s);
    free(g);
}

/* Loop callbacks run on the hub, which has no scopes. */
static int cb_rc[2];

static void timer_cb(struct jg_timer *t)
{
    struct jg_deadline d;

    (void)t;
    cb_rc[0] = jg_deadline_push(&d, JG_MS(1));
    cb_rc[1] = jg_deadline_pop(&d);
}

static void test_callback_eperm(void)
{
    struct jg_timer t;

    jg_timer_init(&t, timer_cb);
    T_OK(jg_timer_start(jg_loop_default(), &t, JG_MS(1), 0));
    T_OK(jg_sleep(JG_MS(10)));
    T_ERR(cb_rc[0], -EPERM);
    T_ERR(cb_rc[1], -EPERM);
}

/* A scope left pushed by a finished green thread is harmless. */
static void *forget_pop(void *arg)
{
    static struct jg_deadline d;

    (void)arg;
    T_OK(jg_deadline_push(&d, JG_MS(5)));
    return NULL;
}

static void test_scope_left_pushed(void)
{
    struct jg_green *g;

    for (int i = 0; i < 3; i++) {
        T_OK(jg_spawn(&g, forget_pop, NULL, i & 1 ? &sliced : NULL));
        T_OK(jg_join(g, NULL, JG_FOREVER));
    }
    T_EQ(jg_deadline_current(), INT64_MAX);
    T_OK(jg_sleep(JG_MS(10)));
}

T_MAIN(T_CASE(test_push_pop_errors), T_CASE(test_sleep_in_scope),
       T_CASE(test_read_in_scope), T_CASE(test_nested),
       T_CASE(test_move_cancel), T_CASE(test_expired_frozen_at_pop),
       T_CASE(test_per_green_thread), T_CASE(test_callback_eperm),
       T_CASE(test_scope_left_pushed))
