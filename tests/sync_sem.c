/* SPDX-License-Identifier: MIT */
/*
 * sync_sem.c - semaphores: counts and bounds, FIFO hand-off without
 * barging (dedicated and sliced waiters), timeouts, kills, deadline scopes,
 * a permit handed to a waiter killed before it ran, a waiter whose timer
 * fired in the same loop pass as a release, and permits conserved under
 * random kills. Cross-hub use is -EXDEV.
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
    int64_t timeout;
    struct jg_sem *s;
    bool release;               /* give the permit back after taking it */
};

static int order[1024];
static int norder;

static void *acquirer(void *arg)
{
    struct waiter *w = arg;

    w->rc = jg_sem_acquire(w->s, w->timeout);
    if (w->rc == 0)
        order[norder++] = w->id;
    if (w->rc == 0 && w->release)
        T_OK(jg_sem_release(w->s));
    w->done = 1;
    return NULL;
}

static void test_sem_basic(void)
{
    struct jg_sem s, zero = { 0 };

    T_OK(jg_sem_init(&s, 2));
    T_EQ(jg_sem_value(&s), 2);
    T_OK(jg_sem_acquire(&s, 0));
    T_OK(jg_sem_acquire(&s, JG_FOREVER));
    T_ERR(jg_sem_acquire(&s, 0), -EAGAIN);
    T_EQ(jg_sem_value(&s), 0);
    T_OK(jg_sem_release(&s));
    T_OK(jg_sem_release(&s));
    T_OK(jg_sem_release(&s));       /* unbounded: above the start */
    T_EQ(jg_sem_value(&s), 3);
    T_ERR(jg_sem_acquire(&s, -3), -EINVAL);
    T_OK(jg_sem_destroy(&s));
    T_ERR(jg_sem_destroy(&s), -EINVAL);
    T_ERR(jg_sem_acquire(&s, 0), -EINVAL);

    T_OK(jg_sem_init(&s, JG_SEM_MAX));
    T_ERR(jg_sem_release(&s), -EOVERFLOW);
    T_OK(jg_sem_destroy(&s));
    T_ERR(jg_sem_init(&s, (unsigned)JG_SEM_MAX + 1), -EINVAL);
    T_ERR(jg_sem_init(NULL, 1), -EINVAL);
    T_ERR(jg_sem_init_bounded(NULL, 1), -EINVAL);
    T_ERR(jg_sem_acquire(NULL, 0), -EINVAL);
    T_ERR(jg_sem_release(NULL), -EINVAL);
    T_ERR(jg_sem_value(NULL), -EINVAL);
    T_ERR(jg_sem_release(&zero), -EINVAL);
    T_ERR(jg_sem_value(&zero), -EINVAL);
}

static void test_sem_bounded(void)
{
    struct jg_sem s;

    T_OK(jg_sem_init_bounded(&s, 2));
    T_ERR(jg_sem_release(&s), -EOVERFLOW);
    T_EQ(jg_sem_value(&s), 2);
    T_OK(jg_sem_acquire(&s, 0));
    T_OK(jg_sem_acquire(&s, 0));
    T_OK(jg_sem_release(&s));
    T_OK(jg_sem_release(&s));
    T_ERR(jg_sem_release(&s), -EOVERFLOW);
    T_EQ(jg_sem_value(&s), 2);
    T_OK(jg_sem_destroy(&s));

    T_OK(jg_sem_init_bounded(&s, 0));
    T_ERR(jg_sem_release(&s), -EOVERFLOW);
    T_ERR(jg_sem_acquire(&s, 0), -EAGAIN);
    T_OK(jg_sem_destroy(&s));
}

/* Permits go to waiters in arrival order; a release with waiters hands the
 * permit over, so the releaser cannot take it back (no barging). */
static void test_sem_fifo(void)
{
    int n = (int)t_scale(300);
    struct waiter *w = calloc((size_t)n, sizeof *w);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct jg_sem s;

    T_OK(jg_sem_init(&s, 0));
    norder = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .s = &s,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], acquirer, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_EQ(norder, 0);
    T_ERR(jg_sem_destroy(&s), -EBUSY);
    for (int i = 0; i < n; i++) {
        T_OK(jg_sem_release(&s));
        T_ERR(jg_sem_acquire(&s, 0), -EAGAIN);
        T_EQ(jg_sem_value(&s), 0);
        /* Let the woken one run; the others stay parked. */
        T_OK(jg_yield());
        T_EQ(norder, i + 1);
    }
    for (int i = 0; i < n; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        T_EQ(order[i], i);
        T_EQ(w[i].rc, 0);
    }
    T_EQ(jg_sem_value(&s), 0);
    T_OK(jg_sem_destroy(&s));
    free(w);
    free(g);
}

