/* SPDX-License-Identifier: MIT */
/*
 * offload.c - the blocking-offload pool: jg_run_in_thread from green
 * threads (results, the hub keeps serving, a plain OS thread just calls),
 * a waiter killed or timed out while its work is queued (the work never
 * runs) or running (the call returns only after the work ends), growth to
 * 64 threads, jg_getaddrinfo, and jg_tcp_dial by name.
 */
#include <juggle.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "t.h"

/* Ticks of a green thread, counted while offloaded work runs: read by the
 * pool threads too. */
static _Atomic int ticks, stop_ticking;

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

/* On a pool thread: done only once the hub has ticked 5 times since the
 * work began (or after 10 s, failing): work that held the hub would never
 * see a tick. Counts, not wall time: a loaded machine only makes it wait
 * longer. */
static void *slow_double(void *arg)
{
    int from = atomic_load(&ticks);

    for (int i = 0; i < 10000 && atomic_load(&ticks) - from < 5; i++)
        usleep(1000);
    return (void *)(atomic_load(&ticks) - from >= 5 ? (intptr_t)arg * 2
                                                    : -1);
}

static pthread_t ran_on;

static void *record_thread(void *arg)
{
    ran_on = pthread_self();
    return arg;
}

static void *offload_green(void *arg)
{
    void *v = NULL;
    int rc = jg_run_in_thread(&v, slow_double, arg, JG_FOREVER);

    return rc < 0 ? JG_ERR(rc) : v;
}

