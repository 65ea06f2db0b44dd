/* SPDX-License-Identifier: MIT */
/*
 * future_race.c - futures under races: cancel against start (exactly one
 * wins), callbacks added while the future completes (each runs exactly
 * once), many waiters on OS threads and on green threads of several hubs
 * woken by one completion, waiters whose timeouts race the completion,
 * jg_wait and as_completed against concurrent completers. Counts scale with
 * JG_TEST_SCALE.
 */
#include <juggle.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "t.h"

static atomic_int go;

static void wait_go(void)
{
    while (!atomic_load(&go))
        ;
}

/* ---- cancel against start ------------------------------------------------ */

struct arr {
    struct jg_future **f;
    long n;
    int *rc;
    long base;                  /* index of f[0] (completers' values) */
};

static void *runner(void *arg)
{
    struct arr *a = arg;

    wait_go();
    for (long i = 0; i < a->n; i++)
        a->rc[i] = jg_future_set_running(a->f[i]);
    return NULL;
}

static void test_cancel_vs_start(void)
{
    long n = t_scale(50000);
    struct arr a = { malloc((size_t)n * sizeof(*a.f)), n,
                     malloc((size_t)n * sizeof(int)), 0 };
    long started = 0, cancelled = 0;
    pthread_t t;

    for (long i = 0; i < n; i++)
        T_OK(jg_future_create(&a.f[i]));
    atomic_store(&go, 0);
    T_EQ(pthread_create(&t, NULL, runner, &a), 0);
    atomic_store(&go, 1);
    /* Cancel from the far end so the two sweeps cross in the middle. */
    for (long i = n - 1; i >= 0; i--) {
        int rc = jg_future_cancel(a.f[i]);
        T_ASSERT(rc == 0 || rc == -EBUSY);
        if (rc == 0)
            cancelled++;
    }
    T_EQ(pthread_join(t, NULL), 0);
    for (long i = 0; i < n; i++) {
        int s = jg_future_state(a.f[i]);
        if (a.rc[i] == 0) {
            T_EQ(s, JG_FUTURE_RUNNING);
            started++;
        } else {
            T_ERR(a.rc[i], -ECANCELED);
            T_EQ(s, JG_FUTURE_CANCELLED);
        }
        jg_future_unref(a.f[i]);
    }
    /* Exactly one of the two won each future. */
    T_EQ(started + cancelled, n);
    free(a.f);
    free(a.rc);
}

/* ---- callbacks added during completion ----------------------------------- */

static atomic_int *cb_count;

static void count_cb(void *arg, struct jg_future *f)
{
    T_ASSERT(jg_future_state(f) == JG_FUTURE_DONE);
    atomic_fetch_add(&cb_count[(intptr_t)arg], 1);
}

static void *completer(void *arg)
{
    struct arr *a = arg;

    wait_go();
    for (long i = 0; i < a->n; i++)
        T_OK(jg_future_set_value(a->f[i], (void *)(intptr_t)i));
    return NULL;
}

static void test_callbacks_during_completion(void)
{
    long n = t_scale(30000);
    struct arr a = { malloc((size_t)n * sizeof(*a.f)), n, NULL, 0 };
    pthread_t t;

    cb_count = calloc((size_t)n, sizeof(*cb_count));
    for (long i = 0; i < n; i++)
        T_OK(jg_future_create(&a.f[i]));
    atomic_store(&go, 0);
    T_EQ(pthread_create(&t, NULL, completer, &a), 0);
    atomic_store(&go, 1);
    for (long i = 0; i < n; i++) {
        T_OK(jg_future_add_done_callback(a.f[i], count_cb,
                                         (void *)(intptr_t)i));
        T_OK(jg_future_add_done_callback(a.f[i], count_cb,
                                         (void *)(intptr_t)i));
    }
    T_EQ(pthread_join(t, NULL), 0);
    for (long i = 0; i < n; i++) {
        T_EQ(atomic_load(&cb_count[i]), 2);
        jg_future_unref(a.f[i]);
    }
    free(cb_count);
    free(a.f);
}

/* ---- many waiters across OS threads and green threads -------------------- */

