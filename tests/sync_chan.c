/* SPDX-License-Identifier: MIT */
/*
 * sync_chan.c - channels and select: rendezvous and buffered order, FIFO
 * wake-up of senders and receivers, timeout/kill/deadline scope while
 * blocked (dedicated and sliced), a value handed to a killed receiver going
 * back, close, select's cases and its fairness over 4 always-ready channels,
 * cross-hub -EXDEV, and a kill-at-random stress where nothing is lost.
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

struct op {
    struct jg_chan *c;
    int64_t timeout;
    void *v;
    int rc;
    int order;
};

static int seq;

static void *send_fn(void *arg)
{
    struct op *o = arg;

    o->rc = jg_chan_send(o->c, o->v, o->timeout);
    o->order = ++seq;
    return NULL;
}

static void *recv_fn(void *arg)
{
    struct op *o = arg;

    o->rc = jg_chan_recv(o->c, &o->v, o->timeout);
    o->order = ++seq;
    return NULL;
}

static void test_rendezvous(void)
{
    struct jg_chan *c;
    struct op s[4];
    struct jg_green *g[4];
    void *v;

    T_OK(jg_chan_create(&c, 0));
    /* Nobody receives: a try send fails, a try recv too. */
    T_ERR(jg_chan_send(c, P(1), 0), -EAGAIN);
    T_ERR(jg_chan_recv(c, &v, 0), -EAGAIN);
    seq = 0;
    for (int i = 0; i < 4; i++) {
        s[i] = (struct op){ c, JG_FOREVER, P(10 + i), 1, 0 };
        T_OK(jg_spawn(&g[i], send_fn, &s[i], model(i & 1)));
        T_OK(jg_yield());
        T_EQ(jg_state(g[i]), JG_GREEN_PARKED);
    }
    T_EQ(jg_chan_len(c), 0);
    for (int i = 0; i < 4; i++) {
        T_OK(jg_chan_recv(c, &v, 0));
        T_EQ(U(v), 10 + i);
    }
    for (int i = 0; i < 4; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        T_OK(s[i].rc);
        T_EQ(s[i].order, i + 1);
    }
    T_OK(jg_chan_destroy(c));
}

static void fifo_receivers(int sl)
{
    struct jg_chan *c;
    struct op r[4];
    struct jg_green *g[4];

    T_OK(jg_chan_create(&c, 2));
    seq = 0;
    for (int i = 0; i < 4; i++) {
        r[i] = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
        T_OK(jg_spawn(&g[i], recv_fn, &r[i], model(sl)));
        T_OK(jg_yield());
    }
    for (int i = 0; i < 4; i++)
        T_OK(jg_chan_send(c, P(20 + i), 0));
    T_EQ(jg_chan_len(c), 0);
    for (int i = 0; i < 4; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        T_OK(r[i].rc);
        T_EQ(U(r[i].v), 20 + i);
        T_EQ(r[i].order, i + 1);
    }
    /* Buffered: two fit, the third would wait. */
    T_OK(jg_chan_send(c, P(1), 0));
    T_OK(jg_chan_send(c, P(2), 0));
    T_ERR(jg_chan_send(c, P(3), 0), -EAGAIN);
    T_EQ(jg_chan_len(c), 2);
    T_OK(jg_chan_destroy(c));
}

static void test_fifo_receivers(void)
{
    fifo_receivers(0);
    fifo_receivers(1);
}

