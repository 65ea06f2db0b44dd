/* SPDX-License-Identifier: MIT */
/*
 * green_switch.c - greenlet-style explicit switching: jg_create + jg_switch,
 * values passed both ways, the parent chain when parents already finished,
 * switch errors, states, names and parents, and killing a switched thread.
 */
#include <juggle.h>
#include "t.h"

/* A small log of what the green threads did, in order. */
static const char *logv[64];
static int nlog;

static void lg(const char *s)
{
    T_ASSERT(nlog < 64);
    logv[nlog++] = s;
}

static void log_reset(void)
{
    nlog = 0;
}

/* ---- greenlet's red/blue ------------------------------------------------ */

static struct jg_green *red_g, *blue_g;
static void *blue_got;          /* what blue's jg_switch returned */

static void *red_fn(void *arg)
{
    T_PEQ(arg, &red_g);
    T_PEQ(jg_current(), red_g);
    T_EQ(jg_state(red_g), JG_GREEN_RUNNING);
    lg("red");
    void *v = jg_switch(blue_g, (void *)(uintptr_t)11);
    /* blue passed 22 back when it switched to us. */
    T_PEQ(v, (void *)(uintptr_t)22);
    T_EQ(jg_state(blue_g), JG_GREEN_SWITCHED);
    lg("red done");
    return (void *)(uintptr_t)0x1234;
}

static void *blue_fn(void *arg)
{
    (void)arg;
    lg("blue");
    void *v = jg_switch(red_g, (void *)(uintptr_t)22);
    blue_got = v;
    /* Killed while suspended: the switch returns an error; stop there. */
    if (JG_IS_ERR(v))
        return v;
    lg("blue done");
    return NULL;
}

static void test_redblue(void)
{
    struct jg_green *main_g = jg_current();
    size_t base = jg_count();

    log_reset();
    T_ASSERT(main_g != NULL);
    T_OK(jg_create(&red_g, red_fn, &red_g, NULL));
    T_OK(jg_create(&blue_g, blue_fn, NULL, NULL));
    T_EQ(jg_count(), base + 2);
    T_EQ(jg_state(red_g), JG_GREEN_NEW);
    T_EQ(jg_state(blue_g), JG_GREEN_NEW);
    T_PEQ(jg_parent(red_g), main_g);
    T_PEQ(jg_parent(blue_g), main_g);
    T_EQ(jg_state(main_g), JG_GREEN_RUNNING);

    /* red starts with its own arg; the value passed here is ignored. */
    void *r = jg_switch(red_g, (void *)(uintptr_t)99);
    /* red returned: control and its result come to main, its parent. */
    T_PEQ(r, (void *)(uintptr_t)0x1234);
    T_PEQ(jg_current(), main_g);
    T_EQ(nlog, 3);
    T_STREQ(logv[0], "red");
    T_STREQ(logv[1], "blue");
    T_STREQ(logv[2], "red done");
    T_EQ(jg_state(red_g), JG_GREEN_DONE);
    T_EQ(jg_state(blue_g), JG_GREEN_SWITCHED);

    /* jg_count counts green threads that have not finished. */
    T_EQ(jg_count(), base + 1);

    void *res = NULL;
    T_OK(jg_join(red_g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)0x1234);
    T_EQ(jg_count(), base + 1);

    /* Killing blue makes it ready; its jg_switch returns the error. */
    T_OK(jg_kill(blue_g));
    T_EQ(jg_state(blue_g), JG_GREEN_READY);
    res = NULL;
    T_ERR(jg_join(blue_g, &res, JG_FOREVER), -ECANCELED);
    T_PEQ(blue_got, JG_ERR(-ECANCELED));
    T_PEQ(res, JG_ERR(-ECANCELED));
    T_EQ(nlog, 3);              /* "blue done" never appended */
    T_EQ(jg_count(), base);
    T_PEQ(jg_current(), main_g);
}

