/* SPDX-License-Identifier: MIT */
/*
 * sync_event.c - the event and the one-shot result cell: wake-ups in FIFO
 * order (dedicated and sliced waiters), timeouts, kills, deadline scopes,
 * set-then-clear, -EALREADY, -EBUSY, -EDEADLK, -EXDEV and bad arguments.
 */
#include <juggle.h>
#include <pthread.h>
#include "t.h"
#include "t_late.h"

static struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };

/* Every other waiter runs on the hub's shared (sliced) stack. */
static const struct jg_spawn_opts *opts_for(int i)
{
    return (i & 1) ? &sliced : NULL;
}

/* What one waiter saw, kept off its stack. */
struct waiter {
    int id;
    int rc;
    int done;
    void *value;
    int64_t timeout;
    struct jg_event *e;
    struct jg_result *r;
};

static int order[1024];
static int norder;

static void *event_waiter(void *arg)
{
    struct waiter *w = arg;

    w->rc = jg_event_wait(w->e, w->timeout);
    order[norder++] = w->id;
    w->done = 1;
    return NULL;
}

static void *result_waiter(void *arg)
{
    struct waiter *w = arg;
    void *v = NULL;

    /* v lives on this (maybe sliced) stack: filled after resuming. */
    w->rc = jg_result_get(w->r, &v, w->timeout);
    w->value = v;
    order[norder++] = w->id;
    w->done = 1;
    return NULL;
}

/* ---- event ------------------------------------------------------------- */

static void test_event_basic(void)
{
    struct jg_event e, zero = { 0 };

    T_OK(jg_event_init(&e));
    T_EQ(jg_event_is_set(&e), 0);
    T_ERR(jg_event_wait(&e, 0), -ETIMEDOUT);
    T_OK(jg_event_set(&e));
    T_OK(jg_event_set(&e));
    T_EQ(jg_event_is_set(&e), 1);
    T_OK(jg_event_wait(&e, 0));
    T_OK(jg_event_wait(&e, JG_FOREVER));
    T_OK(jg_event_clear(&e));
    T_EQ(jg_event_is_set(&e), 0);
    T_ERR(jg_event_wait(&e, -2), -EINVAL);
    T_ERR(jg_event_wait(&e, INT64_MIN), -EINVAL);
    T_OK(jg_event_destroy(&e));

    /* NULL, never initialized, destroyed: -EINVAL, no crash. */
    T_ERR(jg_event_init(NULL), -EINVAL);
    T_ERR(jg_event_wait(NULL, 0), -EINVAL);
    T_ERR(jg_event_set(NULL), -EINVAL);
    T_ERR(jg_event_clear(NULL), -EINVAL);
    T_ERR(jg_event_is_set(NULL), -EINVAL);
    T_ERR(jg_event_destroy(NULL), -EINVAL);
    T_ERR(jg_event_wait(&zero, 0), -EINVAL);
    T_ERR(jg_event_set(&zero), -EINVAL);
    T_ERR(jg_event_set(&e), -EINVAL);
    T_ERR(jg_event_destroy(&e), -EINVAL);
}

/* set wakes every waiter, in the order they started waiting. */
static void test_event_fifo(void)
{
    int n = (int)t_scale(200);
    struct waiter *w = calloc((size_t)n, sizeof *w);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_event e;

    if (n > 1024)
        n = 1024;
    T_OK(jg_event_init(&e));
    norder = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .e = &e,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], event_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_sleep(JG_MS(1)));
    T_EQ(norder, 0);
    T_ERR(jg_event_destroy(&e), -EBUSY);
    T_OK(jg_event_set(&e));
    /* Woken but not run yet: still counted. */
    T_ERR(jg_event_destroy(&e), -EBUSY);
    for (int i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_EQ(norder, n);
    for (int i = 0; i < n; i++) {
        T_EQ(order[i], i);
        T_EQ(w[i].rc, 0);
    }
    T_OK(jg_event_destroy(&e));
    free(w);
    free(g);
}

