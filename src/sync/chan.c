/* SPDX-License-Identifier: MIT */
/*
 * chan.c - Go-style channels (unbuffered and buffered) and select. A blocked
 * send, recv or select leaves one clause per case (green/clause.h) on its
 * channel's send or receive list: val is the value sent or handed, aux the
 * case. The first counterpart claims the select; its other clauses are
 * dead from then on, passed by and dropped (jg__clause_first), so nobody
 * ever acts on a stale case. A value handed to a receiver that has not
 * resumed is counted in c->earmarked, with buffer room reserved so it can
 * go back to the head if that receiver was killed meanwhile.
 */
#include <string.h>

#include "clause.h"

struct jg_chan {
    struct jg_hub *hub;
    bool closed;
    size_t capacity;            /* 0: unbuffered */
    void **v;                   /* ring, power-of-two cap */
    size_t cap, head, len;
    size_t earmarked;           /* handed to receivers not yet resumed */
    struct jg__list sendq, recvq;
};

/* ---- buffer ------------------------------------------------------------- */

static int reserve(struct jg_chan *c, size_t need)
{
    size_t cap = c->cap ? c->cap : 4;
    void **v;

    if (need <= c->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    v = malloc(cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < c->len; i++)
        v[i] = c->v[(c->head + i) & (c->cap - 1)];
    free(c->v);
    c->v = v;
    c->cap = cap;
    c->head = 0;
    return 0;
}

static void *take(struct jg_chan *c)
{
    void *v = c->v[c->head];

    c->head = (c->head + 1) & (c->cap - 1);
    c->len--;
    return v;
}

/* ---- waiters ------------------------------------------------------------ */

/* Hand v to the waiting receiver r (room for v is reserved). */
static void hand(struct jg_chan *c, struct jg__clause *r, void *v)
{
    r->val = v;
    c->earmarked++;
    jg__clause_take(r, 0);
}

/* A value whose receiver was killed: next receiver, else the head. */
static void give_back(struct jg_chan *c, void *v)
{
    struct jg__clause *r = jg__clause_first(&c->recvq);

    if (r) {
        hand(c, r, v);
        return;
    }
    JG_ASSERT(c->len < c->cap);
    c->head = (c->head - 1) & (c->cap - 1);
    c->v[c->head] = v;
    c->len++;
}

/* ---- one case, from a running green thread ---------------------------- */

static bool recv_ready(struct jg_chan *c)
{
    return c->len > 0 || c->closed || jg__clause_first(&c->sendq) != NULL;
}

static bool send_ready(struct jg_chan *c)
{
    return c->closed || c->len < c->capacity ||
           jg__clause_first(&c->recvq) != NULL;
}

/* Receive from a ready channel: *res is 0 or -EPIPE. */
static void do_recv(struct jg_chan *c, void **v, int *res)
{
    struct jg__clause *s;

    *res = 0;
    if (c->len > 0) {
        *v = take(c);
        /* Room now: the first waiting sender's value moves in. */
        if (c->len < c->capacity && (s = jg__clause_first(&c->sendq)) != NULL) {
            c->v[(c->head + c->len) & (c->cap - 1)] = s->val;
            c->len++;
            jg__clause_take(s, 0);
        }
    } else if ((s = jg__clause_first(&c->sendq)) != NULL) {
        *v = s->val;
        jg__clause_take(s, 0);
    } else {
        *res = -EPIPE;
    }
}

/* Send on a ready channel: *res is 0 or -EPIPE; -ENOMEM if no room for
 * the earmark reservation. */
static int do_send(struct jg_chan *c, void *v, int *res)
{
    struct jg__clause *r;

    *res = 0;
    if (c->closed) {
        *res = -EPIPE;
        return 0;
    }
    if (reserve(c, c->len + c->earmarked + 1) < 0)
        return -ENOMEM;
    if ((r = jg__clause_first(&c->recvq)) != NULL) {
        hand(c, r, v);
    } else {
        c->v[(c->head + c->len) & (c->cap - 1)] = v;
        c->len++;
    }
    return 0;
}

static bool case_ready(const struct jg_select_case *k)
{
    if (!k->chan)
        return false;
    return k->op == JG_SELECT_RECV ? recv_ready(k->chan)
                                   : send_ready(k->chan);
}

/* A fast per-thread generator (xorshift64*) for select's fair choice. */
static _Thread_local uint64_t rng_state;

static uint32_t rnd_below(uint32_t bound)
{
    uint64_t x = rng_state;

    if (unlikely(x == 0))
        x = (uint64_t)jg_now() ^ (uint64_t)(uintptr_t)&rng_state ^
            0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    /* Lemire's multiply-shift: uniform enough for 32-bit bounds, no
     * division. */
    return (uint32_t)(((x * 0x2545f4914f6cdd1dull) >> 32) * bound >> 32);
}

/* ---- select -------------------------------------------------------------- */

static int perform(struct jg_select_case *k)
{
    void *v = NULL;
    int res, rc;

    if (k->op == JG_SELECT_RECV) {
        do_recv(k->chan, &v, &res);
        if (res == 0)
            k->value = v;
    } else {
        rc = do_send(k->chan, k->value, &res);
        if (rc < 0)
            return rc;
    }
    k->result = res;
    return 0;
}

/* The clauses of a select of n cases: one from the cache (a plain send
 * or receive), else an array. At least one, for the park. */
static struct jg__clause *clauses_get(struct jg_green *g, size_t n)
{
    struct jg__clause *cs;

    if (n <= 1)
        return jg__clause_get(g);
    cs = malloc(n * sizeof *cs);
    for (size_t i = 0; cs && i < n; i++)
        jg__clause_init(&cs[i], g);
    return cs;
}

static void clauses_put(struct jg__clause *cs, size_t n)
{
    if (n <= 1)
        jg__clause_put(cs);
    else
        free(cs);
}

/*
 * Park on every case until one fires, the deadline passes, or a kill.
 * Returns the fired case's index (its result in cases[i].result), or the
 * park's error.
 */
static int select_wait(struct jg_green *g, struct jg_select_case *cases,
                       size_t n, int64_t deadline)
{
    struct jg__clause *cs = clauses_get(g, n);
    int rc, fired = -1;

    if (!cs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct jg_chan *c = cases[i].chan;

        cs[i].val = cases[i].value;
        cs[i].aux = (int)i;
        if (c)
            jg__list_push_back(cases[i].op == JG_SELECT_RECV ? &c->recvq
                                                             : &c->sendq,
                               &cs[i].link);
    }
    rc = jg__clause_wait_n(cs, n, deadline);
    for (size_t i = 0; i < n && fired < 0; i++)
        if (cs[i].handed)
            fired = (int)i;
    if (fired >= 0) {
        struct jg_select_case *k = &cases[fired];

        if (k->op == JG_SELECT_RECV && rc == 0) {
            k->chan->earmarked--;
            /* Killed after the value was handed over: it is not ours to
             * keep; the next receiver (or the head) gets it. */
            if (jg__killed(g)) {
                give_back(k->chan, cs[fired].val);
                clauses_put(cs, n);
                return -ECANCELED;
            }
            k->value = cs[fired].val;
        }
        /* A send that fired was taken: done, even if killed since. */
        k->result = rc;
        rc = fired;
    }
    JG_ASSERT(rc >= 0 || fired < 0);
    clauses_put(cs, n);
    return rc;
}

int jg_select(struct jg_select_case *cases, size_t n, int64_t timeout_ns)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *g;
    size_t ready = 0;
    int rc;

    if (!h)
        return -ENOMEM;
    if ((n > 0 && !cases) || n > INT32_MAX || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (cases[i].op != JG_SELECT_RECV && cases[i].op != JG_SELECT_SEND)
            return -EINVAL;
        if (cases[i].chan && cases[i].chan->hub != h)
            return -EXDEV;
    }
    for (size_t i = 0; i < n; i++)
        ready += case_ready(&cases[i]);
    if (ready > 0) {
        /* Go's rule: a uniformly random ready case, so none starves. */
        size_t pick = ready == 1 ? 0 : rnd_below((uint32_t)ready);
        for (size_t i = 0; i < n; i++) {
            if (!case_ready(&cases[i]) || pick-- > 0)
                continue;
            rc = perform(&cases[i]);
            return rc < 0 ? rc : (int)i;
        }
        JG_PANIC("select: a ready case vanished");
    }
    if (timeout_ns == 0)
        return -EAGAIN;
    g = jg__park_prepare();
    if (!g)
        return -ENOMEM;
    rc = select_wait(g, cases, n, jg__deadline_after(timeout_ns));
    return rc;
}