enum { OS_WAITERS = 3, HUBS = 2, GREENS = 8 };

static struct jg_future *shared_f;
static atomic_int woke, timed_out;
static pthread_barrier_t round_start;

static void *os_waiter(void *arg)
{
    void *v = NULL;
    long rounds = (long)(intptr_t)arg;

    for (long r = 0; r < rounds; r++) {
        pthread_barrier_wait(&round_start);
        T_OK(jg_future_result(shared_f, &v, JG_FOREVER));
        T_EQ((intptr_t)v, r + 1);
        atomic_fetch_add(&woke, 1);
        pthread_barrier_wait(&round_start);
    }
    return NULL;
}

static void *green_wait(void *arg)
{
    void *v = NULL;
    /* Odd ones use a short timeout that races the completion. */
    int64_t to = (intptr_t)arg % 2 ? JG_US(50) : JG_FOREVER;
    int rc = jg_future_result(shared_f, &v, to);

    if (rc == -ETIMEDOUT) {
        atomic_fetch_add(&timed_out, 1);
        T_OK(jg_future_result(shared_f, &v, JG_FOREVER));
    } else {
        T_OK(rc);
    }
    atomic_fetch_add(&woke, 1);
    return v;
}

static void *hub_waiter(void *arg)
{
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    long rounds = (long)(intptr_t)arg;
    struct jg_green *g[GREENS];

    for (long r = 0; r < rounds; r++) {
        pthread_barrier_wait(&round_start);
        for (int i = 0; i < GREENS; i++)
            T_OK(jg_spawn(&g[i], green_wait, (void *)(intptr_t)i,
                          i % 4 == 3 ? &sliced : NULL));
        for (int i = 0; i < GREENS; i++) {
            void *v;
            T_OK(jg_join(g[i], &v, JG_FOREVER));
            T_EQ((intptr_t)v, r + 1);
        }
        pthread_barrier_wait(&round_start);
    }
    return NULL;
}

static void test_many_waiters(void)
{
    long rounds = t_scale(300);
    pthread_t os[OS_WAITERS], hubs[HUBS];

    atomic_store(&woke, 0);
    atomic_store(&timed_out, 0);
    pthread_barrier_init(&round_start, NULL, 1 + OS_WAITERS + HUBS);
    for (int i = 0; i < OS_WAITERS; i++)
        T_EQ(pthread_create(&os[i], NULL, os_waiter,
                            (void *)(intptr_t)rounds), 0);
    for (int i = 0; i < HUBS; i++)
        T_EQ(pthread_create(&hubs[i], NULL, hub_waiter,
                            (void *)(intptr_t)rounds), 0);
    for (long r = 0; r < rounds; r++) {
        T_OK(jg_future_create(&shared_f));
        pthread_barrier_wait(&round_start);
        /* Sometimes at once, sometimes once the waiters have parked. */
        if (r % 3 == 1)
            usleep(100);
        T_OK(jg_future_set_value(shared_f, (void *)(intptr_t)(r + 1)));
        pthread_barrier_wait(&round_start);
        jg_future_unref(shared_f);
    }
    for (int i = 0; i < OS_WAITERS; i++)
        T_EQ(pthread_join(os[i], NULL), 0);
    for (int i = 0; i < HUBS; i++)
        T_EQ(pthread_join(hubs[i], NULL), 0);
    pthread_barrier_destroy(&round_start);
    /* Every waiter woke once per round: none lost, none twice. */
    T_EQ(atomic_load(&woke), rounds * (OS_WAITERS + HUBS * GREENS));
}

/* ---- jg_wait and as_completed against completers ------------------------- */

static void *complete_half(void *arg)
{
    struct arr *a = arg;

    wait_go();
    for (long i = 0; i < a->n; i++)
        T_OK(jg_future_set_value(a->f[i], (void *)(intptr_t)(a->base + i)));
    return NULL;
}

