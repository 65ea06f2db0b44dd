/* SPDX-License-Identifier: MIT */
/*
 * sync_group.c - groups and pools: the size limit (never more than size at
 * once, for spawn and map), waiting and -EAGAIN spawns in FIFO order, join
 * with timeout and kill, FAIL_FAST and COLLECT policies, a member killed
 * during join, map in input order, imap_unordered in finishing order, and
 * cross-hub -EXDEV.
 */
#include <juggle.h>
#include <pthread.h>
#include "t.h"

#define P(x) ((void *)(uintptr_t)(x))
#define U(p) ((uintptr_t)(p))

static const struct jg_spawn_opts sliced = { NULL, 0, JG_STACK_SLICED };

static int cur, peak, started;

/* A job: count concurrency, sleep arg microseconds, return arg * 2. */
static void *job(void *arg)
{
    int rc;

    started++;
    if (++cur > peak)
        peak = cur;
    rc = jg_sleep(JG_US(U(arg) % 1000 + 100));
    cur--;
    if (rc < 0)
        return JG_ERR(rc);
    return P(U(arg) * 2);
}

static void test_pool_limit_spawn(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 5, JG_GROUP_COLLECT, NULL, NULL, NULL };

    cur = peak = started = 0;
    T_OK(jg_group_create(&grp, &o));
    for (int i = 0; i < 100; i++) {
        T_OK(jg_group_spawn(grp, NULL, job, P(i * 37), JG_FOREVER));
        T_ASSERT(jg_group_count(grp) <= 5);
    }
    T_OK(jg_group_join(grp, JG_FOREVER));
    T_EQ(started, 100);
    T_EQ(peak, 5);
    T_EQ(jg_group_count(grp), 0);
    T_EQ(jg_group_failed(grp), 0);
    T_OK(jg_group_destroy(grp));
}

static void test_pool_map(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 5, JG_GROUP_COLLECT, &sliced, NULL, NULL };
    void *args[100], *res[100];

    for (int sl = 0; sl < 2; sl++) {
        cur = peak = started = 0;
        o.spawn = sl ? &sliced : NULL;
        T_OK(jg_group_create(&grp, &o));
        for (int i = 0; i < 100; i++)
            args[i] = P((i * 7919) % 1000);
        T_OK(jg_group_map(grp, job, args, res, 100, JG_FOREVER));
        T_EQ(started, 100);
        T_ASSERT(peak <= 5);
        T_ASSERT(peak >= 2);
        for (int i = 0; i < 100; i++)
            T_EQ(U(res[i]), U(args[i]) * 2);
        T_EQ(jg_group_count(grp), 0);
        T_OK(jg_group_destroy(grp));
    }
    /* An unlimited group runs every job at once. */
    cur = peak = started = 0;
    T_OK(jg_group_create(&grp, NULL));
    T_OK(jg_group_map(grp, job, args, res, 50, JG_FOREVER));
    T_EQ(peak, 50);
    T_OK(jg_group_map(grp, job, args, res, 0, JG_FOREVER));
    T_OK(jg_group_destroy(grp));
}

struct spawner {
    struct jg_group *grp;
    int64_t timeout;
    int rc, order;
};

static int seq;

static void *sleeper(void *arg)
{
    int rc = jg_sleep(JG_MS(U(arg)));

    return rc < 0 ? JG_ERR(rc) : NULL;
}

static void *spawner_fn(void *arg)
{
    struct spawner *s = arg;

    s->rc = jg_group_spawn(s->grp, NULL, sleeper, P(1), s->timeout);
    s->order = ++seq;
    return NULL;
}

