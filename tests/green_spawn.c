/* SPDX-License-Identifier: MIT */
/*
 * green_spawn.c - green threads scheduled by the hub: spawn and join with
 * results, bob/alice, kill (blocked, before first run, sticky), timeouts,
 * yield order, deadlock detection, -EPERM from callbacks, errno across parks,
 * detached threads and counts.
 */
#include <juggle.h>
#include <unistd.h>
#include "t.h"

static void *ret_arg(void *arg)
{
    return arg;
}

/* ---- spawn and join -------------------------------------------------------- */

static int ran_flag;

static void *set_flag(void *arg)
{
    ran_flag = 1;
    return arg;
}

static void test_spawn_join_results(void)
{
    struct jg_green *g;
    void *res;
    int obj;

    T_OK(jg_spawn(&g, ret_arg, &obj, NULL));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, &obj);

    T_OK(jg_spawn(&g, ret_arg, NULL, NULL));
    res = &obj;
    T_EQ(jg_join(g, &res, JG_FOREVER), 0);
    T_PEQ(res, NULL);

    /* A JG_ERR result is the join's return code, and the stored result. */
    T_OK(jg_spawn(&g, ret_arg, JG_ERR(-ENOENT), NULL));
    T_ERR(jg_join(g, &res, JG_FOREVER), -ENOENT);
    T_PEQ(res, JG_ERR(-ENOENT));
    T_EQ(JG_ERR_CODE(res), -ENOENT);

    T_OK(jg_spawn(&g, ret_arg, JG_ERR(-4095), NULL));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -4095);

    /* A large pointer that is not an error is a plain result. */
    T_OK(jg_spawn(&g, ret_arg, (void *)(uintptr_t)-4096, NULL));
    T_EQ(jg_join(g, &res, JG_FOREVER), 0);
    T_PEQ(res, (void *)(uintptr_t)-4096);
}

/* jg_spawn does not switch; jg_join from main runs the hub. */
static void test_join_runs_hub(void)
{
    struct jg_green *g;

    ran_flag = 0;
    T_OK(jg_spawn(&g, set_flag, NULL, NULL));
    T_EQ(ran_flag, 0);
    T_EQ(jg_state(g), JG_GREEN_READY);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(ran_flag, 1);
}

/* ---- bob and alice --------------------------------------------------------- */

static const char *said[4];
static int nsaid;

struct greeting {
    const char *who;
    int64_t ns;
};

static void *greet(void *arg)
{
    const struct greeting *gr = arg;
    int rc = jg_sleep(gr->ns);
    if (rc < 0)
        return JG_ERR(rc);
    printf("hello %s\n", gr->who);
    said[nsaid++] = gr->who;
    return NULL;
}

static void test_bobalice(void)
{
    static const struct greeting bob = { "bob", JG_MS(300) };
    static const struct greeting alice = { "alice", JG_MS(100) };
    struct jg_green *b, *a;

    nsaid = 0;
    int64_t t0 = t_now_ns();
    T_OK(jg_spawn(&b, greet, (void *)&bob, NULL));
    T_OK(jg_spawn(&a, greet, (void *)&alice, NULL));
    T_OK(jg_join(b, NULL, JG_FOREVER));
    T_OK(jg_join(a, NULL, JG_FOREVER));
    int64_t el = t_now_ns() - t0;
    T_EQ(nsaid, 2);
    T_STREQ(said[0], "alice");
    T_STREQ(said[1], "bob");
    /* The sleeps overlapped: bob (300 ms) was spawned first, and alice
     * (100 ms) still spoke first, so bob's sleep did not hold the hub. */
    T_ASSERT(el >= JG_MS(300));
}

/* ---- kill ------------------------------------------------------------------ */

struct blocked {
    int rc;
    int after;                  /* reached the code after the wait */
    struct jg_green *other;
};

static void *sleep_long(void *arg)
{
    struct blocked *b = arg;
    b->rc = jg_sleep(JG_SEC(10));
    b->after = 1;
    return b->rc < 0 ? JG_ERR(b->rc) : NULL;
}

