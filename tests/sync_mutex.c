/* SPDX-License-Identifier: MIT */
/*
 * sync_mutex.c - the green mutex and condition variable: ownership errors,
 * FIFO hand-off without barging (dedicated and sliced waiters), timeouts,
 * kills (a killed waiter never takes the lock, even one handed to it),
 * deadline scopes, mutual exclusion under random kills, condition waits
 * that always return with the mutex held, signal order, broadcast, a
 * signal passed on by a killed waiter, and -EXDEV.
 */
#include <juggle.h>
#include <pthread.h>
#include "t.h"
#include "t_late.h"

static struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };

static const struct jg_spawn_opts *opts_for(int i)
{
    return (i & 1) ? &sliced : NULL;
}

struct waiter {
    int id;
    int rc;
    int done;
    int held;                   /* jg_mutex_held right after the call */
    int64_t timeout;
    struct jg_mutex *m;
    struct jg_cond *c;
};

static int order[1024];
static int norder;
static int inside;

static void *locker(void *arg)
{
    struct waiter *w = arg;

    w->rc = jg_mutex_lock(w->m, w->timeout);
    w->held = jg_mutex_held(w->m);
    if (w->rc == 0) {
        T_EQ(++inside, 1);
        order[norder++] = w->id;
        (void)jg_yield();
        inside--;
        T_OK(jg_mutex_unlock(w->m));
    }
    w->done = 1;
    return NULL;
}

/* ---- mutex ------------------------------------------------------------- */

static void *try_unlock(void *arg)
{
    return JG_ERR(jg_mutex_unlock(arg));
}

static void test_mutex_basic(void)
{
    struct jg_mutex m, zero = { 0 };
    struct jg_green *g;

    T_OK(jg_mutex_init(&m));
    T_EQ(jg_mutex_held(&m), 0);
    T_ERR(jg_mutex_unlock(&m), -EPERM);
    T_OK(jg_mutex_lock(&m, JG_FOREVER));
    T_EQ(jg_mutex_held(&m), 1);
    T_ERR(jg_mutex_lock(&m, JG_FOREVER), -EDEADLK);
    T_ERR(jg_mutex_trylock(&m), -EDEADLK);
    T_ERR(jg_mutex_destroy(&m), -EBUSY);
    /* Another green thread cannot unlock what main holds. */
    T_OK(jg_spawn(&g, try_unlock, &m, NULL));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -EPERM);
    T_EQ(jg_mutex_held(&m), 1);
    T_OK(jg_mutex_unlock(&m));
    T_ERR(jg_mutex_unlock(&m), -EPERM);
    T_OK(jg_mutex_trylock(&m));
    T_OK(jg_mutex_unlock(&m));
    T_ERR(jg_mutex_lock(&m, -2), -EINVAL);
    T_OK(jg_mutex_destroy(&m));
    T_ERR(jg_mutex_lock(&m, 0), -EINVAL);

    T_ERR(jg_mutex_init(NULL), -EINVAL);
    T_ERR(jg_mutex_lock(NULL, 0), -EINVAL);
    T_ERR(jg_mutex_unlock(NULL), -EINVAL);
    T_ERR(jg_mutex_held(NULL), -EINVAL);
    T_ERR(jg_mutex_lock(&zero, 0), -EINVAL);
    T_ERR(jg_mutex_unlock(&zero), -EINVAL);
    T_ERR(jg_mutex_destroy(&zero), -EINVAL);
}

/* Ownership goes to the waiters in arrival order; unlock hands it over,
 * so the unlocker cannot take it straight back (no barging). */
static void test_mutex_fifo(void)
{
    int n = (int)t_scale(300);
    struct waiter *w = calloc((size_t)n, sizeof *w);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_mutex m;

    T_OK(jg_mutex_init(&m));
    T_OK(jg_mutex_lock(&m, 0));
    norder = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .m = &m,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], locker, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_EQ(norder, 0);
    T_OK(jg_mutex_unlock(&m));
    T_ERR(jg_mutex_trylock(&m), -EAGAIN);
    T_EQ(jg_mutex_held(&m), 0);
    for (int i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_EQ(norder, n);
    for (int i = 0; i < n; i++) {
        T_EQ(order[i], i);
        T_EQ(w[i].rc, 0);
        T_EQ(w[i].held, 1);
    }
    T_OK(jg_mutex_destroy(&m));
    free(w);
    free(g);
}