static void test_full_pool(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 2, JG_GROUP_COLLECT, NULL, NULL, NULL };
    struct spawner s[4];
    struct jg_green *g[4], *m;

    T_OK(jg_group_create(&grp, &o));
    T_OK(jg_group_spawn(grp, &m, sleeper, P(20), 0));
    T_OK(jg_group_spawn(grp, NULL, sleeper, P(20), 0));
    T_ERR(jg_group_spawn(grp, NULL, sleeper, P(1), 0), -EAGAIN);
    int64_t t0 = t_now_ns();
    T_ERR(jg_group_spawn(grp, NULL, sleeper, P(1), JG_MS(5)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(5));
    /* Waiting spawners get places first come, first served; one killed
     * while waiting and one killed after a place was handed to it. */
    seq = 0;
    for (int i = 0; i < 4; i++) {
        s[i] = (struct spawner){ grp, JG_FOREVER, 1, 0 };
        T_OK(jg_spawn(&g[i], spawner_fn, &s[i], i & 1 ? &sliced : NULL));
        T_OK(jg_yield());
    }
    T_OK(jg_kill(g[1]));
    T_OK(jg_join(m, NULL, JG_FOREVER));    /* frees a place: g[0]'s */
    T_OK(jg_kill(g[0]));                   /* before it resumed */
    T_OK(jg_group_join(grp, JG_FOREVER));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(jg_join(g[1], NULL, JG_FOREVER), -ECANCELED);
    T_OK(jg_join(g[2], NULL, JG_FOREVER));
    T_OK(jg_join(g[3], NULL, JG_FOREVER));
    T_ERR(s[0].rc, -ECANCELED);
    T_ERR(s[1].rc, -ECANCELED);
    T_OK(s[2].rc);
    T_OK(s[3].rc);
    T_ASSERT(s[2].order < s[3].order);
    T_EQ(jg_group_failed(grp), 0);
    T_OK(jg_group_destroy(grp));
}

static void test_bad_args(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 0, 9, NULL, NULL, NULL };
    struct jg_imap *it;

    T_ERR(jg_group_create(NULL, NULL), -EINVAL);
    T_ERR(jg_group_create(&grp, &o), -EINVAL);
    T_OK(jg_group_create(&grp, NULL));
    T_ERR(jg_group_spawn(grp, NULL, NULL, NULL, 0), -EINVAL);
    T_ERR(jg_group_spawn(grp, NULL, sleeper, NULL, -7), -EINVAL);
    T_ERR(jg_group_join(grp, -7), -EINVAL);
    T_ERR(jg_group_map(grp, job, NULL, NULL, 3, 0), -EINVAL);
    T_ERR(jg_group_imap_unordered(grp, &it, NULL, NULL, 0), -EINVAL);
    T_ERR(jg_imap_next(NULL, NULL, NULL, 0), -EINVAL);
    T_ERR(jg_group_destroy(NULL), -EINVAL);
    T_OK(jg_group_join(grp, 0));
    T_OK(jg_group_destroy(grp));
}

/* ---- policies ------------------------------------------------------------ */

static void *fail_after(void *arg)
{
    int rc = jg_sleep(JG_MS(U(arg) & 0xff));

    if (rc < 0)
        return JG_ERR(rc);
    return (U(arg) >> 8) ? JG_ERR(-(int)(U(arg) >> 8)) : NULL;
}

static int done_calls, done_status_sum;

static void on_done(void *ctx, struct jg_green *g, void *res, int status)
{
    (void)g;
    (void)res;
    T_PEQ(ctx, &done_calls);
    done_calls++;
    done_status_sum += status;
}

static void test_fail_fast(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 0, JG_GROUP_FAIL_FAST, NULL, on_done,
                               &done_calls };
    struct jg_green *slow;
    void *res;

    done_calls = done_status_sum = 0;
    T_OK(jg_group_create(&grp, &o));
    T_OK(jg_group_spawn(grp, &slow, fail_after, P(200), 0));
    for (int i = 0; i < 5; i++)
        T_OK(jg_group_spawn(grp, NULL, fail_after, P(200), 0));
    T_OK(jg_group_spawn(grp, NULL, fail_after, P(EIO << 8 | 2), 0));
    T_ERR(jg_group_join(grp, JG_FOREVER), -EIO);
    /* The rest were cancelled (slow's join below says so): the join did
     * not wait for their 200 ms. That is not a failure of theirs. */
    T_EQ(jg_group_failed(grp), 1);
    T_EQ(done_calls, 7);
    T_EQ(jg_group_count(grp), 0);
    T_ERR(jg_join(slow, &res, JG_FOREVER), -ECANCELED);
    T_ERR(jg_group_spawn(grp, NULL, fail_after, P(1), 0), -ECANCELED);
    T_ERR(jg_group_join(grp, 0), -EIO);
    T_OK(jg_group_destroy(grp));

    /* map in a FAIL_FAST pool: the first error, other jobs cancelled. */
    struct jg_group_opts p = { 3, JG_GROUP_FAIL_FAST, NULL, NULL, NULL };
    void *args[20], *out[20];
    T_OK(jg_group_create(&grp, &p));
    for (int i = 0; i < 20; i++)
        args[i] = P(i == 4 ? (ENOENT << 8 | 5) : 30);
    T_ERR(jg_group_map(grp, fail_after, args, out, 20, JG_FOREVER), -ENOENT);
    T_PEQ(out[4], JG_ERR(-ENOENT));
    T_PEQ(out[19], JG_ERR(-ECANCELED));
    T_EQ(jg_group_count(grp), 0);
    T_OK(jg_group_destroy(grp));
}

