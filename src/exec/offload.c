/* SPDX-License-Identifier: MIT */
/*
 * offload.c - the blocking-offload pool: threads that run blocking calls
 * (name resolution, file I/O, user code) for green threads, separate from
 * the CPU thread pool so that they never queue behind CPU work. It grows on
 * demand to OFFLOAD_MAX threads; a thread idle for IDLE_NS exits.
 * Invariant ("offloaded work never outlives what it uses"): when a waiter
 * gives up, its queued job is cancelled and unlinked (it never runs); a
 * running job is waited for before the waiter returns.
 */
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "executor.h"
#include "future.h"
#include "hub.h"

#define OFFLOAD_MAX 64
#define IDLE_NS JG_SEC(10)

/* One process-wide pool; jobs are futures whose job (executor.h) says
 * what to run, queued on `jobs` through the job's link. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* CLOCK_MONOTONIC */
    pthread_cond_t grow_cv;     /* the grower's */
    struct jg__list jobs;
    size_t queued;
    int nthreads, nidle;
    int starting;               /* created, not yet waiting or working */
    bool grower;                /* the grower thread runs */
} op = { .mu = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t op_once = PTHREAD_ONCE_INIT;

static void op_prepare(void)
{
    pthread_mutex_lock(&op.mu);
}

static void op_parent(void)
{
    pthread_mutex_unlock(&op.mu);
}

/* In a forked child the threads are gone: start over with none. Jobs that
 * were queued belong to the parent's waiters and are abandoned. */
static void op_child(void)
{
    pthread_condattr_t a;

    pthread_mutex_init(&op.mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&op.cv, &a);
    pthread_condattr_destroy(&a);
    pthread_cond_init(&op.grow_cv, NULL);
    jg__list_init(&op.jobs);
    op.queued = 0;
    op.nthreads = op.nidle = op.starting = 0;
    op.grower = false;
}

static void op_init(void)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&op.cv, &a);
    pthread_condattr_destroy(&a);
    pthread_cond_init(&op.grow_cv, NULL);
    jg__list_init(&op.jobs);
    pthread_atfork(op_prepare, op_parent, op_child);
}

static struct jg__list *link_of(struct jg_future *f)
{
    return &jg__job_of(f)->q.link;
}

static struct jg_future *job_at(struct jg__list *l)
{
    return (struct jg_future *)(void *)((char *)l -
        offsetof(struct jg__job, q.link) - offsetof(struct jg_future, backend));
}

/* Unlink f from the queue (under mu). */
static void unlink_job(struct jg_future *f)
{
    jg__list_remove(link_of(f));
    op.queued--;
}

static void *op_thread(void *arg)
{
    struct jg_future *f;
    struct timespec ts;
    int64_t until;

    (void)arg;
    jg__block_all_signals();
    pthread_mutex_lock(&op.mu);
    op.starting--;
    for (;;) {
        until = jg_now() + IDLE_NS;
        ts.tv_sec = until / 1000000000LL;
        ts.tv_nsec = until % 1000000000LL;
        while (jg__list_empty(&op.jobs)) {
            op.nidle++;
            int rc = pthread_cond_timedwait(&op.cv, &op.mu, &ts);
            op.nidle--;
            if (rc == ETIMEDOUT && jg__list_empty(&op.jobs)) {
                op.nthreads--;
                pthread_mutex_unlock(&op.mu);
                return NULL;
            }
        }
        f = job_at(op.jobs.next);
        unlink_job(f);
        pthread_mutex_unlock(&op.mu);
        /* A job whose waiter gave up was cancelled: it never runs. */
        jg__job_run(f);
        jg_future_unref(f);
        pthread_mutex_lock(&op.mu);
    }
}

/* Start a thread running fn with every signal blocked (under mu):
 * 0 or -errno. */
static int start_locked(void *(*fn)(void *))
{
    sigset_t all, old;
    pthread_attr_t a;
    pthread_t t;
    int rc;

    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&t, &a, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    return rc;
}

/* Whether the queue outnumbers the threads that will get to it: each
 * blocking job gets a thread of its own, up to the cap. */
static bool want_more(void)
{
    return op.queued > (size_t)(op.nidle + op.starting) &&
           op.nthreads < OFFLOAD_MAX;
}

static int start_worker_locked(void)
{
    int rc;

    op.nthreads++;
    op.starting++;
    if ((rc = start_locked(op_thread)) < 0) {
        op.nthreads--;
        op.starting--;
    }
    return rc;
}

/*
 * The grower: starts the workers beyond the first, so that a burst of
 * offloaded calls does not make the submitting hub create threads (a
 * clone and a stack mapping each, which under load hold the hub for
 * milliseconds). It sleeps on its condition when nothing is wanted and
 * lives as long as the process.
 */
