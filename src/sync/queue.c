/* SPDX-License-Identifier: MIT */
/*
 * queue.c - green FIFO, LIFO and priority queues with task_done/join and
 * close. Invariants: getters wait only while the buffer is empty, putters
 * only while it is full; an item handed to a waiting getter is earmarked in
 * the getter's clause (val, aux) and counted in q->earmarked, with buffer room
 * reserved for it, so that a getter killed before it resumes can always put
 * the item back without allocating.
 */
#include <string.h>

#include "clause.h"

/* One buffered item; seq keeps equal priorities in FIFO order. */
struct qent {
    void *item;
    int prio;
    uint64_t seq;
};

struct jg_queue {
    struct jg_hub *hub;
    enum jg_queue_kind kind;
    bool closed;
    size_t maxsize;             /* 0: unbounded */
    struct qent *v;             /* ring (FIFO/LIFO) or binary heap */
    size_t cap;                 /* power of two */
    size_t head, len;           /* ring start; items buffered */
    size_t earmarked;           /* handed to getters not yet resumed */
    size_t unfinished;          /* put and not yet task_done */
    uint64_t seq;
    struct jg__list getters, putters, joiners;
};

/* ---- storage ------------------------------------------------------------- */

/* Make room for `need` items; rings are unrolled into the new array. */
static int reserve(struct jg_queue *q, size_t need)
{
    size_t cap = q->cap ? q->cap : 8;
    struct qent *v;

    if (need <= q->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    v = malloc(cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        v[i] = q->v[(q->head + i) & (q->cap - 1)];
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static bool heap_less(const struct qent *a, const struct qent *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void heap_push(struct jg_queue *q, struct qent e)
{
    size_t i = q->len++;

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &q->v[p]))
            break;
        q->v[i] = q->v[p];
        i = p;
    }
    q->v[i] = e;
}

static struct qent heap_pop(struct jg_queue *q)
{
    struct qent top = q->v[0], last = q->v[--q->len];
    size_t i = 0, n = q->len;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&q->v[c + 1], &q->v[c]))
            c++;
        if (!heap_less(&q->v[c], &last))
            break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (n > 0)
        q->v[i] = last;
    return top;
}

/* Append (room reserved by the caller). */
static void push_tail(struct jg_queue *q, struct qent e)
{
    if (q->kind == JG_QUEUE_PRIORITY) {
        heap_push(q, e);
        return;
    }
    q->v[(q->head + q->len) & (q->cap - 1)] = e;
    q->len++;
}

/* Put back where the next get looks first (room reserved). */
static void push_head(struct jg_queue *q, struct qent e)
{
    if (q->kind == JG_QUEUE_FIFO) {
        q->head = (q->head - 1) & (q->cap - 1);
        q->v[q->head] = e;
        q->len++;
    } else {
        /* LIFO takes from the tail; a heap puts it at its place. */
        push_tail(q, e);
    }
}

static struct qent take(struct jg_queue *q)
{
    struct qent e;

    if (q->kind == JG_QUEUE_PRIORITY)
        return heap_pop(q);
    if (q->kind == JG_QUEUE_LIFO) {
        q->len--;
        return q->v[(q->head + q->len) & (q->cap - 1)];
    }
    e = q->v[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return e;
}

/* ---- waiters ------------------------------------------------------------- */

/* Earmark e for the live getter c and wake it (room is reserved). */
static void hand(struct jg_queue *q, struct jg__clause *c, struct qent e)
{
    c->val = e.item;
    c->aux = e.prio;
    q->earmarked++;
    jg__clause_take(c, 0);
}

/* A putter's item, numbered as it enters the buffer. */
static struct qent entry(struct jg_queue *q, void *item, int prio)
{
    struct qent e = { item, prio, q->seq++ };

    return e;
}

/*
 * A get made room: take waiting putters' items in, first come first served,
 * while there is room. A putter whose item was taken is woken with 0.
 */
static void admit_putters(struct jg_queue *q)
{
    struct jg__clause *c;

    while ((q->maxsize == 0 || q->len < q->maxsize) &&
           (c = jg__clause_first(&q->putters)) != NULL) {
        if (reserve(q, q->len + q->earmarked + 1) < 0)
            return;             /* it stays queued; a later get retries */
        push_tail(q, entry(q, c->val, c->aux));
        q->unfinished++;
        jg__clause_take(c, 0);
    }
}

/* An earmarked item whose getter was killed: next getter, or the head. */
static void give_back(struct jg_queue *q, struct qent e)
{
    struct jg__clause *c = jg__clause_first(&q->getters);

    if (c) {
        hand(q, c, e);
        return;
    }
    /* Cannot fail: hand() reserved room for every earmarked item. */
    JG_ASSERT(q->len < q->cap);
    push_head(q, e);
}

/* Park the caller on l with a clause carrying (val, aux); the clause is
 * returned in *out for the caller to read and put back. */
static int park_on(struct jg__list *l, void *val, int aux,
                   int64_t timeout_ns, struct jg__clause **out)
{
    struct jg_green *g = jg__park_prepare();
    struct jg__clause *c;

    *out = NULL;
    if (!g || !(c = jg__clause_get(g)))
        return -ENOMEM;
    c->val = val;
    c->aux = aux;
    *out = c;
    return jg__clause_wait(l, c, jg__deadline_after(timeout_ns), 0);
}

static int check(const struct jg_queue *q)
{
    if (!q)
        return -EINVAL;
    if (q->hub != jg__tls_hub)
        return -EXDEV;
    return 0;
}

/* ---- API ----------------------------------------------------------------- */

int jg_queue_create(struct jg_queue **out, size_t maxsize,
                    enum jg_queue_kind kind)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_queue *q;