/* ---- values through jg_switch ------------------------------------------ */

static struct jg_green *pp_main;
static int pp_result_obj;

/* Echo each integer back plus one, until it receives NULL. */
static void *pingpong_fn(void *arg)
{
    uintptr_t v = (uintptr_t)arg;

    for (;;) {
        void *got = jg_switch(pp_main, (void *)(v + 1));
        T_ASSERT(!JG_IS_ERR(got));
        if (!got)
            break;
        v = (uintptr_t)got;
    }
    return &pp_result_obj;
}

static void test_values(void)
{
    struct jg_green *g;

    pp_main = jg_current();
    T_OK(jg_create(&g, pingpong_fn, (void *)(uintptr_t)1, NULL));
    /* First switch: fn(arg) starts with arg = 1 and passes 2 back. */
    void *r = jg_switch(g, (void *)(uintptr_t)777);
    T_PEQ(r, (void *)(uintptr_t)2);
    uintptr_t v = 2;
    for (int i = 0; i < 1000; i++) {
        r = jg_switch(g, (void *)(v + 1));
        T_PEQ(r, (void *)(v + 2));
        T_EQ(jg_state(g), JG_GREEN_SWITCHED);
        v += 2;
    }
    /* NULL ends it: its result is what our switch returns. */
    r = jg_switch(g, NULL);
    T_PEQ(r, &pp_result_obj);
    T_EQ(jg_state(g), JG_GREEN_DONE);
    void *res = NULL;
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, &pp_result_obj);
}

/* Two non-main green threads pass pointers to each other. */
struct pair {
    struct jg_green *a, *b;
    int objs[4];
    int rounds;
};

static void *pair_a(void *arg)
{
    struct pair *p = arg;
    /* b is NEW: it starts with its own arg (p). */
    void *v = jg_switch(p->b, NULL);
    for (int i = 0; i < 100; i++) {
        T_PEQ(v, &p->objs[i % 4]);
        v = jg_switch(p->b, &p->objs[(i + 1) % 4]);
    }
    return v;
}

static void *pair_b(void *arg)
{
    struct pair *p = arg;
    void *v = jg_switch(p->a, &p->objs[0]);
    for (int i = 0; i < 100; i++) {
        T_PEQ(v, &p->objs[(i + 1) % 4]);
        p->rounds++;
        v = jg_switch(p->a, &p->objs[(i + 1) % 4]);
    }
    return NULL;
}

static void test_values_between_greens(void)
{
    static struct pair p;

    T_OK(jg_create(&p.a, pair_a, &p, NULL));
    T_OK(jg_create(&p.b, pair_b, &p, NULL));
    void *r = jg_switch(p.a, NULL);
    /* a returned (b still suspended in its switch): a's result comes to
     * main. a's last receive was b's last value. */
    T_PEQ(r, &p.objs[100 % 4]);
    T_EQ(p.rounds, 100);
    T_EQ(jg_state(p.a), JG_GREEN_DONE);
    T_EQ(jg_state(p.b), JG_GREEN_SWITCHED);
    T_OK(jg_join(p.a, NULL, JG_FOREVER));
    /* b was created by main: when it finishes, main gets its result. */
    r = jg_switch(p.b, &p.objs[2]);
    T_PEQ(r, NULL);
    T_EQ(jg_state(p.b), JG_GREEN_DONE);
    T_OK(jg_join(p.b, NULL, JG_FOREVER));
}

/* ---- the parent chain ---------------------------------------------------- */

static struct jg_green *chain_b, *chain_c;
static struct jg_green *chain_b_parent;

static void *chain_c_fn(void *arg)
{
    (void)arg;
    lg("c");
    return (void *)(uintptr_t)0xC;
}

static void *chain_b_fn(void *arg)
{
    (void)arg;
    lg("b");
    T_OK(jg_create(&chain_c, chain_c_fn, NULL, NULL));
    T_PEQ(jg_parent(chain_c), chain_b);
    return (void *)(uintptr_t)0xB;
}

