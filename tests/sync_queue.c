/* SPDX-License-Identifier: MIT */
/*
 * sync_queue.c - green queues: FIFO/LIFO/priority order, try/timeout/kill/
 * deadline-scope while blocked (dedicated and sliced waiters), FIFO wake-up
 * of getters and putters, items earmarked for killed getters going back,
 * task_done/join, close, cross-hub -EXDEV, and the "nothing lost" stress:
 * producers through a bounded queue of 16 while consumers are killed.
 */
#include <juggle.h>
#include <pthread.h>
#include "t.h"
#include "t_late.h"

#define P(x) ((void *)(uintptr_t)(x))
#define U(p) ((uintptr_t)(p))

static const struct jg_spawn_opts sliced = { NULL, 0, JG_STACK_SLICED };

static const struct jg_spawn_opts *model(int sl)
{
    return sl ? &sliced : NULL;
}

/* ---- order and try ------------------------------------------------------ */

static void test_order_kinds(void)
{
    struct jg_queue *q;
    void *v;
    int prio;

    T_OK(jg_queue_create(&q, 0, JG_QUEUE_FIFO));
    for (int i = 1; i <= 100; i++)
        T_OK(jg_queue_put(q, P(i), 0));
    T_EQ(jg_queue_size(q), 100);
    for (int i = 1; i <= 100; i++) {
        T_OK(jg_queue_get(q, &v, 0));
        T_EQ(U(v), i);
    }
    T_ERR(jg_queue_get(q, &v, 0), -EAGAIN);
    T_OK(jg_queue_destroy(q));

    T_OK(jg_queue_create(&q, 3, JG_QUEUE_LIFO));
    T_OK(jg_queue_put(q, P(1), 0));
    T_OK(jg_queue_put(q, P(2), 0));
    T_OK(jg_queue_put(q, P(3), 0));
    T_ERR(jg_queue_put(q, P(4), 0), -EAGAIN);
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 3);
    T_OK(jg_queue_put(q, P(5), 0));
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 5);
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 2);
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 1);
    T_OK(jg_queue_destroy(q));

    /* Lowest priority first; equal priorities keep their order. */
    T_OK(jg_queue_create(&q, 0, JG_QUEUE_PRIORITY));
    static const int pr[] = { 5, 1, 3, 1, 5, -2, 3, 0 };
    for (int i = 0; i < 8; i++)
        T_OK(jg_queue_put_prio(q, P(i), pr[i], 0));
    static const int want[] = { 5, 7, 1, 3, 2, 6, 0, 4 };
    for (int i = 0; i < 8; i++) {
        T_OK(jg_queue_get_prio(q, &v, &prio, 0));
        T_EQ(U(v), want[i]);
        T_EQ(prio, pr[want[i]]);
    }
    /* A larger run against a sort. */
    int n = 5000, last = -1000000;
    for (int i = 0; i < n; i++)
        T_OK(jg_queue_put_prio(q, P(i), (i * 7919) % 1013, 0));
    for (int i = 0; i < n; i++) {
        T_OK(jg_queue_get_prio(q, &v, &prio, 0));
        T_ASSERT(prio >= last);
        T_EQ(prio, (int)((U(v) * 7919) % 1013));
        last = prio;
    }
    T_OK(jg_queue_destroy(q));
}

static void test_bad_args(void)
{
    struct jg_queue *q;
    void *v;

    T_ERR(jg_queue_create(NULL, 0, JG_QUEUE_FIFO), -EINVAL);
    T_ERR(jg_queue_create(&q, 0, 3), -EINVAL);
    T_ERR(jg_queue_create(&q, 0, -1), -EINVAL);
    T_OK(jg_queue_create(&q, 1, JG_QUEUE_FIFO));
    T_ERR(jg_queue_put(NULL, P(1), 0), -EINVAL);
    T_ERR(jg_queue_put(q, P(1), -2), -EINVAL);
    T_ERR(jg_queue_get(q, NULL, 0), -EINVAL);
    T_ERR(jg_queue_get(q, &v, -5), -EINVAL);
    T_ERR(jg_queue_join(q, -3), -EINVAL);
    T_ERR(jg_queue_task_done(q), -EINVAL);
    T_ERR(jg_queue_destroy(NULL), -EINVAL);
    T_ERR(jg_queue_size(NULL), -EINVAL);
    T_OK(jg_queue_destroy(q));
}

/* ---- blocked getters and putters ---------------------------------------- */

struct getter {
    struct jg_queue *q;
    int64_t timeout;
    int rc;
    void *v;
    int order;
};

