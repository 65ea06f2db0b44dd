/* SPDX-License-Identifier: MIT */
/*
 * sync_local.c - green-local storage: values private to each green thread
 * (dedicated and sliced), destructors run once per value when a green
 * thread ends (also when killed while parked, and when a destructor sets a
 * value again), main contexts of exiting OS threads, bad keys, and the key
 * limit.
 */
#include <juggle.h>
#include <pthread.h>
#include "t.h"

static struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };

static jg_local_key key_a, key_b, key_plain;
static int dtor_calls;
static long dtor_sum;

static void count_dtor(void *v)
{
    dtor_calls++;
    dtor_sum += *(int *)v;
    free(v);
}

static int *boxed(int v)
{
    int *p = malloc(sizeof *p);
    *p = v;
    return p;
}

/* Every case makes the shared keys first, so each can run alone. */
static void keys_once(void)
{
    if (key_a)
        return;
    T_OK(jg_local_key_create(&key_a, count_dtor));
    T_OK(jg_local_key_create(&key_b, count_dtor));
    T_OK(jg_local_key_create(&key_plain, NULL));
}

static void test_keys(void)
{
    T_ERR(jg_local_key_create(NULL, NULL), -EINVAL);
    keys_once();
    T_ASSERT(key_a != 0 && key_b != 0 && key_a != key_b);
    T_ERR(jg_local_set(0, &key_a), -EINVAL);
    T_ERR(jg_local_set(key_plain + 1000, &key_a), -EINVAL);
    T_PEQ(jg_local_get(0), NULL);
    T_PEQ(jg_local_get(key_plain + 1000), NULL);

    /* main's own values. */
    T_PEQ(jg_local_get(key_plain), NULL);
    T_OK(jg_local_set(key_plain, &key_b));
    T_PEQ(jg_local_get(key_plain), &key_b);
    T_OK(jg_local_set(key_plain, NULL));
    T_PEQ(jg_local_get(key_plain), NULL);
}

struct worker {
    int id;
    int seen;                   /* the value read back after switching */
    int plain_seen;
    struct jg_event *ev;
};

static void *local_worker(void *arg)
{
    struct worker *w = arg;

    if (jg_local_get(key_a) != NULL)
        return JG_ERR(-EEXIST);
    T_OK(jg_local_set(key_a, boxed(w->id)));
    T_OK(jg_local_set(key_plain, w));
    /* Let all the others set theirs. */
    T_OK(jg_yield());
    if (w->ev)
        (void)jg_event_wait(w->ev, JG_FOREVER);
    w->seen = *(int *)jg_local_get(key_a);
    w->plain_seen = jg_local_get(key_plain) == w;
    return NULL;
}