static void *chain_a_fn(void *arg)
{
    (void)arg;
    lg("a");
    T_OK(jg_create(&chain_b, chain_b_fn, NULL, NULL));
    chain_b_parent = jg_parent(chain_b);
    return (void *)(uintptr_t)0xA;
}

/* main -> a -> b -> c, where a and b finish before c runs: c's result goes
 * to main, the first live ancestor. */
static void test_parent_chain(void)
{
    struct jg_green *a;
    struct jg_green *main_g = jg_current();

    log_reset();
    T_OK(jg_create(&a, chain_a_fn, NULL, NULL));
    T_PEQ(jg_switch(a, NULL), (void *)(uintptr_t)0xA);
    T_PEQ(chain_b_parent, a);
    /* a is finished; b (parent a) goes to main when it returns. */
    T_PEQ(jg_switch(chain_b, NULL), (void *)(uintptr_t)0xB);
    T_PEQ(jg_current(), main_g);
    /* c's parent b and grandparent a are finished. */
    T_PEQ(jg_switch(chain_c, NULL), (void *)(uintptr_t)0xC);
    T_PEQ(jg_current(), main_g);
    T_EQ(nlog, 3);
    T_STREQ(logv[0], "a");
    T_STREQ(logv[1], "b");
    T_STREQ(logv[2], "c");

    void *res;
    T_OK(jg_join(chain_c, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)0xC);
    T_OK(jg_join(chain_b, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)0xB);
    T_OK(jg_join(a, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)0xA);
}

/* A child that started and switched back to its parent outlives the
 * parent; when resumed later it finishes into the grandparent. */
static struct jg_green *mid_child;
static struct jg_green *mid_main;

static void *mid_child_fn(void *arg)
{
    (void)arg;
    void *v = jg_switch(jg_parent(jg_current()), (void *)(uintptr_t)5);
    /* Resumed by main, after our parent finished. */
    T_PEQ(v, (void *)(uintptr_t)6);
    return (void *)(uintptr_t)7;
}

static void *mid_parent_fn(void *arg)
{
    (void)arg;
    T_OK(jg_create(&mid_child, mid_child_fn, NULL, NULL));
    T_PEQ(jg_switch(mid_child, NULL), (void *)(uintptr_t)5);
    T_EQ(jg_state(mid_child), JG_GREEN_SWITCHED);
    return (void *)(uintptr_t)4;
}

static void test_parent_finished_child_suspended(void)
{
    struct jg_green *p;

    mid_main = jg_current();
    T_OK(jg_create(&p, mid_parent_fn, NULL, NULL));
    T_PEQ(jg_switch(p, NULL), (void *)(uintptr_t)4);
    T_EQ(jg_state(p), JG_GREEN_DONE);
    T_PEQ(jg_switch(mid_child, (void *)(uintptr_t)6), (void *)(uintptr_t)7);
    T_PEQ(jg_current(), mid_main);
    T_OK(jg_join(mid_child, NULL, JG_FOREVER));
    T_OK(jg_join(p, NULL, JG_FOREVER));
}

/* ---- switch errors -------------------------------------------------------- */

static void *ret_arg(void *arg)
{
    return arg;
}

static void *sleeper(void *arg)
{
    int *rc = arg;
    *rc = jg_sleep(JG_MS(100));
    return NULL;
}

static struct jg_green *err_main;
static void *err_got;

/* Tries to switch to main while main is parked in jg_join. */
static void *switch_to_parked_main(void *arg)
{
    (void)arg;
    err_got = jg_switch(err_main, NULL);
    /* Also to itself: it is running. */
    T_PEQ(jg_switch(jg_current(), NULL), JG_ERR(-EBUSY));
    return NULL;
}