static void test_kill_sleeping(void)
{
    struct jg_green *g;
    struct blocked b = { .rc = 1 };

    T_OK(jg_spawn(&g, sleep_long, &b, NULL));
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    T_OK(jg_kill(g));
    void *res = NULL;
    T_ERR(jg_join(g, &res, JG_FOREVER), -ECANCELED);
    T_EQ(b.rc, -ECANCELED);
    T_PEQ(res, JG_ERR(-ECANCELED));
    /* The kill woke it: a sleep of its 10 s out would have returned 0. */
}

static void *join_other(void *arg)
{
    struct blocked *b = arg;
    b->rc = jg_join(b->other, NULL, JG_FOREVER);
    b->after = 1;
    return b->rc < 0 ? JG_ERR(b->rc) : NULL;
}

static void test_kill_joining(void)
{
    struct jg_green *target, *joiner;
    struct blocked bt = { .rc = 1 }, bj = { .rc = 1 };

    T_OK(jg_spawn(&target, sleep_long, &bt, NULL));
    bj.other = target;
    T_OK(jg_spawn(&joiner, join_other, &bj, NULL));
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_state(joiner), JG_GREEN_PARKED);
    T_OK(jg_kill(joiner));
    T_ERR(jg_join(joiner, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(bj.rc, -ECANCELED);
    /* The target was not released by the cancelled join: it is still
     * parked, and now main can join it (no -EBUSY left behind). */
    T_EQ(bt.after, 0);
    T_EQ(jg_state(target), JG_GREEN_PARKED);
    T_OK(jg_kill(target));
    T_ERR(jg_join(target, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(bt.rc, -ECANCELED);
}

static void *read_pipe(void *arg)
{
    struct blocked *b = arg;
    char c;
    b->rc = (int)jg_read(b->rc, &c, 1, JG_FOREVER);
    b->after = 1;
    return NULL;
}

static void test_kill_reading(void)
{
    struct jg_green *g;
    int p[2];
    struct blocked b;

    T_OK(pipe(p));
    b.rc = p[0];
    b.after = 0;
    T_OK(jg_spawn(&g, read_pipe, &b, NULL));
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    T_OK(jg_kill(g));
    /* It returned NULL, but it was killed: the join says so. */
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(b.after, 1);
    T_EQ(b.rc, -ECANCELED);
    close(p[0]);
    close(p[1]);
}

/*
 * A reader finishes, the fd is closed with plain close(2) and its number is
 * reused by a new pipe right away (no hub poll in between): a read on the
 * new fd must see its data, not a registration the kernel dropped.
 */
static void *read_one(void *arg)
{
    char c = 0;
    ssize_t n = jg_read((int)(intptr_t)arg, &c, 1, JG_SEC(2));
    return n < 0 ? JG_ERR((int)n) : (void *)(uintptr_t)(unsigned char)c;
}

static void test_fd_number_reused(void)
{
    for (int round = 0; round < 3; round++) {
        struct jg_green *g;
        void *res;
        int p[2];

        T_OK(pipe(p));
        T_OK(jg_spawn(&g, read_one, (void *)(intptr_t)p[0], NULL));
        T_OK(jg_sleep(JG_MS(2)));       /* parked: the fd is registered */
        T_EQ(write(p[1], &"abc"[round], 1), 1);
        T_OK(jg_join(g, &res, JG_FOREVER));
        T_PEQ(res, (void *)(uintptr_t)(unsigned char)"abc"[round]);
        close(p[0]);
        close(p[1]);
    }
}

static void test_kill_before_run(void)
{
    struct jg_green *g;
    size_t base = jg_count();
    void *res = (void *)1;

    ran_flag = 0;
    T_OK(jg_spawn(&g, set_flag, (void *)2, NULL));
    T_OK(jg_kill(g));
    T_OK(jg_kill(g));           /* idempotent */
    T_ERR(jg_join(g, &res, JG_FOREVER), -ECANCELED);
    T_EQ(ran_flag, 0);
    T_EQ(jg_count(), base);

    /* Killed, then main yields and sleeps: it still never runs. */
    T_OK(jg_spawn(&g, set_flag, NULL, NULL));
    T_OK(jg_kill(g));
    T_OK(jg_yield());
    T_OK(jg_sleep(JG_MS(1)));
    T_EQ(ran_flag, 0);
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(ran_flag, 0);
}

/* Killing a finished green thread is a no-op: the join gives its result. */
static void test_kill_finished(void)
{
    struct jg_green *g;
    void *res = NULL;
    int obj;

    T_OK(jg_spawn(&g, ret_arg, &obj, NULL));
    T_OK(jg_yield());
    T_EQ(jg_state(g), JG_GREEN_DONE);
    T_OK(jg_kill(g));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, &obj);
}

struct sticky {
    int rc[6];
    int cancelled_before, cancelled_after;
    struct jg_green *other;
};

static void *sticky_fn(void *arg)
{
    struct sticky *s = arg;
    s->cancelled_before = jg_cancelled();
    s->rc[0] = jg_sleep(JG_SEC(10));
    s->cancelled_after = jg_cancelled();
    s->rc[1] = jg_sleep(0);
    s->rc[2] = jg_yield();
    s->rc[3] = jg_sleep(JG_MS(1));
    s->rc[4] = jg_join(s->other, NULL, JG_FOREVER);
    s->rc[5] = jg_yield();
    return NULL;                /* returns normally, but was killed */
}

static void test_kill_sticky(void)
{
    struct jg_green *g, *other;
    struct sticky s;
    struct blocked bo = { .rc = 1 };

    memset(&s, 0, sizeof(s));
    T_OK(jg_spawn(&other, sleep_long, &bo, NULL));
    s.other = other;
    T_OK(jg_spawn(&g, sticky_fn, &s, NULL));
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(s.cancelled_before, 0);
    T_EQ(s.cancelled_after, 1);
    /* Each call failed at once: none waited (other sleeps 10 s, and the
     * join on it would have waited for that). */
    for (int i = 0; i < 6; i++)
        T_ERR(s.rc[i], -ECANCELED);
    T_ASSERT(!jg_cancelled());  /* main was not killed */

    /* The failed join did not consume other's handle. */
    T_EQ(jg_state(other), JG_GREEN_PARKED);
    T_OK(jg_kill(other));
    T_ERR(jg_join(other, NULL, JG_FOREVER), -ECANCELED);
}

/* CPU-bound code polls jg_cancelled(). */
static void *spin_fn(void *arg)
{
    long *spins = arg;
    while (!jg_cancelled()) {
        (*spins)++;
        if (jg_yield() < 0)
            break;
    }
    return NULL;                /* the join reports the kill all the same */
}

static void test_cancelled_poll(void)
{
    struct jg_green *g;
    long spins = 0;

    T_OK(jg_spawn(&g, spin_fn, &spins, NULL));
    for (int i = 0; i < 5; i++)
        T_OK(jg_yield());
    T_ASSERT(spins >= 4);
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
}

/* ---- timeouts -------------------------------------------------------------- */

static void *sleep_arg(void *arg)
{
    int rc = jg_sleep((int64_t)(intptr_t)arg);
    return rc < 0 ? JG_ERR(rc) : (void *)(uintptr_t)0x5;
}

static void *count_runs(void *arg)
{
    (*(int *)arg)++;
    return NULL;
}

static void test_join_timeout(void)
{
    struct jg_green *g, *y;
    void *res = NULL;
    int runs = 0;

    T_OK(jg_spawn(&g, sleep_arg, (void *)(intptr_t)JG_MS(200), NULL));
    int64_t t0 = t_now_ns();
    T_ERR(jg_join(g, &res, JG_MS(50)), -ETIMEDOUT);
    int64_t el = t_now_ns() - t0;
    T_ASSERT(el >= JG_MS(50));
    T_PEQ(res, NULL);           /* untouched on timeout */
    /* It returned at its timeout, before the 200 ms sleep ended (timers
     * fire in expiry order, also late on a loaded machine). */
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    /* Timeout 0: try once, do not wait: nothing else runs meanwhile. */
    t0 = t_now_ns();
    T_OK(jg_spawn(&y, count_runs, &runs, NULL));
    T_ERR(jg_join(g, &res, 0), -ETIMEDOUT);
    T_EQ(runs, 0);
    T_OK(jg_join(y, NULL, JG_FOREVER));
    T_EQ(runs, 1);
    /* The handle is still valid; a later join works. */
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)0x5);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(100));

    /* A join whose timeout is long enough succeeds before it. */
    T_OK(jg_spawn(&g, sleep_arg, (void *)(intptr_t)JG_MS(20), NULL));
    T_OK(jg_join(g, &res, JG_SEC(5)));
    T_PEQ(res, (void *)(uintptr_t)0x5);

    /* A finished thread joins with timeout 0. */
    T_OK(jg_spawn(&g, ret_arg, (void *)(uintptr_t)9, NULL));
    T_OK(jg_yield());
    T_OK(jg_join(g, &res, 0));
    T_PEQ(res, (void *)(uintptr_t)9);
}

