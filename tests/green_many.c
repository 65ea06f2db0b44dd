/* SPDX-License-Identifier: MIT */
/*
 * green_many.c - numbers: 30,000 green threads alive at once on dedicated
 * stacks, 1,000,000 on sliced stacks, sliced stack contents surviving copy
 * out/in, and a mix of both models (-ENOMEM past vm.max_map_count is
 * green_enomem.c). Counts scale down with JG_TEST_SCALE.
 */
#include <juggle.h>
#include "t.h"

/* ---- many parked green threads ------------------------------------------- */

static struct {
    long alive, peak, done, bad;
    int released;
} M;

#define MIX(i) ((uint64_t)(i) * 0x9E3779B97F4A7C15ull + 1)

/*
 * Park until main releases us. The first sleep is long enough for main to
 * spawn and start everyone; if it was not, sleep again, longer each time,
 * so a slow start costs a few wake-ups per thread, not thousands.
 */
static void *parker(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    volatile uint64_t local = MIX(i);   /* lives on this thread's stack */
    int64_t nap = JG_MS(500);

    if (++M.alive > M.peak)
        M.peak = M.alive;
    do {
        int rc = jg_sleep(nap);
        if (rc < 0) {
            M.alive--;
            return JG_ERR(rc);
        }
        if (nap < JG_SEC(4))
            nap *= 2;
    } while (!M.released);
    if (local != MIX(i))
        M.bad++;
    M.alive--;
    M.done++;
    return (void *)(i * 7 + 1);
}

static void run_parked(long n, int model)
{
    struct jg_spawn_opts o = { .stack_model = model };
    struct jg_green **h = calloc((size_t)n, sizeof(*h));
    size_t base = jg_count();

    T_ASSERT(h != NULL);
    memset(&M, 0, sizeof(M));
    int64_t t0 = t_now_ns();
    for (long i = 0; i < n; i++)
        T_OK(jg_spawn(&h[i], parker, (void *)(uintptr_t)i, &o));
    int64_t t1 = t_now_ns();
    /* Every ready thread runs once and parks before main continues. */
    T_OK(jg_yield());
    int64_t t2 = t_now_ns();
    T_EQ(M.alive, n);
    T_EQ(M.done, 0);
    T_EQ(jg_count(), base + (size_t)n);
    /* Parked, or woken by its first nap (if starting all took longer)
     * and queued to run: not finished. */
    T_ASSERT(jg_state(h[n - 1]) == JG_GREEN_PARKED ||
             jg_state(h[n - 1]) == JG_GREEN_READY);
    M.released = 1;
    for (long i = 0; i < n; i++) {
        void *res;
        T_OK(jg_join(h[i], &res, JG_FOREVER));
        T_PEQ(res, (void *)((uintptr_t)i * 7 + 1));
    }
    int64_t t3 = t_now_ns();
    T_EQ(M.peak, n);
    T_EQ(M.done, n);
    T_EQ(M.bad, 0);
    T_EQ(M.alive, 0);
    T_EQ(jg_count(), base);
    fprintf(stderr, "%ld %s: spawn %.0f ns/thread, first run %.0f ns/thread,"
            " wake+join %.2f s\n", n, model ? "sliced" : "dedicated",
            (double)(t1 - t0) / (double)n, (double)(t2 - t1) / (double)n,
            (double)(t3 - t2) / 1e9);
    free(h);
}

static void test_dedicated_30k(void)
{
    run_parked(t_scale(30000), JG_STACK_DEDICATED);
}

static void test_sliced_1m(void)
{
    long n = t_scale(1000000);

    /* TSan keeps state per fiber: clang's runs out of memory near 100k. */
    if (T_TSAN && n > 20000)
        n = 20000;
    run_parked(n, JG_STACK_SLICED);
}

/* ---- stack contents survive ---------------------------------------------- */

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t k = 0; k < n; k++)
        p[k] = (unsigned char)(MIX(seed + k) >> 56);
}

static int check(const unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != (unsigned char)(MIX(seed + k) >> 56))
            return 0;
    return 1;
}

/* One park per level on the way back up: every frame must survive. */
static int deep(uintptr_t i, int depth)
{
    unsigned char frame[200];
    fill(frame, sizeof(frame), i * 1000 + (uint64_t)depth);
    int ok = 1;
    if (depth > 0)
        ok = deep(i, depth - 1);
    if (jg_sleep(JG_US(50 * (i % 3))) < 0)
        return 0;
    return ok && check(frame, sizeof(frame), i * 1000 + (uint64_t)depth);
}