    if (!out || kind < JG_QUEUE_FIFO || kind > JG_QUEUE_PRIORITY)
        return -EINVAL;
    if (!h)
        return -ENOMEM;
    q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->hub = h;
    q->kind = kind;
    q->maxsize = maxsize;
    jg__list_init(&q->getters);
    jg__list_init(&q->putters);
    jg__list_init(&q->joiners);
    /* A bounded queue gets its whole ring at once (plus one for an item
     * given back); puts then never allocate. */
    if (reserve(q, maxsize && maxsize < 4096 ? maxsize + 1 : 8) < 0) {
        free(q);
        return -ENOMEM;
    }
    *out = q;
    return 0;
}

int jg_queue_destroy(struct jg_queue *q)
{
    int rc = check(q);

    if (rc < 0)
        return rc;
    /* Clauses of waiters already woken (not yet run) are dropped here:
     * their owners find them unlinked. An earmarked item still waits for
     * its getter. */
    if (jg__clause_first(&q->getters) || jg__clause_first(&q->putters) ||
        jg__clause_first(&q->joiners) || q->earmarked)
        return -EBUSY;
    free(q->v);
    free(q);
    return 0;
}

int jg_queue_put_prio(struct jg_queue *q, void *item, int prio,
                      int64_t timeout_ns)
{
    struct jg__clause *c;
    int rc = check(q);

    if (rc < 0)
        return rc;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (q->closed)
        return -EPIPE;
    c = jg__clause_first(&q->getters);
    if (c) {
        /* Reserve the room the item needs should its getter be killed. */
        if (reserve(q, q->len + q->earmarked + 1) < 0)
            return -ENOMEM;
        hand(q, c, entry(q, item, prio));
        q->unfinished++;
        return 0;
    }
    if ((q->maxsize == 0 || q->len < q->maxsize) &&
        !jg__clause_first(&q->putters)) {
        if (reserve(q, q->len + q->earmarked + 1) < 0)
            return -ENOMEM;
        push_tail(q, entry(q, item, prio));
        q->unfinished++;
        return 0;
    }
    if (timeout_ns == 0)
        return -EAGAIN;
    rc = park_on(&q->putters, item, prio, timeout_ns, &c);
    if (!c)
        return rc;
    /* Taken in (0 even if killed since: the item is in the queue), closed
     * (-EPIPE), or the wait's own error. */
    jg__clause_put(c);
    return rc;
}

int jg_queue_put(struct jg_queue *q, void *item, int64_t timeout_ns)
{
    return jg_queue_put_prio(q, item, 0, timeout_ns);
}

int jg_queue_get_prio(struct jg_queue *q, void **item, int *prio,
                      int64_t timeout_ns)
{
    struct jg__clause *c;
    struct qent e;
    bool killed;
    int rc = check(q);

    if (rc < 0)
        return rc;
    if (!item || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (q->len > 0) {
        e = take(q);
        admit_putters(q);
        goto got;
    }
    if (q->closed)
        return -EPIPE;
    if (timeout_ns == 0)
        return -EAGAIN;
    rc = park_on(&q->getters, NULL, 0, timeout_ns, &c);
    if (!c)
        return rc;
    if (c->handed && rc == 0) {
        /* Woken with an item. Killed since? Then it is not ours to keep:
         * it goes to the next getter or back to the head. */
        q->earmarked--;
        e.item = c->val;
        e.prio = c->aux;
        e.seq = 0;
        killed = jg__killed(c->g);
        jg__clause_put(c);
        if (killed) {
            give_back(q, e);
            return -ECANCELED;
        }
        goto got;
    }
    jg__clause_put(c);
    return rc;
got:
    *item = e.item;
    if (prio)
        *prio = e.prio;
    return 0;
}

int jg_queue_get(struct jg_queue *q, void **item, int64_t timeout_ns)
{
    return jg_queue_get_prio(q, item, NULL, timeout_ns);
}

int jg_queue_task_done(struct jg_queue *q)
{
    int rc = check(q);

    if (rc < 0)
        return rc;
    if (q->unfinished == 0)
        return -EINVAL;
    if (--q->unfinished == 0)
        jg__clause_wake_all(&q->joiners, 0);
    return 0;
}

int jg_queue_join(struct jg_queue *q, int64_t timeout_ns)
{
    struct jg__clause *c;
    int rc = check(q);

    if (rc < 0)
        return rc;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (q->unfinished == 0)
        return 0;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    rc = park_on(&q->joiners, NULL, 0, timeout_ns, &c);
    if (!c)
        return rc;
    jg__clause_put(c);
    /* Woken with 0 only once everything was done; later puts may have
     * made more work since, but this join's condition was met. */
    return rc;
}

int jg_queue_close(struct jg_queue *q)
{
    int rc = check(q);

    if (rc < 0)
        return rc;
    if (q->closed)
        return 0;
    q->closed = true;
    jg__clause_wake_all(&q->putters, -EPIPE);
    /* Getters wait only on an empty buffer: nothing left for them. */
    jg__clause_wake_all(&q->getters, -EPIPE);
    return 0;
}

ssize_t jg_queue_size(const struct jg_queue *q)
{
    int rc = check(q);

    return rc < 0 ? rc : (ssize_t)q->len;
}