static void test_switch_errors(void)
{
    struct jg_green *g, *s;
    int rc = 1;

    T_PEQ(jg_switch(NULL, NULL), JG_ERR(-EINVAL));
    /* The caller itself is running. */
    T_PEQ(jg_switch(jg_current(), NULL), JG_ERR(-EBUSY));

    /* Spawned, not yet run: queued ready. */
    T_OK(jg_spawn(&g, ret_arg, (void *)(uintptr_t)3, NULL));
    T_EQ(jg_state(g), JG_GREEN_READY);
    T_PEQ(jg_switch(g, NULL), JG_ERR(-EBUSY));
    void *res;
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)3);

    /* Parked in a runtime wait. */
    T_OK(jg_spawn(&s, sleeper, &rc, NULL));
    T_OK(jg_yield());
    T_EQ(jg_state(s), JG_GREEN_PARKED);
    T_PEQ(jg_switch(s, NULL), JG_ERR(-EBUSY));
    T_EQ(jg_state(s), JG_GREEN_PARKED);
    T_OK(jg_join(s, NULL, JG_FOREVER));
    T_EQ(rc, 0);

    /* Finished but not yet joined. */
    T_OK(jg_create(&g, ret_arg, (void *)(uintptr_t)8, NULL));
    T_PEQ(jg_switch(g, NULL), (void *)(uintptr_t)8);
    T_EQ(jg_state(g), JG_GREEN_DONE);
    T_PEQ(jg_switch(g, NULL), JG_ERR(-EINVAL));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)8);

    /* Main parked in jg_join is not a switch target. */
    err_main = jg_current();
    err_got = NULL;
    T_OK(jg_spawn(&g, switch_to_parked_main, NULL, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_PEQ(err_got, JG_ERR(-EBUSY));
}

/* ---- creation arguments, names, parents, counts --------------------------- */

static void *name_fn(void *arg)
{
    const char **out = arg;
    *out = jg_name(NULL);
    T_STREQ(jg_name(NULL), jg_name(jg_current()));
    return NULL;
}

static void test_create_args(void)
{
    struct jg_green *g = NULL;
    struct jg_spawn_opts bad = { .stack_model = 7 };

    T_ERR(jg_create(NULL, ret_arg, NULL, NULL), -EINVAL);
    T_ERR(jg_create(&g, NULL, NULL, NULL), -EINVAL);
    T_ERR(jg_create(&g, ret_arg, NULL, &bad), -EINVAL);
    bad.stack_model = -1;
    T_ERR(jg_create(&g, ret_arg, NULL, &bad), -EINVAL);
    T_ASSERT(jg_stack_size_default() >= 64 * 1024);
}

static void test_names(void)
{
    struct jg_green *g1, *g2, *g3;
    const char *seen = NULL;
    char buf[16] = "worker";
    struct jg_spawn_opts o = { .name = buf };

    T_ASSERT(jg_name(NULL) != NULL);
    T_STREQ(jg_name(NULL), jg_name(jg_current()));

    T_OK(jg_create(&g1, name_fn, &seen, NULL));
    T_OK(jg_create(&g2, name_fn, &seen, NULL));
    T_OK(jg_create(&g3, name_fn, &seen, &o));
    /* The name is copied. */
    strcpy(buf, "changed");
    T_ASSERT(strncmp(jg_name(g1), "green-", 6) == 0);
    T_ASSERT(strncmp(jg_name(g2), "green-", 6) == 0);
    T_ASSERT(strcmp(jg_name(g1), jg_name(g2)) != 0);
    T_STREQ(jg_name(g3), "worker");

    jg_switch(g3, NULL);
    T_STREQ(seen, "worker");
    char saved[64];
    snprintf(saved, sizeof(saved), "%s", jg_name(g1));
    jg_switch(g1, NULL);
    T_STREQ(seen, saved);
    jg_switch(g2, NULL);
    T_OK(jg_join(g1, NULL, JG_FOREVER));
    T_OK(jg_join(g2, NULL, JG_FOREVER));
    T_OK(jg_join(g3, NULL, JG_FOREVER));
}

static struct jg_green *par_seen;

static void *parent_fn(void *arg)
{
    (void)arg;
    par_seen = jg_parent(jg_current());
    return NULL;
}

static void test_parents(void)
{
    struct jg_green *main_g = jg_current();
    struct jg_green *c, *s;

    T_OK(jg_create(&c, parent_fn, NULL, NULL));
    T_PEQ(jg_parent(c), main_g);
    jg_switch(c, NULL);
    T_PEQ(par_seen, main_g);
    T_OK(jg_join(c, NULL, JG_FOREVER));

    /* A spawned green thread's parent is the hub: neither main nor NULL. */
    T_OK(jg_spawn(&s, parent_fn, NULL, NULL));
    T_ASSERT(jg_parent(s) != NULL);
    T_ASSERT(jg_parent(s) != main_g);
    struct jg_green *hub = jg_parent(s);
    T_OK(jg_join(s, NULL, JG_FOREVER));
    T_PEQ(par_seen, hub);
}

/* A created green thread killed before it ever runs never runs. */
static int never_ran;

static void *never_fn(void *arg)
{
    (void)arg;
    never_ran = 1;
    return NULL;
}

static void test_kill_created(void)
{
    struct jg_green *g;
    size_t base = jg_count();
    void *res = (void *)1;

    never_ran = 0;
    T_OK(jg_create(&g, never_fn, NULL, NULL));
    T_EQ(jg_count(), base + 1);
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, &res, JG_FOREVER), -ECANCELED);
    T_EQ(never_ran, 0);
    T_EQ(jg_count(), base);
}

