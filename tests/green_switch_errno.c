/* SPDX-License-Identifier: MIT */
/*
 * green_switch_errno.c - errno is per OS thread and green threads share
 * it: a green thread suspended in jg_switch finds errno as it left it when
 * it resumes, whoever set it meanwhile and however it is resumed (the
 * switch's fast path, its checked path, a kill through the hub), as after
 * a park. Both stack models.
 */
#include <errno.h>
#include <juggle.h>
#include "t.h"

static struct jg_green *main_g;

/* Sets its own errno, switches back to main, and checks it on return. */
static void *bouncer(void *arg)
{
    int mine = (int)(intptr_t)arg;

    for (int i = 0; i < 100; i++) {
        errno = mine + i;
        void *v = jg_switch(main_g, NULL);
        if (JG_IS_ERR(v))
            return v;
        if (errno != mine + i)
            return JG_ERR(-EPROTO);
    }
    return NULL;
}

static void run_pingpong(int model)
{
    struct jg_spawn_opts o = { .stack_model = model };
    struct jg_green *a, *b;
    void *ra = (void *)1, *rb = (void *)1;

    main_g = jg_current();
    T_OK(jg_create(&a, bouncer, (void *)(intptr_t)1000, &o));
    T_OK(jg_create(&b, bouncer, (void *)(intptr_t)5000, &o));
    for (int i = 0; i < 100; i++) {
        errno = 77;
        T_ASSERT(!JG_IS_ERR(jg_switch(a, NULL)));
        /* Before: errno was a's (1000 + i), not what main left. */
        T_EQ(errno, 77);
        errno = 88;
        T_ASSERT(!JG_IS_ERR(jg_switch(b, NULL)));
        T_EQ(errno, 88);
    }
    T_ASSERT(!JG_IS_ERR(jg_switch(a, NULL)));
    T_ASSERT(!JG_IS_ERR(jg_switch(b, NULL)));
    T_OK(jg_join(a, &ra, JG_FOREVER));
    T_OK(jg_join(b, &rb, JG_FOREVER));
    T_PEQ(ra, NULL);            /* each saw its own errno every time */
    T_PEQ(rb, NULL);
}

static void test_switch_keeps_errno(void)
{
    run_pingpong(JG_STACK_DEDICATED);
    run_pingpong(JG_STACK_SLICED);
}

/* Suspended in jg_switch, then resumed by a kill through the hub. */
static int seen;

static void *suspended(void *arg)
{
    (void)arg;
    errno = 4242;
    void *v = jg_switch(main_g, NULL);
    seen = errno;
    return v;
}

static void test_killed_switcher_keeps_errno(void)
{
    struct jg_green *g;

    main_g = jg_current();
    T_OK(jg_create(&g, suspended, NULL, NULL));
    T_ASSERT(!JG_IS_ERR(jg_switch(g, NULL)));
    errno = 1;
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(seen, 4242);
}

T_MAIN(T_CASE(test_switch_keeps_errno),
       T_CASE(test_killed_switcher_keeps_errno))
