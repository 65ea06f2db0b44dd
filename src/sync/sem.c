/* SPDX-License-Identifier: MIT */
/*
 * sem.c - semaphore (plain and bounded), mutex and condition variable for
 * green threads. Permits and ownership are handed straight to the first
 * waiter (FIFO, no barging), and a waiter that was handed one but was
 * killed before it resumed passes it on: nothing is ever lost to a kill.
 * Invariant: count > 0 (or owner == NULL) implies no waiter still parks.
 */
#include "waitq.h"

#define SEM_MAGIC   0x4a67536du     /* "JgSm" */
#define MUTEX_MAGIC 0x4a674d78u     /* "JgMx" */
#define COND_MAGIC  0x4a67436eu     /* "JgCn" */

/* ---- semaphore --------------------------------------------------------- */

static inline int sem_check(const struct jg_sem *s)
{
    if (unlikely(!s || s->magic != SEM_MAGIC))
        return obj_bad(s, "jg_sem");
    obj_debug_check(s, "jg_sem");
    return hub_check(s->hub);
}

static int sem_setup(struct jg_sem *s, unsigned value, unsigned bound)
{
    struct jg_hub *h;

    if (!s || value > JG_SEM_MAX)
        return -EINVAL;
    h = jg__hub_get();
    if (!h)
        return -ENOMEM;
    s->magic = SEM_MAGIC;
    s->nwait = 0;
    s->count = value;
    s->bound = bound;
    s->hub = h;
    wq_init(&s->q);
    return 0;
}

int jg_sem_init(struct jg_sem *s, unsigned value)
{
    return sem_setup(s, value, JG_SEM_MAX);
}

int jg_sem_init_bounded(struct jg_sem *s, unsigned value)
{
    return sem_setup(s, value, value);
}

int jg_sem_destroy(struct jg_sem *s)
{
    int rc = sem_check(s);

    if (rc < 0)
        return rc;
    if (s->nwait)
        return -EBUSY;
    s->magic = 0;
    return 0;
}

/*
 * A permit is free: it goes to the first waiter that still parks, else to
 * the count. The count cannot pass the bound here: a permit handed back
 * by a killed waiter came from a release that was within it.
 */
static void sem_give(struct jg_sem *s)
{
    if (!wq_wake_one(&s->q))
        s->count++;
}

int jg_sem_acquire(struct jg_sem *s, int64_t timeout_ns)
{
    struct jg_green *g;
    int rc = sem_check(s);

    if (rc < 0)
        return rc;
    g = s->hub->current;
    rc = wait_check(timeout_ns, g);
    if (rc < 0)
        return rc;
    /* A free permit means nobody parks (see the invariant): take it. */
    if (likely(s->count > 0)) {
        s->count--;
        return 0;
    }
    if (timeout_ns == 0)
        return -EAGAIN;     /* a try, not a wait */
    s->nwait++;
    rc = wq_park(&s->q, g, jg__deadline_after(timeout_ns));
    s->nwait--;
    if (rc == 0) {
        /* Killed after a release handed us the permit but before we
         * ran: we must not eat it. */
        if (unlikely(jg__killed(g))) {
            sem_give(s);
            return -ECANCELED;
        }
        return 0;
    }
    return rc;
}

int jg_sem_release(struct jg_sem *s)
{
    int rc = sem_check(s);

    if (rc < 0)
        return rc;
    if (wq_wake_one(&s->q))
        return 0;
    if (s->count >= s->bound)
        return -EOVERFLOW;
    s->count++;
    return 0;
}

int jg_sem_value(const struct jg_sem *s)
{
    int rc = sem_check(s);

    return rc < 0 ? rc : (int)s->count;
}

/* ---- mutex ------------------------------------------------------------- */

static inline int mutex_check(const struct jg_mutex *m)
{
    if (unlikely(!m || m->magic != MUTEX_MAGIC))
        return obj_bad(m, "jg_mutex");
    obj_debug_check(m, "jg_mutex");
    return hub_check(m->hub);
}

int jg_mutex_init(struct jg_mutex *m)
{
    struct jg_hub *h;

    if (!m)
        return -EINVAL;
    h = jg__hub_get();
    if (!h)
        return -ENOMEM;
    m->magic = MUTEX_MAGIC;
    m->nwait = 0;
    m->owner = NULL;
    m->hub = h;
    wq_init(&m->q);
    return 0;
}

int jg_mutex_destroy(struct jg_mutex *m)
{
    int rc = mutex_check(m);

    if (rc < 0)
        return rc;
    if (m->owner || m->nwait)
        return -EBUSY;
    m->magic = 0;
    return 0;
}

/* The owner lets go: the first waiter that still parks owns m now. */
static void mutex_pass(struct jg_mutex *m)
{
    m->owner = wq_wake_one(&m->q);
}

