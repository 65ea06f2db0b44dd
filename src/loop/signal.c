/* SPDX-License-Identifier: MIT */
/*
 * signal.c - signal watchers: one process-wide handler per signal number
 * marks the signal pending in the slot of every loop that watches it and
 * wakes that loop; the callbacks run later, in the loop. The slot table is
 * static, so the handler never follows a pointer into a freed loop: a loop
 * gives its slot back only after waiting out every handler inside it.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include "loop.h"
#include "sys.h"

#define NSLOTS 128
#define MAXSIG 64       /* Linux: signals 1..64; bit s-1 in a mask */

struct slot {
    _Atomic(struct jg_loop *) loop;   /* NULL: free */
    _Atomic uint64_t want;            /* signals the loop watches */
    _Atomic uint64_t pending;         /* arrived, not yet collected */
    _Atomic int busy;                 /* handlers working on this slot */
};

static struct slot slots[NSLOTS];

/* Serialises start/stop/release and the dispositions (never taken by the
 * handler, which uses only the atomics above). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int users[MAXSIG + 1];             /* watchers per signal, all loops */
static struct sigaction saved[MAXSIG + 1];  /* disposition before ours */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static uint64_t bit(int sig)
{
    return 1ull << (sig - 1);
}

static void handler(int sig)
{
    int saved_errno = errno;
    const uint64_t b = bit(sig);

    for (int i = 0; i < NSLOTS; i++) {
        struct slot *s = &slots[i];
        struct jg_loop *l;
        if (!(atomic_load(&s->want) & b))
            continue;
        /* busy before loop (both seq_cst): a releaser that stores NULL and
         * then reads busy == 0 knows no handler still holds its loop. */
        atomic_fetch_add(&s->busy, 1);
        l = atomic_load(&s->loop);
        if (l && (atomic_load(&s->want) & b)) {
            /* Pending first, then the wake: the loop collects after its
             * poll returns, so it cannot miss the bit. */
            atomic_fetch_or(&s->pending, b);
            jg__loop_wake(l);
        }
        atomic_fetch_sub(&s->busy, 1);
    }
    errno = saved_errno;
}

static bool signum_ok(int sig)
{
    if (sig < 1 || sig > MAXSIG || sig > SIGRTMAX)
        return false;
    /* SIGKILL and SIGSTOP cannot be caught; the C library keeps the
     * numbers below SIGRTMIN (NPTL's cancel and setxid signals). A fault
     * (SEGV, BUS, FPE, ILL) re-executes the faulting instruction when the
     * handler returns, so it cannot be deferred to the loop. */
    if (sig == SIGKILL || sig == SIGSTOP || (sig >= 32 && sig < SIGRTMIN))
        return false;
    return sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL;
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&lock);
}

/* In the child every loop forgets its watchers (jg__loop_after_fork), and
 * the other threads' loops are gone: empty the table and give every signal
 * its old disposition back. */
static void atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    for (int i = 0; i < NSLOTS; i++) {
        atomic_store(&slots[i].want, 0);
        atomic_store(&slots[i].loop, NULL);
        atomic_store(&slots[i].pending, 0);
        atomic_store(&slots[i].busy, 0);
    }
    for (int sig = 1; sig <= MAXSIG; sig++) {
        if (users[sig] > 0)
            jg__sys_sigaction(sig, &saved[sig], NULL);
        users[sig] = 0;
    }
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Take a free slot for l (lock held). -ENOMEM when all are taken. */
static int claim_slot(struct jg_loop *l)
{
    for (int i = 0; i < NSLOTS; i++) {
        struct slot *s = &slots[i];
        if (atomic_load(&s->loop))
            continue;
        atomic_store(&s->want, 0);
        atomic_store(&s->pending, 0);
        atomic_store(&s->loop, l);
        l->slot = i;
        return 0;
    }
    return -ENOMEM;
}

/* One more watcher of sig process-wide (lock held): install on the first. */
static int use_signal(int sig)
{
    struct sigaction sa;

    if (users[sig]++ > 0)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    /* RESTART: other threads' blocking calls are not interrupted on our
     * behalf. ONSTACK: run on a thread's alternate stack if it has one. */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    if (jg__sys_sigaction(sig, &sa, &saved[sig]) < 0) {
        users[sig]--;
        return -errno;
    }
    return 0;
}

