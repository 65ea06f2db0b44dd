/* SPDX-License-Identifier: MIT */
/*
 * green_names.c - small things users read: the time units keep fractions
 * (JG_SEC(0.5) is half a second, not 0), every green-thread state has a
 * name, and jg_version() is what the header's JG_VERSION_* say.
 */
#include <juggle.h>
#include <stdio.h>
#include "t.h"

/* Before: (int64_t)(x) came first, so JG_SEC(0.5) was 0 - a timeout of 0
 * that polls instead of waiting half a second. */
static void test_units_keep_fractions(void)
{
    T_EQ(JG_SEC(0.5), 500000000LL);
    T_EQ(JG_MS(1.5), 1500000LL);
    T_EQ(JG_US(2.5), 2500LL);
    T_EQ(JG_SEC(3), 3000000000LL);
    T_EQ(JG_MS(250), 250000000LL);
    T_EQ(JG_NS(7), 7);
    int64_t t0 = t_now_ns();
    T_OK(jg_sleep(JG_SEC(0.05)));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
}

static void *park(void *arg)
{
    (void)arg;
    T_OK(jg_sleep(JG_MS(1)));
    return NULL;
}

static void test_state_names(void)
{
    struct jg_green *g;

    T_STREQ(jg_state_name(JG_GREEN_NEW), "new");
    T_STREQ(jg_state_name(JG_GREEN_READY), "ready");
    T_STREQ(jg_state_name(JG_GREEN_RUNNING), "running");
    T_STREQ(jg_state_name(JG_GREEN_SWITCHED), "switched");
    T_STREQ(jg_state_name(JG_GREEN_PARKED), "parked");
    T_STREQ(jg_state_name(JG_GREEN_DONE), "done");
    T_STREQ(jg_state_name(-1), "unknown");
    T_STREQ(jg_state_name(99), "unknown");
    T_STREQ(jg_state_name(jg_state(jg_current())), "running");
    T_OK(jg_spawn(&g, park, NULL, NULL));
    T_STREQ(jg_state_name(jg_state(g)), "ready");
    T_OK(jg_yield());
    T_STREQ(jg_state_name(jg_state(g)), "parked");
    T_OK(jg_join(g, NULL, JG_FOREVER));
}

static void test_version_matches_header(void)
{
    char want[32];

    snprintf(want, sizeof want, "%d.%d.%d", JG_VERSION_MAJOR,
             JG_VERSION_MINOR, JG_VERSION_PATCH);
    T_STREQ(jg_version(), want);
}

T_MAIN(T_CASE(test_units_keep_fractions), T_CASE(test_state_names),
       T_CASE(test_version_matches_header))