static void *grower_main(void *arg)
{
    (void)arg;
    jg__block_all_signals();
    pthread_mutex_lock(&op.mu);
    for (;;) {
        while (!want_more())
            pthread_cond_wait(&op.grow_cv, &op.mu);
        if (start_worker_locked() < 0) {
            /* No thread now: the running ones get to it; try again at
             * the next submission. */
            pthread_cond_wait(&op.grow_cv, &op.mu);
        }
    }
    return NULL;
}

/* Queue f (the pool takes a reference): 0, -EAGAIN (no thread at all). */
static int op_submit(struct jg_future *f)
{
    int rc = 0;

    pthread_once(&op_once, op_init);
    jg_future_ref(f);
    pthread_mutex_lock(&op.mu);
    jg__list_push_back(&op.jobs, link_of(f));
    op.queued++;
    if (op.nthreads == 0) {
        /* The first worker comes from here, so that a job never waits
         * for one that cannot be made; the grower makes the rest. */
        if ((rc = start_worker_locked()) < 0)
            unlink_job(f);
        else if (!op.grower && start_locked(grower_main) == 0)
            op.grower = true;
    } else if (want_more()) {
        if (op.grower)
            pthread_cond_signal(&op.grow_cv);
        else
            (void)start_worker_locked();    /* no grower: as before */
    }
    if (rc == 0)
        pthread_cond_signal(&op.cv);
    pthread_mutex_unlock(&op.mu);
    if (rc < 0)
        jg_future_unref(f);
    return rc < 0 ? -EAGAIN : 0;
}

/* The waiter gave up on a job that has not started: drop it. */
static void op_remove(struct jg_future *f)
{
    bool was;

    pthread_mutex_lock(&op.mu);
    was = jg__list_linked(link_of(f));
    if (was)
        unlink_job(f);
    pthread_mutex_unlock(&op.mu);
    if (was)
        jg_future_unref(f);     /* the queue's reference */
}

int jg_run_in_thread(void **result, void *(*fn)(void *), void *arg,
                     int64_t timeout_ns)
{
    struct jg_future *f;
    void *v = NULL;
    int rc;

    if (!fn || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if ((rc = jg__wait_kind()) <= 0) {
        if (rc < 0)
            return rc;
        /* A plain OS thread may block: no pool round trip. */
        v = fn(arg);
        if (result)
            *result = v;
        return 0;
    }
    f = jg__future_alloc();
    if (!f)
        return -ENOMEM;
    jg__job_init_call(f, fn, arg);
    if ((rc = op_submit(f)) < 0) {
        jg_future_unref(f);
        return rc;
    }
    rc = jg_future_result(f, &v, timeout_ns);
    if (rc < 0) {
        /* Killed or timed out: a queued job is removed and never runs;
         * a running one is waited for, as it may use the caller's data. */
        if (jg_future_cancel(f) == 0)
            op_remove(f);
        else
            (void)jg__future_wait_uninterruptible(f);
    } else if (result) {
        *result = v;
    }
    jg_future_unref(f);
    return rc;
}

/* ---- getaddrinfo --------------------------------------------------------- */

struct gai_job {
    const char *node, *service;
    const struct addrinfo *hints;
    struct addrinfo *res;
    int rc, err;
};

static void *gai_run(void *arg)
{
    struct gai_job *j = arg;

    j->rc = getaddrinfo(j->node, j->service, j->hints, &j->res);
    j->err = j->rc == EAI_SYSTEM ? errno : 0;
    return NULL;
}

/* getaddrinfo's EAI_* as -errno (the table in executor.h). */
static int map_eai(int rc, int err)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SERVICE:
    case EAI_SOCKTYPE:
        return -EINVAL;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return err > 0 ? -err : -EIO;
    default:
        return -EIO;
    }
}

int jg_getaddrinfo(const char *node, const char *service,
                   const struct addrinfo *hints, struct addrinfo **res,
                   int64_t timeout_ns)
{
    struct gai_job *j;
    int rc;

    if (!res || (!node && !service) || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    /* The job and copies of the strings live on the heap: a pool thread
     * must never write into a parked green thread's stack. */
    j = calloc(1, sizeof(*j) + sizeof(struct addrinfo));
    if (!j)
        return -ENOMEM;
    if (hints) {
        memcpy(j + 1, hints, sizeof(*hints));
        j->hints = (struct addrinfo *)(j + 1);
    }
    j->node = node ? strdup(node) : NULL;
    j->service = service ? strdup(service) : NULL;
    if ((node && !j->node) || (service && !j->service)) {
        rc = -ENOMEM;
        goto out;
    }
    rc = jg_run_in_thread(NULL, gai_run, j, timeout_ns);
    if (rc == 0) {
        rc = map_eai(j->rc, j->err);
        if (rc == 0) {
            *res = j->res;
            j->res = NULL;
        }
    }
out:
    /* A job that ran after its waiter gave up: its result is ours. */
    if (j->res)
        freeaddrinfo(j->res);
    free((char *)j->node);
    free((char *)j->service);
    free(j);
    return rc;
}