static void test_mutex_timeout(void)
{
    struct waiter w = { .rc = 1, .timeout = JG_MS(50) };
    struct jg_green *g, *late;
    struct jg_mutex m;
    int64_t t0;

    T_OK(jg_mutex_init(&m));
    T_OK(jg_mutex_lock(&m, 0));
    w.m = &m;
    t0 = t_now_ns();
    T_OK(jg_spawn(&g, locker, &w, &sliced));
    late = t_late_start(JG_MS(100), &w.rc, 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(w.rc, -ETIMEDOUT);
    T_EQ(w.held, 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    t_late_check(late);
    T_EQ(jg_mutex_held(&m), 1);
    T_OK(jg_mutex_unlock(&m));
    /* No trace: nobody was handed the lock. */
    T_OK(jg_mutex_destroy(&m));
}

static void test_mutex_kill(void)
{
    struct waiter w[2];
    struct jg_green *g[2];
    struct jg_mutex m;

    T_OK(jg_mutex_init(&m));
    T_OK(jg_mutex_lock(&m, 0));
    norder = 0;
    for (int i = 0; i < 2; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .m = &m,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], locker, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    /* Killed while parked. */
    T_OK(jg_kill(g[0]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w[0].rc, -ECANCELED);
    T_EQ(w[0].held, 0);
    /* Killed after unlock handed it the mutex, before it ran. */
    T_OK(jg_mutex_unlock(&m));
    T_OK(jg_kill(g[1]));
    T_ERR(jg_join(g[1], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w[1].rc, -ECANCELED);
    T_EQ(w[1].held, 0);
    T_EQ(norder, 0);
    T_OK(jg_mutex_trylock(&m));
    T_OK(jg_mutex_unlock(&m));
    T_OK(jg_mutex_destroy(&m));
}

/* Handed to a waiter killed before it ran: the next waiter owns it. */
static void test_mutex_handed_then_killed(void)
{
    struct waiter w[3];
    struct jg_green *g[3];
    struct jg_mutex m;

    T_OK(jg_mutex_init(&m));
    T_OK(jg_mutex_lock(&m, 0));
    norder = 0;
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .m = &m,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], locker, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_mutex_unlock(&m));
    T_OK(jg_kill(g[0]));
    for (int i = 0; i < 3; i++)
        (void)jg_join(g[i], NULL, JG_FOREVER);
    T_ERR(w[0].rc, -ECANCELED);
    T_EQ(w[1].rc, 0);
    T_EQ(w[2].rc, 0);
    T_EQ(norder, 2);
    T_EQ(order[0], 1);
    T_EQ(order[1], 2);
    T_OK(jg_mutex_destroy(&m));
}

struct scoped {
    struct jg_mutex *m;
    struct jg_cond *c;
    int rc;
    int held;
    bool expired;
};

static void *scoped_lock(void *arg)
{
    struct scoped *s = arg;
    struct jg_deadline d;

    T_OK(jg_deadline_push(&d, JG_MS(30)));
    if (s->c) {
        T_OK(jg_mutex_lock(s->m, JG_FOREVER));
        s->rc = jg_cond_wait(s->c, s->m, JG_FOREVER);
        s->held = jg_mutex_held(s->m);
        if (s->held == 1)
            T_OK(jg_mutex_unlock(s->m));
    } else {
        s->rc = jg_mutex_lock(s->m, JG_FOREVER);
    }
    s->expired = jg_deadline_expired(&d);
    T_OK(jg_deadline_pop(&d));
    return NULL;
}

static void test_mutex_deadline_scope(void)
{
    struct jg_mutex m;
    struct scoped s = { 0 };
    struct jg_green *g, *late;
    int64_t t0 = t_now_ns();

    T_OK(jg_mutex_init(&m));
    T_OK(jg_mutex_lock(&m, 0));
    s.m = &m;
    T_OK(jg_spawn(&g, scoped_lock, &s, &sliced));
    late = t_late_start(JG_MS(60), &s.rc, 0);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(s.rc, -ETIMEDOUT);
    T_ASSERT(s.expired);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    t_late_check(late);
    T_OK(jg_mutex_unlock(&m));
    T_OK(jg_mutex_destroy(&m));
}

/* ---- mutual exclusion under random kills ------------------------------- */

struct stress {
    struct jg_mutex *m;
    long entered, left;
    int rounds;
};

static void *stress_worker(void *arg)
{
    struct stress *st = arg;

    for (int i = 0; i < st->rounds; i++) {
        int rc = jg_mutex_lock(st->m, JG_FOREVER);
        if (rc < 0) {
            T_ERR(rc, -ECANCELED);
            return NULL;
        }
        T_EQ(++inside, 1);
        st->entered++;
        (void)jg_yield();
        inside--;
        st->left++;
        T_OK(jg_mutex_unlock(st->m));
        if (jg_cancelled())
            return NULL;
    }
    return NULL;
}

static void test_mutex_random_kills(void)
{
    int n = (int)t_scale(400);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct stress st = { .rounds = 20 };
    struct jg_mutex m;
    unsigned seed = 777;

    T_OK(jg_mutex_init(&m));
    st.m = &m;
    inside = 0;
    for (int i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], stress_worker, &st, opts_for(i)));
    for (int k = 0; k < n / 3; k++) {
        for (int y = rand_r(&seed) % 4; y >= 0; y--)
            T_OK(jg_yield());
        T_OK(jg_kill(g[rand_r(&seed) % n]));
    }
    for (int i = 0; i < n; i++) {
        int rc = jg_join(g[i], NULL, JG_FOREVER);
        T_ASSERT(rc == 0 || rc == -ECANCELED);
    }
    T_EQ(inside, 0);
    T_EQ(st.entered, st.left);
    T_ASSERT(st.entered > 0);
    T_EQ(jg_mutex_held(&m), 0);
    T_OK(jg_mutex_trylock(&m));
    T_OK(jg_mutex_unlock(&m));
    T_OK(jg_mutex_destroy(&m));
    free(g);
}

