/* SPDX-License-Identifier: MIT */
/*
 * waitq.h - what the sync layer's files share: the FIFO of parked green
 * threads behind every primitive (its nodes are the clauses of
 * green/clause.h), the checks every primitive makes, and the green-local
 * block that also holds the deadline-scope chain. Hub thread only.
 */
#ifndef JG_WAITQ_H
#define JG_WAITQ_H

#include "clause.h"

static inline void wq_init(struct jg_waitq *q)
{
    jg__list_init(&q->l);
}

/*
 * Park g's clause c at the tail of q until a waker hands it what it waits
 * for (returns 0), or until deadline (absolute ns), an enclosing scope or
 * a kill end the wait (returns the park's error, < 0). c is off q on
 * return and may wait again.
 */
static inline int wq_wait(struct jg_waitq *q, struct jg__clause *c,
                          int64_t deadline, unsigned pflags)
{
    jg__obj_check(q, "object waited on");
    c->handed = false;
    return jg__clause_wait(&q->l, c, deadline, pflags);
}

/* The same with a clause of its own: may also fail with -ENOMEM. */
static inline int wq_park(struct jg_waitq *q, struct jg_green *g,
                          int64_t deadline)
{
    struct jg__clause *c = jg__clause_get(g);
    int rc;

    if (unlikely(!c))
        return -ENOMEM;
    rc = wq_wait(q, c, deadline, 0);
    jg__clause_put(c);
    return rc;
}

/* Hand the first waiter of q that still waits what it waits for; the
 * green thread woken, or NULL if nobody waits. */
static inline struct jg_green *wq_wake_one(struct jg_waitq *q)
{
    if (!jg__list_empty(&q->l))
        jg__obj_check(q, "object whose waiters are woken");
    return jg__clause_wake_one(&q->l, 0);
}

/* Wake every waiter of q (FIFO order: they run in queue order). */
static inline void wq_wake_all(struct jg_waitq *q)
{
    while (wq_wake_one(q))
        ;
}

/*
 * A primitive's validity check failed: if the object is on a parked sliced
 * green thread's stack, abort saying so (it reads as another thread's
 * frames); otherwise it is a bad argument. Inside the running green
 * thread's own frames the two cannot be told apart: -EINVAL.
 */
static inline int obj_bad(const void *p, const char *what)
{
    if (p)
        jg__obj_check(p, what);
    return -EINVAL;
}

/* Debug and sanitizer builds make the same check on every call. */
#if JG_ASAN || JG_TSAN || !defined(NDEBUG)
#define obj_debug_check(p, what) jg__obj_check(p, what)
#else
#define obj_debug_check(p, what) ((void)0)
#endif

/*
 * Common checks of a primitive's owner hub: -EXDEV from another OS thread
 * (the object's hub is not this thread's, which may have none).
 */
static inline int hub_check(const struct jg_hub *h)
{
    return likely(h == jg__tls_hub) ? 0 : -EXDEV;
}

/*
 * Checks before a wait that may park: the timeout, sticky cancellation for
 * blocking calls (timeout != 0), as io.c does. 0 or -errno.
 */
static inline int wait_check(int64_t timeout_ns, struct jg_green *g)
{
    if (unlikely(!jg__timeout_ok(timeout_ns)))
        return -EINVAL;
    if (timeout_ns != 0 && unlikely(jg__killed(g)))
        return -ECANCELED;
    return 0;
}

/* ---- green-local block (local.c) --------------------------------------- */

/*
 * What g->locals points to, made on a green thread's first jg_local_set or
 * jg_deadline_push and freed when it ends (the waiter runs the value
 * destructors). The values array grows separately: the waiter node is
 * linked on g->waiters and must not move.
 */
struct jg__locals {
    struct jg__waiter w;
    struct jg_deadline *scopes; /* innermost active deadline scope */
    uint32_t n;                 /* values allocated */
    void **vals;                /* indexed by key - 1 */
};

/* g's block, made if needed (NULL: out of memory). Hub thread only. */
JG_HIDDEN struct jg__locals *jg__locals_get(struct jg_green *g);

static inline struct jg__locals *locals_of(const struct jg_green *g)
{
    return (struct jg__locals *)(void *)g->locals;
}

#endif
