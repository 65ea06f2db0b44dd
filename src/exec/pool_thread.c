/* SPDX-License-Identifier: MIT */
/*
 * pool_thread.c - the thread pool: N worker pthreads (all signals blocked)
 * over one submission queue. Producers push lock-free onto an inbox stack;
 * workers move it under a lock into a FIFO and take tasks in small batches.
 * A task is its future: the queue links and the work live in the future's
 * backend area, so a submission allocates nothing when the future cache is
 * warm. Invariant: a task counted in `count` is either run, or completed
 * CANCELLED by a cancelling shutdown (JG_SHUTDOWN_CANCEL_PENDING); workers
 * exit only when count is zero after shutdown, so nothing queued is ever
 * dropped.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "future.h"

/* count: tasks submitted and not yet taken by a worker (including pushes
 * in flight), with STOP set once the pool is shut down. */
#define STOP ((uint64_t)1 << 63)
#define PENDING_MASK (STOP - 1)
/* Most tasks a worker takes at once: amortizes the queue lock without
 * letting one worker hoard a burst. */
#define BATCH_MAX 32

struct tpool {
    struct jg_executor base;
    int nworkers;
    size_t queue_max;
    void (*init)(void *);
    void *init_arg;
    pthread_t *threads;
    struct jg_future *exited;   /* completed by the last worker to exit */
    _Atomic int live;           /* workers running */
    _Atomic bool cancel;        /* JG_SHUTDOWN_CANCEL_PENDING */
    struct jg__lock shut_mu;
    bool joined;

    /* Producers' line: every submit does RMWs here. */
    alignas(64) _Atomic uint64_t count;
    _Atomic(struct jg_future *) inbox;  /* Treiber stack, LIFO */

    /* Workers' line: the FIFO they take batches from. */
    alignas(64) struct jg__lock qlock;
    struct jg_future *head, *tail;
    size_t qlen;

    /* Sleeping: an event count. A worker reads seq, announces itself in
     * sleepers, re-checks count, then sleeps on seq; a producer that sees
     * sleepers bumps seq and wakes one. wake_pending coalesces: while one
     * wake-up is on its way, later producers do not make system calls. */
    alignas(64) _Atomic int sleepers;
    _Atomic uint32_t seq;
    _Atomic int wake_pending;
};

/* The pool whose worker this thread is (a waiting shutdown from a task would
 * wait for itself). */
static _Thread_local struct tpool *tls_pool;

static void wake_one(struct tpool *p)
{
    if (atomic_exchange(&p->wake_pending, 1) == 0) {
        atomic_fetch_add(&p->seq, 1);
        jg__futex_wake(&p->seq, 1);
    }
}

static void wake_all(struct tpool *p)
{
    atomic_fetch_add(&p->seq, 1);
    jg__futex_wake(&p->seq, INT32_MAX);
}

/* Queue f (the pool takes a reference). 0, -ESHUTDOWN, -EAGAIN. */
static int enqueue(struct tpool *p, struct jg_future *f)
{
    /* seq_cst: pairs with a worker's "sleepers++, then read count" (the
     * lost-wake-up pitfall): one of the two sees the other. */
    uint64_t c = atomic_fetch_add(&p->count, 1);
    struct jg_future *head;

    if (c & STOP) {
        atomic_fetch_sub(&p->count, 1);
        return -ESHUTDOWN;
    }
    if (p->queue_max && c >= p->queue_max) {
        atomic_fetch_sub(&p->count, 1);
        return -EAGAIN;
    }
    jg_future_ref(f);
    head = atomic_load_explicit(&p->inbox, memory_order_relaxed);
    /* release: publishes f's backend area to the worker's exchange. No
     * ABA: workers take the whole stack, never single nodes. */
    do {
        jg__job_of(f)->q.next = head;
    } while (!atomic_compare_exchange_weak_explicit(&p->inbox, &head, f,
                 memory_order_release, memory_order_relaxed));
    if (atomic_load(&p->sleepers) > 0)
        wake_one(p);
    return 0;
}

