/* SPDX-License-Identifier: MIT */
/*
 * future_basic.c - futures one behaviour at a time: promise outcomes
 * (value, bytes, error + message, cancel), completing twice, timeouts,
 * done-callbacks, a promise completed from another OS thread while green
 * threads wait (the hub keeps serving), jg_wait modes and timeouts,
 * as_completed order, futures of green threads, killed waiters, and bad
 * arguments.
 */
#include <juggle.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "t.h"

/* ---- helpers ------------------------------------------------------------- */

static void *ret_arg_green(void *arg)
{
    return arg;
}

/* Complete a promise from another OS thread after a delay. */
struct later {
    struct jg_future *f;
    int64_t delay_ns;
    int code;                   /* 0: set_value(value) */
    void *value;
    pthread_t t;
};

/* Ticks of a green thread (below); a later set also waits for
 * later_ticks of them, so "the hub kept serving meanwhile" is a count. */
static _Atomic int ticks, later_ticks;

static void *later_main(void *arg)
{
    struct later *l = arg;
    struct timespec ts = { (time_t)(l->delay_ns / 1000000000LL),
                           (long)(l->delay_ns % 1000000000LL) };

    nanosleep(&ts, NULL);
    for (int i = 0; i < 10000 && atomic_load(&ticks) < atomic_load(
                                     &later_ticks); i++)
        usleep(1000);
    if (l->code)
        T_OK(jg_future_set_error(l->f, l->code, "later"));
    else
        T_OK(jg_future_set_value(l->f, l->value));
    return NULL;
}

static void later_start(struct later *l, struct jg_future *f, int64_t ns,
                        int code, void *value)
{
    l->f = f;
    l->delay_ns = ns;
    l->code = code;
    l->value = value;
    T_EQ(pthread_create(&l->t, NULL, later_main, l), 0);
}

static void later_join(struct later *l)
{
    T_EQ(pthread_join(l->t, NULL), 0);
}

/* ---- outcomes ------------------------------------------------------------ */

static void test_value(void)
{
    struct jg_future *f;
    void *v = NULL;
    int x;

    T_OK(jg_future_create(&f));
    T_EQ(jg_future_state(f), JG_FUTURE_PENDING);
    T_ERR(jg_future_result(f, &v, 0), -ETIMEDOUT);
    T_OK(jg_future_set_value(f, &x));
    T_EQ(jg_future_state(f), JG_FUTURE_DONE);
    T_OK(jg_future_result(f, &v, 0));
    T_PEQ(v, &x);
    T_ERR(jg_future_set_value(f, NULL), -EALREADY);
    T_ERR(jg_future_set_error(f, -EIO, NULL), -EALREADY);
    T_ERR(jg_future_cancel(f), -EALREADY);
    T_ERR(jg_future_set_running(f), -EALREADY);
    T_PEQ(jg_future_error_message(f), NULL);
    /* The value outlives an extra reference's drop. */
    jg_future_ref(f);
    jg_future_unref(f);
    T_OK(jg_future_result(f, &v, JG_FOREVER));
    T_PEQ(v, &x);
    jg_future_unref(f);
}

static void test_bytes(void)
{
    struct jg_future *f;
    const void *p;
    char buf[5] = "abcd";
    size_t n;
    void *v;

    T_OK(jg_future_create(&f));
    T_OK(jg_future_set_bytes(f, buf, 4));
    buf[0] = 'X';               /* the future owns a copy */
    T_OK(jg_future_bytes(f, &p, &n, 0));
    T_EQ(n, 4);
    T_ASSERT(memcmp(p, "abcd", 4) == 0);
    T_OK(jg_future_result(f, &v, 0));
    T_PEQ(v, p);
    jg_future_unref(f);

    /* A value result through jg_future_bytes: p = value, n = 0. */
    T_OK(jg_future_create(&f));
    T_OK(jg_future_set_value(f, buf));
    T_OK(jg_future_bytes(f, &p, &n, 0));
    T_PEQ(p, buf);
    T_EQ(n, 0);
    jg_future_unref(f);
}

