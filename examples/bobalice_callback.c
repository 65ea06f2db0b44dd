/* SPDX-License-Identifier: MIT */
/*
 * bobalice_callback.c - the seeds' bob/alice as callbacks (the JavaScript
 * way, or libev's): no thread of control waits at all. Each "sleep" is a
 * timer on the event loop; its callback says hello and hands the result to
 * an on_result callback. The loop returns once no timer is left.
 *
 * Prints "hello alice", "alice done!", "hello bob", "bob done!" in about
 * 0.3 s: both timers run on one loop at once.
 */
#include <juggle.h>
#include <stdio.h>

struct greeter {
    struct jg_timer timer;      /* first: the callback gets this pointer */
    const char *name, *done;
    void (*on_result)(const char *msg);
};

static void on_result(const char *msg)
{
    printf("%s\n", msg);
}

/* Runs on the loop when the greeter's timer expires. */
static void greet(struct jg_timer *t)
{
    struct greeter *g = (struct greeter *)t;

    printf("hello %s\n", g->name);
    /* A one-shot timer is already stopped here; the loop forgets it and
     * returns when none is left. */
    g->on_result(g->done);
}

int main(void)
{
    struct greeter bob = { .name = "bob", .done = "bob done!",
                           .on_result = on_result };
    struct greeter alice = { .name = "alice", .done = "alice done!",
                             .on_result = on_result };
    struct jg_loop *loop = jg_loop_default();
    int64_t t0 = jg_now();
    int rc;

    if (!loop) {
        fprintf(stderr, "no event loop\n");
        return 1;
    }
    jg_timer_init(&bob.timer, greet);
    jg_timer_init(&alice.timer, greet);
    /* One-shot timers (repeat 0), in nanoseconds. */
    if ((rc = jg_timer_start(loop, &bob.timer, JG_MS(300), 0)) < 0 ||
        (rc = jg_timer_start(loop, &alice.timer, JG_MS(100), 0)) < 0) {
        fprintf(stderr, "jg_timer_start: %s\n", jg_strerror(rc));
        return 1;
    }
    /* Run until no active watcher is left: both timers have fired. */
    if ((rc = jg_loop_run(loop, JG_RUN_DEFAULT)) < 0) {
        fprintf(stderr, "jg_loop_run: %s\n", jg_strerror(rc));
        return 1;
    }
    printf("elapsed %.3f s\n", (double)(jg_now() - t0) / 1e9);
    return 0;
}