/* Move the inbox (LIFO) to the FIFO's tail, in push order. Under qlock. */
static void refill(struct tpool *p)
{
    /* acquire: pairs with the producers' release CAS. */
    struct jg_future *s = atomic_exchange_explicit(&p->inbox, NULL,
                                                   memory_order_acquire);
    struct jg_future *fifo = NULL, *last = s;
    size_t k = 0;

    while (s) {
        struct jg_future *next = jg__job_of(s)->q.next;
        jg__job_of(s)->q.next = fifo;
        fifo = s;
        s = next;
        k++;
    }
    if (!fifo)
        return;
    if (p->tail)
        jg__job_of(p->tail)->q.next = fifo;
    else
        p->head = fifo;
    p->tail = last;
    p->qlen += k;
}

/* Take up to a fair share of the queue into *out; the number taken. */
static size_t take(struct tpool *p, struct jg_future **out, bool *more)
{
    size_t n = 0, want;

    jg__lock(&p->qlock);
    if (!p->head)
        refill(p);
    want = p->qlen / (size_t)p->nworkers;
    want = want < 1 ? 1 : want > BATCH_MAX ? BATCH_MAX : want;
    while (n < want && p->head) {
        out[n++] = p->head;
        p->head = jg__job_of(p->head)->q.next;
    }
    if (!p->head)
        p->tail = NULL;
    p->qlen -= n;
    *more = p->head != NULL ||
            atomic_load_explicit(&p->inbox, memory_order_relaxed) != NULL;
    jg__unlock(&p->qlock);
    return n;
}

static void run_task(struct tpool *p, struct jg_future *f)
{
    /* A task taken before a cancelling shutdown has not started:
     * it ends CANCELLED like the ones still queued. */
    if (atomic_load_explicit(&p->cancel, memory_order_relaxed)) {
        (void)jg_future_cancel(f);
        jg__job_fini(f);
    } else {
        jg__job_run(f);
    }
    jg_future_unref(f);
}

/* Sleep until work may be there; false when the worker should exit. */
static bool idle(struct tpool *p)
{
    uint64_t c = atomic_load(&p->count);
    uint32_t e;

    if (c == STOP)
        return false;
    if (c & PENDING_MASK) {
        /* Counted but not pushed yet: the producer is mid-push. */
        sched_yield();
        return true;
    }
    /* A short spin first: a burst of submissions usually continues. */
    for (int i = 0; i < 200; i++) {
        if (atomic_load_explicit(&p->count, memory_order_relaxed))
            return true;
        jg__cpu_relax();
    }
    e = atomic_load(&p->seq);
    atomic_fetch_add(&p->sleepers, 1);
    /* Re-open the door for wake-ups before the last look at count. A
     * producer that later finds the door shut (and skips its wake-up)
     * was preceded by a wake-up whose seq bump comes after our read of e,
     * so our futex wait returns; resetting it anywhere else (say after a
     * wake-up) can swallow a wake-up aimed at a worker that backed out. */
    atomic_store(&p->wake_pending, 0);
    c = atomic_load(&p->count);
    if (c == 0)
        (void)jg__futex_wait(&p->seq, e, INT64_MAX);
    atomic_fetch_sub(&p->sleepers, 1);
    return true;
}

static void *worker_main(void *arg)
{
    struct tpool *p = arg;
    struct jg_future *batch[BATCH_MAX];
    bool more;
    size_t n;

    jg__block_all_signals();
    tls_pool = p;
    if (p->init)
        p->init(p->init_arg);
    for (;;) {
        n = take(p, batch, &more);
        if (n == 0) {
            if (!idle(p))
                break;
            continue;
        }
        /* The taken tasks leave the bounded queue now. */
        atomic_fetch_sub(&p->count, n);
        /* More queued and someone asleep: pass a wake-up on, so a burst
         * spreads over the workers (producers' wake-ups are coalesced
         * behind wake_pending; this one is per batch, not per task). */
        if (more && atomic_load(&p->sleepers) > 0) {
            atomic_fetch_add(&p->seq, 1);
            jg__futex_wake(&p->seq, 1);
        }
        for (size_t i = 0; i < n; i++)
            run_task(p, batch[i]);
    }
    tls_pool = NULL;
    if (atomic_fetch_sub(&p->live, 1) == 1)
        (void)jg_future_set_value(p->exited, NULL);
    return NULL;
}

