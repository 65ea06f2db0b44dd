/* SPDX-License-Identifier: MIT */
/*
 * green_finish_hooks.c - what runs as a green thread finishes (done-
 * callbacks of its future, a group's on_done hook, green-local destructors)
 * may not park: a blocking call there returns -EPERM, and the green thread
 * still finishes whole - joined with its result, DONE, nothing leaked. A
 * hook may spawn a green thread to do blocking work. DESIGN.md, "Seams".
 */
#include <juggle.h>
#include "t.h"

static int sleep_rc, spawned_ran;

static void *later(void *arg)
{
    (void)arg;
    T_OK(jg_sleep(JG_MS(1)));   /* a fresh green thread may block */
    spawned_ran++;
    return NULL;
}

/* Tries to block, then hands blocking work to a new green thread. */
static void block_in_hook(void)
{
    sleep_rc = jg_sleep(JG_MS(5));
    T_OK(jg_spawn(NULL, later, NULL, NULL));
}

static void *work(void *arg)
{
    return arg;
}

static void done_cb(void *arg, struct jg_future *f)
{
    (void)f;
    (void)arg;
    block_in_hook();
}

static void run_future_callback(int model)
{
    struct jg_spawn_opts o = { .stack_model = model };
    struct jg_future *f;
    struct jg_green *g;
    void *res = NULL;

    sleep_rc = 1;
    spawned_ran = 0;
    T_OK(jg_spawn(&g, work, (void *)0x1234, &o));
    T_OK(jg_green_future(g, &f));
    T_OK(jg_future_add_done_callback(f, done_cb, NULL));
    /* Before: -EAGAIN here, the green thread never reached DONE. */
    T_OK(jg_join(g, &res, JG_SEC(5)));
    T_PEQ(res, (void *)0x1234);
    T_ERR(sleep_rc, -EPERM);
    T_EQ(jg_future_state(f), JG_FUTURE_DONE);
    jg_future_unref(f);
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(spawned_ran, 1);
}

static void test_future_callback_cannot_park(void)
{
    run_future_callback(JG_STACK_DEDICATED);
    run_future_callback(JG_STACK_SLICED);
}

static void on_done(void *ctx, struct jg_green *g, void *result, int status)
{
    (void)ctx;
    (void)g;
    (void)result;
    (void)status;
    block_in_hook();
}

static void test_group_on_done_cannot_park(void)
{
    struct jg_group_opts go = { .on_done = on_done };
    struct jg_group *grp;
    struct jg_green *g;
    void *res = NULL;

    sleep_rc = 1;
    spawned_ran = 0;
    T_OK(jg_group_create(&grp, &go));
    T_OK(jg_group_spawn(grp, &g, work, (void *)0x99, JG_FOREVER));
    T_OK(jg_join(g, &res, JG_SEC(5)));
    T_PEQ(res, (void *)0x99);
    T_ERR(sleep_rc, -EPERM);
    T_OK(jg_group_join(grp, JG_SEC(5)));
    T_OK(jg_group_destroy(grp));
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(spawned_ran, 1);
}

static jg_local_key key;

static void dtor(void *v)
{
    T_PEQ(v, (void *)0x77);
    block_in_hook();
}

static void *with_local(void *arg)
{
    T_OK(jg_local_set(key, (void *)0x77));
    return arg;
}

static void test_local_destructor_cannot_park(void)
{
    struct jg_green *g;
    void *res = NULL;

    sleep_rc = 1;
    spawned_ran = 0;
    T_OK(jg_local_key_create(&key, dtor));
    T_OK(jg_spawn(&g, with_local, (void *)0x55, NULL));
    T_OK(jg_join(g, &res, JG_SEC(5)));
    T_PEQ(res, (void *)0x55);
    T_ERR(sleep_rc, -EPERM);
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(spawned_ran, 1);
}

/* jg_yield and jg_switch from a hook are refused the same way. */
static int yield_rc;
static void *switch_val;

static void yield_cb(void *arg, struct jg_future *f)
{
    (void)f;
    yield_rc = jg_yield();
    switch_val = jg_switch((struct jg_green *)arg, NULL);
}

static void *parked_target(void *arg)
{
    (void)arg;
    return jg_switch(jg_parent(jg_current()), NULL);
}

static void test_hook_cannot_yield_or_switch(void)
{
    struct jg_green *g, *t;
    struct jg_future *f;

    T_OK(jg_create(&t, parked_target, NULL, NULL));
    T_ASSERT(!JG_IS_ERR(jg_switch(t, NULL)));  /* t is now SWITCHED */
    T_OK(jg_spawn(&g, work, NULL, NULL));
    T_OK(jg_green_future(g, &f));
    T_OK(jg_future_add_done_callback(f, yield_cb, t));
    T_OK(jg_join(g, NULL, JG_SEC(5)));
    T_ERR(yield_rc, -EPERM);
    T_ASSERT(JG_IS_ERR(switch_val) && JG_ERR_CODE(switch_val) == -EPERM);
    jg_future_unref(f);
    T_OK(jg_kill(t));
    T_ERR(jg_join(t, NULL, JG_SEC(5)), -ECANCELED);
}

T_MAIN(T_CASE(test_future_callback_cannot_park),
       T_CASE(test_group_on_done_cannot_park),
       T_CASE(test_local_destructor_cannot_park),
       T_CASE(test_hook_cannot_yield_or_switch))
