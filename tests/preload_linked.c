/* SPDX-License-Identifier: MIT */
/*
 * preload_linked.c - the seeds' example again, with libjuggle_preload.so
 * linked at build time (-ljuggle_preload) instead of LD_PRELOAD: the
 * program's own copy of the runtime (libjuggle.a) attaches to it.
 */
#include <dlfcn.h>
#define PRELOAD_SEED_NO_MAIN
#include "preload_seed.c"

static void test_linked_not_preloaded(void)
{
    const char *p = getenv("LD_PRELOAD");

    T_ASSERT(!p || !strstr(p, "juggle_preload"));
    /* The library is in the process because the program needs it. */
    T_ASSERT(dlsym(RTLD_DEFAULT, "jg__preload_attach") != NULL);
    T_ASSERT(jg_patch_enabled());
}

T_MAIN(T_CASE(test_linked_not_preloaded), T_CASE(test_patched),
       T_CASE(test_disabled), T_CASE(test_plain_thread),
       T_CASE(test_bad_name))