static void test_collect(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 2, JG_GROUP_COLLECT, NULL, on_done,
                               &done_calls };
    void *args[6], *out[6];

    done_calls = done_status_sum = 0;
    T_OK(jg_group_create(&grp, &o));
    T_OK(jg_group_spawn(grp, NULL, fail_after, P(EIO << 8 | 1), 0));
    T_OK(jg_group_spawn(grp, NULL, fail_after, P(3), 0));
    T_OK(jg_group_spawn(grp, NULL, fail_after, P(ENOENT << 8 | 2),
                        JG_FOREVER));
    T_OK(jg_group_spawn(grp, NULL, fail_after, P(1), JG_FOREVER));
    T_ERR(jg_group_join(grp, JG_FOREVER), -EIO);
    T_EQ(jg_group_failed(grp), 2);
    T_EQ(done_calls, 4);
    T_EQ(done_status_sum, -EIO - ENOENT);
    T_OK(jg_group_destroy(grp));

    /* map reports each job's result, failures included. */
    T_OK(jg_group_create(&grp, NULL));
    for (int i = 0; i < 6; i++)
        args[i] = P((i & 1 ? (EPERM << 8) : 0) | (6 - i));
    T_ERR(jg_group_map(grp, fail_after, args, out, 6, JG_FOREVER), -EPERM);
    for (int i = 0; i < 6; i++)
        T_PEQ(out[i], i & 1 ? JG_ERR(-EPERM) : NULL);
    T_OK(jg_group_destroy(grp));
}

/* ---- join, kill --------------------------------------------------------- */

static void *joiner(void *arg)
{
    return JG_ERR(jg_group_join(arg, JG_FOREVER));
}