static void blocked_errors(int sl)
{
    struct jg_chan *c;
    struct op o;
    struct jg_green *g;
    struct jg_deadline d;
    void *v;

    T_OK(jg_chan_create(&c, 0));
    /* Timeout. */
    o = (struct op){ c, JG_MS(20), NULL, 1, 0 };
    int64_t t0 = t_now_ns();
    T_OK(jg_spawn(&g, recv_fn, &o, model(sl)));
    struct jg_green *late = t_late_start(JG_MS(40), &o.rc, 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(o.rc, -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    t_late_check(late);
    o = (struct op){ c, JG_MS(10), P(5), 1, 0 };
    T_OK(jg_spawn(&g, send_fn, &o, model(sl)));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(o.rc, -ETIMEDOUT);
    /* No ghost left: nothing to receive, nobody to hand to. */
    T_ERR(jg_chan_recv(c, &v, 0), -EAGAIN);
    T_ERR(jg_chan_send(c, P(1), 0), -EAGAIN);
    /* Kill. */
    o = (struct op){ c, JG_FOREVER, P(6), 1, 0 };
    T_OK(jg_spawn(&g, send_fn, &o, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(o.rc, -ECANCELED);
    T_ERR(jg_chan_recv(c, &v, 0), -EAGAIN);
    o = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
    T_OK(jg_spawn(&g, recv_fn, &o, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(o.rc, -ECANCELED);
    T_ERR(jg_chan_send(c, P(1), 0), -EAGAIN);
    /* A deadline scope bounds send, recv and select. */
    T_OK(jg_deadline_push(&d, JG_MS(10)));
    T_ERR(jg_chan_recv(c, &v, JG_FOREVER), -ETIMEDOUT);
    T_ERR(jg_chan_send(c, P(1), JG_SEC(5)), -ETIMEDOUT);
    struct jg_select_case k[1] = { { c, JG_SELECT_RECV, NULL, 0 } };
    T_ERR(jg_select(k, 1, JG_FOREVER), -ETIMEDOUT);
    T_ASSERT(jg_deadline_expired(&d));
    T_OK(jg_deadline_pop(&d));
    T_OK(jg_chan_destroy(c));
}

static void test_blocked_errors(void)
{
    blocked_errors(0);
    blocked_errors(1);
}

/* A value handed to a receiver killed before it resumes goes back. */
static void test_earmark_kill(void)
{
    struct jg_chan *c;
    struct op a, b;
    struct jg_green *ga, *gb;
    void *v;

    T_OK(jg_chan_create(&c, 0));
    a = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
    T_OK(jg_spawn(&ga, recv_fn, &a, NULL));
    T_OK(jg_yield());
    T_OK(jg_chan_send(c, P(42), 0));
    T_OK(jg_kill(ga));
    T_ERR(jg_join(ga, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(a.rc, -ECANCELED);
    /* Back in the channel, beyond the capacity of 0. */
    T_EQ(jg_chan_len(c), 1);
    T_OK(jg_chan_recv(c, &v, 0));
    T_EQ(U(v), 42);
    /* With a second receiver waiting, it goes to that one. */
    a = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
    b = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
    T_OK(jg_spawn(&ga, recv_fn, &a, &sliced));
    T_OK(jg_spawn(&gb, recv_fn, &b, NULL));
    T_OK(jg_yield());
    T_OK(jg_chan_send(c, P(43), 0));
    T_OK(jg_kill(ga));
    T_ERR(jg_join(ga, NULL, JG_FOREVER), -ECANCELED);
    T_OK(jg_join(gb, NULL, JG_FOREVER));
    T_OK(b.rc);
    T_EQ(U(b.v), 43);
    T_EQ(jg_chan_len(c), 0);
    T_OK(jg_chan_destroy(c));
}

static void test_close(void)
{
    struct jg_chan *c;
    struct op r, s;
    struct jg_green *gr, *gs;
    void *v;

    T_OK(jg_chan_create(&c, 0));
    r = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
    T_OK(jg_spawn(&gr, recv_fn, &r, NULL));
    T_OK(jg_yield());
    T_ERR(jg_chan_destroy(c), -EBUSY);
    T_OK(jg_chan_close(c));
    T_OK(jg_join(gr, NULL, JG_FOREVER));
    T_ERR(r.rc, -EPIPE);
    T_ERR(jg_chan_send(c, P(1), JG_FOREVER), -EPIPE);
    T_ERR(jg_chan_recv(c, &v, JG_FOREVER), -EPIPE);
    T_OK(jg_chan_close(c));
    T_OK(jg_chan_destroy(c));

    T_OK(jg_chan_create(&c, 2));
    T_OK(jg_chan_send(c, P(1), 0));
    T_OK(jg_chan_send(c, P(2), 0));
    s = (struct op){ c, JG_FOREVER, P(3), 1, 0 };
    T_OK(jg_spawn(&gs, send_fn, &s, &sliced));
    T_OK(jg_yield());
    T_OK(jg_chan_close(c));
    T_OK(jg_join(gs, NULL, JG_FOREVER));
    T_ERR(s.rc, -EPIPE);
    T_OK(jg_chan_recv(c, &v, JG_FOREVER));
    T_EQ(U(v), 1);
    T_OK(jg_chan_recv(c, &v, JG_FOREVER));
    T_EQ(U(v), 2);
    T_ERR(jg_chan_recv(c, &v, JG_FOREVER), -EPIPE);
    T_OK(jg_chan_destroy(c));
}

/* ---- select -------------------------------------------------------------- */

static void test_select_basic(void)
{
    struct jg_chan *a, *b;
    struct jg_select_case k[3];
    void *v;

    T_OK(jg_chan_create(&a, 1));
    T_OK(jg_chan_create(&b, 1));
    T_ERR(jg_select(NULL, 1, 0), -EINVAL);
    k[0] = (struct jg_select_case){ a, 7, NULL, 0 };
    T_ERR(jg_select(k, 1, 0), -EINVAL);
    k[0] = (struct jg_select_case){ a, JG_SELECT_RECV, NULL, 0 };
    T_ERR(jg_select(k, 1, -2), -EINVAL);
    /* Nothing ready. */
    k[0] = (struct jg_select_case){ a, JG_SELECT_RECV, P(99), 5 };
    k[1] = (struct jg_select_case){ b, JG_SELECT_RECV, P(99), 5 };
    k[2] = (struct jg_select_case){ NULL, JG_SELECT_SEND, P(1), 5 };
    T_ERR(jg_select(k, 3, 0), -EAGAIN);
    int64_t t0 = t_now_ns();
    T_ERR(jg_select(k, 3, JG_MS(15)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(15));
    T_ERR(jg_select(k, 0, JG_MS(1)), -ETIMEDOUT);
    /* Only the fired case is written. */
    T_OK(jg_chan_send(b, P(7), 0));
    T_EQ(jg_select(k, 3, 0), 1);
    T_EQ(U(k[1].value), 7);
    T_EQ(k[1].result, 0);
    T_EQ(U(k[0].value), 99);
    T_EQ(k[0].result, 5);
    /* A send case. */
    k[0] = (struct jg_select_case){ a, JG_SELECT_SEND, P(8), 5 };
    T_EQ(jg_select(k, 2, 0), 0);
    T_EQ(k[0].result, 0);
    T_OK(jg_chan_recv(a, &v, 0));
    T_EQ(U(v), 8);
    /* A closed channel's case is ready with -EPIPE. */
    T_OK(jg_chan_close(b));
    k[0] = (struct jg_select_case){ NULL, JG_SELECT_RECV, NULL, 5 };
    k[1] = (struct jg_select_case){ b, JG_SELECT_SEND, P(1), 5 };
    T_EQ(jg_select(k, 2, JG_FOREVER), 1);
    T_ERR(k[1].result, -EPIPE);
    T_OK(jg_chan_destroy(a));
    T_OK(jg_chan_destroy(b));
}

struct selop {
    struct jg_select_case k[3];
    int rc;
};

static void *select_fn(void *arg)
{
    struct selop *s = arg;

    s->rc = jg_select(s->k, 3, JG_FOREVER);
    return NULL;
}

static void select_blocked(int sl)
{
    struct jg_chan *a, *b, *c;
    struct selop s;
    struct jg_green *g;
    void *v;

    T_OK(jg_chan_create(&a, 0));
    T_OK(jg_chan_create(&b, 0));
    T_OK(jg_chan_create(&c, 0));
    /* Woken by a sender on its second case; the others leave no trace. */
    s.k[0] = (struct jg_select_case){ a, JG_SELECT_RECV, NULL, 0 };
    s.k[1] = (struct jg_select_case){ b, JG_SELECT_RECV, NULL, 0 };
    s.k[2] = (struct jg_select_case){ c, JG_SELECT_SEND, P(77), 0 };
    T_OK(jg_spawn(&g, select_fn, &s, model(sl)));
    T_OK(jg_yield());
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    T_OK(jg_chan_send(b, P(5), 0));
    T_ERR(jg_chan_send(a, P(6), 0), -EAGAIN);
    T_ERR(jg_chan_recv(c, &v, 0), -EAGAIN);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(s.rc, 1);
    T_EQ(U(s.k[1].value), 5);
    /* Woken by a receiver on its send case. */
    T_OK(jg_spawn(&g, select_fn, &s, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_chan_recv(c, &v, 0));
    T_EQ(U(v), 77);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(s.rc, 2);
    /* Killed while blocked: -ECANCELED, no case left behind. */
    T_OK(jg_spawn(&g, select_fn, &s, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(s.rc, -ECANCELED);
    T_ERR(jg_chan_send(a, P(1), 0), -EAGAIN);
    T_ERR(jg_chan_recv(c, &v, 0), -EAGAIN);
    /* Handed a value, then killed before resuming: the value goes back. */
    T_OK(jg_spawn(&g, select_fn, &s, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_chan_send(a, P(11), 0));
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(s.rc, -ECANCELED);
    T_OK(jg_chan_recv(a, &v, 0));
    T_EQ(U(v), 11);
    /* Close wakes it with the case's -EPIPE. */
    T_OK(jg_spawn(&g, select_fn, &s, model(sl)));
    T_OK(jg_yield());
    T_OK(jg_chan_close(b));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(s.rc, 1);
    T_ERR(s.k[1].result, -EPIPE);
    T_OK(jg_chan_destroy(a));
    T_OK(jg_chan_destroy(b));
    T_OK(jg_chan_destroy(c));
}

static void test_select_blocked(void)
{
    select_blocked(0);
    select_blocked(1);
}

/* Go's rule: among ready cases, each is chosen about equally often. */
static void test_select_fair(void)
{
    struct jg_chan *c[4];
    struct jg_select_case k[4];
    long hits[4] = { 0 }, rounds = t_scale(100000);

    if (rounds < 10000)
        rounds = 10000;
    for (int i = 0; i < 4; i++) {
        T_OK(jg_chan_create(&c[i], 1));
        T_OK(jg_chan_send(c[i], P(i), 0));
        k[i] = (struct jg_select_case){ c[i], JG_SELECT_RECV, NULL, 0 };
    }
    for (long r = 0; r < rounds; r++) {
        int i = jg_select(k, 4, 0);
        T_ASSERT(i >= 0 && i < 4);
        T_EQ(U(k[i].value), i);
        hits[i]++;
        T_OK(jg_chan_send(c[i], P(i), 0));   /* ready again */
    }
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "case %d: %ld of %ld\n", i, hits[i], rounds);
        T_ASSERT(hits[i] >= rounds / 4 * 8 / 10);
        T_ASSERT(hits[i] <= rounds / 4 * 12 / 10);
        T_OK(jg_chan_destroy(c[i]));
    }
}

/* ---- cross-hub ----------------------------------------------------------- */

static void *other_thread(void *arg)
{
    struct jg_chan *c = arg;
    struct jg_select_case k = { c, JG_SELECT_RECV, NULL, 0 };
    void *v;
    intptr_t bad = 0;

    bad |= jg_chan_send(c, P(1), 0) != -EXDEV;
    bad |= jg_chan_recv(c, &v, JG_FOREVER) != -EXDEV;
    bad |= jg_select(&k, 1, JG_FOREVER) != -EXDEV;
    bad |= jg_chan_close(c) != -EXDEV;
    bad |= jg_chan_destroy(c) != -EXDEV;
    bad |= jg_chan_len(c) != -EXDEV;
    return (void *)bad;
}

static void test_cross_hub(void)
{
    struct jg_chan *c;
    pthread_t t;
    void *bad;

    T_OK(jg_chan_create(&c, 1));
    T_EQ(pthread_create(&t, NULL, other_thread, c), 0);
    T_EQ(pthread_join(t, &bad), 0);
    T_PEQ(bad, NULL);
    T_OK(jg_chan_destroy(c));
}

/* ---- nothing lost -------------------------------------------------------- */

/*
 * Producers send over an unbuffered and a buffered channel; consumers
 * select over both (and a timeout) and are killed at random points.
 */
static struct {
    struct jg_chan *c[2];
    long per, total, received, kills;
    unsigned char *seen;
    struct jg_green *cons[6];
    int left;
    uint64_t rng;
} cs;

static uint64_t rnd(void)
{
    cs.rng ^= cs.rng << 13;
    cs.rng ^= cs.rng >> 7;
    cs.rng ^= cs.rng << 17;
    return cs.rng;
}

static void *cproducer(void *arg)
{
    long base = (long)(intptr_t)arg * cs.per;

    for (long i = 0; i < cs.per; i++)
        T_OK(jg_chan_send(cs.c[(base + i) & 1], P(base + i + 1),
                          JG_FOREVER));
    cs.left--;
    return NULL;
}

static void *cconsumer(void *arg)
{
    struct jg_select_case k[2];
    int rc;

    (void)arg;
    for (;;) {
        k[0] = (struct jg_select_case){ cs.c[0], JG_SELECT_RECV, NULL, 0 };
        k[1] = (struct jg_select_case){ cs.c[1], JG_SELECT_RECV, NULL, 0 };
        rc = jg_select(k, 2, (rnd() & 7) ? JG_FOREVER : JG_US(30));
        if (rc == -ETIMEDOUT)
            continue;
        if (rc < 0)
            break;
        if (k[rc].result == -EPIPE)
            break;
        T_EQ(k[rc].result, 0);
        cs.seen[U(k[rc].value) - 1]++;
        cs.received++;
    }
    T_ASSERT(rc == -ECANCELED || rc >= 0);
    return NULL;
}

static void *ckiller(void *arg)
{
    (void)arg;
    while (cs.left > 0) {
        for (int n = (int)(rnd() % 4); n > 0; n--)
            if (jg_yield() < 0)
                return NULL;
        int i = (int)(rnd() % 6);
        T_OK(jg_kill(cs.cons[i]));
        int rc = jg_join(cs.cons[i], NULL, JG_FOREVER);
        T_ASSERT(rc == 0 || rc == -ECANCELED);
        cs.kills++;
        T_OK(jg_spawn(&cs.cons[i], cconsumer, NULL, model(rnd() & 1)));
    }
    return NULL;
}

static void test_nothing_lost(void)
{
    struct jg_green *p[20], *kg;

    memset(&cs, 0, sizeof cs);
    cs.rng = 0x9e3779b97f4a7c15ull;
    cs.per = t_scale(10000);
    cs.total = 20 * cs.per;
    cs.seen = calloc((size_t)cs.total, 1);
    T_OK(jg_chan_create(&cs.c[0], 0));
    T_OK(jg_chan_create(&cs.c[1], 8));
    cs.left = 20;
    for (int i = 0; i < 6; i++)
        T_OK(jg_spawn(&cs.cons[i], cconsumer, NULL, model(i & 1)));
    for (int i = 0; i < 20; i++)
        T_OK(jg_spawn(&p[i], cproducer, P(i), model(i % 4 == 0)));
    T_OK(jg_spawn(&kg, ckiller, NULL, NULL));
    for (int i = 0; i < 20; i++)
        T_OK(jg_join(p[i], NULL, JG_FOREVER));
    T_OK(jg_join(kg, NULL, JG_FOREVER));
    T_OK(jg_chan_close(cs.c[0]));
    T_OK(jg_chan_close(cs.c[1]));
    for (int i = 0; i < 6; i++) {
        int rc = jg_join(cs.cons[i], NULL, JG_FOREVER);
        T_ASSERT(rc == 0 || rc == -ECANCELED);
    }
    /* A consumer leaves at the first closed case: drain the rest. */
    void *v;
    for (int i = 0; i < 2; i++)
        while (jg_chan_recv(cs.c[i], &v, 0) == 0) {
            cs.seen[U(v) - 1]++;
            cs.received++;
        }
    T_EQ(cs.received, cs.total);
    for (long i = 0; i < cs.total; i++)
        if (cs.seen[i] != 1)
            T_FAIL_("value %ld received %d times", i + 1, cs.seen[i]);
    T_ASSERT(cs.kills > 0);
    fprintf(stderr, "%ld values, %ld consumers killed\n", cs.total,
            cs.kills);
    T_OK(jg_chan_destroy(cs.c[0]));
    T_OK(jg_chan_destroy(cs.c[1]));
    free(cs.seen);
}

/*
 * A waiter that was killed (or timed out) and has not run yet no longer
 * waits: the channel can go, and the waiter, when it runs, does not touch
 * it again. The same for a select whose other case fired.
 */
static void *select2_fn(void *arg)
{
    return (void *)(intptr_t)jg_select(arg, 2, JG_FOREVER);
}

static void test_destroy_after_wake(void)
{
    struct jg_chan *c, *c2;
    struct jg_select_case k[2];
    struct jg_green *g;
    struct op r;

    T_OK(jg_chan_create(&c, 0));
    r = (struct op){ c, JG_FOREVER, NULL, 1, 0 };
    T_OK(jg_spawn(&g, recv_fn, &r, &sliced));
    T_OK(jg_yield());
    T_OK(jg_kill(g));
    T_OK(jg_chan_destroy(c));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(r.rc, -ECANCELED);

    T_OK(jg_chan_create(&c, 0));
    T_OK(jg_chan_create(&c2, 0));
    k[0] = (struct jg_select_case){ c, JG_SELECT_RECV, NULL, 0 };
    k[1] = (struct jg_select_case){ c2, JG_SELECT_RECV, NULL, 0 };
    T_OK(jg_spawn(&g, select2_fn, k, NULL));
    T_OK(jg_yield());
    T_OK(jg_chan_send(c, P(7), 0));
    T_OK(jg_chan_destroy(c2));
    void *res;
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_EQ((intptr_t)res, 0);
    T_EQ(U(k[0].value), 7);
    T_OK(jg_chan_destroy(c));
}

T_MAIN(T_CASE(test_rendezvous), T_CASE(test_fifo_receivers),
       T_CASE(test_blocked_errors), T_CASE(test_earmark_kill),
       T_CASE(test_close), T_CASE(test_select_basic),
       T_CASE(test_select_blocked), T_CASE(test_select_fair),
       T_CASE(test_cross_hub), T_CASE(test_nothing_lost),
       T_CASE(test_destroy_after_wake))