static int tp_submit(struct jg_executor *ex, const char *name,
                     const void *in, size_t n, struct jg_future *f)
{
    struct tpool *p = (struct tpool *)ex;
    jg_task_fn fn = jg_task_find(name);
    int rc;

    if (!fn)
        return -ENOENT;
    if ((rc = jg__job_init_task(f, fn, in, n)) < 0)
        return rc;
    if ((rc = enqueue(p, f)) < 0)
        jg__job_fini(f);
    return rc;
}

static int tp_call(struct jg_executor *ex, void *(*fn)(void *), void *arg,
                   struct jg_future *f)
{
    jg__job_init_call(f, fn, arg);
    return enqueue((struct tpool *)ex, f);
}

/* Cancel everything still queued (JG_SHUTDOWN_CANCEL_PENDING). */
static void cancel_queued(struct tpool *p)
{
    struct jg_future *f, *next;
    uint64_t k = 0;

    jg__lock(&p->qlock);
    refill(p);
    f = p->head;
    p->head = p->tail = NULL;
    p->qlen = 0;
    jg__unlock(&p->qlock);
    for (; f; f = next) {
        next = jg__job_of(f)->q.next;
        (void)jg_future_cancel(f);
        jg__job_fini(f);
        jg_future_unref(f);
        k++;
    }
    if (k)
        atomic_fetch_sub(&p->count, k);
}

static int tp_shutdown(struct jg_executor *ex, unsigned flags)
{
    struct tpool *p = (struct tpool *)ex;
    bool cancel_pending = flags & JG_SHUTDOWN_CANCEL_PENDING;

    if (cancel_pending)
        atomic_store(&p->cancel, true);
    atomic_fetch_or(&p->count, STOP);
    if (cancel_pending)
        cancel_queued(p);
    wake_all(p);
    if (!(flags & JG_SHUTDOWN_WAIT))
        return 0;
    if (tls_pool == p)
        return -EDEADLK;
    return jg_future_result(p->exited, NULL, JG_FOREVER);
}

static void tp_destroy(struct jg_executor *ex)
{
    struct tpool *p = (struct tpool *)ex;

    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->threads[i], NULL);
    jg_future_unref(p->exited);
    free(p->threads);
    free(p);
}

static const struct jg__executor_ops tp_ops = {
    .name = "thread",
    .submit = tp_submit,
    .call = tp_call,
    .shutdown = tp_shutdown,
    .destroy = tp_destroy,
};

int jg_thread_pool_create(struct jg_executor **out,
                          const struct jg_thread_pool_opts *o)
{
    struct jg_thread_pool_opts def;
    sigset_t all, old;
    struct tpool *p;
    int i, rc = 0;

    memset(&def, 0, sizeof(def));
    if (!o)
        o = &def;
    if (!out || o->workers < 0 || o->workers > 4096 ||
        o->queue_max >= PENDING_MASK)
        return -EINVAL;
    p = aligned_alloc(64, (sizeof(*p) + 63) & ~(size_t)63);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof(*p));
    p->base.ops = &tp_ops;
    p->nworkers = o->workers;
    if (p->nworkers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        p->nworkers = cpus > 0 ? (int)cpus : 1;
    }
    p->queue_max = o->queue_max;
    p->init = o->init;
    p->init_arg = o->init_arg;
    p->threads = calloc((size_t)p->nworkers, sizeof(*p->threads));
    p->exited = jg__future_alloc();
    if (!p->threads || !p->exited) {
        jg_future_unref(p->exited);
        free(p->threads);
        free(p);
        return -ENOMEM;
    }
    atomic_init(&p->live, p->nworkers);
    /* Workers start with every signal blocked: no window in which a
     * process-directed signal could land on one. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (i = 0; i < p->nworkers; i++) {
        rc = -pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc < 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        /* The ones started exit at once (nothing queued); the others
         * never count as live. */
        atomic_fetch_sub(&p->live, p->nworkers - i);
        p->nworkers = i;
        atomic_fetch_or(&p->count, STOP);
        wake_all(p);
        if (i == 0)
            (void)jg_future_set_value(p->exited, NULL);
        tp_destroy(&p->base);
        return rc == -EAGAIN ? -EAGAIN : rc;
    }
    *out = &p->base;
    return 0;
}