static void test_wait_vs_completers(void)
{
    long rounds = t_scale(2000);

    for (long r = 0; r < rounds; r++) {
        struct jg_future *f[4];
        struct arr a = { f, 2, NULL, 0 }, b = { f + 2, 2, NULL, 2 };
        pthread_t t1, t2;
        int rc;

        for (int i = 0; i < 4; i++)
            T_OK(jg_future_create(&f[i]));
        atomic_store(&go, 0);
        T_EQ(pthread_create(&t1, NULL, complete_half, &a), 0);
        T_EQ(pthread_create(&t2, NULL, complete_half, &b), 0);
        atomic_store(&go, 1);
        rc = jg_wait(f, 4, r % 2 ? JG_WAIT_FIRST : JG_WAIT_ALL,
                     JG_FOREVER);
        T_ASSERT(rc >= 1);
        if (r % 2 == 0)
            T_EQ(rc, 4);
        T_EQ(pthread_join(t1, NULL), 0);
        T_EQ(pthread_join(t2, NULL), 0);
        T_EQ(jg_wait(f, 4, JG_WAIT_ALL, 0), 4);
        for (int i = 0; i < 4; i++)
            jg_future_unref(f[i]);
    }
}

static void test_as_completed_vs_completers(void)
{
    long n = t_scale(20000);
    struct jg_future **f = malloc((size_t)n * sizeof(*f));
    struct arr a = { f, n / 2, NULL, 0 };
    struct arr b = { f + n / 2, n - n / 2, NULL, n / 2 };
    struct jg_as_completed *it;
    struct jg_future *got;
    char *seen = calloc((size_t)n, 1);
    pthread_t t1, t2;
    long k = 0;
    int rc;

    for (long i = 0; i < n; i++)
        T_OK(jg_future_create(&f[i]));
    T_OK(jg_as_completed_create(&it, f, (size_t)n));
    atomic_store(&go, 0);
    T_EQ(pthread_create(&t1, NULL, complete_half, &a), 0);
    T_EQ(pthread_create(&t2, NULL, complete_half, &b), 0);
    atomic_store(&go, 1);
    while ((rc = jg_as_completed_next(it, &got, JG_SEC(30))) == 0) {
        void *v;
        long i;

        T_OK(jg_future_result(got, &v, 0));
        i = (long)(intptr_t)v;
        T_ASSERT(i >= 0 && i < n);
        T_PEQ(f[i], got);
        T_EQ(seen[i], 0);
        seen[i] = 1;
        k++;
    }
    T_ERR(rc, -ENOENT);
    T_EQ(k, n);
    T_EQ(pthread_join(t1, NULL), 0);
    T_EQ(pthread_join(t2, NULL), 0);
    for (long i = 0; i < n; i++)
        jg_future_unref(f[i]);
    jg_as_completed_destroy(it);
    free(f);
    free(seen);
}

/* A promise's last reference dropped while another thread completes it:
 * the completer's own reference keeps it alive until it is done. */
static void *complete_and_drop(void *arg)
{
    struct jg_future *f = arg;

    wait_go();
    T_OK(jg_future_set_value(f, NULL));
    jg_future_unref(f);
    return NULL;
}

static void test_unref_vs_complete(void)
{
    long n = t_scale(5000);

    for (long i = 0; i < n; i++) {
        struct jg_future *f;
        pthread_t t;

        T_OK(jg_future_create(&f));
        T_OK(jg_future_add_done_callback(f, count_cb, (void *)0));
        jg_future_ref(f);
        atomic_store(&go, 0);
        T_EQ(pthread_create(&t, NULL, complete_and_drop, f), 0);
        atomic_store(&go, 1);
        jg_future_unref(f);
        T_EQ(pthread_join(t, NULL), 0);
    }
    T_EQ(atomic_load(&cb_count[0]), n);
}

static void setup_counts(void)
{
    cb_count = calloc(1, sizeof(*cb_count));
}

static void test_unref_vs_complete_case(void)
{
    setup_counts();
    test_unref_vs_complete();
    free(cb_count);
}

T_MAIN(T_CASE(test_cancel_vs_start),
       T_CASE(test_callbacks_during_completion),
       T_CASE(test_many_waiters), T_CASE(test_wait_vs_completers),
       T_CASE(test_as_completed_vs_completers),
       T_CASE(test_unref_vs_complete_case))
