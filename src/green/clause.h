/* SPDX-License-Identifier: MIT */
/*
 * clause.h - the one waiter: the node a parked green thread leaves on the
 * list of each object it waits for (event, result cell, semaphore, mutex,
 * condition, queue, channel and select, group, join, and the hub side of
 * a future), with the one park path (jg__clause_wait: link, park, the one
 * cleanup) and the one wake path (jg__clause_wake). libdill's clause is
 * the model. Hub thread only: a cross-thread source reaches the hub first.
 *
 * A clause is heap memory (jg__clause_get), never the waiter's stack: a
 * parked sliced green thread's stack may be copied out at any moment, and
 * wakers write to the clause. A green thread waiting on several objects
 * (select) links one clause on each; the first waker claims the park, the
 * others find the green thread no longer parked and drop its clauses on
 * the way (jg__clause_first). Whoever woke it, the waiter unlinks what is
 * still linked before it reads the outcome.
 */
#ifndef JG_CLAUSE_H
#define JG_CLAUSE_H

#include "hub.h"

struct jg__clause {
    struct jg__list link;       /* on the object's list; NULLs when off */
    struct jg_green *g;         /* who waits */
    void *val;                  /* a put or send: its value; a get or a
                                 * receive: the one handed over */
    int aux;                    /* the value's priority, a select's case */
    bool handed;                /* a waker claimed the wait: g's park
                                 * result is that waker's */
};

/* Per-thread cache of free clauses (clause.c): no malloc per wait. The
 * chain reuses the list link: a free clause is on no list. */
struct jg__clause_cache {
    struct jg__clause *head;
    unsigned n;
};
extern _Thread_local struct jg__clause_cache jg__clauses JG_TLS_IE;
JG_HIDDEN struct jg__clause *jg__clause_alloc(void);
JG_HIDDEN void jg__clause_put(struct jg__clause *c);

/* A fresh clause of g's, off every list (one embedded in a heap record). */
static inline void jg__clause_init(struct jg__clause *c, struct jg_green *g)
{
    c->link.next = c->link.prev = NULL;
    c->g = g;
    c->val = NULL;
    c->aux = 0;
    c->handed = false;
}

/* A clause for the calling green thread g, or NULL (out of memory). */
static inline struct jg__clause *jg__clause_get(struct jg_green *g)
{
    struct jg__clause *c = jg__clauses.head;

    if (likely(c != NULL)) {
        jg__clauses.head = (struct jg__clause *)(void *)c->link.next;
        jg__clauses.n--;
    } else if (!(c = jg__clause_alloc())) {
        return NULL;
    }
    jg__clause_init(c, g);
    return c;
}

/* Whether c's green thread still waits: no waker has claimed its park. */
static inline bool jg__clause_live(const struct jg__clause *c)
{
    return jg__wakeable(c->g) &&
           !atomic_load_explicit(&c->g->park.fired, memory_order_relaxed);
}

/*
 * Claim c's wait and make its green thread ready with result (>= 0 for
 * what it waited for, or an error such as -EPIPE for a close). Returns
 * false if another waker (a timer, a kill, a sibling clause) won.
 */
static inline bool jg__clause_wake(struct jg__clause *c, int result)
{
    if (!jg__wake(c->g, result))
        return false;
    c->handed = true;
    return true;
}

/* The first clause on l that still waits; drops dead ones on the way
 * (their owners find them unlinked and not handed). NULL if none. */
static inline struct jg__clause *jg__clause_first(struct jg__list *l)
{
    struct jg__list *e;

    while ((e = l->next) != l) {
        struct jg__clause *c = JG_CONTAINER_OF(e, struct jg__clause, link);
        if (jg__clause_live(c))
            return c;
        jg__list_remove(e);
    }
    return NULL;
}

/* Unlink the live clause c from its list and wake it with result. */
static inline void jg__clause_take(struct jg__clause *c, int result)
{
    jg__list_remove(&c->link);
    (void)jg__clause_wake(c, result);
}

/* Wake the first waiter of l with result; its green thread, or NULL. */
static inline struct jg_green *jg__clause_wake_one(struct jg__list *l,
                                                   int result)
{
    struct jg__clause *c = jg__clause_first(l);

    if (!c)
        return NULL;
    jg__clause_take(c, result);
    return c->g;
}

/* Wake every waiter of l with result, in FIFO order. */
static inline void jg__clause_wake_all(struct jg__list *l, int result)
{
    while (jg__clause_wake_one(l, result))
        ;
}

/* Off its list, if it is on one (the waiter's cleanup). */
static inline void jg__clause_unlink(struct jg__clause *c)
{
    if (jg__list_linked(&c->link))
        jg__list_remove(&c->link);
}

/*
 * The one park path. Queue c (prepared by the caller) at the tail of l
 * (NULL: the caller linked it, or keeps it where a waker finds it), park
 * until a waker claims it or the deadline (absolute ns), an enclosing
 * scope or a kill ends the wait, and unlink c. Returns the park's result:
 * the waker's when c->handed, else -ETIMEDOUT, -ECANCELED, -EDEADLK, -EPERM
 * or -ENOMEM (jg__park).
 */
static inline int jg__clause_wait(struct jg__list *l, struct jg__clause *c,
                                  int64_t deadline, unsigned pflags)
{
    int rc;

    jg__park_arm(c->g);
    if (l)
        jg__list_push_back(l, &c->link);
    rc = jg__park_flags(deadline, pflags);
    jg__clause_unlink(c);
    /* Only claiming wakers report a result >= 0, and they set handed. */
    JG_ASSERT(rc < 0 || c->handed);
    return rc;
}

/*
 * The same for a wait on several objects at once (select): cs[0..n) are
 * the caller's clauses, each already linked on its object's list. At most
 * one is handed; every one is off its list on return.
 */
static inline int jg__clause_wait_n(struct jg__clause *cs, size_t n,
                                    int64_t deadline)
{
    int rc;

    jg__park_arm(cs[0].g);
    rc = jg__park(deadline);
    for (size_t i = 0; i < n; i++)
        jg__clause_unlink(&cs[i]);
    return rc;
}

#endif
