/* SPDX-License-Identifier: MIT */
/*
 * bobalice.c - two green threads sleep concurrently on one OS thread: bob
 * for 0.3 s, alice for 0.1 s. Alice speaks first, and the whole program
 * takes about 0.3 s, not 0.4 s, because the sleeps overlap on the hub.
 */
#include <juggle.h>
#include <stdio.h>

struct greeting {
    const char *name;
    int64_t sleep_ns;
};

static void *greet(void *arg)
{
    const struct greeting *g = arg;
    /* jg_sleep parks only this green thread; the hub runs the others. */
    int rc = jg_sleep(g->sleep_ns);
    if (rc < 0)
        return JG_ERR(rc);
    printf("hello %s\n", g->name);
    return NULL;
}

int main(void)
{
    static const struct greeting bob = { "bob", JG_MS(300) };
    static const struct greeting alice = { "alice", JG_MS(100) };
    struct jg_green *b, *a;
    int64_t t0 = jg_now();
    int rc;

    /* jg_spawn makes each ready; neither runs until main blocks. */
    if ((rc = jg_spawn(&b, greet, (void *)&bob, NULL)) < 0 ||
        (rc = jg_spawn(&a, greet, (void *)&alice, NULL)) < 0) {
        fprintf(stderr, "jg_spawn: %s\n", jg_strerror(rc));
        return 1;
    }
    /* Joining from main runs the hub until each has finished. */
    if ((rc = jg_join(b, NULL, JG_FOREVER)) < 0 ||
        (rc = jg_join(a, NULL, JG_FOREVER)) < 0) {
        fprintf(stderr, "jg_join: %s\n", jg_strerror(rc));
        return 1;
    }
    printf("elapsed %.3f s\n", (double)(jg_now() - t0) / 1e9);
    return 0;
}
