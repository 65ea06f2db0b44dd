/* SPDX-License-Identifier: MIT */
/*
 * preload_seed.c - the seeds' monkey-patching example in C: two green
 * threads call plain usleep(300000) and usleep(100000). Patched, the hello
 * lines come in 0.1/0.3 order and the whole takes about 0.3 s; with
 * jg_patch_enable(false) the sleeps block the hub, in call order, 0.4 s.
 * Run with libjuggle_preload.so in LD_PRELOAD (preload_linked links it).
 */
#include <juggle.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include "t.h"

static int order[2], norder;

static void *hello(void *arg)
{
    int ms = (int)(intptr_t)arg;

    T_EQ(usleep((useconds_t)ms * 1000), 0);
    printf("hello %d.%d\n", ms / 1000, ms / 100 % 10);
    order[norder++] = ms;
    return NULL;
}

/* Spawn f(300 ms) then f(100 ms), join both; the elapsed ns. */
static int64_t run_pair(void)
{
    struct jg_green *a, *b;
    int64_t t0 = t_now_ns();

    norder = 0;
    T_OK(jg_spawn(&a, hello, (void *)(intptr_t)300, NULL));
    T_OK(jg_spawn(&b, hello, (void *)(intptr_t)100, NULL));
    T_OK(jg_join(a, NULL, JG_FOREVER));
    T_OK(jg_join(b, NULL, JG_FOREVER));
    T_EQ(norder, 2);
    return t_now_ns() - t0;
}

static void test_patched(void)
{
    T_OK(jg_patch_enable(true));
    T_ASSERT(jg_patch_enabled());
    int64_t before = jg_patch_calls("usleep");
    T_OK(before);
    int64_t t = run_pair();
    /* The 100 ms sleep, spawned second, ended first: they overlapped. */
    T_EQ(order[0], 100);
    T_EQ(order[1], 300);
    T_ASSERT(t >= JG_MS(300));
    /* Both sleeps took the cooperative path. */
    T_EQ(jg_patch_calls("usleep") - before, 2);
}

static void test_disabled(void)
{
    T_OK(jg_patch_enable(false));
    T_ASSERT(!jg_patch_enabled());
    int64_t before = jg_patch_calls("usleep");
    int64_t t = run_pair();
    T_OK(jg_patch_enable(true));
    /* libc's usleep blocked the hub: call order, the sum of both. */
    T_EQ(order[0], 300);
    T_EQ(order[1], 100);
    T_ASSERT(t >= JG_MS(400));
    T_EQ(jg_patch_calls("usleep") - before, 0);
}

/* The same sleep from a plain pthread is libc's and counts nothing. */
static void *plain_sleep(void *arg)
{
    (void)arg;
    int64_t t0 = t_now_ns();
    T_EQ(usleep(20000), 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    return NULL;
}

static void test_plain_thread(void)
{
    pthread_t th;
    int64_t before = jg_patch_calls("usleep");

    T_EQ(pthread_create(&th, NULL, plain_sleep, NULL), 0);
    T_EQ(pthread_join(th, NULL), 0);
    T_EQ(jg_patch_calls("usleep") - before, 0);
}

static void test_bad_name(void)
{
    T_ERR(jg_patch_calls("no_such_call"), -ENOENT);
    T_ERR(jg_patch_calls(NULL), -EINVAL);
}

#ifndef PRELOAD_SEED_NO_MAIN
T_MAIN(T_CASE(test_patched), T_CASE(test_disabled), T_CASE(test_plain_thread),
       T_CASE(test_bad_name))
#endif