/* Main joining a created green thread nobody will ever start: nothing can
 * wake main, so -EDEADLK, and the handle stays valid. */
static void test_join_unstarted_deadlocks(void)
{
    struct jg_green *g;
    void *res;

    T_OK(jg_create(&g, ret_arg, (void *)(uintptr_t)42, NULL));
    T_ERR(jg_join(g, &res, JG_FOREVER), -EDEADLK);
    T_EQ(jg_state(g), JG_GREEN_NEW);
    T_PEQ(jg_switch(g, NULL), (void *)(uintptr_t)42);
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)42);
}

/* Many switches, to catch a leak or a drift in the saved context. */
static void *counter_fn(void *arg)
{
    struct jg_green *m = arg;
    uint64_t n = 0;

    for (;;) {
        void *v = jg_switch(m, (void *)(uintptr_t)(n * 31 + 7));
        if (v == NULL)
            return (void *)(uintptr_t)n;
        T_PEQ(v, (void *)(uintptr_t)(n + 1));
        n++;
    }
}

static void test_many_switches(void)
{
    struct jg_green *g;
    long n = t_scale(200000);

    T_OK(jg_create(&g, counter_fn, jg_current(), NULL));
    T_PEQ(jg_switch(g, NULL), (void *)(uintptr_t)7);
    for (long i = 1; i <= n; i++)
        T_PEQ(jg_switch(g, (void *)(uintptr_t)i),
              (void *)(uintptr_t)(i * 31 + 7));
    T_PEQ(jg_switch(g, NULL), (void *)(uintptr_t)n);
    T_OK(jg_join(g, NULL, JG_FOREVER));
}

T_MAIN(T_CASE(test_redblue), T_CASE(test_values),
       T_CASE(test_values_between_greens), T_CASE(test_parent_chain),
       T_CASE(test_parent_finished_child_suspended),
       T_CASE(test_switch_errors), T_CASE(test_create_args),
       T_CASE(test_names), T_CASE(test_parents), T_CASE(test_kill_created),
       T_CASE(test_join_unstarted_deadlocks), T_CASE(test_many_switches))