static void test_sem_timeout(void)
{
    struct waiter w = { .rc = 1, .timeout = JG_MS(50) };
    struct jg_green *g, *late;
    struct jg_sem s;
    int64_t t0;

    T_OK(jg_sem_init(&s, 0));
    w.s = &s;
    t0 = t_now_ns();
    T_OK(jg_spawn(&g, acquirer, &w, &sliced));
    late = t_late_start(JG_MS(100), &w.rc, 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(w.rc, -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    t_late_check(late);
    /* No trace: the next release goes to the count. */
    T_OK(jg_sem_release(&s));
    T_EQ(jg_sem_value(&s), 1);
    T_OK(jg_sem_destroy(&s));
}

static void test_sem_kill(void)
{
    struct waiter w[3];
    struct jg_green *g[3];
    struct jg_sem s;

    T_OK(jg_sem_init(&s, 0));
    norder = 0;
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .s = &s,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], acquirer, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_kill(g[0]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w[0].rc, -ECANCELED);
    /* The killed waiter is skipped: the next in line gets the permit. */
    T_OK(jg_sem_release(&s));
    T_OK(jg_join(g[1], NULL, JG_FOREVER));
    T_EQ(w[1].rc, 0);
    T_EQ(w[2].done, 0);
    T_OK(jg_kill(g[2]));
    T_ERR(jg_join(g[2], NULL, JG_FOREVER), -ECANCELED);
    T_EQ(norder, 1);
    T_EQ(jg_sem_value(&s), 0);
    T_OK(jg_sem_release(&s));
    T_EQ(jg_sem_value(&s), 1);
    T_OK(jg_sem_destroy(&s));
}

/* A permit handed to a waiter that is killed before it runs is not eaten:
 * it goes to the next waiter, or back to the count. */
static void test_sem_handed_then_killed(void)
{
    struct waiter w[2];
    struct jg_green *g[2];
    struct jg_sem s;

    T_OK(jg_sem_init(&s, 0));
    norder = 0;
    for (int i = 0; i < 2; i++) {
        w[i] = (struct waiter){ .id = i, .rc = 1, .s = &s,
                                .timeout = JG_FOREVER };
        T_OK(jg_spawn(&g[i], acquirer, &w[i], opts_for(i)));
    }
    T_OK(jg_yield());
    T_OK(jg_sem_release(&s));       /* to g[0], now ready */
    T_OK(jg_kill(g[0]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(w[0].rc, -ECANCELED);
    T_OK(jg_join(g[1], NULL, JG_FOREVER));
    T_EQ(w[1].rc, 0);
    T_EQ(norder, 1);
    T_EQ(order[0], 1);
    T_EQ(jg_sem_value(&s), 0);

    /* With nobody behind it, the permit returns to the count. */
    w[0] = (struct waiter){ .id = 0, .rc = 1, .s = &s, .timeout = JG_FOREVER };
    T_OK(jg_spawn(&g[0], acquirer, &w[0], &sliced));
    T_OK(jg_yield());
    T_OK(jg_sem_release(&s));
    T_OK(jg_kill(g[0]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_EQ(jg_sem_value(&s), 1);
    T_OK(jg_sem_destroy(&s));
}

/* ---- a timer fires and a release comes in the same loop pass ----------- */

static struct jg_sem *cb_sem;
static int cb_rc = 1;

static void release_cb(struct jg_timer *t)
{
    (void)t;
    cb_rc = jg_sem_release(cb_sem);
}

/*
 * g[0]'s wait times out (its park timer fires, it is ready but has not
 * run) and, in the same pass of the loop, a callback releases: the permit
 * must skip g[0], which no longer waits, and go to g[1].
 */
static void test_sem_timed_out_not_run(void)
{
    struct waiter w[2];
    struct jg_green *g[2];
    struct jg_timer t;
    struct jg_sem s;
    int64_t spin;

    T_OK(jg_sem_init(&s, 0));
    cb_sem = &s;
    norder = 0;
    w[0] = (struct waiter){ .id = 0, .rc = 1, .s = &s, .timeout = JG_MS(10) };
    w[1] = (struct waiter){ .id = 1, .rc = 1, .s = &s, .timeout = JG_FOREVER };
    T_OK(jg_spawn(&g[0], acquirer, &w[0], NULL));
    T_OK(jg_spawn(&g[1], acquirer, &w[1], &sliced));
    T_OK(jg_yield());
    jg_timer_init(&t, release_cb);
    T_OK(jg_timer_start(jg_loop_default(), &t, JG_MS(11), 0));
    /* Hold the hub until both timers are due: they fire in one pass. */
    spin = t_now_ns() + JG_MS(30);
    while (t_now_ns() < spin)
        ;
    T_OK(jg_join(g[0], NULL, JG_FOREVER));
    T_OK(jg_join(g[1], NULL, JG_FOREVER));
    T_OK(cb_rc);
    T_ERR(w[0].rc, -ETIMEDOUT);
    T_EQ(w[1].rc, 0);
    T_EQ(jg_sem_value(&s), 0);
    T_OK(jg_sem_destroy(&s));
}

struct scoped {
    struct jg_sem *s;
    int rc;
    bool expired;
};

static void *scoped_acquire(void *arg)
{
    struct scoped *sc = arg;
    struct jg_deadline d;

    T_OK(jg_deadline_push(&d, JG_MS(30)));
    sc->rc = jg_sem_acquire(sc->s, JG_FOREVER);
    sc->expired = jg_deadline_expired(&d);
    T_OK(jg_deadline_pop(&d));
    return NULL;
}

static void test_sem_deadline_scope(void)
{
    struct jg_sem s;
    struct scoped sc = { 0 };
    struct jg_green *g, *late;
    int64_t t0 = t_now_ns();

    T_OK(jg_sem_init(&s, 0));
    sc.s = &s;
    T_OK(jg_spawn(&g, scoped_acquire, &sc, &sliced));
    late = t_late_start(JG_MS(60), &sc.rc, 0);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(sc.rc, -ETIMEDOUT);
    T_ASSERT(sc.expired);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    t_late_check(late);
    T_EQ(jg_sem_value(&s), 0);
    T_OK(jg_sem_destroy(&s));
}

/* ---- nothing lost under random kills ----------------------------------- */

struct stress {
    struct jg_sem *s;
    int holders;                /* inside right now */
    int peak;
    long acquired, released;
    int rounds;
};

static void *stress_worker(void *arg)
{
    struct stress *st = arg;

    for (int i = 0; i < st->rounds; i++) {
        int rc = jg_sem_acquire(st->s, JG_FOREVER);
        if (rc < 0) {
            T_ERR(rc, -ECANCELED);
            return NULL;
        }
        st->acquired++;
        if (++st->holders > st->peak)
            st->peak = st->holders;
        /* Hold it across a switch; a kill here must still release. */
        (void)jg_yield();
        st->holders--;
        T_OK(jg_sem_release(st->s));
        st->released++;
        if (jg_cancelled())
            return NULL;
    }
    return NULL;
}

static void test_sem_random_kills(void)
{
    const unsigned permits = 3;
    int n = (int)t_scale(400);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    struct stress st = { .rounds = 20 };
    struct jg_sem s;
    unsigned seed = 12345;
    int kills = 0;

    T_OK(jg_sem_init(&s, permits));
    st.s = &s;
    for (int i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], stress_worker, &st, opts_for(i)));
    /* Kill a third of them at random moments, whatever they are doing
     * (parked in acquire, handed a permit and ready, holding one). */
    for (int k = 0; k < n / 3; k++) {
        for (int y = rand_r(&seed) % 4; y >= 0; y--)
            T_OK(jg_yield());
        int v = rand_r(&seed) % n;
        if (jg_state(g[v]) != JG_GREEN_DONE)
            kills++;
        T_OK(jg_kill(g[v]));
    }
    for (int i = 0; i < n; i++) {
        int rc = jg_join(g[i], NULL, JG_FOREVER);
        T_ASSERT(rc == 0 || rc == -ECANCELED);
    }
    T_ASSERT(kills > 0);
    T_EQ(st.holders, 0);
    T_ASSERT(st.peak <= (int)permits);
    T_EQ(st.peak, (int)permits);
    T_EQ(st.acquired, st.released);
    T_EQ(jg_sem_value(&s), permits);
    T_OK(jg_sem_destroy(&s));
    free(g);
}

/* ---- cross-hub use ----------------------------------------------------- */

static void *other_thread(void *arg)
{
    struct jg_sem *s = arg;
    static int rc[5];

    rc[0] = jg_sem_acquire(s, 0);
    rc[1] = jg_sem_acquire(s, JG_MS(10));
    rc[2] = jg_sem_release(s);
    rc[3] = jg_sem_value(s);
    rc[4] = jg_sem_destroy(s);
    return rc;
}

static void test_sem_cross_hub(void)
{
    struct jg_sem s;
    pthread_t t;
    void *res;

    T_OK(jg_sem_init(&s, 1));
    T_EQ(pthread_create(&t, NULL, other_thread, &s), 0);
    T_EQ(pthread_join(t, &res), 0);
    for (int i = 0; i < 5; i++)
        T_ERR(((int *)res)[i], -EXDEV);
    T_EQ(jg_sem_value(&s), 1);
    T_OK(jg_sem_destroy(&s));
}

T_MAIN(T_CASE(test_sem_basic), T_CASE(test_sem_bounded),
       T_CASE(test_sem_fifo), T_CASE(test_sem_timeout),
       T_CASE(test_sem_kill), T_CASE(test_sem_handed_then_killed),
       T_CASE(test_sem_timed_out_not_run), T_CASE(test_sem_deadline_scope),
       T_CASE(test_sem_random_kills), T_CASE(test_sem_cross_hub))