/* Cleared again before the waiters run: they were woken, they return 0. */
static void test_event_set_then_clear(void)
{
    struct waiter w[3];
    struct jg_green *g[3];
    struct jg_event e;

    T_OK(jg_event_init(&e));
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .e = &e,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], event_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_event_set(&e));
    T_OK(jg_event_clear(&e));
    for (int i = 0; i < 3; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        T_EQ(w[i].rc, 0);
    }
    /* A new waiter waits again. */
    T_ERR(jg_event_wait(&e, JG_MS(5)), -ETIMEDOUT);
    T_OK(jg_event_destroy(&e));
}

static void test_event_timeout(void)
{
    struct waiter w = { .rc = 1, .timeout = JG_MS(50) };
    struct jg_green *g, *late;
    struct jg_event e;
    int64_t t0;

    T_OK(jg_event_init(&e));
    w.e = &e;
    t0 = t_now_ns();
    T_OK(jg_spawn(&g, event_waiter, &w, &sliced));
    late = t_late_start(JG_MS(100), &w.rc, 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(w.rc, -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    t_late_check(late);
    /* No trace: a later set wakes nobody and destroy succeeds. */
    T_OK(jg_event_set(&e));
    T_OK(jg_event_destroy(&e));
    /* From main as well. */
    T_OK(jg_event_init(&e));
    t0 = t_now_ns();
    T_ERR(jg_event_wait(&e, JG_MS(20)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    T_OK(jg_event_destroy(&e));
}

static void test_event_kill(void)
{
    struct waiter w[3];
    struct jg_green *g[3];
    struct jg_event e;

    T_OK(jg_event_init(&e));
    norder = 0;
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .e = &e,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], event_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_kill(g[1]));
    T_ERR(jg_join(g[1], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w[1].rc, -ECANCELED);
    T_EQ(w[0].done, 0);
    T_EQ(w[2].done, 0);
    T_OK(jg_event_set(&e));
    T_OK(jg_join(g[0], NULL, JG_FOREVER));
    T_OK(jg_join(g[2], NULL, JG_FOREVER));
    T_EQ(w[0].rc, 0);
    T_EQ(w[2].rc, 0);
    T_EQ(norder, 3);
    T_EQ(order[0], 1);
    T_EQ(order[1], 0);
    T_EQ(order[2], 2);
    T_OK(jg_event_destroy(&e));
}

struct scoped {
    struct jg_event *e;
    struct jg_result *r;
    int rc;
    bool expired;
    int64_t elapsed;
};

static void *scoped_wait(void *arg)
{
    struct scoped *s = arg;
    struct jg_deadline d;
    int64_t t0 = jg_now();

    T_OK(jg_deadline_push(&d, JG_MS(30)));
    s->rc = s->e ? jg_event_wait(s->e, JG_FOREVER)
                 : jg_result_get(s->r, NULL, JG_SEC(10));
    s->elapsed = jg_now() - t0;
    T_OK(jg_deadline_pop(&d));
    s->expired = jg_deadline_expired(&d);
    return NULL;
}

static void test_event_deadline_scope(void)
{
    struct jg_event e;
    struct jg_result r;
    struct scoped s = { 0 };
    struct jg_green *g, *late;

    T_OK(jg_event_init(&e));
    s.e = &e;
    T_OK(jg_spawn(&g, scoped_wait, &s, &sliced));
    late = t_late_start(JG_MS(60), &s.rc, 0);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(s.rc, -ETIMEDOUT);
    T_ASSERT(s.expired);
    T_ASSERT(s.elapsed >= JG_MS(30));
    t_late_check(late);
    T_OK(jg_event_destroy(&e));

    T_OK(jg_result_init(&r));
    s = (struct scoped){ .r = &r };
    T_OK(jg_spawn(&g, scoped_wait, &s, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(s.rc, -ETIMEDOUT);
    T_ASSERT(s.expired);
    T_ASSERT(s.elapsed >= JG_MS(30));
    T_OK(jg_result_destroy(&r));
}

/* Nothing can ever set it: main gets -EDEADLK instead of hanging. */
static void test_event_deadlock(void)
{
    struct jg_event e;

    T_OK(jg_event_init(&e));
    T_ERR(jg_event_wait(&e, JG_FOREVER), -EDEADLK);
    T_OK(jg_event_destroy(&e));
}

static void *wait_killed_self(void *arg)
{
    struct waiter *w = arg;

    T_OK(jg_kill(jg_current()));
    /* Sticky: fails at once, even though the event is set... */
    w->rc = jg_event_wait(w->e, JG_FOREVER);
    /* ...but a try (timeout 0) still reports the state. */
    w->done = jg_event_wait(w->e, 0) == 0;
    return NULL;
}

static void test_event_killed_fails_at_once(void)
{
    struct jg_event e;
    struct waiter w = { .rc = 1 };
    struct jg_green *g;

    T_OK(jg_event_init(&e));
    T_OK(jg_event_set(&e));
    w.e = &e;
    T_OK(jg_spawn(&g, wait_killed_self, &w, NULL));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w.rc, -ECANCELED);
    T_EQ(w.done, 1);
    T_OK(jg_event_destroy(&e));
}

/* From a loop callback: waiting is -EPERM, setting works (and wakes). */
static struct jg_event *cb_event;
static int cb_rc[2] = { 1, 1 };

static void timer_cb(struct jg_timer *t)
{
    (void)t;
    cb_rc[0] = jg_event_wait(cb_event, JG_FOREVER);
    cb_rc[1] = jg_event_set(cb_event);
}

static void test_event_from_callback(void)
{
    struct jg_event e;
    struct jg_timer t;

    T_OK(jg_event_init(&e));
    cb_event = &e;
    jg_timer_init(&t, timer_cb);
    T_OK(jg_timer_start(jg_loop_default(), &t, JG_MS(5), 0));
    T_OK(jg_event_wait(&e, JG_SEC(5)));
    T_ERR(cb_rc[0], -EPERM);
    T_OK(cb_rc[1]);
    T_OK(jg_event_destroy(&e));
}

/* ---- result cell ------------------------------------------------------- */

static void test_result_basic(void)
{
    struct jg_result r, zero = { 0 };
    int obj;
    void *v = NULL;

    T_OK(jg_result_init(&r));
    T_EQ(jg_result_ready(&r), 0);
    T_ERR(jg_result_get(&r, &v, 0), -ETIMEDOUT);
    T_OK(jg_result_set(&r, &obj));
    T_EQ(jg_result_ready(&r), 1);
    T_ERR(jg_result_set(&r, NULL), -EALREADY);
    T_ERR(jg_result_set_error(&r, -EIO), -EALREADY);
    T_OK(jg_result_get(&r, &v, 0));
    T_PEQ(v, &obj);
    v = NULL;
    T_OK(jg_result_get(&r, &v, JG_FOREVER));
    T_PEQ(v, &obj);
    T_OK(jg_result_get(&r, NULL, JG_FOREVER));
    T_OK(jg_result_destroy(&r));

    /* An error: returned by every get, the value untouched. */
    T_OK(jg_result_init(&r));
    T_ERR(jg_result_set_error(&r, 0), -EINVAL);
    T_ERR(jg_result_set_error(&r, 5), -EINVAL);
    T_ERR(jg_result_set_error(&r, -4096), -EINVAL);
    T_EQ(jg_result_ready(&r), 0);
    T_OK(jg_result_set_error(&r, -EIO));
    T_ERR(jg_result_set(&r, &obj), -EALREADY);
    v = &obj;
    T_ERR(jg_result_get(&r, &v, 0), -EIO);
    T_ERR(jg_result_get(&r, &v, JG_FOREVER), -EIO);
    T_PEQ(v, &obj);
    T_EQ(jg_result_ready(&r), 1);
    T_OK(jg_result_destroy(&r));

    T_ERR(jg_result_init(NULL), -EINVAL);
    T_ERR(jg_result_get(NULL, &v, 0), -EINVAL);
    T_ERR(jg_result_get(&zero, &v, 0), -EINVAL);
    T_ERR(jg_result_set(&zero, NULL), -EINVAL);
    T_ERR(jg_result_ready(&zero), -EINVAL);
    T_ERR(jg_result_destroy(&r), -EINVAL);
    T_OK(jg_result_init(&r));
    T_ERR(jg_result_get(&r, &v, -7), -EINVAL);
    T_OK(jg_result_destroy(&r));
}

/* Any number of waiters, woken in order, each with the value. */
static void test_result_waiters(void)
{
    int n = (int)t_scale(100);
    struct waiter *w = calloc((size_t)n, sizeof *w);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_result r;
    int obj;

    T_OK(jg_result_init(&r));
    norder = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .r = &r,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], result_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_EQ(norder, 0);
    T_ERR(jg_result_destroy(&r), -EBUSY);
    T_OK(jg_result_set(&r, &obj));
    for (int i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    for (int i = 0; i < n; i++) {
        T_EQ(order[i], i);
        T_EQ(w[i].rc, 0);
        T_PEQ(w[i].value, &obj);
    }
    T_OK(jg_result_destroy(&r));
    free(w);
    free(g);
}

/* Timeout, kill and error delivery to parked getters. */
static void test_result_timeout_kill_error(void)
{
    struct waiter w[3];
    struct jg_green *g[3];
    struct jg_result r;
    int64_t t0 = t_now_ns();

    T_OK(jg_result_init(&r));
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .r = &r,
                                .timeout = i == 0 ? JG_MS(40) : JG_FOREVER,
                                .value = &r };
        T_OK(jg_spawn(&g[i], result_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_kill(g[1]));
    T_OK(jg_join(g[0], NULL, JG_FOREVER));
    T_ERR(w[0].rc, -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(40));
    T_ERR(jg_join(g[1], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w[1].rc, -ECANCELED);
    T_EQ(w[2].done, 0);
    T_OK(jg_result_set_error(&r, -EPIPE));
    T_OK(jg_join(g[2], NULL, JG_FOREVER));
    T_ERR(w[2].rc, -EPIPE);
    T_PEQ(w[2].value, NULL);
    T_OK(jg_result_destroy(&r));
}

/* ---- cross-hub use ----------------------------------------------------- */

struct xdev {
    struct jg_event *e;
    struct jg_result *r;
    int rc[10];
};

static void *other_thread(void *arg)
{
    struct xdev *x = arg;
    void *v;

    x->rc[0] = jg_event_wait(x->e, 0);
    x->rc[1] = jg_event_wait(x->e, JG_FOREVER);
    x->rc[2] = jg_event_set(x->e);
    x->rc[3] = jg_event_clear(x->e);
    x->rc[4] = jg_event_is_set(x->e);
    x->rc[5] = jg_event_destroy(x->e);
    x->rc[6] = jg_result_get(x->r, &v, JG_MS(10));
    x->rc[7] = jg_result_set(x->r, NULL);
    x->rc[8] = jg_result_ready(x->r);
    x->rc[9] = jg_result_destroy(x->r);
    return NULL;
}

static void test_cross_hub(void)
{
    struct jg_event e;
    struct jg_result r;
    struct xdev x = { .e = &e, .r = &r };
    pthread_t t;

    T_OK(jg_event_init(&e));
    T_OK(jg_result_init(&r));
    T_EQ(pthread_create(&t, NULL, other_thread, &x), 0);
    T_EQ(pthread_join(t, NULL), 0);
    for (int i = 0; i < 10; i++)
        T_ERR(x.rc[i], -EXDEV);
    /* Untouched by the other thread. */
    T_EQ(jg_event_is_set(&e), 0);
    T_EQ(jg_result_ready(&r), 0);
    T_OK(jg_event_destroy(&e));
    T_OK(jg_result_destroy(&r));
}

T_MAIN(T_CASE(test_event_basic), T_CASE(test_event_fifo),
       T_CASE(test_event_set_then_clear), T_CASE(test_event_timeout),
       T_CASE(test_event_kill), T_CASE(test_event_deadline_scope),
       T_CASE(test_event_deadlock), T_CASE(test_event_killed_fails_at_once),
       T_CASE(test_event_from_callback),
       T_CASE(test_result_basic), T_CASE(test_result_waiters),
       T_CASE(test_result_timeout_kill_error), T_CASE(test_cross_hub))
