/* SPDX-License-Identifier: MIT */
/*
 * future.h - the future's layout for the executors (future.c and exec/):
 * a small futex lock, the internal completion nodes every wait uses, and
 * an opaque backend area so that a queued task needs no allocation besides
 * its future.
 */
#ifndef JG_FUTURE_INTERNAL_H
#define JG_FUTURE_INTERNAL_H

#include "cpu.h"
#include "internal.h"
#include "juggle/future.h"

/*
 * A 4-byte mutex on a futex (0 free, 1 locked, 2 locked with waiters).
 * Process-private; used where a pthread mutex would double the future.
 */
struct jg__lock {
    _Atomic uint32_t v;
};
#define JG__LOCK_INIT { 0 }

JG_HIDDEN void jg__lock_slow(struct jg__lock *l);
JG_HIDDEN void jg__unlock_slow(struct jg__lock *l);

static inline void jg__lock(struct jg__lock *l)
{
    uint32_t zero = 0;

    /* acquire: the critical section reads what the last holder wrote. */
    if (likely(atomic_compare_exchange_strong_explicit(&l->v, &zero, 1,
            memory_order_acquire, memory_order_relaxed)))
        return;
    jg__lock_slow(l);
}

static inline void jg__unlock(struct jg__lock *l)
{
    /* release: publishes the critical section; 2 means someone sleeps. */
    if (unlikely(atomic_exchange_explicit(&l->v, 0, memory_order_release)
                 == 2))
        jg__unlock_slow(l);
}

/* futex(2) helpers (process-private). wait returns 0, -EAGAIN (the word
 * changed), -EINTR or -ETIMEDOUT; deadline is absolute CLOCK_MONOTONIC ns
 * or INT64_MAX. */
JG_HIDDEN int jg__futex_wait(_Atomic uint32_t *w, uint32_t val,
                             int64_t deadline);
JG_HIDDEN void jg__futex_wake(_Atomic uint32_t *w, int n);

/*
 * An internal completion node: fn(n, f) runs once when f completes, on the
 * completing thread WITH f's lock held (so whoever unlinks the node under
 * that lock knows fn is not running). fn must be short and must not take
 * f's lock; it may take locks that are never held while taking a future's.
 */
struct jg__fnode {
    struct jg__list link;
    void (*fn)(struct jg__fnode *n, struct jg_future *f);
};

struct jg__fcb;                 /* a user done-callback (future.c) */

/* Size of the backend area (a queued job, exec/executor.h). */
#define JG__FUTURE_BACKEND 104

struct jg_future {
    _Atomic int state;          /* enum jg_future_state */
    _Atomic int refs;
    struct jg__lock lock;       /* completion, nodes, callbacks */
    int code;                   /* < 0: DONE with this error */
    bool has_bytes;             /* value points at len owned bytes */
    void *value;
    size_t len;
    char *msg;                  /* error message, malloc'd, or NULL */
    struct jg__list nodes;      /* struct jg__fnode, under lock */
    struct jg__fcb *cbs;        /* user callbacks, in order, under lock */
    struct jg__fcb **cbs_tail;
    /* Non-NULL: only this hub can complete the future (a green thread's,
     * jg_green_future). A wait on it from that hub is no cross-thread
     * operation, so deadlock detection still sees a hub that is stuck. */
    struct jg_hub *home;
    /*
     * The backend area: opaque bytes that the executor holding the future
     * lays out as it likes (a queued job: exec/executor.h, which asserts
     * that it fits), so a queued task needs no allocation besides its
     * future. The future never reads them.
     */
    _Alignas(void *) unsigned char backend[JG__FUTURE_BACKEND];
};

/* A fresh PENDING future with one reference, from a per-thread cache. */
JG_HIDDEN struct jg_future *jg__future_alloc(void);
/* DONE with bytes the future takes over (malloc'd; p may be NULL if n 0). */
JG_HIDDEN int jg__future_set_owned(struct jg_future *f, void *p, size_t n);
/* CANCELLED from PENDING or RUNNING (a green thread that was killed). */
JG_HIDDEN int jg__future_cancel_any(struct jg_future *f);
/* Link n so n->fn runs when f completes; false (not linked) if f has
 * completed already. Unlink with jg__future_node_del. */
JG_HIDDEN bool jg__future_node_add(struct jg_future *f, struct jg__fnode *n);
/* Unlink n if linked; on return n->fn is not running and never will. */
JG_HIDDEN void jg__future_node_del(struct jg_future *f, struct jg__fnode *n);
/* true once DONE or CANCELLED (acquire: the outcome is readable). */
static inline bool jg__future_done(const struct jg_future *f)
{
    return atomic_load_explicit(&((struct jg_future *)f)->state,
                                memory_order_acquire) >= JG_FUTURE_DONE;
}

/*
 * Wait for f to complete, not interruptible by jg_kill or deadline scopes
 * (offloaded work that runs must end before its waiter returns). Returns
 * true if the waiter was killed meanwhile (the kill stays sticky).
 */
JG_HIDDEN bool jg__future_wait_uninterruptible(struct jg_future *f);

#endif