static int woke[8], nwoke;

static void *sleep_then_log(void *arg)
{
    static const int64_t ds[] = { 0, JG_US(500), JG_MS(20), JG_MS(50) };
    int i = (int)(intptr_t)arg;

    T_OK(jg_sleep(ds[i]));
    woke[nwoke++] = i;
    return NULL;
}

/* Never early; and side by side, sleeps end in the order of their lengths
 * (an order, not a precision: a loaded machine may wake all of them late,
 * but not out of turn). */
static void test_sleep_timing(void)
{
    static const int64_t ds[] = { 0, JG_US(500), JG_MS(20), JG_MS(50) };
    struct jg_green *g[4];

    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        int64_t t0 = t_now_ns();
        T_OK(jg_sleep(ds[i]));
        int64_t el = t_now_ns() - t0;
        T_ASSERT(el >= ds[i]);
    }
    nwoke = 0;
    for (int i = 3; i >= 0; i--)
        T_OK(jg_spawn(&g[i], sleep_then_log, (void *)(intptr_t)i, NULL));
    for (int i = 0; i < 4; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_EQ(nwoke, 4);
    for (int i = 0; i < 4; i++)
        T_EQ(woke[i], i);
    T_ERR(jg_sleep(-2), -EINVAL);
    T_ERR(jg_sleep(INT64_MIN), -EINVAL);
}