static void *pattern_fn(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    unsigned char buf[4096];
    size_t len = 256 + (i % 8) * 480;

    for (int round = 0; round < 6; round++) {
        uint64_t seed = i * 100 + (uint64_t)round;
        fill(buf, len, seed);
        int rc = (round % 2) ? jg_yield() : jg_sleep(JG_US(100 * (i % 5)));
        if (rc < 0)
            return JG_ERR(rc);
        if (!check(buf, len, seed))
            return JG_ERR(-EPROTO);
    }
    if (!deep(i, 8))
        return JG_ERR(-EPROTO);
    return (void *)(i + 1);
}

static void run_pattern(long n, int mixed)
{
    struct jg_green **h = calloc((size_t)n, sizeof(*h));

    T_ASSERT(h != NULL);
    for (long i = 0; i < n; i++) {
        struct jg_spawn_opts o = { .stack_model = JG_STACK_SLICED };
        if (mixed && i % 2)
            o.stack_model = JG_STACK_DEDICATED;
        T_OK(jg_spawn(&h[i], pattern_fn, (void *)(uintptr_t)i, &o));
    }
    for (long i = 0; i < n; i++) {
        void *res;
        T_OK(jg_join(h[i], &res, JG_FOREVER));
        T_PEQ(res, (void *)((uintptr_t)i + 1));
    }
    free(h);
}

static void test_sliced_contents(void)
{
    run_pattern(t_scale(2000), 0);
}

static void test_mixed_models(void)
{
    run_pattern(t_scale(2000), 1);
}

/* Sliced green threads switching straight to each other with values. */
struct ring {
    struct jg_green *g[4];
    struct jg_green *main_g;
    long rounds;
};

static void *ring_fn(void *arg)
{
    struct ring *r = arg;
    struct jg_green *me = jg_current();
    int k = 0;
    unsigned char buf[1500];

    while (r->g[k] != me)
        k++;
    uintptr_t v = 0;
    for (long round = 0; round < r->rounds; round++) {
        fill(buf, sizeof(buf), (uint64_t)k * 77 + (uint64_t)round);
        /* Each passes to the next; the last one, to main. */
        struct jg_green *next = k == 3 ? r->main_g : r->g[k + 1];
        void *got = jg_switch(next, (void *)(v + 1));
        if (JG_IS_ERR(got))
            return got;
        if (!check(buf, sizeof(buf), (uint64_t)k * 77 + (uint64_t)round))
            return JG_ERR(-EPROTO);
        v = (uintptr_t)got;
    }
    return (void *)(uintptr_t)(k + 100);
}

static void test_sliced_switch_ring(void)
{
    static struct ring r;
    struct jg_spawn_opts sl = { .stack_model = JG_STACK_SLICED };
    struct jg_spawn_opts de = { .stack_model = JG_STACK_DEDICATED };

    r.main_g = jg_current();
    r.rounds = t_scale(2000);
    /* Three sliced and one dedicated, so copies happen across models. */
    for (int k = 0; k < 4; k++)
        T_OK(jg_create(&r.g[k], ring_fn, &r, k == 2 ? &de : &sl));
    /*
     * Lap 0 starts them: new threads start with their own arg (v = 0), so
     * each passes 1 along and g[3] hands 1 to main. In later laps g[0]
     * gets start from main and each adds one: main gets start + 4.
     */
    T_PEQ(jg_switch(r.g[0], NULL), (void *)1);
    for (long round = 1; round < r.rounds; round++) {
        uintptr_t start = (uintptr_t)round * 10;
        T_PEQ(jg_switch(r.g[0], (void *)start), (void *)(start + 4));
    }
    for (int k = 0; k < 4; k++)
        T_EQ(jg_state(r.g[k]), JG_GREEN_SWITCHED);
    /* One more lap: each returns, in order, its result to main. */
    for (int k = 0; k < 4; k++) {
        void *res;
        T_PEQ(jg_switch(r.g[k], (void *)1), (void *)(uintptr_t)(k + 100));
        T_OK(jg_join(r.g[k], &res, JG_FOREVER));
        T_PEQ(res, (void *)(uintptr_t)(k + 100));
    }
}

T_MAIN(T_CASE(test_dedicated_30k), T_CASE(test_sliced_1m),
       T_CASE(test_sliced_contents), T_CASE(test_mixed_models),
       T_CASE(test_sliced_switch_ring))