/* One watcher of sig less (lock held): restore on the last. */
static void unuse_signal(int sig)
{
    if (users[sig] <= 0)
        return;
    if (--users[sig] == 0)
        jg__sys_sigaction(sig, &saved[sig], NULL);
}

void jg_signal_init(struct jg_signal *w, jg_signal_cb cb, int signum)
{
    if (!w)
        return;
    /* data is the user's: left as it is. */
    w->base.loop = NULL;
    w->base.next = w->base.prev = NULL;
    w->base.flags = 0;
    w->base.kind = JG__K_SIGNAL;
    w->cb = cb;
    w->signum = signum;
}

int jg_signal_start(struct jg_loop *l, struct jg_signal *w)
{
    int rc, sig;

    if (!l || !w || w->base.kind != JG__K_SIGNAL || !w->cb
        || !signum_ok(w->signum))
        return -EINVAL;
    rc = jg__watcher_start_begin(l, &w->base);
    if (rc <= 0)
        return rc;
    sig = w->signum;
    pthread_once(&atfork_once, register_atfork);
    rc = jg__watcher_activate(l, &w->base);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&lock);
    if (l->slot < 0 && (rc = claim_slot(l)) < 0)
        goto err_unlock;
    /* want before the handler goes in, so the first delivery counts. */
    if (l->sigcount[sig]++ == 0)
        atomic_fetch_or(&slots[l->slot].want, bit(sig));
    rc = use_signal(sig);
    if (rc < 0) {
        if (--l->sigcount[sig] == 0)
            atomic_fetch_and(&slots[l->slot].want, ~bit(sig));
        goto err_unlock;
    }
    pthread_mutex_unlock(&lock);
    jg__wlist_append(&l->signals, &w->base);
    return 0;

err_unlock:
    pthread_mutex_unlock(&lock);
    jg__watcher_deactivate(l, &w->base);
    return rc;
}

int jg_signal_stop(struct jg_signal *w)
{
    struct jg_loop *l;
    int rc, sig;

    if (!w || w->base.kind != JG__K_SIGNAL)
        return -EINVAL;
    rc = jg__watcher_stop_begin(&w->base, &l);
    if (rc <= 0)
        return rc;
    jg__wlist_remove(&l->signals, &w->base);
    jg__watcher_deactivate(l, &w->base);
    sig = w->signum;
    pthread_mutex_lock(&lock);
    if (l->sigcount[sig] > 0 && --l->sigcount[sig] == 0 && l->slot >= 0)
        atomic_fetch_and(&slots[l->slot].want, ~bit(sig));
    unuse_signal(sig);
    pthread_mutex_unlock(&lock);
    return 0;
}

void jg__signals_collect(struct jg_loop *l)
{
    /* seq_cst exchange: takes every bit a handler set before it. */
    uint64_t p = atomic_exchange(&slots[l->slot].pending, 0);

    if (!p)
        return;
    for (struct jg_watcher *w = l->signals.head; w; w = w->next) {
        struct jg_signal *s = JG_CONTAINER_OF(w, struct jg_signal, base);
        if (p & bit(s->signum))
            jg__pending_add(l, w, (uint32_t)s->signum);
    }
}

void jg__signals_release(struct jg_loop *l)
{
    struct slot *s;

    if (l->slot < 0)
        return;
    s = &slots[l->slot];
    pthread_mutex_lock(&lock);
    /* Watchers still active (a hub loop torn down at thread exit) give
     * their signals back too. */
    for (int sig = 1; sig <= MAXSIG; sig++) {
        while (l->sigcount[sig] > 0) {
            l->sigcount[sig]--;
            unuse_signal(sig);
        }
    }
    atomic_store(&s->want, 0);
    atomic_store(&s->loop, NULL);
    /* A handler that read the loop before the store above is still
     * inside; it is short (a few atomics and a write). */
    while (atomic_load(&s->busy) != 0)
        sched_yield();
    pthread_mutex_unlock(&lock);
    l->slot = -1;
}