/* ---- yield ----------------------------------------------------------------- */

static int ylog[64];
static int nylog;

static void *yielder(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 5; i++) {
        T_ASSERT(nylog < 64);
        ylog[nylog++] = id;
        T_OK(jg_yield());
    }
    return NULL;
}

static void test_yield_order(void)
{
    struct jg_green *g[3];

    nylog = 0;
    for (int i = 0; i < 3; i++)
        T_OK(jg_spawn(&g[i], yielder, (void *)(intptr_t)i, NULL));
    for (int i = 0; i < 3; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_EQ(nylog, 15);
    for (int i = 0; i < 15; i++)
        T_EQ(ylog[i], i % 3);
}

/* Main's yield lets every ready green thread run exactly once. */
static void test_yield_main(void)
{
    struct jg_green *g[3];

    nylog = 0;
    for (int i = 0; i < 3; i++)
        T_OK(jg_spawn(&g[i], yielder, (void *)(intptr_t)i, NULL));
    T_OK(jg_yield());
    T_EQ(nylog, 3);
    T_OK(jg_yield());
    T_EQ(nylog, 6);
    for (int i = 0; i < 6; i++)
        T_EQ(ylog[i], i % 3);
    /* Alone, a yield returns at once. */
    for (int i = 0; i < 3; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_OK(jg_yield());
}

/* ---- deadlock detection and bad arguments --------------------------------- */

static struct jg_green *dl_main;
static void *dl_got;

/* Switches back to main and waits there for a resume that never comes. */
static void *switch_away(void *arg)
{
    (void)arg;
    dl_got = jg_switch(dl_main, (void *)(uintptr_t)1);
    return JG_IS_ERR(dl_got) ? dl_got : NULL;
}

static void test_deadlock_switched(void)
{
    struct jg_green *g;

    dl_main = jg_current();
    T_OK(jg_create(&g, switch_away, NULL, NULL));
    T_PEQ(jg_switch(g, NULL), (void *)(uintptr_t)1);
    T_EQ(jg_state(g), JG_GREEN_SWITCHED);
    /* Nothing ready, no watcher: main would wait forever. */
    /* Found at once: nothing else could ever end this join. */
    T_ERR(jg_join(g, NULL, JG_FOREVER), -EDEADLK);
    T_EQ(jg_state(g), JG_GREEN_SWITCHED);
    /* Resolve it with a kill; the handle was kept. */
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_PEQ(dl_got, JG_ERR(-ECANCELED));
}

static void test_deadlock_join_chain(void)
{
    struct jg_green *never, *a;
    struct blocked b = { .rc = 1 };

    /* a joins a created green thread nobody starts; main joins a. */
    T_OK(jg_create(&never, ret_arg, (void *)(uintptr_t)6, NULL));
    b.other = never;
    T_OK(jg_spawn(&a, join_other, &b, NULL));
    T_ERR(jg_join(a, NULL, JG_FOREVER), -EDEADLK);
    T_EQ(jg_state(a), JG_GREEN_PARKED);
    T_EQ(b.after, 0);
    T_OK(jg_kill(a));
    T_ERR(jg_join(a, NULL, JG_FOREVER), -ECANCELED);
    T_ERR(b.rc, -ECANCELED);
    T_PEQ(jg_switch(never, NULL), (void *)(uintptr_t)6);
    T_OK(jg_join(never, NULL, JG_FOREVER));

    /* A plain sleep of main with nothing else alive is not a deadlock. */
    T_OK(jg_sleep(JG_MS(5)));
}

static void *join_self(void *arg)
{
    int *rc = arg;
    *rc = jg_join(jg_current(), NULL, JG_FOREVER);
    return NULL;
}

static void test_join_self(void)
{
    struct jg_green *g;
    int rc = 1;

    T_ERR(jg_join(jg_current(), NULL, JG_FOREVER), -EDEADLK);
    T_ERR(jg_join(jg_current(), NULL, 0), -EDEADLK);
    T_OK(jg_spawn(&g, join_self, &rc, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ERR(rc, -EDEADLK);
}

static void test_bad_args(void)
{
    struct jg_green *g;
    struct jg_spawn_opts bad = { .stack_model = 9 };

    T_ERR(jg_spawn(&g, NULL, NULL, NULL), -EINVAL);
    T_ERR(jg_spawn(NULL, NULL, NULL, NULL), -EINVAL);
    T_ERR(jg_spawn(&g, ret_arg, NULL, &bad), -EINVAL);
    T_ERR(jg_join(NULL, NULL, JG_FOREVER), -EINVAL);
    T_ERR(jg_detach(NULL), -EINVAL);

    T_OK(jg_spawn(&g, sleep_arg, (void *)(intptr_t)JG_MS(20), NULL));
    T_ERR(jg_join(g, NULL, -2), -EINVAL);
    T_ERR(jg_join(g, NULL, INT64_MIN), -EINVAL);
    T_EQ(jg_state(g), JG_GREEN_READY);
    T_OK(jg_join(g, NULL, JG_FOREVER));

    /* A detached, still-running green thread cannot be joined or detached
     * again. */
    T_OK(jg_spawn(&g, sleep_arg, (void *)(intptr_t)JG_MS(30), NULL));
    T_OK(jg_yield());
    T_OK(jg_detach(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -EINVAL);
    T_ERR(jg_detach(g), -EINVAL);
    T_OK(jg_sleep(JG_MS(60)));
}

static void test_join_busy(void)
{
    struct jg_green *t, *j;
    struct blocked b = { .rc = 1 };

    T_OK(jg_spawn(&t, sleep_arg, (void *)(intptr_t)JG_MS(50), NULL));
    b.other = t;
    T_OK(jg_spawn(&j, join_other, &b, NULL));
    T_OK(jg_yield());
    /* j already joins t. */
    T_ERR(jg_join(t, NULL, 0), -EBUSY);
    T_ERR(jg_join(t, NULL, JG_FOREVER), -EBUSY);
    T_OK(jg_join(j, NULL, JG_FOREVER));
    T_EQ(b.rc, 0);
}

/* ---- blocking calls from a loop callback ---------------------------------- */

struct cbres {
    int fired;
    int sleep_rc, yield_rc, join_rc;
    void *switch_rc;
    struct jg_green *g;
};

static void blocking_in_cb(struct jg_timer *t)
{
    struct cbres *r = t->base.data;
    r->fired++;
    r->sleep_rc = jg_sleep(JG_MS(1));
    r->yield_rc = jg_yield();
    r->join_rc = jg_join(r->g, NULL, JG_FOREVER);
    r->switch_rc = jg_switch(r->g, NULL);
}

static void test_callback_eperm(void)
{
    struct jg_timer t;
    struct cbres r;
    struct jg_loop *l = jg_loop_default();

    memset(&r, 0, sizeof(r));
    T_ASSERT(l != NULL);
    T_OK(jg_create(&r.g, ret_arg, (void *)(uintptr_t)3, NULL));
    jg_timer_init(&t, blocking_in_cb);
    t.base.data = &r;
    T_OK(jg_timer_start(l, &t, JG_MS(1), 0));
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(r.fired, 1);
    T_ERR(r.sleep_rc, -EPERM);
    T_ERR(r.yield_rc, -EPERM);
    T_ERR(r.join_rc, -EPERM);
    T_PEQ(r.switch_rc, JG_ERR(-EPERM));
    /* The green thread was neither started nor released. */
    T_EQ(jg_state(r.g), JG_GREEN_NEW);
    T_PEQ(jg_switch(r.g, NULL), (void *)(uintptr_t)3);
    T_OK(jg_join(r.g, NULL, JG_FOREVER));
}

/* ---- errno survives a park ------------------------------------------------- */

static int errno_stop;

static void *errno_keeper(void *arg)
{
    int want = (int)(intptr_t)arg;
    errno = want;
    for (int i = 0; i < 5; i++) {
        int rc = jg_sleep(JG_MS(2));
        if (rc < 0)
            return JG_ERR(rc);
        if (errno != want)
            return JG_ERR(-EPROTO);
        rc = jg_yield();
        if (rc < 0)
            return JG_ERR(rc);
        if (errno != want)
            return JG_ERR(-EPROTO);
    }
    return (void *)(uintptr_t)(unsigned)errno;
}

static void *errno_clobber(void *arg)
{
    (void)arg;
    while (!errno_stop) {
        T_ASSERT(close(-1) < 0);
        T_EQ(errno, EBADF);
        T_OK(jg_yield());
        T_EQ(errno, EBADF);
        errno = 0;
        T_OK(jg_sleep(JG_US(200)));
        T_EQ(errno, 0);
    }
    return NULL;
}

static void test_errno_survives(void)
{
    struct jg_green *k[2], *c[3];
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    void *res;

    errno_stop = 0;
    for (int i = 0; i < 3; i++)
        T_OK(jg_spawn(&c[i], errno_clobber, NULL, NULL));
    T_OK(jg_spawn(&k[0], errno_keeper, (void *)(intptr_t)1234, NULL));
    T_OK(jg_spawn(&k[1], errno_keeper, (void *)(intptr_t)4321, &sliced));
    errno = 77;
    T_OK(jg_join(k[0], &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)1234);
    T_OK(jg_join(k[1], &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)4321);
    /* Main's own errno survived its park in jg_join too. */
    T_EQ(errno, 77);
    errno_stop = 1;
    for (int i = 0; i < 3; i++)
        T_OK(jg_join(c[i], NULL, JG_FOREVER));
}

/* ---- many, detached, counts ------------------------------------------------- */

static void *times3(void *arg)
{
    return (void *)((uintptr_t)arg * 3);
}

static void test_spawn_join_many(void)
{
    long n = t_scale(10000);
    size_t base = jg_count();

    for (long i = 0; i < n; i++) {
        struct jg_green *g;
        void *res;
        T_OK(jg_spawn(&g, times3, (void *)(uintptr_t)i, NULL));
        T_OK(jg_join(g, &res, JG_FOREVER));
        T_PEQ(res, (void *)((uintptr_t)i * 3));
    }
    /* In batches, joined in reverse order. */
    enum { B = 100 };
    struct jg_green *gs[B];
    for (long r = 0; r < n / B; r++) {
        for (int i = 0; i < B; i++)
            T_OK(jg_spawn(&gs[i], times3, (void *)(uintptr_t)(r * B + i),
                          NULL));
        for (int i = B - 1; i >= 0; i--) {
            void *res;
            T_OK(jg_join(gs[i], &res, JG_FOREVER));
            T_PEQ(res, (void *)((uintptr_t)(r * B + i) * 3));
        }
    }
    T_EQ(jg_count(), base);
}

static long detached_done;

static void *detached_fn(void *arg)
{
    if (jg_sleep((int64_t)(intptr_t)arg) == 0)
        detached_done++;
    return NULL;
}

static void test_detached(void)
{
    long n = t_scale(1000);
    size_t base = jg_count();

    detached_done = 0;
    for (long i = 0; i < n; i++)
        T_OK(jg_spawn(NULL, detached_fn,
                      (void *)(intptr_t)JG_US(100 * (i % 10)), NULL));
    T_EQ(jg_count(), base + (size_t)n);
    /* Detach after spawn too. */
    struct jg_green *g;
    T_OK(jg_spawn(&g, detached_fn, (void *)(intptr_t)JG_MS(1), NULL));
    T_OK(jg_detach(g));
    int64_t end = t_now_ns() + JG_SEC(10);
    while (detached_done < n + 1 && t_now_ns() < end)
        T_OK(jg_sleep(JG_MS(2)));
    T_EQ(detached_done, n + 1);
    /* Detached threads free themselves once done. */
    T_OK(jg_yield());
    T_EQ(jg_count(), base);
}

static void test_count(void)
{
    struct jg_green *g[5];
    size_t base = jg_count();

    for (int i = 0; i < 5; i++)
        T_OK(jg_spawn(&g[i], ret_arg, NULL, NULL));
    T_EQ(jg_count(), base + 5);
    T_OK(jg_yield());
    for (int i = 0; i < 5; i++)
        T_EQ(jg_state(g[i]), JG_GREEN_DONE);
    /* Finished: no longer counted, though their handles are held. */
    T_EQ(jg_count(), base);
    for (int i = 0; i < 5; i++) {
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
        T_EQ(jg_count(), base);
    }
}

T_MAIN(T_CASE(test_spawn_join_results), T_CASE(test_join_runs_hub),
       T_CASE(test_bobalice), T_CASE(test_kill_sleeping),
       T_CASE(test_kill_joining), T_CASE(test_kill_reading),
       T_CASE(test_fd_number_reused),
       T_CASE(test_kill_before_run), T_CASE(test_kill_finished),
       T_CASE(test_kill_sticky), T_CASE(test_cancelled_poll),
       T_CASE(test_join_timeout), T_CASE(test_sleep_timing),
       T_CASE(test_yield_order), T_CASE(test_yield_main),
       T_CASE(test_deadlock_switched), T_CASE(test_deadlock_join_chain),
       T_CASE(test_join_self), T_CASE(test_bad_args), T_CASE(test_join_busy),
       T_CASE(test_callback_eperm), T_CASE(test_errno_survives),
       T_CASE(test_spawn_join_many), T_CASE(test_detached),
       T_CASE(test_count))
