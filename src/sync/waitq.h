/* SPDX-License-Identifier: MIT */
/*
 * waitq.h - what the sync layer's files share: the FIFO of parked green
 * threads behind every primitive, its heap nodes (a parked green thread's
 * stack is never touched, so nodes cannot live there), and the green-local
 * block that also holds the deadline-scope chain. Hub thread only.
 */
#ifndef JG_WAITQ_H
#define JG_WAITQ_H

#include "hub.h"

/*
 * One parked waiter, on the heap. It is not g->link: the park timer and
 * jg_kill wake a green thread with jg__wake, which pushes g->link onto the
 * ready queue while it would still be on our list. A waker unlinks the
 * node (q = NULL) before it wakes the green thread; a waiter woken by its
 * timer or a kill finds its node still linked and unlinks it itself.
 */
struct jg__wnode {
    struct jg__wnode *next, *prev;
    struct jg_waitq *q;         /* the queue it is on; NULL when off */
    struct jg_green *g;
    bool handed;                /* the waker gave it what it waited for */
};

/* Per-thread cache of free nodes (event.c): no malloc per wait. */
extern _Thread_local struct jg__wnode *jg__wfree JG_TLS_IE;
JG_HIDDEN struct jg__wnode *jg__wnode_alloc(void);
JG_HIDDEN void jg__wnode_free(struct jg__wnode *n);

static inline struct jg__wnode *wnode_get(void)
{
    struct jg__wnode *n = jg__wfree;

    if (likely(n != NULL)) {
        jg__wfree = n->next;
        return n;
    }
    return jg__wnode_alloc();
}

static inline void wq_init(struct jg_waitq *q)
{
    q->head = q->tail = NULL;
}

static inline bool wq_empty(const struct jg_waitq *q)
{
    return q->head == NULL;
}

static inline void wq_append(struct jg_waitq *q, struct jg__wnode *n)
{
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    n->q = q;
}

static inline void wq_unlink(struct jg__wnode *n)
{
    struct jg_waitq *q = n->q;

    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->next = n->prev = NULL;
    n->q = NULL;
}

/*
 * Queue the caller g at the tail of q with node n and park it until a
 * waker hands it something (returns 1), or until deadline (absolute ns),
 * an enclosing scope, or a kill end the wait (returns jg__park's error,
 * < 0). Either way n is off q when this returns: the one cleanup path.
 */
static inline int wq_park_node_flags(struct jg_waitq *q, struct jg__wnode *n,
                                     struct jg_green *g, int64_t deadline,
                                     unsigned pflags)
{
    int rc;

    jg__obj_check(q, "object waited on");
    n->g = g;
    n->handed = false;
    wq_append(q, n);
    rc = jg__park_flags(deadline, pflags);
    if (n->q)
        wq_unlink(n);
    if (n->handed)
        return 1;
    /* Only our wakers wake with a result >= 0, and they set handed. */
    JG_ASSERT(rc < 0);
    return rc;
}

static inline int wq_park_node(struct jg_waitq *q, struct jg__wnode *n,
                               struct jg_green *g, int64_t deadline)
{
    return wq_park_node_flags(q, n, g, deadline, 0);
}

/* The same with a node from the cache: may also fail with -ENOMEM. */
static inline int wq_park(struct jg_waitq *q, struct jg_green *g,
                          int64_t deadline)
{
    struct jg__wnode *n = wnode_get();
    int rc;

    if (unlikely(!n))
        return -ENOMEM;
    rc = wq_park_node(q, n, g, deadline);
    jg__wnode_free(n);
    return rc;
}

/*
 * Hand something to the first waiter of q that still waits, and make it
 * ready. Waiters already woken by their timer or a kill (not run yet) are
 * dropped from q on the way: they no longer wait. Returns the green thread
 * woken, or NULL if nobody waits.
 */
static inline struct jg_green *wq_wake_one(struct jg_waitq *q)
{
    struct jg__wnode *n;

    if (q->head)
        jg__obj_check(q, "object whose waiters are woken");
    while ((n = q->head) != NULL) {
        wq_unlink(n);
        if (jg__wake(n->g, 0)) {
            n->handed = true;
            return n->g;
        }
    }
    return NULL;
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
    if (timeout_ns != 0 && unlikely(g->flags & JG__G_CANCELLED))
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
