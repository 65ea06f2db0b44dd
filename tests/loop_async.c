/* SPDX-License-Identifier: MIT */
/*
 * loop_async.c - cross-thread wake-ups: async sends from other threads and
 * signal handlers (coalesced, the last send always observed, no lost
 * wake-up across many sleeps), and the inbox in FIFO order.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include "t.h"
#include "loop.h"

static struct jg_loop *new_loop(void)
{
    struct jg_loop *l = NULL;
    T_OK(jg_loop_create(&l, NULL));
    return l;
}

/* A watchdog: a lost wake-up fails the test instead of hanging it. */
static int timed_out;

static void watchdog_cb(struct jg_timer *w)
{
    timed_out = 1;
    jg_loop_stop(w->base.loop);
}

static void start_watchdog(struct jg_loop *l, struct jg_timer *t)
{
    timed_out = 0;
    jg_timer_init(t, watchdog_cb);
    T_OK(jg_timer_start(l, t, JG_SEC(20), 0));
    jg_watcher_unref(&t->base);
}

static int calls;

static void count_cb(struct jg_async *w)
{
    (void)w;
    calls++;
}

static void test_coalesce_and_bad_args(void)
{
    struct jg_loop *l = new_loop();
    struct jg_async a;

    jg_async_init(&a, count_cb);
    T_ERR(jg_async_send(&a), -EINVAL);      /* never started */
    T_ERR(jg_async_send(NULL), -EINVAL);
    T_ERR(jg_async_start(NULL, &a), -EINVAL);
    T_ERR(jg_async_stop(NULL), -EINVAL);
    T_OK(jg_async_start(l, &a));
    T_OK(jg_async_start(l, &a));            /* already active */
    calls = 0;
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(calls, 0);
    for (int i = 0; i < 10; i++)
        T_OK(jg_async_send(&a));
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(calls, 1);
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(calls, 1);

    /* Unref'd, it does not keep DEFAULT running. */
    jg_watcher_unref(&a.base);
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 0);
    T_ERR(jg_loop_destroy(l), -EBUSY);
    T_OK(jg_async_stop(&a));
    T_OK(jg_loop_destroy(l));
}

/* Sends from another thread: the callback sees the last value sent. */
static _Atomic long value;
static long seen_last;
static long target;

static void last_cb(struct jg_async *w)
{
    calls++;
    seen_last = atomic_load(&value);
    if (seen_last == target)
        jg_async_stop(w);
}

static void *sender_main(void *arg)
{
    struct jg_async *a = arg;

    for (long i = 1; i <= target; i++) {
        atomic_store(&value, i);
        T_OK(jg_async_send(a));
    }
    return NULL;
}

static void test_last_send_observed(void)
{
    struct jg_loop *l = new_loop();
    struct jg_timer dog;
    struct jg_async a;
    pthread_t th;

    target = t_scale(100000);
    atomic_store(&value, 0);
    calls = 0;
    jg_async_init(&a, last_cb);
    T_OK(jg_async_start(l, &a));
    start_watchdog(l, &dog);
    T_EQ(pthread_create(&th, NULL, sender_main, &a), 0);
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 0);
    T_EQ(timed_out, 0);
    T_EQ(pthread_join(th, NULL), 0);
    T_EQ(seen_last, target);
    T_ASSERT(calls >= 1 && calls <= target);
    T_OK(jg_timer_stop(&dog));
    T_OK(jg_loop_destroy(l));
}

/* Ping-pong: the sender waits for each callback before the next send, so
 * the loop goes to sleep every round; one lost wake-up hangs a round. */
static sem_t pong;
static long rounds;

static void pong_cb(struct jg_async *w)
{
    calls++;
    if (calls == rounds)
        jg_async_stop(w);
    sem_post(&pong);
}

static void *pinger_main(void *arg)
{
    struct jg_async *a = arg;

    for (long i = 0; i < rounds; i++) {
        T_OK(jg_async_send(a));
        while (sem_wait(&pong) < 0)
            ;
    }
    return NULL;
}