/* ---- condition variable ------------------------------------------------ */

static void *cond_waiter(void *arg)
{
    struct waiter *w = arg;

    T_OK(jg_mutex_lock(w->m, JG_FOREVER));
    w->rc = jg_cond_wait(w->c, w->m, w->timeout);
    w->held = jg_mutex_held(w->m);
    order[norder++] = w->id;
    if (w->held == 1)
        T_OK(jg_mutex_unlock(w->m));
    w->done = 1;
    return NULL;
}

static void test_cond_basic(void)
{
    struct jg_cond c, zero = { 0 };
    struct jg_mutex m;
    int64_t t0;

    T_OK(jg_cond_init(&c));
    T_OK(jg_mutex_init(&m));
    /* Without holding m. */
    T_ERR(jg_cond_wait(&c, &m, JG_FOREVER), -EPERM);
    T_OK(jg_mutex_lock(&m, 0));
    T_ERR(jg_cond_wait(&c, &m, 0), -ETIMEDOUT);
    T_EQ(jg_mutex_held(&m), 1);
    t0 = t_now_ns();
    T_ERR(jg_cond_wait(&c, &m, JG_MS(20)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    T_EQ(jg_mutex_held(&m), 1);
    T_ERR(jg_cond_wait(&c, &m, -5), -EINVAL);
    T_ERR(jg_cond_wait(&c, NULL, JG_FOREVER), -EINVAL);
    T_ERR(jg_cond_wait(NULL, &m, JG_FOREVER), -EINVAL);
    T_ERR(jg_cond_wait(&zero, &m, JG_FOREVER), -EINVAL);
    T_EQ(jg_mutex_held(&m), 1);
    T_OK(jg_cond_signal(&c));       /* nobody waits: a no-op */
    T_OK(jg_cond_broadcast(&c));
    T_OK(jg_mutex_unlock(&m));
    T_ERR(jg_cond_init(NULL), -EINVAL);
    T_ERR(jg_cond_signal(NULL), -EINVAL);
    T_ERR(jg_cond_broadcast(&zero), -EINVAL);
    T_OK(jg_cond_destroy(&c));
    T_ERR(jg_cond_destroy(&c), -EINVAL);
    T_OK(jg_mutex_destroy(&m));
}

/* signal wakes one at a time, in wait order; broadcast wakes the rest. */
static void test_cond_signal_order(void)
{
    int n = (int)t_scale(100);
    struct waiter *w = calloc((size_t)n, sizeof *w);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_cond c;
    struct jg_mutex m;
    int half = n / 2;

    T_OK(jg_cond_init(&c));
    T_OK(jg_mutex_init(&m));
    norder = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .m = &m, .c = &c,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], cond_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_EQ(norder, 0);
    T_ERR(jg_cond_destroy(&c), -EBUSY);
    for (int i = 0; i < half; i++) {
        T_OK(jg_cond_signal(&c));
        T_OK(jg_yield());
        T_EQ(norder, i + 1);
    }
    /* Broadcast while main holds m: they wake, then queue for m. */
    T_OK(jg_mutex_lock(&m, 0));
    T_OK(jg_cond_broadcast(&c));
    T_OK(jg_yield());
    T_EQ(norder, half);
    T_OK(jg_mutex_unlock(&m));
    for (int i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_EQ(norder, n);
    for (int i = 0; i < n; i++) {
        T_EQ(order[i], i);
        T_EQ(w[i].rc, 0);
        T_EQ(w[i].held, 1);
    }
    T_OK(jg_cond_destroy(&c));
    T_OK(jg_mutex_destroy(&m));
    free(w);
    free(g);
}

/* A classic bounded buffer: predicate loops, signal both ways. */
struct pc {
    struct jg_mutex m;
    struct jg_cond not_full, not_empty;
    int buf[4];
    int len;
    long sum;
    int items;
};

static void *producer(void *arg)
{
    struct pc *p = arg;

    for (int i = 1; i <= p->items; i++) {
        T_OK(jg_mutex_lock(&p->m, JG_FOREVER));
        while (p->len == 4)
            T_OK(jg_cond_wait(&p->not_full, &p->m, JG_FOREVER));
        p->buf[p->len++] = i;
        T_OK(jg_cond_signal(&p->not_empty));
        T_OK(jg_mutex_unlock(&p->m));
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct pc *p = arg;

    for (int i = 0; i < p->items; i++) {
        T_OK(jg_mutex_lock(&p->m, JG_FOREVER));
        while (p->len == 0)
            T_OK(jg_cond_wait(&p->not_empty, &p->m, JG_FOREVER));
        p->sum += p->buf[--p->len];
        T_OK(jg_cond_signal(&p->not_full));
        T_OK(jg_mutex_unlock(&p->m));
    }
    return NULL;
}

static void test_cond_producer_consumer(void)
{
    struct pc *p = calloc(1, sizeof *p);
    struct jg_green *g[4];

    p->items = (int)t_scale(20000);
    T_OK(jg_mutex_init(&p->m));
    T_OK(jg_cond_init(&p->not_full));
    T_OK(jg_cond_init(&p->not_empty));
    T_OK(jg_spawn(&g[0], producer, p, NULL));
    T_OK(jg_spawn(&g[1], consumer, p, &sliced));
    T_OK(jg_spawn(&g[2], producer, p, &sliced));
    T_OK(jg_spawn(&g[3], consumer, p, NULL));
    for (int i = 0; i < 4; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_EQ(p->len, 0);
    T_EQ(p->sum, (long)p->items * (p->items + 1));
    T_OK(jg_cond_destroy(&p->not_full));
    T_OK(jg_cond_destroy(&p->not_empty));
    T_OK(jg_mutex_destroy(&p->m));
    free(p);
}

/* Killed in a condition wait while main holds m: the waiter returns only
 * once it has m back, and a kill during that re-lock does not break it. */
static void test_cond_kill_relocks(void)
{
    struct waiter w = { .rc = 1, .timeout = JG_FOREVER };
    struct jg_green *g;
    struct jg_cond c;
    struct jg_mutex m;

    T_OK(jg_cond_init(&c));
    T_OK(jg_mutex_init(&m));
    w.m = &m;
    w.c = &c;
    norder = 0;
    T_OK(jg_spawn(&g, cond_waiter, &w, &sliced));
    T_OK(jg_yield());
    T_OK(jg_mutex_lock(&m, 0));
    T_OK(jg_kill(g));
    T_OK(jg_sleep(JG_MS(5)));
    T_EQ(w.done, 0);                /* parked again, for m */
    T_OK(jg_kill(g));               /* idempotent; still waits for m */
    T_OK(jg_sleep(JG_MS(5)));
    T_EQ(w.done, 0);
    T_OK(jg_cond_destroy(&c));      /* it left c's queue */
    T_OK(jg_mutex_unlock(&m));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w.rc, -ECANCELED);
    T_EQ(w.held, 1);
    T_EQ(jg_mutex_held(&m), 0);
    T_OK(jg_mutex_destroy(&m));
}

/* Timeout and deadline scope: -ETIMEDOUT, with m held again. */
static void test_cond_timeout_scope(void)
{
    struct waiter w = { .rc = 1, .timeout = JG_MS(30) };
    struct scoped s = { 0 };
    struct jg_green *g;
    struct jg_cond c;
    struct jg_mutex m;
    int64_t t0 = t_now_ns();

    T_OK(jg_cond_init(&c));
    T_OK(jg_mutex_init(&m));
    w.m = &m;
    w.c = &c;
    T_OK(jg_spawn(&g, cond_waiter, &w, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(w.rc, -ETIMEDOUT);
    T_EQ(w.held, 1);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));

    s.m = &m;
    s.c = &c;
    t0 = t_now_ns();
    T_OK(jg_spawn(&g, scoped_lock, &s, &sliced));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(s.rc, -ETIMEDOUT);
    T_EQ(s.held, 1);
    T_ASSERT(s.expired);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    T_OK(jg_cond_destroy(&c));
    T_OK(jg_mutex_destroy(&m));
}

/* Signalled, then killed before it ran: the signal passes to the next. */
static void test_cond_signal_passed_on(void)
{
    struct waiter w[2];
    struct jg_green *g[2];
    struct jg_cond c;
    struct jg_mutex m;

    T_OK(jg_cond_init(&c));
    T_OK(jg_mutex_init(&m));
    norder = 0;
    for (int i = 0; i < 2; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .m = &m, .c = &c,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], cond_waiter, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_cond_signal(&c));
    T_OK(jg_kill(g[0]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_OK(jg_join(g[1], NULL, JG_FOREVER));
    T_ERR(w[0].rc, -ECANCELED);
    T_EQ(w[0].held, 1);
    T_EQ(w[1].rc, 0);
    T_EQ(w[1].held, 1);
    T_OK(jg_cond_destroy(&c));
    T_OK(jg_mutex_destroy(&m));
}

/* ---- cross-hub use ----------------------------------------------------- */

struct xdev {
    struct jg_mutex *m;
    struct jg_cond *c;
    int rc[9];
};

static void *other_thread(void *arg)
{
    struct xdev *x = arg;

    x->rc[0] = jg_mutex_lock(x->m, 0);
    x->rc[1] = jg_mutex_lock(x->m, JG_FOREVER);
    x->rc[2] = jg_mutex_unlock(x->m);
    x->rc[3] = jg_mutex_held(x->m);
    x->rc[4] = jg_mutex_destroy(x->m);
    x->rc[5] = jg_cond_wait(x->c, x->m, JG_MS(10));
    x->rc[6] = jg_cond_signal(x->c);
    x->rc[7] = jg_cond_broadcast(x->c);
    x->rc[8] = jg_cond_destroy(x->c);
    return NULL;
}

static void test_cross_hub(void)
{
    struct jg_mutex m;
    struct jg_cond c;
    struct xdev x = { .m = &m, .c = &c };
    pthread_t t;

    T_OK(jg_mutex_init(&m));
    T_OK(jg_cond_init(&c));
    T_OK(jg_mutex_lock(&m, 0));
    T_EQ(pthread_create(&t, NULL, other_thread, &x), 0);
    T_EQ(pthread_join(t, NULL), 0);
    for (int i = 0; i < 9; i++)
        T_ERR(x.rc[i], -EXDEV);
    T_EQ(jg_mutex_held(&m), 1);
    T_OK(jg_mutex_unlock(&m));
    T_OK(jg_mutex_destroy(&m));
    T_OK(jg_cond_destroy(&c));
}

T_MAIN(T_CASE(test_mutex_basic), T_CASE(test_mutex_fifo),
       T_CASE(test_mutex_timeout), T_CASE(test_mutex_kill),
       T_CASE(test_mutex_handed_then_killed),
       T_CASE(test_mutex_deadline_scope), T_CASE(test_mutex_random_kills),
       T_CASE(test_cond_basic), T_CASE(test_cond_signal_order),
       T_CASE(test_cond_producer_consumer), T_CASE(test_cond_kill_relocks),
       T_CASE(test_cond_timeout_scope), T_CASE(test_cond_signal_passed_on),
       T_CASE(test_cross_hub))