int jg_mutex_lock(struct jg_mutex *m, int64_t timeout_ns)
{
    struct jg_green *g;
    int rc = mutex_check(m);

    if (rc < 0)
        return rc;
    g = m->hub->current;
    rc = wait_check(timeout_ns, g);
    if (rc < 0)
        return rc;
    if (unlikely(m->owner == g))
        return -EDEADLK;
    if (likely(m->owner == NULL)) {
        m->owner = g;
        return 0;
    }
    if (timeout_ns == 0)
        return -EAGAIN;     /* a try, not a wait */
    m->nwait++;
    rc = wq_park(&m->q, g, jg__deadline_after(timeout_ns));
    m->nwait--;
    if (rc == 0) {
        /* The unlocker made us the owner; killed since, we never take
         * the lock: it goes on to the next waiter. */
        if (unlikely(jg__killed(g))) {
            mutex_pass(m);
            return -ECANCELED;
        }
        return 0;
    }
    return rc;
}

int jg_mutex_trylock(struct jg_mutex *m)
{
    return jg_mutex_lock(m, 0);
}

int jg_mutex_unlock(struct jg_mutex *m)
{
    int rc = mutex_check(m);

    if (rc < 0)
        return rc;
    if (m->owner != m->hub->current)
        return -EPERM;
    mutex_pass(m);
    return 0;
}

int jg_mutex_held(const struct jg_mutex *m)
{
    int rc = mutex_check(m);

    return rc < 0 ? rc : m->owner == m->hub->current;
}

/*
 * Take m back for a condition waiter, whatever happened to it: without a
 * time limit and through kills (pthread_cond_wait re-locks before the
 * cancellation handlers run): the park ignores kills (they stay recorded)
 * and deadline scopes (JG__PARK_NOCANCEL | JG__PARK_NOSCOPE). n is a
 * clause taken before m was released, so this cannot run out of memory.
 * Returns 0, or -EDEADLK without m (main, and nothing can unlock it).
 */
static int mutex_relock(struct jg_mutex *m, struct jg_green *g,
                        struct jg__clause *n)
{
    int rc;

    if (m->owner == NULL) {
        m->owner = g;
        return 0;
    }
    /* Like pthread_cond_wait, the wait returns holding the mutex: neither
     * a kill (recorded, seen by the caller's next call) nor a deadline
     * scope may end this part of it. */
    m->nwait++;
    rc = wq_wait(&m->q, n, INT64_MAX, JG__PARK_NOCANCEL | JG__PARK_NOSCOPE);
    m->nwait--;
    return rc;
}

/* ---- condition variable ------------------------------------------------ */

static inline int cond_check(const struct jg_cond *c)
{
    if (unlikely(!c || c->magic != COND_MAGIC))
        return obj_bad(c, "jg_cond");
    obj_debug_check(c, "jg_cond");
    return hub_check(c->hub);
}

int jg_cond_init(struct jg_cond *c)
{
    struct jg_hub *h;

    if (!c)
        return -EINVAL;
    h = jg__hub_get();
    if (!h)
        return -ENOMEM;
    c->magic = COND_MAGIC;
    c->nwait = 0;
    c->hub = h;
    wq_init(&c->q);
    return 0;
}

int jg_cond_destroy(struct jg_cond *c)
{
    int rc = cond_check(c);

    if (rc < 0)
        return rc;
    if (c->nwait)
        return -EBUSY;
    c->magic = 0;
    return 0;
}

int jg_cond_wait(struct jg_cond *c, struct jg_mutex *m, int64_t timeout_ns)
{
    struct jg__clause *n;
    struct jg_green *g;
    int rc, lrc;

    if ((rc = cond_check(c)) < 0 || (rc = mutex_check(m)) < 0)
        return rc;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    g = c->hub->current;
    /* Refuse what could not park before letting go of m: a callback or
     * the hub could never take it back. */
    if (!jg__may_park(c->hub, g) || m->owner != g)
        return -EPERM;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    if (jg__killed(g))
        return -ECANCELED;
    /* The clause, for both waits, before m is let go: nothing can fail
     * after that but a deadlock of main. */
    n = jg__clause_get(g);
    if (!n)
        return -ENOMEM;
    c->nwait++;
    mutex_pass(m);
    rc = wq_wait(&c->q, n, jg__deadline_after(timeout_ns), 0);
    c->nwait--;
    if (rc == 0) {
        rc = 0;
        /* Signalled, then killed before we ran: another waiter gets the
         * signal, so a signal meant for a live waiter is never lost. */
        if (unlikely(jg__killed(g))) {
            wq_wake_one(&c->q);
            rc = -ECANCELED;
        }
    }
    lrc = mutex_relock(m, g, n);
    jg__clause_put(n);
    return lrc < 0 ? lrc : rc;
}

int jg_cond_signal(struct jg_cond *c)
{
    int rc = cond_check(c);

    if (rc < 0)
        return rc;
    wq_wake_one(&c->q);
    return 0;
}

int jg_cond_broadcast(struct jg_cond *c)
{
    int rc = cond_check(c);

    if (rc < 0)
        return rc;
    wq_wake_all(&c->q);
    return 0;
}