/* ---- channel API --------------------------------------------------------- */

static int check(const struct jg_chan *c)
{
    if (!c)
        return -EINVAL;
    if (c->hub != jg__tls_hub)
        return -EXDEV;
    return 0;
}

int jg_chan_create(struct jg_chan **out, size_t capacity)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_chan *c;

    if (!out)
        return -EINVAL;
    if (!h)
        return -ENOMEM;
    c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->hub = h;
    c->capacity = capacity;
    jg__list_init(&c->sendq);
    jg__list_init(&c->recvq);
    /* The whole buffer at once for modest capacities (+1 for a value given
     * back), so sends do not allocate. */
    if (reserve(c, capacity < 4096 ? capacity + 1 : 4) < 0) {
        free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

int jg_chan_destroy(struct jg_chan *c)
{
    int rc = check(c);

    if (rc < 0)
        return rc;
    /* Clauses of waiters already woken (not yet run) are dropped here:
     * their owners find them unlinked. */
    if (jg__clause_first(&c->sendq) || jg__clause_first(&c->recvq) ||
        c->earmarked)
        return -EBUSY;
    free(c->v);
    free(c);
    return 0;
}

int jg_chan_send(struct jg_chan *c, void *v, int64_t timeout_ns)
{
    struct jg_select_case k = { c, JG_SELECT_SEND, v, 0 };
    int rc = check(c);

    if (rc < 0)
        return rc;
    rc = jg_select(&k, 1, timeout_ns);
    return rc < 0 ? rc : k.result;
}

int jg_chan_recv(struct jg_chan *c, void **v, int64_t timeout_ns)
{
    struct jg_select_case k = { c, JG_SELECT_RECV, NULL, 0 };
    int rc = check(c);

    if (rc < 0)
        return rc;
    if (!v)
        return -EINVAL;
    rc = jg_select(&k, 1, timeout_ns);
    if (rc < 0)
        return rc;
    if (k.result == 0)
        *v = k.value;
    return k.result;
}

int jg_chan_close(struct jg_chan *c)
{
    int rc = check(c);

    if (rc < 0)
        return rc;
    if (c->closed)
        return 0;
    c->closed = true;
    /* Receivers wait only on an empty buffer: they are done. */
    jg__clause_wake_all(&c->recvq, -EPIPE);
    jg__clause_wake_all(&c->sendq, -EPIPE);
    return 0;
}

ssize_t jg_chan_len(const struct jg_chan *c)
{
    int rc = check(c);

    return rc < 0 ? rc : (ssize_t)c->len;
}