static void test_error(void)
{
    struct jg_future *f;
    void *v = (void *)1;

    T_OK(jg_future_create(&f));
    T_PEQ(jg_future_error_message(f), NULL);
    T_ERR(jg_future_set_error(f, 5, "positive"), -EINVAL);
    T_ERR(jg_future_set_error(f, 0, NULL), -EINVAL);
    T_OK(jg_future_set_error(f, -ECHILD,
                             "worker killed by signal 9 (SIGKILL)"));
    T_EQ(jg_future_state(f), JG_FUTURE_DONE);
    T_ERR(jg_future_result(f, &v, 0), -ECHILD);
    T_PEQ(v, (void *)1);        /* untouched on error */
    T_STREQ(jg_future_error_message(f),
            "worker killed by signal 9 (SIGKILL)");
    jg_future_unref(f);

    T_OK(jg_future_create(&f));
    T_OK(jg_future_set_error(f, -EIO, NULL));
    T_STREQ(jg_future_error_message(f), "");
    jg_future_unref(f);
}

static void test_cancel(void)
{
    struct jg_future *f;

    T_OK(jg_future_create(&f));
    T_OK(jg_future_cancel(f));
    T_EQ(jg_future_state(f), JG_FUTURE_CANCELLED);
    T_ERR(jg_future_result(f, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(jg_future_cancel(f), -EALREADY);
    T_ERR(jg_future_set_value(f, NULL), -ECANCELED);
    T_ERR(jg_future_set_running(f), -ECANCELED);
    T_ERR(jg_future_set_bytes(f, "x", 1), -ECANCELED);
    jg_future_unref(f);

    /* Once RUNNING, cancel fails and the result still comes. */
    T_OK(jg_future_create(&f));
    T_OK(jg_future_set_running(f));
    T_EQ(jg_future_state(f), JG_FUTURE_RUNNING);
    T_ERR(jg_future_cancel(f), -EBUSY);
    T_ERR(jg_future_set_running(f), -EALREADY);
    T_OK(jg_future_set_value(f, (void *)7));
    T_OK(jg_future_result(f, NULL, 0));
    jg_future_unref(f);
}

static void test_timeout_os_thread(void)
{
    struct jg_future *f;
    int64_t t0;

    T_OK(jg_future_create(&f));
    t0 = jg_now();
    /* Only the timeout can end this wait (nothing sets f): the code says
     * it did; the time says it was not early. */
    T_ERR(jg_future_result(f, NULL, JG_MS(30)), -ETIMEDOUT);
    T_ASSERT(jg_now() - t0 >= JG_MS(30));
    jg_future_unref(f);
}

/* ---- callbacks ----------------------------------------------------------- */

static int cb_order[8], cb_n;
static pthread_t cb_thread[8];

static void record_cb(void *arg, struct jg_future *f)
{
    T_ASSERT(jg_future_state(f) >= JG_FUTURE_DONE);
    cb_thread[cb_n] = pthread_self();
    cb_order[cb_n++] = (int)(intptr_t)arg;
}

static void test_callbacks(void)
{
    struct jg_future *f;
    struct later l;

    cb_n = 0;
    T_OK(jg_future_create(&f));
    T_OK(jg_future_add_done_callback(f, record_cb, (void *)1));
    T_OK(jg_future_add_done_callback(f, record_cb, (void *)2));
    T_EQ(cb_n, 0);
    later_start(&l, f, JG_MS(5), 0, NULL);
    later_join(&l);
    /* Both ran once, in order, on the completing thread. */
    T_EQ(cb_n, 2);
    T_EQ(cb_order[0], 1);
    T_EQ(cb_order[1], 2);
    T_ASSERT(pthread_equal(cb_thread[0], l.t));
    /* Added after completion: runs at once, here. */
    T_OK(jg_future_add_done_callback(f, record_cb, (void *)3));
    T_EQ(cb_n, 3);
    T_ASSERT(pthread_equal(cb_thread[2], pthread_self()));
    jg_future_unref(f);

    /* Cancellation runs the callbacks too; a never-completed future's
     * callbacks are freed without running. */
    cb_n = 0;
    T_OK(jg_future_create(&f));
    T_OK(jg_future_add_done_callback(f, record_cb, (void *)4));
    T_OK(jg_future_cancel(f));
    T_EQ(cb_n, 1);
    jg_future_unref(f);
    T_OK(jg_future_create(&f));
    T_OK(jg_future_add_done_callback(f, record_cb, (void *)5));
    jg_future_unref(f);
    T_EQ(cb_n, 1);
}

/* ---- green threads waiting ----------------------------------------------- */

/* Ticks until told to stop (the waits below set their futures only once
 * it ticked 5 times: a waiter that held the hub would see none). */
static _Atomic int stop_ticking;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticking)) {
        if (jg_sleep(JG_MS(2)) < 0)
            break;
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

static void ticker_start(struct jg_green **tk)
{
    atomic_store(&ticks, 0);
    atomic_store(&stop_ticking, 0);
    atomic_store(&later_ticks, 5);
    T_OK(jg_spawn(tk, ticker, NULL, NULL));
}

static void ticker_stop(struct jg_green *tk)
{
    atomic_store(&stop_ticking, 1);
    atomic_store(&later_ticks, 0);
    T_OK(jg_join(tk, NULL, JG_FOREVER));
}

static void *wait_value(void *arg)
{
    void *v = NULL;
    int rc = jg_future_result(arg, &v, JG_FOREVER);

    return rc < 0 ? JG_ERR(rc) : v;
}

static void test_promise_from_thread_green_waiters(void)
{
    enum { N = 6 };
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    struct jg_green *g[N], *tk;
    struct jg_future *f;
    struct later l;
    int x;

    T_OK(jg_future_create(&f));
    for (int i = 0; i < N; i++)
        T_OK(jg_spawn(&g[i], wait_value, f, i % 2 ? &sliced : NULL));
    ticker_start(&tk);
    later_start(&l, f, JG_MS(60), 0, &x);
    for (int i = 0; i < N; i++) {
        void *v;
        T_OK(jg_join(g[i], &v, JG_FOREVER));
        T_PEQ(v, &x);
    }
    /* The hub kept serving the ticker while the waiters were parked. */
    T_ASSERT(atomic_load(&ticks) >= 5);
    ticker_stop(tk);
    later_join(&l);
    jg_future_unref(f);
}

/* The main context waits: it parks, the hub runs other green threads. */
static void test_main_waits_hub_serves(void)
{
    struct jg_green *tk;
    struct jg_future *f;
    struct later l;
    void *v;

    T_OK(jg_future_create(&f));
    ticker_start(&tk);
    later_start(&l, f, JG_MS(50), -EIO, NULL);
    T_ERR(jg_future_result(f, &v, JG_FOREVER), -EIO);
    T_STREQ(jg_future_error_message(f), "later");
    T_ASSERT(atomic_load(&ticks) >= 5);
    ticker_stop(tk);
    later_join(&l);
    jg_future_unref(f);
}

static void *wait_timeout(void *arg)
{
    int64_t t0 = jg_now();
    int rc = jg_future_result(arg, NULL, JG_MS(20));

    T_ASSERT(jg_now() - t0 >= JG_MS(20));
    return JG_ERR(rc);
}

static void test_green_timeout_and_kill(void)
{
    struct jg_green *a, *b;
    struct jg_future *f;

    T_OK(jg_future_create(&f));
    T_OK(jg_spawn(&a, wait_timeout, f, NULL));
    T_ERR(jg_join(a, NULL, JG_FOREVER), -ETIMEDOUT);
    /* A killed waiter leaves with -ECANCELED; the future is untouched. */
    T_OK(jg_spawn(&b, wait_value, f, NULL));
    T_OK(jg_sleep(JG_MS(5)));
    T_EQ(jg_state(b), JG_GREEN_PARKED);
    T_OK(jg_kill(b));
    T_ERR(jg_join(b, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_future_state(f), JG_FUTURE_PENDING);
    /* Completing it afterwards touches no stale waiter. */
    T_OK(jg_future_set_value(f, NULL));
    jg_future_unref(f);
}

/* ---- jg_wait ------------------------------------------------------------- */

static void test_wait_modes(void)
{
    struct jg_future *f[3];
    struct later l0, l1;
    int64_t t0;

    for (int i = 0; i < 3; i++)
        T_OK(jg_future_create(&f[i]));
    T_ERR(jg_wait(f, 3, JG_WAIT_FIRST, 0), -ETIMEDOUT);
    t0 = jg_now();
    T_ERR(jg_wait(f, 3, JG_WAIT_ALL, JG_MS(20)), -ETIMEDOUT);
    T_ASSERT(jg_now() - t0 >= JG_MS(20));

    /* FIRST: returns after the first completion. */
    later_start(&l0, f[1], JG_MS(10), 0, NULL);
    T_EQ(jg_wait(f, 3, JG_WAIT_FIRST, JG_FOREVER), 1);
    T_EQ(jg_future_state(f[1]), JG_FUTURE_DONE);
    later_join(&l0);

    /* FIRST_ERROR: a value does not end it, an error does. */
    later_start(&l0, f[0], JG_MS(5), 0, NULL);
    later_start(&l1, f[2], JG_MS(30), -EPIPE, NULL);
    T_EQ(jg_wait(f, 3, JG_WAIT_FIRST_ERROR, JG_FOREVER), 3);
    later_join(&l0);
    later_join(&l1);
    for (int i = 0; i < 3; i++)
        jg_future_unref(f[i]);

    /* FIRST_ERROR with no error: all done. ALL: all done. */
    for (int i = 0; i < 3; i++)
        T_OK(jg_future_create(&f[i]));
    T_OK(jg_future_set_value(f[0], NULL));
    later_start(&l0, f[1], JG_MS(5), 0, NULL);
    later_start(&l1, f[2], JG_MS(15), 0, NULL);
    T_EQ(jg_wait(f, 3, JG_WAIT_FIRST_ERROR, JG_FOREVER), 3);
    T_EQ(jg_wait(f, 3, JG_WAIT_ALL, 0), 3);
    later_join(&l0);
    later_join(&l1);
    for (int i = 0; i < 3; i++)
        jg_future_unref(f[i]);
    T_EQ(jg_wait(NULL, 0, JG_WAIT_ALL, 0), 0);
}

/* jg_wait from a green thread over promises, pool-like threads and green
 * threads at once (asyncio's gather over anything). */
static void *sleeper_ret(void *arg)
{
    T_OK(jg_sleep(JG_MS(10)));
    return arg;
}

static void *wait_mix(void *arg)
{
    struct jg_future **fs = arg;

    return (void *)(intptr_t)jg_wait(fs, 3, JG_WAIT_ALL, JG_SEC(10));
}

static void test_wait_mix_green(void)
{
    struct jg_future *fs[3];
    struct jg_green *g, *w;
    struct later l;
    void *v;

    T_OK(jg_future_create(&fs[0]));
    T_OK(jg_spawn(&g, sleeper_ret, (void *)5, NULL));
    T_OK(jg_green_future(g, &fs[1]));
    T_EQ(jg_future_state(fs[1]), JG_FUTURE_RUNNING);
    T_ERR(jg_future_cancel(fs[1]), -EBUSY);
    T_OK(jg_executor_call(jg_executor_default(), &fs[2], sleeper_ret,
                          (void *)6));
    later_start(&l, fs[0], JG_MS(20), 0, (void *)4);
    T_OK(jg_spawn(&w, wait_mix, fs, NULL));
    T_OK(jg_join(w, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 3);
    for (int i = 0; i < 3; i++) {
        T_OK(jg_future_result(fs[i], &v, 0));
        T_EQ((intptr_t)v, 4 + i);
    }
    T_OK(jg_join(g, NULL, JG_FOREVER));
    later_join(&l);
    for (int i = 0; i < 3; i++)
        jg_future_unref(fs[i]);
}

/* ---- as_completed -------------------------------------------------------- */

static void test_as_completed_order(void)
{
    struct jg_future *f[4], *got;
    struct jg_as_completed *it;
    struct later l[3];
    /* f[3] is done before the iterator exists: it comes first. */
    int64_t delay[3] = { JG_MS(40), JG_MS(10), JG_MS(25) };
    int want[4] = { 3, 1, 2, 0 };

    for (int i = 0; i < 4; i++)
        T_OK(jg_future_create(&f[i]));
    T_OK(jg_future_set_value(f[3], NULL));
    T_OK(jg_as_completed_create(&it, f, 4));
    for (int i = 0; i < 3; i++)
        later_start(&l[i], f[i], delay[i], 0, NULL);
    for (int i = 0; i < 4; i++) {
        T_OK(jg_as_completed_next(it, &got, JG_FOREVER));
        T_PEQ(got, f[want[i]]);
    }
    T_ERR(jg_as_completed_next(it, &got, JG_FOREVER), -ENOENT);
    for (int i = 0; i < 3; i++)
        later_join(&l[i]);
    /* The iterator holds references: drop ours first. */
    for (int i = 0; i < 4; i++)
        jg_future_unref(f[i]);
    jg_as_completed_destroy(it);
}

static void *ac_green(void *arg)
{
    struct jg_as_completed *it = arg;
    struct jg_future *got;
    int n = 0, rc;

    T_ERR(jg_as_completed_next(it, &got, JG_MS(5)), -ETIMEDOUT);
    while ((rc = jg_as_completed_next(it, &got, JG_SEC(10))) == 0)
        n++;
    T_ERR(rc, -ENOENT);
    return (void *)(intptr_t)n;
}

static void test_as_completed_green(void)
{
    struct jg_future *f[3];
    struct jg_as_completed *it;
    struct jg_green *g;
    struct later l[3];
    void *v;

    for (int i = 0; i < 3; i++)
        T_OK(jg_future_create(&f[i]));
    T_OK(jg_as_completed_create(&it, f, 3));
    T_OK(jg_spawn(&g, ac_green, it, NULL));
    for (int i = 0; i < 3; i++)
        later_start(&l[i], f[i], JG_MS(15 + 5 * i), i ? 0 : -EIO, NULL);
    T_OK(jg_join(g, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 3);
    for (int i = 0; i < 3; i++) {
        later_join(&l[i]);
        jg_future_unref(f[i]);
    }
    jg_as_completed_destroy(it);
}

/* Destroying an iterator with futures still pending unhooks it. */
static void test_as_completed_destroy_early(void)
{
    struct jg_future *f;
    struct jg_as_completed *it;

    T_OK(jg_future_create(&f));
    T_OK(jg_as_completed_create(&it, &f, 1));
    jg_as_completed_destroy(it);
    T_OK(jg_future_set_value(f, NULL));
    jg_future_unref(f);
}

/* ---- futures of green threads -------------------------------------------- */

static void *killed_self(void *arg)
{
    (void)arg;
    return JG_ERR(jg_sleep(JG_SEC(10)));
}

static void test_green_future(void)
{
    struct jg_future *f;
    struct jg_green *g;
    void *v;

    T_OK(jg_spawn(&g, ret_arg_green, (void *)9, NULL));
    T_OK(jg_green_future(g, &f));
    T_OK(jg_future_result(f, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 9);
    jg_future_unref(f);
    /* Made after g finished: completes at once. */
    T_OK(jg_green_future(g, &f));
    T_EQ(jg_future_state(f), JG_FUTURE_DONE);
    jg_future_unref(f);
    T_OK(jg_join(g, NULL, 0));

    T_OK(jg_spawn(&g, ret_arg_green, JG_ERR(-EPROTO), NULL));
    T_OK(jg_green_future(g, &f));
    T_ERR(jg_future_result(f, &v, JG_FOREVER), -EPROTO);
    jg_future_unref(f);
    T_ERR(jg_join(g, NULL, 0), -EPROTO);

    T_OK(jg_spawn(&g, killed_self, NULL, NULL));
    T_OK(jg_green_future(g, &f));
    T_OK(jg_yield());
    T_OK(jg_kill(g));
    T_ERR(jg_future_result(f, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_future_state(f), JG_FUTURE_CANCELLED);
    jg_future_unref(f);
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);

    /* Killed before it ever ran. */
    T_OK(jg_spawn(&g, ret_arg_green, NULL, NULL));
    T_OK(jg_green_future(g, &f));
    T_OK(jg_kill(g));
    T_EQ(jg_future_state(f), JG_FUTURE_CANCELLED);
    jg_future_unref(f);
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
}

/* From another OS thread a green thread is -EXDEV. */
static struct jg_green *xdev_g;

static void *xdev_main(void *arg)
{
    struct jg_future *f;

    (void)arg;
    T_ERR(jg_green_future(xdev_g, &f), -EXDEV);
    return NULL;
}

static void test_green_future_xdev(void)
{
    pthread_t t;

    T_OK(jg_spawn(&xdev_g, ret_arg_green, NULL, NULL));
    T_EQ(pthread_create(&t, NULL, xdev_main, NULL), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_OK(jg_join(xdev_g, NULL, JG_FOREVER));
}

/* ---- bad input and callbacks --------------------------------------------- */

static int cb_rc;

static void timer_cb(struct jg_timer *t)
{
    struct jg_future *f = t->base.data;

    cb_rc = jg_future_result(f, NULL, JG_MS(1));
}

static void test_einval_eperm(void)
{
    struct jg_future *f, *nullf[1] = { NULL };
    struct jg_as_completed *it;
    struct jg_timer t;

    T_ERR(jg_future_create(NULL), -EINVAL);
    T_ERR(jg_future_state(NULL), -EINVAL);
    T_ERR(jg_future_set_value(NULL, NULL), -EINVAL);
    T_ERR(jg_future_set_running(NULL), -EINVAL);
    T_ERR(jg_future_cancel(NULL), -EINVAL);
    T_ERR(jg_future_result(NULL, NULL, 0), -EINVAL);
    T_ERR(jg_future_add_done_callback(NULL, record_cb, NULL), -EINVAL);
    T_ERR(jg_green_future(NULL, &f), -EINVAL);
    T_ERR(jg_wait(nullf, 1, JG_WAIT_ALL, 0), -EINVAL);
    T_ERR(jg_as_completed_create(&it, nullf, 1), -EINVAL);
    T_ERR(jg_as_completed_next(NULL, &f, 0), -EINVAL);
    jg_future_unref(NULL);
    jg_future_ref(NULL);
    jg_as_completed_destroy(NULL);
    T_OK(jg_future_create(&f));
    T_ERR(jg_future_set_bytes(f, NULL, 3), -EINVAL);
    T_ERR(jg_future_add_done_callback(f, NULL, NULL), -EINVAL);
    T_ERR(jg_future_result(f, NULL, -5), -EINVAL);
    T_ERR(jg_wait(&f, 1, 7, 0), -EINVAL);
    T_ERR(jg_wait(&f, 1, JG_WAIT_ALL, -2), -EINVAL);
    /* A loop callback must not block its hub. */
    jg_timer_init(&t, timer_cb);
    t.base.data = f;
    T_OK(jg_timer_start(jg_loop_default(), &t, 0, 0));
    T_OK(jg_sleep(JG_MS(2)));
    T_ERR(cb_rc, -EPERM);
    jg_future_unref(f);
}

T_MAIN(T_CASE(test_value), T_CASE(test_bytes), T_CASE(test_error),
       T_CASE(test_cancel), T_CASE(test_timeout_os_thread),
       T_CASE(test_callbacks),
       T_CASE(test_promise_from_thread_green_waiters),
       T_CASE(test_main_waits_hub_serves),
       T_CASE(test_green_timeout_and_kill), T_CASE(test_wait_modes),
       T_CASE(test_wait_mix_green), T_CASE(test_as_completed_order),
       T_CASE(test_as_completed_green),
       T_CASE(test_as_completed_destroy_early),
       T_CASE(test_green_future), T_CASE(test_green_future_xdev),
       T_CASE(test_einval_eperm))