static void test_join_kill(void)
{
    struct jg_group *grp;
    struct jg_green *m[3], *j;

    T_OK(jg_group_create(&grp, NULL));
    for (int i = 0; i < 3; i++)
        T_OK(jg_group_spawn(grp, &m[i], sleeper, P(10000), 0));
    int64_t t0 = t_now_ns();
    T_ERR(jg_group_join(grp, JG_MS(10)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(10));
    T_ERR(jg_group_join(grp, 0), -ETIMEDOUT);
    /* A deadline scope bounds join, and a spawn into a full pool. */
    struct jg_deadline d;
    T_OK(jg_deadline_push(&d, JG_MS(5)));
    T_ERR(jg_group_join(grp, JG_FOREVER), -ETIMEDOUT);
    T_OK(jg_deadline_pop(&d));
    struct jg_group *full;
    struct jg_group_opts fo = { 1, JG_GROUP_COLLECT, NULL, NULL, NULL };
    T_OK(jg_group_create(&full, &fo));
    T_OK(jg_group_spawn(full, NULL, sleeper, P(30), 0));
    T_OK(jg_deadline_push(&d, JG_MS(5)));
    T_ERR(jg_group_spawn(full, NULL, sleeper, P(1), JG_FOREVER), -ETIMEDOUT);
    T_ASSERT(jg_deadline_expired(&d));
    T_OK(jg_deadline_pop(&d));
    T_OK(jg_group_join(full, JG_FOREVER));
    T_OK(jg_group_destroy(full));
    /* A joiner killed while blocked; the members keep running. */
    T_OK(jg_spawn(&j, joiner, grp, &sliced));
    T_OK(jg_yield());
    T_OK(jg_kill(j));
    T_ERR(jg_join(j, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_group_count(grp), 3);
    /* A member killed from outside during join: the join sees it. */
    T_OK(jg_spawn(&j, joiner, grp, NULL));
    T_OK(jg_yield());
    T_OK(jg_kill(m[1]));
    T_ERR(jg_join(m[1], NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_group_count(grp), 2);
    T_EQ(jg_group_failed(grp), 1);
    T_EQ(jg_state(j), JG_GREEN_PARKED);
    /* Kill all: the group's own kill is not a failure. */
    T_EQ(jg_group_kill(grp), 2);
    T_ERR(jg_join(j, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_group_count(grp), 0);
    T_EQ(jg_group_failed(grp), 1);
    T_ERR(jg_join(m[0], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(jg_join(m[2], NULL, JG_FOREVER), -ECANCELED);
    T_OK(jg_group_destroy(grp));

    /* Kill before they ever ran. */
    T_OK(jg_group_create(&grp, NULL));
    for (int i = 0; i < 3; i++)
        T_OK(jg_group_spawn(grp, NULL, sleeper, P(10000), 0));
    T_ERR(jg_group_destroy(grp), -EBUSY);
    T_EQ(jg_group_kill(grp), 3);
    T_EQ(jg_group_count(grp), 0);
    T_OK(jg_group_join(grp, 0));
    T_OK(jg_group_destroy(grp));
}

/* ---- imap_unordered ------------------------------------------------------ */

static struct jg_chan *gate[8];

/* A job that ends when the test says so: count concurrency, wait for its
 * gate, return its index. */
static void *gated(void *arg)
{
    void *v;
    int rc;

    if (++cur > peak)
        peak = cur;
    rc = jg_chan_recv(gate[U(arg)], &v, JG_FOREVER);
    cur--;
    return rc < 0 ? JG_ERR(rc) : arg;
}

static void test_imap_unordered(void)
{
    struct jg_group *grp;
    struct jg_group_opts o = { 4, JG_GROUP_COLLECT, NULL, NULL, NULL };
    struct jg_imap *it;
    void *args[8], *r;
    size_t idx;

    T_OK(jg_group_create(&grp, &o));
    for (int i = 0; i < 8; i++) {
        T_OK(jg_chan_create(&gate[i], 0));
        args[i] = P(i);
    }
    cur = peak = 0;
    T_OK(jg_group_imap_unordered(grp, &it, gated, args, 8));
    memset(args, 0, sizeof args);       /* copied: may change now */
    /* Four run at once (jobs 0-3); each one released lets the next job
     * in input order start. Results come in the order released. */
    static const size_t order[8] = { 2, 4, 0, 3, 7, 1, 6, 5 };
    for (int n = 0; n < 8; n++) {
        T_OK(jg_chan_send(gate[order[n]], NULL, JG_FOREVER));
        T_EQ(jg_imap_next(it, &idx, &r, JG_FOREVER), 1);
        T_EQ(idx, order[n]);
        T_EQ(U(r), order[n]);
    }
    T_EQ(jg_imap_next(it, &idx, &r, JG_FOREVER), 0);
    T_EQ(peak, 4);
    T_OK(jg_imap_destroy(it));
    T_EQ(jg_group_count(grp), 0);
    for (int i = 0; i < 8; i++)
        T_OK(jg_chan_destroy(gate[i]));

    /* Timeout, then close kills what runs. */
    for (int i = 0; i < 8; i++)
        args[i] = P(200);
    T_OK(jg_group_imap_unordered(grp, &it, fail_after, args, 8));
    T_ERR(jg_imap_next(it, &idx, &r, 0), -ETIMEDOUT);
    T_ERR(jg_imap_next(it, &idx, &r, JG_MS(5)), -ETIMEDOUT);
    T_EQ(jg_group_count(grp), 4);
    T_OK(jg_imap_destroy(it));
    T_OK(jg_group_join(grp, JG_SEC(5)));
    T_EQ(jg_group_failed(grp), 0);
    T_EQ(jg_group_count(grp), 0);

    /* map with a timeout. */
    void *out[8];
    int64_t t0 = t_now_ns();
    T_ERR(jg_group_map(grp, fail_after, args, out, 8, JG_MS(10)),
          -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(10));
    T_OK(jg_group_join(grp, JG_SEC(5)));
    T_OK(jg_group_destroy(grp));
}

/* ---- cross-hub ----------------------------------------------------------- */

static void *other_thread(void *arg)
{
    struct jg_group *grp = arg;
    struct jg_imap *it;
    void *a[1] = { NULL }, *r[1];
    intptr_t bad = 0;

    bad |= jg_group_spawn(grp, NULL, sleeper, P(1), 0) != -EXDEV;
    bad |= jg_group_join(grp, JG_FOREVER) != -EXDEV;
    bad |= jg_group_kill(grp) != -EXDEV;
    bad |= jg_group_map(grp, sleeper, a, r, 1, JG_FOREVER) != -EXDEV;
    bad |= jg_group_imap_unordered(grp, &it, sleeper, a, 1) != -EXDEV;
    bad |= jg_group_destroy(grp) != -EXDEV;
    bad |= jg_group_count(grp) != -EXDEV;
    bad |= jg_group_failed(grp) != -EXDEV;
    return (void *)bad;
}

static void test_cross_hub(void)
{
    struct jg_group *grp;
    pthread_t t;
    void *bad;

    T_OK(jg_group_create(&grp, NULL));
    T_EQ(pthread_create(&t, NULL, other_thread, grp), 0);
    T_EQ(pthread_join(t, &bad), 0);
    T_PEQ(bad, NULL);
    T_OK(jg_group_destroy(grp));
}

/* ---- destroy while a woken waiter has not run yet ----------------------- */

static struct jg_group *dgrp;
static int destroy_rc = 1;

static void *quick(void *arg)
{
    (void)arg;
    T_OK(jg_sleep(JG_MS(5)));
    return NULL;
}

static void *group_joiner(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)jg_group_join(dgrp, JG_FOREVER);
}

/* Joins the member itself, so it is woken before the group's joiner and
 * tries to destroy the group before that joiner runs. */
static void *destroyer(void *arg)
{
    T_OK(jg_join(arg, NULL, JG_FOREVER));
    destroy_rc = jg_group_destroy(dgrp);
    return NULL;
}

/* A joiner woken by the last member's end has not run yet: destroy says
 * -EBUSY, or the joiner would read the freed group as it resumes. */
static void test_destroy_busy_while_joiner_woken(void)
{
    struct jg_green *m, *j, *d;

    T_OK(jg_group_create(&dgrp, NULL));
    T_OK(jg_group_spawn(dgrp, &m, quick, NULL, JG_FOREVER));
    T_OK(jg_spawn(&d, destroyer, m, NULL));
    T_OK(jg_spawn(&j, group_joiner, NULL, NULL));
    T_OK(jg_join(d, NULL, JG_FOREVER));
    T_OK(jg_join(j, NULL, JG_FOREVER));
    T_ERR(destroy_rc, -EBUSY);
    T_OK(jg_group_destroy(dgrp));
}

static struct jg_event *hold_ev;
static struct jg_imap *imap_it;

static void *holder(void *arg)
{
    (void)arg;
    T_OK(jg_event_wait(hold_ev, JG_FOREVER));
    return NULL;
}

static void *ident(void *arg)
{
    return arg;
}

static void *imap_owner(void *arg)
{
    size_t idx;
    void *res;

    (void)arg;
    return (void *)(intptr_t)jg_imap_next(imap_it, &idx, &res, JG_FOREVER);
}

/* jg_imap_next waits for a place (the pool is full of another member):
 * destroy and a second next say -EBUSY instead of freeing or sharing the
 * iterator under the waiting owner. */
static void test_imap_busy_while_next_waits_for_place(void)
{
    struct jg_group_opts o = { .size = 1 };
    struct jg_green *h, *own;
    void *args[1] = { P(7) }, *res = NULL;
    size_t idx = 0;
    int destroy1, next2;

    hold_ev = malloc(sizeof *hold_ev);
    T_OK(jg_event_init(hold_ev));
    T_OK(jg_group_create(&dgrp, &o));
    T_OK(jg_group_spawn(dgrp, &h, holder, NULL, JG_FOREVER));
    T_OK(jg_group_imap_unordered(dgrp, &imap_it, ident, args, 1));
    T_OK(jg_spawn(&own, imap_owner, NULL, NULL));
    T_OK(jg_sleep(JG_MS(5)));           /* the owner parks for a place */
    destroy1 = jg_imap_destroy(imap_it);
    next2 = jg_imap_next(imap_it, &idx, &res, 0);
    T_OK(jg_event_set(hold_ev));
    T_OK(jg_join(h, NULL, JG_FOREVER));
    T_OK(jg_join(own, &res, JG_FOREVER));
    T_ERR(destroy1, -EBUSY);
    T_ERR(next2, -EBUSY);
    T_EQ((intptr_t)res, 1);             /* the owner got its one result */
    T_OK(jg_imap_destroy(imap_it));
    T_OK(jg_group_join(dgrp, JG_FOREVER));
    T_OK(jg_group_destroy(dgrp));
    T_OK(jg_event_destroy(hold_ev));
    free(hold_ev);
}

T_MAIN(T_CASE(test_pool_limit_spawn), T_CASE(test_pool_map),
       T_CASE(test_full_pool), T_CASE(test_bad_args),
       T_CASE(test_fail_fast), T_CASE(test_collect),
       T_CASE(test_join_kill), T_CASE(test_imap_unordered),
       T_CASE(test_cross_hub), T_CASE(test_destroy_busy_while_joiner_woken),
       T_CASE(test_imap_busy_while_next_waits_for_place))