static void test_no_lost_wakeup(void)
{
    struct jg_loop *l = new_loop();
    struct jg_timer dog;
    struct jg_async a;
    pthread_t th;

    rounds = t_scale(20000);
    calls = 0;
    T_OK(sem_init(&pong, 0, 0));
    jg_async_init(&a, pong_cb);
    T_OK(jg_async_start(l, &a));
    start_watchdog(l, &dog);
    T_EQ(pthread_create(&th, NULL, pinger_main, &a), 0);
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 0);
    T_EQ(timed_out, 0);
    T_EQ(pthread_join(th, NULL), 0);
    T_EQ(calls, rounds);
    sem_destroy(&pong);
    T_OK(jg_timer_stop(&dog));
    T_OK(jg_loop_destroy(l));
}

/* From a signal handler: async-signal-safe, and it wakes the loop. */
static struct jg_async *sig_async;

static void on_usr1(int sig)
{
    (void)sig;
    jg_async_send(sig_async);
}

static void test_send_from_signal_handler(void)
{
    struct jg_loop *l = new_loop();
    struct sigaction sa, old;
    struct jg_async a;

    jg_async_init(&a, count_cb);
    T_OK(jg_async_start(l, &a));
    sig_async = &a;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    T_OK(sigaction(SIGUSR1, &sa, &old));
    calls = 0;
    T_EQ(raise(SIGUSR1), 0);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(calls, 1);
    T_OK(sigaction(SIGUSR1, &old, NULL));
    T_OK(jg_async_stop(&a));
    T_OK(jg_loop_destroy(l));
}

/* The inbox: posts from another thread run on the loop's thread, in the
 * order they were pushed, none lost. */
struct item {
    struct jg__post post;
    long n;
};

static long next_expected, out_of_order, received;
static long nposts;
static struct jg_async keep;
static const void *loop_thread;

static void item_fn(struct jg__post *p)
{
    struct item *it = JG_CONTAINER_OF(p, struct item, post);

    if (it->n != next_expected || jg__thread_id() != loop_thread)
        out_of_order++;
    next_expected = it->n + 1;
    if (++received == nposts)
        jg_async_stop(&keep);
}

static struct jg_loop *post_loop;

static void *poster_main(void *arg)
{
    struct item *items = arg;

    for (long i = 0; i < nposts; i++) {
        items[i].n = i;
        items[i].post.fn = item_fn;
        jg__loop_post(post_loop, &items[i].post);
        if (i % 1000 == 0)
            usleep(100);    /* let the loop drain and sleep sometimes */
    }
    return NULL;
}

static void test_inbox_fifo(void)
{
    struct jg_loop *l = new_loop();
    struct jg_timer dog;
    struct item *items;
    pthread_t th;

    nposts = t_scale(50000);
    items = calloc((size_t)nposts, sizeof *items);
    T_ASSERT(items != NULL);
    next_expected = out_of_order = received = 0;
    loop_thread = jg__thread_id();
    post_loop = l;
    /* The async only keeps the loop alive until the last post ran. */
    jg_async_init(&keep, count_cb);
    T_OK(jg_async_start(l, &keep));
    start_watchdog(l, &dog);
    T_EQ(pthread_create(&th, NULL, poster_main, items), 0);
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 0);
    T_EQ(timed_out, 0);
    T_EQ(pthread_join(th, NULL), 0);
    T_EQ(received, nposts);
    T_EQ(out_of_order, 0);
    T_OK(jg_timer_stop(&dog));
    T_OK(jg_loop_destroy(l));
    free(items);
}

T_MAIN(T_CASE(test_coalesce_and_bad_args), T_CASE(test_last_send_observed),
       T_CASE(test_no_lost_wakeup), T_CASE(test_send_from_signal_handler),
       T_CASE(test_inbox_fifo))
