/* SPDX-License-Identifier: MIT */
/*
 * sync.c - the sync layer's figures, each beside a Go equivalent in
 * bench/compare/sync.go: queue put->get hand-off between two green threads
 * through a bounded queue of 64 (ns per item), select over 4 ready channels
 * (ns per select + refill), semaphore acquire/release uncontended and with
 * 4 green threads contending (ns per pair), and a pool map of 100,000
 * trivial jobs with size 100 (ns per job).
 */
#include <juggle.h>

#include "bench.h"

#define HANDOFF_N 1000000L
#define HANDOFF_CAP 64
#define SELECT_N 1000000L
#define SEM_N 2000000L
#define CONT_G 4
#define CONT_N 250000L
#define MAP_N 100000L
#define MAP_SIZE 100

#define P(x) ((void *)(uintptr_t)(x))

static void check(const char *what, int rc)
{
    if (rc < 0)
        bench_die(what, rc);
}

/* ---- queue hand-off ----------------------------------------------------- */

static void *producer(void *arg)
{
    struct jg_queue *q = arg;

    for (long i = 0; i < HANDOFF_N; i++)
        check("jg_queue_put", jg_queue_put(q, P(i + 1), JG_FOREVER));
    return NULL;
}

static double handoff_once(void *arg)
{
    struct jg_queue *q;
    struct jg_green *g;
    uint64_t sum = 0;
    void *v;

    (void)arg;
    check("jg_queue_create", jg_queue_create(&q, HANDOFF_CAP,
                                             JG_QUEUE_FIFO));
    int64_t t0 = bench_now();
    check("jg_spawn", jg_spawn(&g, producer, q, NULL));
    for (long i = 0; i < HANDOFF_N; i++) {
        check("jg_queue_get", jg_queue_get(q, &v, JG_FOREVER));
        sum = sum * 31 + (uintptr_t)v;
    }
    check("jg_join", jg_join(g, NULL, JG_FOREVER));
    int64_t t1 = bench_now();
    check("jg_queue_destroy", jg_queue_destroy(q));
    if (sum == 0)
        bench_die("handoff checksum", 0);
    return bench_per(t0, t1, HANDOFF_N);
}

/* ---- select over 4 ------------------------------------------------------- */

static double select_once(void *arg)
{
    struct jg_chan *c[4];
    struct jg_select_case k[4];
    long hits[4] = { 0 };

    (void)arg;
    for (int i = 0; i < 4; i++) {
        check("jg_chan_create", jg_chan_create(&c[i], 1));
        check("jg_chan_send", jg_chan_send(c[i], P(i), 0));
        k[i] = (struct jg_select_case){ c[i], JG_SELECT_RECV, NULL, 0 };
    }
    int64_t t0 = bench_now();
    for (long r = 0; r < SELECT_N; r++) {
        int i = jg_select(k, 4, JG_FOREVER);
        if (i < 0)
            bench_die("jg_select", i);
        hits[i]++;
        check("jg_chan_send", jg_chan_send(c[i], k[i].value, 0));
    }
    int64_t t1 = bench_now();
    for (int i = 0; i < 4; i++) {
        if (hits[i] < SELECT_N / 8)
            bench_die("select fairness", hits[i]);
        check("jg_chan_destroy", jg_chan_destroy(c[i]));
    }
    return bench_per(t0, t1, SELECT_N);
}

/* ---- semaphore ----------------------------------------------------------- */

static struct jg_sem sem;

static double sem_once(void *arg)
{
    (void)arg;
    check("jg_sem_init", jg_sem_init(&sem, 1));
    int64_t t0 = bench_now();
    for (long i = 0; i < SEM_N; i++) {
        check("jg_sem_acquire", jg_sem_acquire(&sem, JG_FOREVER));
        check("jg_sem_release", jg_sem_release(&sem));
    }
    int64_t t1 = bench_now();
    check("jg_sem_destroy", jg_sem_destroy(&sem));
    return bench_per(t0, t1, SEM_N);
}

static long in_cs;

/* Hold the permit across a yield, so that every other green thread finds
 * it taken and parks: each release hands it to a parked waiter. */
static void *contender(void *arg)
{
    (void)arg;
    for (long i = 0; i < CONT_N; i++) {
        check("jg_sem_acquire", jg_sem_acquire(&sem, JG_FOREVER));
        if (++in_cs != 1)
            bench_die("semaphore admitted two", in_cs);
        check("jg_yield", jg_yield());
        in_cs--;
        check("jg_sem_release", jg_sem_release(&sem));
    }
    return NULL;
}

static double sem_contended_once(void *arg)
{
    struct jg_green *g[CONT_G];

    (void)arg;
    check("jg_sem_init", jg_sem_init(&sem, 1));
    int64_t t0 = bench_now();
    for (int i = 0; i < CONT_G; i++)
        check("jg_spawn", jg_spawn(&g[i], contender, NULL, NULL));
    for (int i = 0; i < CONT_G; i++)
        check("jg_join", jg_join(g[i], NULL, JG_FOREVER));
    int64_t t1 = bench_now();
    check("jg_sem_destroy", jg_sem_destroy(&sem));
    return bench_per(t0, t1, CONT_G * CONT_N);
}

/* ---- pool map ------------------------------------------------------------ */

static void *trivial(void *arg)
{
    return P((uintptr_t)arg * 2 + 1);
}

static void **map_args, **map_res;

static double map_once(void *arg)
{
    struct jg_group *grp;
    struct jg_group_opts o = { MAP_SIZE, JG_GROUP_COLLECT, NULL, NULL, NULL };

    (void)arg;
    check("jg_group_create", jg_group_create(&grp, &o));
    int64_t t0 = bench_now();
    check("jg_group_map", jg_group_map(grp, trivial, map_args, map_res,
                                       MAP_N, JG_FOREVER));
    int64_t t1 = bench_now();
    for (long i = 0; i < MAP_N; i++)
        if ((uintptr_t)map_res[i] != (uintptr_t)i * 2 + 1)
            bench_die("map result", i);
    check("jg_group_destroy", jg_group_destroy(grp));
    return bench_per(t0, t1, MAP_N);
}

int main(void)
{
    bench_print("sync.queue.handoff", bench_run(handoff_once, NULL), "ns");
    bench_print("sync.select4", bench_run(select_once, NULL), "ns");
    bench_print("sync.sem.uncontended", bench_run(sem_once, NULL), "ns");
    bench_print("sync.sem.contended", bench_run(sem_contended_once, NULL),
                "ns");
    map_args = malloc(MAP_N * sizeof *map_args);
    map_res = malloc(MAP_N * sizeof *map_res);
    if (!map_args || !map_res)
        bench_die("malloc", 0);
    for (long i = 0; i < MAP_N; i++)
        map_args[i] = P(i);
    bench_print("sync.pool.map", bench_run(map_once, NULL), "ns");
    free(map_args);
    free(map_res);
    return 0;
}
