/* SPDX-License-Identifier: MIT */
/*
 * event.c - the event (a flag green threads wait for) and the one-shot
 * result cell. Invariant: a woken waiter was handed its
 * outcome by the waker; it reads the object again only after it resumes,
 * and the object cannot be destroyed before it has (nwait).
 */
#include "waitq.h"

#define EVENT_MAGIC  0x4a674576u    /* "JgEv" */
#define RESULT_MAGIC 0x4a675273u    /* "JgRs" */

/* ---- event ------------------------------------------------------------- */

static inline int event_check(const struct jg_event *e)
{
    if (unlikely(!e || e->magic != EVENT_MAGIC))
        return obj_bad(e, "jg_event");
    obj_debug_check(e, "jg_event");
    return hub_check(e->hub);
}

int jg_event_init(struct jg_event *e)
{
    struct jg_hub *h;

    if (!e)
        return -EINVAL;
    h = jg__hub_get();
    if (!h)
        return -ENOMEM;
    e->magic = EVENT_MAGIC;
    e->nwait = 0;
    e->set = false;
    e->hub = h;
    wq_init(&e->q);
    return 0;
}

int jg_event_destroy(struct jg_event *e)
{
    int rc = event_check(e);

    if (rc < 0)
        return rc;
    if (e->nwait)
        return -EBUSY;
    e->magic = 0;
    return 0;
}

int jg_event_set(struct jg_event *e)
{
    int rc = event_check(e);

    if (rc < 0)
        return rc;
    e->set = true;
    wq_wake_all(&e->q);
    return 0;
}

int jg_event_clear(struct jg_event *e)
{
    int rc = event_check(e);

    if (rc < 0)
        return rc;
    e->set = false;
    return 0;
}

int jg_event_is_set(const struct jg_event *e)
{
    int rc = event_check(e);

    return rc < 0 ? rc : e->set;
}

int jg_event_wait(struct jg_event *e, int64_t timeout_ns)
{
    struct jg_green *g;
    int rc = event_check(e);

    if (rc < 0)
        return rc;
    g = e->hub->current;
    rc = wait_check(timeout_ns, g);
    if (rc < 0)
        return rc;
    if (e->set)
        return 0;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    e->nwait++;
    rc = wq_park(&e->q, g, jg__deadline_after(timeout_ns));
    e->nwait--;
    /* Handed (0): a set happened while we waited, even if cleared since. */
    return rc;
}

/* ---- result cell ------------------------------------------------------- */

enum { R_EMPTY, R_VALUE, R_ERROR };

static inline int result_check(const struct jg_result *r)
{
    if (unlikely(!r || r->magic != RESULT_MAGIC))
        return obj_bad(r, "jg_result");
    obj_debug_check(r, "jg_result");
    return hub_check(r->hub);
}

int jg_result_init(struct jg_result *r)
{
    struct jg_hub *h;

    if (!r)
        return -EINVAL;
    h = jg__hub_get();
    if (!h)
        return -ENOMEM;
    r->magic = RESULT_MAGIC;
    r->nwait = 0;
    r->state = R_EMPTY;
    r->error = 0;
    r->value = NULL;
    r->hub = h;
    wq_init(&r->q);
    return 0;
}

int jg_result_destroy(struct jg_result *r)
{
    int rc = result_check(r);

    if (rc < 0)
        return rc;
    if (r->nwait)
        return -EBUSY;
    r->magic = 0;
    return 0;
}

static int result_store(struct jg_result *r, int state, void *value,
                        int error)
{
    if (r->state != R_EMPTY)
        return -EALREADY;
    r->state = state;
    r->value = value;
    r->error = error;
    wq_wake_all(&r->q);
    return 0;
}

int jg_result_set(struct jg_result *r, void *value)
{
    int rc = result_check(r);

    return rc < 0 ? rc : result_store(r, R_VALUE, value, 0);
}

int jg_result_set_error(struct jg_result *r, int code)
{
    int rc = result_check(r);

    if (rc < 0)
        return rc;
    if (code >= 0 || code < -4095)
        return -EINVAL;
    return result_store(r, R_ERROR, NULL, code);
}

int jg_result_ready(const struct jg_result *r)
{
    int rc = result_check(r);

    return rc < 0 ? rc : r->state != R_EMPTY;
}

/* The outcome of a set cell, for the caller that now runs. */
static int result_take(const struct jg_result *r, void **value)
{
    if (r->state == R_ERROR)
        return r->error;
    if (value)
        *value = r->value;
    return 0;
}

int jg_result_get(struct jg_result *r, void **value, int64_t timeout_ns)
{
    struct jg_green *g;
    int rc = result_check(r);

    if (rc < 0)
        return rc;
    g = r->hub->current;
    rc = wait_check(timeout_ns, g);
    if (rc < 0)
        return rc;
    if (r->state != R_EMPTY)
        return result_take(r, value);
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    r->nwait++;
    rc = wq_park(&r->q, g, jg__deadline_after(timeout_ns));
    r->nwait--;
    /* The out-param is written only now that we run again: it may be on
     * our own (possibly sliced) stack. */
    return rc == 0 ? result_take(r, value) : rc;
}
