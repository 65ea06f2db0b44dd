/* SPDX-License-Identifier: MIT */
/*
 * timer.c - one-shot and fixed-rate timers on a binary min-heap ordered by
 * (expiry, start sequence), so equal expiries fire in start order. Arming
 * reads the clock afresh; expiry is judged against the loop's cached time,
 * read once per poll.
 */
#include "loop.h"

static bool before(const struct jg_timer *a, const struct jg_timer *b)
{
    return a->when_ns < b->when_ns
           || (a->when_ns == b->when_ns && a->seq < b->seq);
}

static void place(struct jg_loop *l, uint32_t i, struct jg_timer *t)
{
    l->heap[i] = t;
    t->index = i;
}

static void sift_up(struct jg_loop *l, uint32_t i)
{
    struct jg_timer *t = l->heap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(t, l->heap[parent]))
            break;
        place(l, i, l->heap[parent]);
        i = parent;
    }
    place(l, i, t);
}

static void sift_down(struct jg_loop *l, uint32_t i)
{
    struct jg_timer *t = l->heap[i];

    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= l->heap_len)
            break;
        if (c + 1 < l->heap_len && before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!before(l->heap[c], t))
            break;
        place(l, i, l->heap[c]);
        i = c;
    }
    place(l, i, t);
}

/* Restore the heap after heap[i]'s key changed in either direction. */
static void resift(struct jg_loop *l, uint32_t i)
{
    if (i > 0 && before(l->heap[i], l->heap[(i - 1) / 2]))
        sift_up(l, i);
    else
        sift_down(l, i);
}

static void heap_remove(struct jg_loop *l, struct jg_timer *t)
{
    uint32_t i = t->index;
    struct jg_timer *last = l->heap[--l->heap_len];

    t->index = UINT32_MAX;
    if (i == l->heap_len)
        return;
    place(l, i, last);
    resift(l, i);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;

    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

void jg_timer_init(struct jg_timer *w, jg_timer_cb cb)
{
    if (!w)
        return;
    /* data is the user's: left as it is. */
    w->base.loop = NULL;
    w->base.next = w->base.prev = NULL;
    w->base.flags = 0;
    w->base.kind = JG__K_TIMER;
    w->cb = cb;
    w->when_ns = 0;
    w->repeat_ns = 0;
    w->seq = 0;
    w->index = UINT32_MAX;
}

int jg_timer_start(struct jg_loop *l, struct jg_timer *w, int64_t timeout_ns,
                   int64_t repeat_ns)
{
    int rc;

    if (!l || !w || w->base.kind != JG__K_TIMER || !w->cb || timeout_ns < 0
        || repeat_ns < 0)
        return -EINVAL;
    rc = jg__loop_check(l);
    if (rc < 0)
        return rc;
    jg__watcher_sync(&w->base);
    if ((w->base.flags & JG__W_ACTIVE) && w->base.loop != l)
        return -EINVAL;
    /* A restart cancels a firing that is queued but has not run yet. */
    if (w->base.loop)
        jg__pending_drop(w->base.loop, &w->base);

    /* A fresh reading, not l->now: the cached time may be a whole
     * callback batch old, and the timer would fire early by that much. */
    w->when_ns = add_sat(jg_now(), timeout_ns);
    w->repeat_ns = repeat_ns;
    w->seq = ++l->timer_seq;
    if (w->base.flags & JG__W_ACTIVE) {
        resift(l, w->index);
        return 0;
    }
    if (l->heap_len == l->heap_cap) {
        uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 16;
        struct jg_timer **h = realloc(l->heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        l->heap = h;
        l->heap_cap = cap;
    }
    rc = jg__watcher_activate(l, &w->base);
    if (rc < 0)
        return rc;
    place(l, l->heap_len++, w);
    sift_up(l, w->index);
    return 0;
}

int jg_timer_stop(struct jg_timer *w)
{
    struct jg_loop *l;
    int rc;

    if (!w || w->base.kind != JG__K_TIMER)
        return -EINVAL;
    rc = jg__watcher_stop_begin(&w->base, &l);
    if (rc <= 0)
        return rc;
    heap_remove(l, w);
    jg__watcher_deactivate(l, &w->base);
    return 0;
}

int64_t jg_timer_remaining(const struct jg_timer *w)
{
    int64_t left;

    if (!w || w->base.kind != JG__K_TIMER || !jg_watcher_active(&w->base))
        return -EINVAL;
    left = w->when_ns - jg_now();
    return left > 0 ? left : 0;
}

int64_t jg__timers_next(const struct jg_loop *l)
{
    return l->heap_len ? l->heap[0]->when_ns : INT64_MAX;
}

void jg__timers_expire(struct jg_loop *l)
{
    const int64_t now = l->now;

    while (l->heap_len && l->heap[0]->when_ns <= now) {
        struct jg_timer *t = l->heap[0];
        if (t->repeat_ns > 0) {
            /* Fixed rate: the next expiry keeps the original phase
             * (start + timeout + k * repeat). Periods the loop missed are
             * skipped, not fired in a burst. Re-armed before the callback,
             * so the callback may stop or restart it. */
            int64_t next = add_sat(t->when_ns, t->repeat_ns);
            if (next <= now) {
                int64_t k = (now - next) / t->repeat_ns + 1;
                next = k > (INT64_MAX - next) / t->repeat_ns
                           ? INT64_MAX
                           : next + k * t->repeat_ns;
            }
            t->when_ns = next;
            t->seq = ++l->timer_seq;
            sift_down(l, 0);
        } else {
            heap_remove(l, t);
            jg__watcher_deactivate(l, &t->base);
        }
        jg__pending_add(l, &t->base, 0);
    }
}
