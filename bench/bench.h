/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the benchmark harness, header-only, for C and C++: one warm-up
 * repetition, then BENCH_REPS timed ones (default 9, never fewer than 5),
 * and the median printed as the one line BENCHMARKS.md reads:
 * "BENCH <name> <value> <unit>".
 */
#ifndef JG_BENCH_H
#define JG_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MIN_REPS 5
#define BENCH_MAX_REPS 99

/* One repetition: returns its figure (e.g. ns per operation). */
typedef double (*bench_fn)(void *arg);

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Timed repetitions: BENCH_REPS, clamped to [5, 99]. */
static inline int bench_reps(void)
{
    const char *s = getenv("BENCH_REPS");
    long n = s && *s ? strtol(s, NULL, 10) : 9;
    if (n < BENCH_MIN_REPS)
        n = BENCH_MIN_REPS;
    if (n > BENCH_MAX_REPS)
        n = BENCH_MAX_REPS;
    return (int)n;
}

/* Median of v[0..n) (sorts v in place; the mean of the middle two if even). */
static inline double bench_median(double *v, int n)
{
    for (int i = 1; i < n; i++) {
        double x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
    if (n <= 0)
        return 0.0;
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/*
 * Run fn once to warm caches, the stack pool and the CPU's clock, then
 * bench_reps() times; returns the median of the timed runs.
 */
static inline double bench_run(bench_fn fn, void *arg)
{
    double v[BENCH_MAX_REPS];
    int n = bench_reps();

    (void)fn(arg);
    for (int i = 0; i < n; i++)
        v[i] = fn(arg);
    return bench_median(v, n);
}

/* Print one figure; fewer decimals as the value grows. */
static inline void bench_print(const char *name, double value,
                               const char *unit)
{
    int prec = value < 10.0 ? 2 : value < 1000.0 ? 1 : 0;
    printf("BENCH %s %.*f %s\n", name, prec, value, unit);
    fflush(stdout);
}

/* Elapsed nanoseconds per operation between two bench_now() readings. */
static inline double bench_per(int64_t t0, int64_t t1, long ops)
{
    return (double)(t1 - t0) / (double)ops;
}

/* Abort with a message: a benchmark that cannot run has no figure. */
static inline void bench_die(const char *what, long code)
{
    fprintf(stderr, "bench: %s failed (%ld)\n", what, code);
    exit(1);
}

#ifdef JUGGLE_GREEN_H
/*
 * The jg_switch round trip A -> B -> A, shared by switch.c and pingpong.c
 * (which needs it as its in-run anchor). A and B are both jg_create()d, B
 * as A's child, so that when B returns its result goes back to A.
 */
struct bench_rt {
    struct jg_green *a;
    long n;                     /* round trips per repetition */
    int model;                  /* enum jg_stack_model of A and B */
    double ns;                  /* the repetition's ns per round trip */
};

#define BENCH_RT_STOP ((void *)1)

static void *bench_rt_b(void *arg)
{
    struct bench_rt *r = (struct bench_rt *)arg;
    for (;;) {
        void *v = jg_switch(r->a, NULL);
        if (v == BENCH_RT_STOP || JG_IS_ERR(v))
            return NULL;
    }
}

static void *bench_rt_a(void *arg)
{
    struct bench_rt *r = (struct bench_rt *)arg;
    struct jg_spawn_opts o;
    struct jg_green *b;
    int rc;

    memset(&o, 0, sizeof(o));
    o.stack_model = r->model;
    r->a = jg_current();
    rc = jg_create(&b, bench_rt_b, r, &o);
    if (rc < 0)
        bench_die("jg_create(B)", rc);
    /* Start B: it runs to its first switch back, off the clock. */
    if (JG_IS_ERR(jg_switch(b, NULL)))
        bench_die("jg_switch(B) start", 0);
    int64_t t0 = bench_now();
    for (long i = 0; i < r->n; i++) {
        void *v = jg_switch(b, NULL);
        if (JG_IS_ERR(v))
            bench_die("jg_switch(B)", JG_ERR_CODE(v));
    }
    int64_t t1 = bench_now();
    /* B returns; its result comes back here, then its handle goes. */
    (void)jg_switch(b, BENCH_RT_STOP);
    rc = jg_join(b, NULL, JG_FOREVER);
    if (rc < 0)
        bench_die("jg_join(B)", rc);
    r->ns = bench_per(t0, t1, r->n);
    return NULL;
}

/* One repetition, with a fresh A and B: ns per round trip. */
static inline double bench_rt_once(void *arg)
{
    struct bench_rt *r = (struct bench_rt *)arg;
    struct jg_spawn_opts o;
    struct jg_green *a;
    int rc;

    memset(&o, 0, sizeof(o));
    o.stack_model = r->model;
    rc = jg_create(&a, bench_rt_a, r, &o);
    if (rc < 0)
        bench_die("jg_create(A)", rc);
    r->ns = -1.0;
    void *v = jg_switch(a, NULL);
    if (JG_IS_ERR(v))
        bench_die("jg_switch(A)", JG_ERR_CODE(v));
    rc = jg_join(a, NULL, JG_FOREVER);
    if (rc < 0)
        bench_die("jg_join(A)", rc);
    if (r->ns < 0)
        bench_die("round trip did not finish", 0);
    return r->ns;
}

/* Median ns per jg_switch round trip for a stack model. */
static inline double bench_rt(int model, long n)
{
    struct bench_rt r;
    memset(&r, 0, sizeof(r));
    r.n = n;
    r.model = model;
    return bench_run(bench_rt_once, &r);
}
#endif

#endif