static int wake_seq;

static void *get_fn(void *arg)
{
    struct getter *a = arg;

    a->rc = jg_queue_get(a->q, &a->v, a->timeout);
    a->order = ++wake_seq;
    return NULL;
}

static void *put_fn(void *arg)
{
    struct getter *a = arg;

    a->rc = jg_queue_put(a->q, a->v, a->timeout);
    a->order = ++wake_seq;
    return NULL;
}

static void fifo_getters(int sl)
{
    struct jg_queue *q;
    struct getter a[5];
    struct jg_green *g[5];

    T_OK(jg_queue_create(&q, 0, JG_QUEUE_FIFO));
    wake_seq = 0;
    for (int i = 0; i < 5; i++) {
        a[i] = (struct getter){ q, JG_FOREVER, 1, NULL, 0 };
        T_OK(jg_spawn(&g[i], get_fn, &a[i], model(sl)));
        T_OK(jg_yield());       /* queue them in spawn order */
    }
    for (int i = 0; i < 5; i++)
        T_OK(jg_queue_put(q, P(100 + i), 0));
    T_EQ(jg_queue_size(q), 0);  /* all handed directly */
    for (int i = 0; i < 5; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    for (int i = 0; i < 5; i++) {
        T_OK(a[i].rc);
        T_EQ(U(a[i].v), 100 + i);
        T_EQ(a[i].order, i + 1);
    }
    T_OK(jg_queue_destroy(q));
}

static void test_fifo_getters(void)
{
    fifo_getters(0);
    fifo_getters(1);
}

static void fifo_putters(int sl)
{
    struct jg_queue *q;
    struct getter a[5];
    struct jg_green *g[5];
    void *v;

    T_OK(jg_queue_create(&q, 2, JG_QUEUE_FIFO));
    T_OK(jg_queue_put(q, P(1), 0));
    T_OK(jg_queue_put(q, P(2), 0));
    wake_seq = 0;
    for (int i = 0; i < 5; i++) {
        a[i] = (struct getter){ q, JG_FOREVER, 1, P(10 + i), 0 };
        T_OK(jg_spawn(&g[i], put_fn, &a[i], model(sl)));
        T_OK(jg_yield());
    }
    /* Each get lets exactly the first waiting putter in, in order. */
    for (int i = 0; i < 7; i++) {
        T_OK(jg_queue_get(q, &v, JG_FOREVER));
        T_EQ(U(v), i < 2 ? i + 1 : 10 + i - 2);
        T_ASSERT(jg_queue_size(q) <= 2);
    }
    for (int i = 0; i < 5; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        T_OK(a[i].rc);
        T_EQ(a[i].order, i + 1);
    }
    T_OK(jg_queue_destroy(q));
}

static void test_fifo_putters(void)
{
    fifo_putters(0);
    fifo_putters(1);
}

static void timeout_blocked(int sl)
{
    struct jg_queue *q;
    struct getter a = { NULL, JG_MS(30), 1, NULL, 0 };
    struct getter p;
    struct jg_green *g;
    void *v;

    T_OK(jg_queue_create(&q, 1, JG_QUEUE_FIFO));
    a.q = q;
    int64_t t0 = t_now_ns();
    T_OK(jg_spawn(&g, get_fn, &a, model(sl)));
    struct jg_green *late = t_late_start(JG_MS(60), &a.rc, 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    int64_t dt = t_now_ns() - t0;
    T_ERR(a.rc, -ETIMEDOUT);
    T_ASSERT(dt >= JG_MS(30));
    t_late_check(late);
    /* Left no trace: a put buffers, not handed to a ghost. */
    T_OK(jg_queue_put(q, P(7), 0));
    T_EQ(jg_queue_size(q), 1);
    /* A putter on a full queue times out too, its item not taken. */
    p = (struct getter){ q, JG_MS(20), 1, P(8), 0 };
    T_OK(jg_spawn(&g, put_fn, &p, model(sl)));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(p.rc, -ETIMEDOUT);
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 7);
    T_ERR(jg_queue_get(q, &v, 0), -EAGAIN);
    T_OK(jg_queue_destroy(q));
}

static void test_timeout_blocked(void)
{
    timeout_blocked(0);
    timeout_blocked(1);
}

static void kill_blocked(int sl)
{
    struct jg_queue *q;
    struct getter a, p;
    struct jg_green *g;
    void *v;

    T_OK(jg_queue_create(&q, 1, JG_QUEUE_FIFO));
    a = (struct getter){ q, JG_FOREVER, 1, NULL, 0 };
    T_OK(jg_spawn(&g, get_fn, &a, model(sl)));
    T_OK(jg_yield());
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(a.rc, -ECANCELED);
    T_OK(jg_queue_put(q, P(3), 0));
    T_EQ(jg_queue_size(q), 1);
    /* Killed putter: its item never enters. */
    p = (struct getter){ q, JG_FOREVER, 1, P(4), 0 };
    T_OK(jg_spawn(&g, put_fn, &p, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(p.rc, -ECANCELED);
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 3);
    T_ERR(jg_queue_get(q, &v, 0), -EAGAIN);
    T_OK(jg_queue_destroy(q));
}

static void test_kill_blocked(void)
{
    kill_blocked(0);
    kill_blocked(1);
}

/* An item earmarked for a getter that is killed before it resumes goes
 * back: to the next waiting getter, else to the head (or its place). */
static void earmark_kill(int sl, int kind)
{
    struct jg_queue *q;
    struct getter a, b;
    struct jg_green *ga, *gb;
    void *v;
    int prio;

    T_OK(jg_queue_create(&q, 2, kind));
    a = (struct getter){ q, JG_FOREVER, 1, NULL, 0 };
    T_OK(jg_spawn(&ga, get_fn, &a, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_queue_put_prio(q, P(1), 5, 0));   /* earmarked for a */
    T_EQ(jg_state(ga), JG_GREEN_READY);
    T_OK(jg_kill(ga));
    T_OK(jg_queue_put_prio(q, P(2), 7, 0));
    T_OK(jg_queue_put_prio(q, P(3), 1, 0));
    T_ERR(jg_join(ga, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(a.rc, -ECANCELED);
    /* The bound is exceeded by one for a moment. */
    T_EQ(jg_queue_size(q), 3);
    static const int want[3][3] = {
        { 1, 2, 3 },            /* FIFO: back at the head */
        { 1, 3, 2 },            /* LIFO: back on top */
        { 3, 1, 2 },            /* priority: at its place */
    };
    for (int i = 0; i < 3; i++) {
        T_OK(jg_queue_get_prio(q, &v, &prio, 0));
        T_EQ(U(v), want[kind][i]);
    }
    /* With another getter waiting, it goes straight to that one. */
    a = (struct getter){ q, JG_FOREVER, 1, NULL, 0 };
    b = (struct getter){ q, JG_FOREVER, 1, NULL, 0 };
    T_OK(jg_spawn(&ga, get_fn, &a, model(sl)));
    T_OK(jg_spawn(&gb, get_fn, &b, model(!sl)));
    T_OK(jg_yield());
    T_OK(jg_queue_put(q, P(9), 0));
    T_OK(jg_kill(ga));
    T_ERR(jg_join(ga, NULL, JG_FOREVER), -ECANCELED);
    T_OK(jg_join(gb, NULL, JG_FOREVER));
    T_ERR(a.rc, -ECANCELED);
    T_OK(b.rc);
    T_EQ(U(b.v), 9);
    T_EQ(jg_queue_size(q), 0);
    /* The item still counts as unfinished once: one task_done joins. */
    T_OK(jg_queue_task_done(q));
    T_OK(jg_queue_task_done(q));
    T_OK(jg_queue_task_done(q));
    T_OK(jg_queue_task_done(q));
    T_ERR(jg_queue_task_done(q), -EINVAL);
    T_OK(jg_queue_join(q, 0));
    T_OK(jg_queue_destroy(q));
}

static void test_earmark_kill(void)
{
    for (int kind = 0; kind < 3; kind++) {
        earmark_kill(0, kind);
        earmark_kill(1, kind);
    }
}

static void test_deadline_scope(void)
{
    struct jg_queue *q;
    struct jg_deadline d;
    void *v;

    T_OK(jg_queue_create(&q, 1, JG_QUEUE_FIFO));
    int64_t t0 = t_now_ns();
    T_OK(jg_deadline_push(&d, JG_MS(20)));
    T_ERR(jg_queue_get(q, &v, JG_FOREVER), -ETIMEDOUT);
    T_ASSERT(jg_deadline_expired(&d));
    T_OK(jg_queue_put(q, P(1), 0));
    T_ERR(jg_queue_put(q, P(2), JG_SEC(10)), -ETIMEDOUT);
    T_OK(jg_deadline_pop(&d));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    /* Ready items are still given inside an expired scope. */
    T_OK(jg_deadline_push(&d, 0));
    T_OK(jg_queue_get(q, &v, JG_FOREVER));
    T_EQ(U(v), 1);
    T_OK(jg_deadline_pop(&d));
    T_OK(jg_queue_destroy(q));
}

/* ---- task_done / join, close ------------------------------------------- */

static void *worker_fn(void *arg)
{
    struct jg_queue *q = arg;
    void *v;

    while (jg_queue_get(q, &v, JG_FOREVER) == 0) {
        T_OK(jg_sleep(JG_MS(1)));
        T_OK(jg_queue_task_done(q));
    }
    return NULL;
}

static void test_join_close(void)
{
    struct jg_queue *q;
    struct jg_green *w[3];
    struct getter a, p;
    struct jg_green *g;
    void *v;

    T_OK(jg_queue_create(&q, 4, JG_QUEUE_FIFO));
    T_OK(jg_queue_join(q, 0));
    for (int i = 0; i < 3; i++)
        T_OK(jg_spawn(&w[i], worker_fn, q, model(i == 1)));
    for (int i = 0; i < 20; i++)
        T_OK(jg_queue_put(q, P(i), JG_FOREVER));
    T_ERR(jg_queue_join(q, 0), -ETIMEDOUT);
    T_OK(jg_queue_join(q, JG_SEC(10)));
    T_EQ(jg_queue_size(q), 0);
    /* Close wakes the blocked getters with -EPIPE. */
    T_OK(jg_queue_close(q));
    T_OK(jg_queue_close(q));
    for (int i = 0; i < 3; i++)
        T_OK(jg_join(w[i], NULL, JG_FOREVER));
    T_ERR(jg_queue_put(q, P(1), 0), -EPIPE);
    T_OK(jg_queue_destroy(q));

    /* Getters drain what is left, then -EPIPE; blocked putters -EPIPE. */
    T_OK(jg_queue_create(&q, 2, JG_QUEUE_FIFO));
    T_OK(jg_queue_put(q, P(1), 0));
    T_OK(jg_queue_put(q, P(2), 0));
    p = (struct getter){ q, JG_FOREVER, 1, P(3), 0 };
    T_OK(jg_spawn(&g, put_fn, &p, NULL));
    T_OK(jg_yield());
    T_OK(jg_queue_close(q));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(p.rc, -EPIPE);
    T_OK(jg_queue_get(q, &v, JG_FOREVER));
    T_EQ(U(v), 1);
    T_OK(jg_queue_get(q, &v, 0));
    T_EQ(U(v), 2);
    T_ERR(jg_queue_get(q, &v, JG_FOREVER), -EPIPE);
    T_ERR(jg_queue_get(q, &v, 0), -EPIPE);
    T_OK(jg_queue_destroy(q));

    /* destroy refuses while a green thread waits. */
    T_OK(jg_queue_create(&q, 2, JG_QUEUE_FIFO));
    a = (struct getter){ q, JG_FOREVER, 1, NULL, 0 };
    T_OK(jg_spawn(&g, get_fn, &a, NULL));
    T_OK(jg_yield());
    T_ERR(jg_queue_destroy(q), -EBUSY);
    T_OK(jg_queue_close(q));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(a.rc, -EPIPE);
    T_OK(jg_queue_destroy(q));
}

/* ---- cross-hub ----------------------------------------------------------- */

static void *other_thread(void *arg)
{
    struct jg_queue *q = arg;
    void *v;
    intptr_t bad = 0;

    bad |= jg_queue_put(q, P(1), 0) != -EXDEV;
    bad |= jg_queue_get(q, &v, JG_FOREVER) != -EXDEV;
    bad |= jg_queue_task_done(q) != -EXDEV;
    bad |= jg_queue_join(q, 0) != -EXDEV;
    bad |= jg_queue_close(q) != -EXDEV;
    bad |= jg_queue_destroy(q) != -EXDEV;
    bad |= jg_queue_size(q) != -EXDEV;
    return (void *)bad;
}

static void test_cross_hub(void)
{
    struct jg_queue *q;
    pthread_t t;
    void *bad;

    T_OK(jg_queue_create(&q, 0, JG_QUEUE_FIFO));
    T_OK(jg_queue_put(q, P(1), 0));
    T_EQ(pthread_create(&t, NULL, other_thread, q), 0);
    T_EQ(pthread_join(t, &bad), 0);
    T_PEQ(bad, NULL);
    T_EQ(jg_queue_size(q), 1);
    T_OK(jg_queue_get(q, &bad, 0));
    T_OK(jg_queue_destroy(q));
}

/* ---- nothing lost -------------------------------------------------------- */

#define NCONS 8

static struct stress {
    struct jg_queue *q;
    long per;                   /* items per producer */
    int nprod;
    unsigned char *seen;        /* times each item was received */
    struct jg_green *cons[NCONS];
    long received, kills;
    int producers_left;
    uint64_t rng;
} st;

static uint64_t rnd(void)
{
    st.rng ^= st.rng << 13;
    st.rng ^= st.rng >> 7;
    st.rng ^= st.rng << 17;
    return st.rng;
}

static void *producer(void *arg)
{
    long base = (long)(intptr_t)arg * st.per;

    for (long i = 0; i < st.per; i++)
        T_OK(jg_queue_put(st.q, P(base + i + 1), JG_FOREVER));
    st.producers_left--;
    return NULL;
}

static void *consumer(void *arg)
{
    void *v;
    int rc;

    (void)arg;
    for (;;) {
        /* Short timeouts too: a timed-out getter must leave no trace. */
        int64_t t = (rnd() & 7) == 0 ? JG_US(50) : JG_FOREVER;
        rc = jg_queue_get(st.q, &v, t);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc < 0)
            break;
        T_ASSERT(U(v) >= 1 && U(v) <= (uintptr_t)(st.nprod * st.per));
        st.seen[U(v) - 1]++;
        st.received++;
        if ((rnd() & 3) == 0)
            T_ASSERT(jg_yield() == 0 || jg_cancelled());
    }
    T_ASSERT(rc == -ECANCELED || rc == -EPIPE);
    return NULL;
}

static void *killer(void *arg)
{
    (void)arg;
    while (st.producers_left > 0) {
        int n = (int)(rnd() % 5);
        for (int i = 0; i < n; i++)
            if (jg_yield() < 0)
                return NULL;
        int k = (int)(rnd() % NCONS);
        T_OK(jg_kill(st.cons[k]));
        int rc = jg_join(st.cons[k], NULL, JG_FOREVER);
        T_ASSERT(rc == -ECANCELED || rc == 0);
        st.kills++;
        T_OK(jg_spawn(&st.cons[k], consumer, NULL, model(rnd() & 1)));
    }
    return NULL;
}

static void test_nothing_lost(void)
{
    struct jg_green *prod[100], *kg;
    long total;

    memset(&st, 0, sizeof st);
    st.rng = 0x12345678abcdefull;
    st.nprod = 100;
    st.per = t_scale(10000);
    total = st.nprod * st.per;
    st.seen = calloc((size_t)total, 1);
    T_ASSERT(st.seen);
    T_OK(jg_queue_create(&st.q, 16, JG_QUEUE_FIFO));
    st.producers_left = st.nprod;
    for (int i = 0; i < NCONS; i++)
        T_OK(jg_spawn(&st.cons[i], consumer, NULL, model(i & 1)));
    for (int i = 0; i < st.nprod; i++)
        T_OK(jg_spawn(&prod[i], producer, P(i), model(i % 3 == 0)));
    T_OK(jg_spawn(&kg, killer, NULL, NULL));
    for (int i = 0; i < st.nprod; i++)
        T_OK(jg_join(prod[i], NULL, JG_FOREVER));
    T_OK(jg_join(kg, NULL, JG_FOREVER));
    /* Producers are done: close, and the consumers drain the rest. */
    T_OK(jg_queue_close(st.q));
    for (int i = 0; i < NCONS; i++) {
        int rc = jg_join(st.cons[i], NULL, JG_FOREVER);
        T_ASSERT(rc == 0 || rc == -ECANCELED);
    }
    T_EQ(st.received, total);
    for (long i = 0; i < total; i++)
        if (st.seen[i] != 1)
            T_FAIL_("item %ld received %d times", i + 1, st.seen[i]);
    T_EQ(jg_queue_size(st.q), 0);
    T_ASSERT(st.kills > 0);
    fprintf(stderr, "%ld items, %ld consumers killed\n", total, st.kills);
    T_OK(jg_queue_destroy(st.q));
    free(st.seen);
}

T_MAIN(T_CASE(test_order_kinds), T_CASE(test_bad_args),
       T_CASE(test_fifo_getters), T_CASE(test_fifo_putters),
       T_CASE(test_timeout_blocked), T_CASE(test_kill_blocked),
       T_CASE(test_earmark_kill), T_CASE(test_deadline_scope),
       T_CASE(test_join_close), T_CASE(test_cross_hub),
       T_CASE(test_nothing_lost))