static void test_run_in_thread(void)
{
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    struct jg_green *a, *b, *tk;
    void *v;

    /* A plain OS thread (no hub yet) runs fn itself. */
    T_OK(jg_run_in_thread(&v, record_thread, (void *)3, JG_FOREVER));
    T_EQ((intptr_t)v, 3);
    T_ASSERT(pthread_equal(ran_on, pthread_self()));
    T_ERR(jg_run_in_thread(&v, NULL, NULL, 0), -EINVAL);
    T_ERR(jg_run_in_thread(&v, slow_double, NULL, -7), -EINVAL);

    atomic_store(&ticks, 0);
    atomic_store(&stop_ticking, 0);
    T_OK(jg_spawn(&tk, ticker, NULL, NULL));
    T_OK(jg_spawn(&a, offload_green, (void *)20, NULL));
    T_OK(jg_spawn(&b, offload_green, (void *)21, &sliced));
    T_OK(jg_join(a, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 40);
    T_OK(jg_join(b, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 42);
    /* Both ran on pool threads while the hub kept its timers going (each
     * saw 5 ticks meanwhile, or its result would be -1). */
    T_ASSERT(atomic_load(&ticks) >= 5);
    atomic_store(&stop_ticking, 1);
    T_OK(jg_join(tk, NULL, JG_FOREVER));
    /* From the main context with a hub: it goes to the pool too. */
    T_OK(jg_run_in_thread(NULL, record_thread, NULL, JG_FOREVER));
    T_ASSERT(!pthread_equal(ran_on, pthread_self()));
}

/* ---- killed or timed out while running ----------------------------------- */

static atomic_int run_started, run_ended;

static void *tracked(void *arg)
{
    atomic_fetch_add(&run_started, 1);
    usleep((useconds_t)(intptr_t)arg);
    atomic_fetch_add(&run_ended, 1);
    return NULL;
}

struct call_report {
    int rc;
    int ended_at_return;
    int64_t took;
};

static void *tracked_waiter(void *arg)
{
    struct call_report *r = arg;
    int64_t t0 = jg_now();

    r->rc = jg_run_in_thread(NULL, tracked, (void *)(intptr_t)60000,
                             JG_FOREVER);
    r->ended_at_return = atomic_load(&run_ended);
    r->took = jg_now() - t0;
    /* The kill stays sticky after the wait that ignored it. */
    T_ERR(jg_sleep(0), -ECANCELED);
    return NULL;
}

static void test_kill_while_running(void)
{
    struct call_report *r = calloc(1, sizeof(*r));
    struct jg_green *g;

    atomic_store(&run_started, 0);
    atomic_store(&run_ended, 0);
    T_OK(jg_spawn(&g, tracked_waiter, r, NULL));
    while (atomic_load(&run_started) == 0)
        T_OK(jg_sleep(JG_MS(1)));
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(r->rc, -ECANCELED);
    T_EQ(r->ended_at_return, 1);
    T_ASSERT(r->took >= JG_MS(60));
    free(r);
}

static void *timeout_waiter(void *arg)
{
    struct call_report *r = arg;
    int64_t t0 = jg_now();

    r->rc = jg_run_in_thread(NULL, tracked, (void *)(intptr_t)60000,
                             JG_MS(10));
    r->ended_at_return = atomic_load(&run_ended);
    r->took = jg_now() - t0;
    return NULL;
}

static void test_timeout_while_running(void)
{
    struct call_report *r = calloc(1, sizeof(*r));
    struct jg_green *g;

    atomic_store(&run_started, 0);
    atomic_store(&run_ended, 0);
    T_OK(jg_spawn(&g, timeout_waiter, r, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(r->rc, -ETIMEDOUT);
    T_EQ(atomic_load(&run_started), 1);
    T_EQ(r->ended_at_return, 1);
    T_ASSERT(r->took >= JG_MS(60));
    free(r);
}

/* ---- killed or timed out while queued: fill all 64 threads first --------- */

static struct jg_future *gate;
static atomic_int gated_running, queued_ran;

static void *gated(void *arg)
{
    atomic_fetch_add(&gated_running, 1);
    T_OK(jg_future_result(gate, NULL, JG_FOREVER));
    return arg;
}

static void *never(void *arg)
{
    atomic_fetch_add(&queued_ran, 1);
    return arg;
}

static void *offload_gated(void *arg)
{
    return JG_ERR(jg_run_in_thread(NULL, gated, arg, JG_FOREVER));
}

static void *offload_never(void *arg)
{
    return JG_ERR(jg_run_in_thread(NULL, never, NULL,
                                   (int64_t)(intptr_t)arg));
}

static void test_kill_while_queued(void)
{
    enum { FULL = 64 };
    struct jg_green *g[FULL], *k, *t;

    T_OK(jg_future_create(&gate));
    atomic_store(&gated_running, 0);
    atomic_store(&queued_ran, 0);
    for (int i = 0; i < FULL; i++)
        T_OK(jg_spawn(&g[i], offload_gated, NULL, NULL));
    while (atomic_load(&gated_running) < FULL)
        T_OK(jg_sleep(JG_MS(1)));
    /* Every thread of the pool is busy: these two wait in the queue. */
    T_OK(jg_spawn(&k, offload_never, (void *)(intptr_t)JG_FOREVER, NULL));
    T_OK(jg_spawn(&t, offload_never, (void *)(intptr_t)JG_MS(15), NULL));
    T_OK(jg_sleep(JG_MS(5)));
    T_OK(jg_kill(k));
    T_ERR(jg_join(k, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(jg_join(t, NULL, JG_FOREVER), -ETIMEDOUT);
    T_OK(jg_future_set_value(gate, NULL));
    for (int i = 0; i < FULL; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    /* Had they stayed queued, a freed thread would have run them now. */
    usleep(20000);
    T_EQ(atomic_load(&queued_ran), 0);
    T_EQ(atomic_load(&gated_running), FULL);
    jg_future_unref(gate);
}

/* ---- name resolution ----------------------------------------------------- */

static void *resolve(void *arg)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    int rc = jg_getaddrinfo(arg, "80", &hints, &res, JG_SEC(10));

    if (rc == 0) {
        /* Every answer for localhost is a loopback address. */
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET) {
                struct sockaddr_in *in = (void *)ai->ai_addr;
                T_EQ(ntohl(in->sin_addr.s_addr) >> 24, 127);
                T_EQ(ntohs(in->sin_port), 80);
            } else {
                T_EQ(ai->ai_family, AF_INET6);
            }
        }
        freeaddrinfo(res);
    }
    return JG_ERR(rc);
}

static void test_getaddrinfo(void)
{
    struct addrinfo *res = NULL;
    struct jg_green *g;
    int rc;

    T_OK(jg_spawn(&g, resolve, (char *)"localhost", NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    /* No network here: whatever the resolver says, it is a failure. */
    T_OK(jg_spawn(&g, resolve, (char *)"no-such-host.invalid", NULL));
    rc = jg_join(g, NULL, JG_FOREVER);
    T_ASSERT(rc < 0);
    T_ASSERT(rc == -ENOENT || rc == -EAGAIN || rc == -EIO);
    T_ERR(jg_getaddrinfo(NULL, NULL, NULL, &res, 0), -EINVAL);
    T_ERR(jg_getaddrinfo("localhost", NULL, NULL, NULL, 0), -EINVAL);
    T_ERR(jg_getaddrinfo("localhost", NULL, NULL, &res, -9), -EINVAL);
    {
        struct addrinfo bad = { .ai_family = 12345 };
        T_ERR(jg_getaddrinfo("localhost", NULL, &bad, &res, JG_SEC(5)),
              -EINVAL);
    }
}

struct dial_peer {
    int lfd;
    int accepted;
};

static void *accept_one(void *arg)
{
    struct dial_peer *p = arg;
    int fd = jg_accept(p->lfd, NULL, NULL, JG_SEC(10));

    if (fd >= 0) {
        p->accepted = 1;
        jg_close(fd);
    }
    return JG_ERR(fd < 0 ? fd : 0);
}

static void test_tcp_dial_name(void)
{
    struct dial_peer p = { 0 };
    struct jg_green *g;
    int port, fd;

    p.lfd = jg_tcp_listen("127.0.0.1", 0);
    T_OK(p.lfd);
    port = jg_sock_port(p.lfd);
    T_OK(port);
    T_OK(jg_spawn(&g, accept_one, &p, NULL));
    /* "localhost" may give ::1 first (refused here): the next address
     * is tried. */
    fd = jg_tcp_dial("localhost", port, JG_SEC(10));
    T_OK(fd);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(p.accepted, 1);
    jg_close(fd);
    jg_close(p.lfd);
    T_ASSERT(jg_tcp_dial("no-such-host.invalid", 80, JG_SEC(10)) < 0);
    T_ERR(jg_tcp_dial("", 80, 0), -EINVAL);
    T_ERR(jg_tcp_dial("localhost", 0, 0), -EINVAL);
}

/* ---- from a callback ----------------------------------------------------- */

static int cb_rc;

static void timer_cb(struct jg_timer *t)
{
    (void)t;
    cb_rc = jg_run_in_thread(NULL, never, NULL, JG_FOREVER);
}

static void test_callback_eperm(void)
{
    struct jg_timer t;

    atomic_store(&queued_ran, 0);
    jg_timer_init(&t, timer_cb);
    T_OK(jg_timer_start(jg_loop_default(), &t, 0, 0));
    T_OK(jg_sleep(JG_MS(2)));
    T_ERR(cb_rc, -EPERM);
    T_EQ(atomic_load(&queued_ran), 0);
}

T_MAIN(T_CASE(test_run_in_thread), T_CASE(test_kill_while_running),
       T_CASE(test_timeout_while_running), T_CASE(test_kill_while_queued),
       T_CASE(test_getaddrinfo), T_CASE(test_tcp_dial_name),
       T_CASE(test_callback_eperm))
