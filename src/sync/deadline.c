/* SPDX-License-Identifier: MIT */
/*
 * deadline.c - scoped deadlines (gevent Timeout, asyncio timeout()). Each
 * green thread's active scopes form a chain, innermost first, whose head
 * is in its green-local block; g->deadline, which jg__park applies to
 * every wait, is kept equal to the earliest deadline on the chain. Only
 * the owner touches its scopes, and only while it runs: a scope may live
 * on its (possibly sliced) stack.
 */
#include "waitq.h"

enum { S_IDLE, S_ACTIVE, S_POPPED };

/* The calling green thread, if it may own scopes; NULL with *rc set. */
static struct jg_green *scope_owner(int *rc)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *g;

    if (!h) {
        *rc = -ENOMEM;
        return NULL;
    }
    g = h->current;
    /* Callbacks run on the hub's context, which never parks. */
    if (!jg__may_park(h, g) || g->state == JG_GREEN_DONE) {
        *rc = -EPERM;
        return NULL;
    }
    return g;
}

/* Is d on g's chain of active scopes? (Never dereferences d itself.) */
static bool on_chain(const struct jg_green *g, const struct jg_deadline *d)
{
    const struct jg__locals *b = locals_of(g);

    for (const struct jg_deadline *s = b ? b->scopes : NULL; s;
         s = s->outer) {
        if (s == d)
            return true;
    }
    return false;
}

/* g->deadline from the chain: the earliest active scope. */
static void recompute(struct jg_green *g)
{
    const struct jg__locals *b = locals_of(g);
    int64_t eff = INT64_MAX;

    for (const struct jg_deadline *s = b ? b->scopes : NULL; s;
         s = s->outer) {
        if (s->deadline < eff)
            eff = s->deadline;
    }
    g->deadline = eff;
}

int jg_deadline_push(struct jg_deadline *d, int64_t timeout_ns)
{
    struct jg_green *g;
    struct jg__locals *b;
    int rc = 0;

    if (!d || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (!(g = scope_owner(&rc)))
        return rc;
    if (on_chain(g, d))
        return -EBUSY;
    b = jg__locals_get(g);
    if (!b)
        return -ENOMEM;
    d->deadline = jg__deadline_after(timeout_ns);
    d->owner = g;
    d->state = S_ACTIVE;
    d->expired = false;
    d->outer = b->scopes;
    b->scopes = d;
    /* Nested scopes take the earliest: an inner one cannot extend. */
    if (d->deadline < g->deadline)
        g->deadline = d->deadline;
    return 0;
}

int jg_deadline_pop(struct jg_deadline *d)
{
    struct jg_green *g;
    struct jg__locals *b;
    int rc = 0;

    if (!d)
        return -EINVAL;
    if (!(g = scope_owner(&rc)))
        return rc;
    b = locals_of(g);
    /* Strictly LIFO: only the innermost scope may close. */
    if (!b || b->scopes != d)
        return -EINVAL;
    b->scopes = d->outer;
    d->outer = NULL;
    d->state = S_POPPED;
    d->expired = d->deadline != INT64_MAX && jg_now() >= d->deadline;
    recompute(g);
    return 0;
}

bool jg_deadline_expired(const struct jg_deadline *d)
{
    if (!d)
        return false;
    if (d->state == S_POPPED)
        return d->expired;
    if (d->state != S_ACTIVE || d->deadline == INT64_MAX)
        return false;
    /* The park timer fires no earlier than the deadline, so a wait that
     * this scope ended always finds it expired here. */
    return jg_now() >= d->deadline;
}

int jg_deadline_move(struct jg_deadline *d, int64_t timeout_ns)
{
    struct jg_green *g;
    int rc = 0;

    if (!d || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (!(g = scope_owner(&rc)))
        return rc;
    if (!on_chain(g, d))
        return -EINVAL;
    d->deadline = jg__deadline_after(timeout_ns);
    /* Later or earlier: any scope may now be the earliest. */
    recompute(g);
    return 0;
}

int jg_deadline_cancel(struct jg_deadline *d)
{
    return jg_deadline_move(d, JG_FOREVER);
}

int64_t jg_deadline_current(void)
{
    struct jg_hub *h = jg__tls_hub;

    return h && h->current ? h->current->deadline : INT64_MAX;
}