static void test_isolation_and_dtors(void)
{
    int n = (int)t_scale(500);
    struct worker *w = calloc((size_t)n, sizeof *w);
    struct jg_green **g = calloc((size_t)n, sizeof *g);
    long want = 0;

    keys_once();

    dtor_calls = 0;
    dtor_sum = 0;
    for (int i = 0; i < n; i++) {
        w[i].id = i + 1;
        want += i + 1;
        T_OK(jg_spawn(&g[i], local_worker, &w[i], i & 1 ? &sliced : NULL));
    }
    for (int i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    for (int i = 0; i < n; i++) {
        T_EQ(w[i].seen, i + 1);
        T_EQ(w[i].plain_seen, 1);
    }
    /* One destructor call per value, each value once. */
    T_EQ(dtor_calls, n);
    T_EQ(dtor_sum, want);
    /* main's value of key_plain was never set by them. */
    T_PEQ(jg_local_get(key_plain), NULL);
    free(w);
    free(g);
}

/* Killed while parked: its values are destroyed as it ends. */
static void test_killed_runs_dtors(void)
{
    struct jg_event ev;
    struct worker w[2] = { { .id = 7 }, { .id = 9 } };
    struct jg_green *g[2];

    keys_once();

    T_OK(jg_event_init(&ev));
    dtor_calls = 0;
    dtor_sum = 0;
    for (int i = 0; i < 2; i++) {
        w[i].ev = &ev;
        T_OK(jg_spawn(&g[i], local_worker, &w[i], i ? &sliced : NULL));
    }
    T_OK(jg_sleep(JG_MS(1)));
    T_EQ(dtor_calls, 0);
    T_OK(jg_kill(g[0]));
    T_OK(jg_kill(g[1]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_ERR(jg_join(g[1], NULL, JG_FOREVER), -ECANCELED);
    T_EQ(dtor_calls, 2);
    T_EQ(dtor_sum, 16);
    /* Killed before it ever ran: nothing to destroy, nothing leaks. */
    T_OK(jg_spawn(&g[0], local_worker, &w[0], NULL));
    T_OK(jg_kill(g[0]));
    T_ERR(jg_join(g[0], NULL, JG_FOREVER), -ECANCELED);
    T_EQ(dtor_calls, 2);
    T_OK(jg_event_destroy(&ev));
}

/* A destructor that sets a value again gets another round (bounded). */
static jg_local_key key_again;
static int again_calls;

static void again_dtor(void *v)
{
    again_calls++;
    if (again_calls < 3)
        T_OK(jg_local_set(key_again, v));
}

static void *set_again(void *arg)
{
    (void)arg;
    T_OK(jg_local_set(key_again, &again_calls));
    T_OK(jg_local_set(key_b, boxed(100)));
    return NULL;
}

static void test_dtor_sets_again(void)
{
    struct jg_green *g;

    keys_once();

    T_OK(jg_local_key_create(&key_again, again_dtor));
    dtor_calls = 0;
    again_calls = 0;
    T_OK(jg_spawn(&g, set_again, NULL, &sliced));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(again_calls, 3);
    T_EQ(dtor_calls, 1);
}

/* Setting NULL on a green thread with no values allocates nothing. */
static void *set_null(void *arg)
{
    (void)arg;
    T_OK(jg_local_set(key_a, NULL));
    return jg_local_get(key_a);
}

static void test_set_null(void)
{
    struct jg_green *g;
    void *res = &g;

    keys_once();

    dtor_calls = 0;
    T_OK(jg_spawn(&g, set_null, NULL, NULL));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, NULL);
    T_EQ(dtor_calls, 0);
}

/* The main context of another OS thread: destructors at thread exit. */
static void *os_thread(void *arg)
{
    int *rc = arg;

    rc[0] = jg_local_set(key_a, boxed(1000));
    rc[1] = *(int *)jg_local_get(key_a) == 1000;
    rc[2] = jg_local_get(key_plain) == NULL;
    return NULL;
}

static void test_os_thread_main(void)
{
    pthread_t t;
    int rc[3] = { -1, -1, -1 };

    keys_once();

    dtor_calls = 0;
    dtor_sum = 0;
    T_EQ(pthread_create(&t, NULL, os_thread, rc), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_OK(rc[0]);
    T_EQ(rc[1], 1);
    T_EQ(rc[2], 1);
    T_EQ(dtor_calls, 1);
    T_EQ(dtor_sum, 1000);
}

/* From a loop callback (the hub's context): -EPERM, no crash. */
static int cb_rc;

static void timer_cb(struct jg_timer *t)
{
    (void)t;
    cb_rc = jg_local_set(key_plain, &cb_rc);
}

static void test_callback_eperm(void)
{
    struct jg_timer t;

    keys_once();

    jg_timer_init(&t, timer_cb);
    T_OK(jg_timer_start(jg_loop_default(), &t, JG_MS(1), 0));
    T_OK(jg_sleep(JG_MS(10)));
    T_ERR(cb_rc, -EPERM);
}

/* Keys run out at JG_LOCAL_KEYS_MAX (last: it uses them all up). */
static void test_key_limit(void)
{
    jg_local_key k;
    int made = 0;
    int rc;

    keys_once();

    while ((rc = jg_local_key_create(&k, NULL)) == 0)
        made++;
    T_ERR(rc, -EAGAIN);
    T_ASSERT(made > 0 && made <= JG_LOCAL_KEYS_MAX);
    /* The last key works, and so do the first. */
    T_OK(jg_local_set(k, &made));
    T_PEQ(jg_local_get(k), &made);
    T_OK(jg_local_set(key_plain, &k));
    T_PEQ(jg_local_get(key_plain), &k);
    T_PEQ(jg_local_get(k), &made);
}

T_MAIN(T_CASE(test_keys), T_CASE(test_isolation_and_dtors),
       T_CASE(test_killed_runs_dtors), T_CASE(test_dtor_sets_again),
       T_CASE(test_set_null), T_CASE(test_os_thread_main),
       T_CASE(test_callback_eperm), T_CASE(test_key_limit))
