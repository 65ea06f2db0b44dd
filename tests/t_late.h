/* SPDX-License-Identifier: MIT */
/*
 * t_late.h - "it returned at its timeout, not later", asserted by ordering
 * instead of wall time. A sentinel green thread, started once the wait
 * under test has armed its timer, sleeps longer than that timeout. A hub
 * fires due timers in expiry order and runs the green threads they wake in
 * that order, so on a loaded machine both may fire late, but the wait under
 * test always returns first; one that ignored its timeout, or slept on to a
 * later timer, is caught. Needs juggle.h and t.h.
 */
#ifndef JG_T_LATE_H
#define JG_T_LATE_H

static struct {
    int64_t ns;
    const volatile int *rc;     /* the waiter's result, or NULL */
    int pending;                /* *rc while the waiter has not returned */
    int fired;                  /* the sentinel woke before the waiter */
    intptr_t gen;               /* which sentinel is the current one */
} t_late;

static void *t_late_fn(void *arg)
{
    /* A stopped sentinel may still run once, after a newer one started:
     * only the current one reports. */
    if (jg_sleep(t_late.ns) == 0 && (intptr_t)arg == t_late.gen)
        t_late.fired = !t_late.rc || *t_late.rc == t_late.pending;
    return NULL;
}

/*
 * Start the sentinel, sleeping ns. For a wait in the calling green thread
 * (rc NULL), start it right before the wait: it runs, and arms its timer,
 * only after the wait has armed its own. For a waiter in another green
 * thread, whose *rc stays `pending` until its wait returns, start it after
 * spawning that waiter: the yield here runs the waiter first.
 */
static inline struct jg_green *t_late_start(int64_t ns, const int *rc,
                                            int pending)
{
    struct jg_green *g;

    t_late.ns = ns;
    t_late.rc = rc;
    t_late.pending = pending;
    t_late.fired = 0;
    T_OK(jg_spawn(&g, t_late_fn, (void *)++t_late.gen, NULL));
    if (rc)
        T_OK(jg_yield());
    return g;
}

/* The sentinel did not wake before the wait returned; then stop it. It
 * ends by itself (no join: inside an expired deadline scope a join fails
 * at once). */
#define t_late_check(g) do { \
        struct jg_green *tl_ = (g); \
        T_EQ(t_late.fired, 0); \
        T_OK(jg_kill(tl_)); \
        T_OK(jg_detach(tl_)); \
    } while (0)

#endif
