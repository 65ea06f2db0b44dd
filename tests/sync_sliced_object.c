/* SPDX-License-Identifier: MIT */
/*
 * sync_sliced_object.c - an object on a parked sliced green thread's stack
 * (a jg_event a sliced parent shares with its child) is diagnosed: the
 * process aborts with a message that says the object lives on a parked
 * sliced stack, where before the child got a silent -EINVAL or waited out
 * its timeout. The same objects on the heap, or on a dedicated stack,
 * work. Each diagnosed case runs in a child process.
 */
#include <juggle.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

static const struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };

/* A green thread with only a shallow frame: the parent's object, deeper
 * down the shared stack, lies below its stack pointer. */
static void *child_waits(void *arg)
{
    return (void *)(intptr_t)jg_event_wait(arg, JG_MS(200));
}

static void *child_sets(void *arg)
{
    return (void *)(intptr_t)jg_event_set(arg);
}

static jg_green_fn child_fn;

/* The parent keeps its event a few frames deep, shares it with a sliced
 * child, and parks. */
static void *deep(int depth)
{
    volatile char pad[2048];
    struct jg_event ev;
    struct jg_green *c;
    void *res = NULL;

    pad[0] = (char)depth;
    if (depth > 0)
        return deep(depth - 1);
    T_OK(jg_event_init(&ev));
    T_OK(jg_spawn(&c, child_fn, &ev, &sliced));
    if (child_fn == child_sets)
        (void)jg_event_wait(&ev, JG_MS(200));
    else
        T_OK(jg_sleep(JG_MS(50)));
    T_OK(jg_join(c, &res, JG_FOREVER));
    (void)pad[0];
    return res;
}

static void *parent(void *arg)
{
    (void)arg;
    return deep(4);
}

/* Run the scenario in a child process; return its stderr. */
static char *run_child(jg_green_fn fn, int *status)
{
    static char out[4096];
    int p[2];
    size_t got = 0;
    ssize_t n;

    T_EQ(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        struct jg_green *g;
        dup2(p[1], 2);
        child_fn = fn;
        if (jg_spawn(&g, parent, NULL, &sliced) == 0)
            (void)jg_join(g, NULL, JG_FOREVER);
        _exit(0);
    }
    close(p[1]);
    while (got < sizeof out - 1 &&
           (n = read(p[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = 0;
    close(p[0]);
    T_EQ(waitpid(pid, status, 0), pid);
    return out;
}

static void expect_diagnosis(jg_green_fn fn)
{
    int st = 0;
    char *err = run_child(fn, &st);

    /* Before: exit 0 - the child's wait failed quietly (-EINVAL) or
     * timed out. */
    T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    if (!strstr(err, "on the stack of a parked sliced green thread"))
        T_FAIL_("no diagnosis in the child's stderr: %s", err);
}

/* The sliced child waits on its parked parent's event. */
static void test_wait_on_parked_sliced_object(void)
{
    expect_diagnosis(child_waits);
}

/* The sliced child sets the event its parked parent waits on. */
static void test_set_parked_sliced_object(void)
{
    expect_diagnosis(child_sets);
}

/* The correct ways: the shared event on the heap, or on a dedicated
 * stack, with sliced green threads around. */
static void *heap_parent(void *arg)
{
    struct jg_event *ev = malloc(sizeof *ev);
    struct jg_green *c;
    void *res = (void *)1;

    (void)arg;
    T_ASSERT(ev);
    T_OK(jg_event_init(ev));
    T_OK(jg_spawn(&c, child_waits, ev, &sliced));
    T_OK(jg_sleep(JG_MS(10)));
    T_OK(jg_event_set(ev));
    T_OK(jg_join(c, &res, JG_FOREVER));
    T_OK(jg_event_destroy(ev));
    free(ev);
    return res;
}

static void *dedicated_parent(void *arg)
{
    struct jg_event ev;
    struct jg_green *c;
    void *res = (void *)1;

    (void)arg;
    T_OK(jg_event_init(&ev));
    T_OK(jg_spawn(&c, child_waits, &ev, &sliced));
    T_OK(jg_sleep(JG_MS(10)));
    T_OK(jg_event_set(&ev));
    T_OK(jg_join(c, &res, JG_FOREVER));
    T_OK(jg_event_destroy(&ev));
    return res;
}

static void test_heap_or_dedicated_objects_work(void)
{
    struct jg_green *g;
    void *res = (void *)1;

    T_OK(jg_spawn(&g, heap_parent, NULL, &sliced));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, NULL);           /* the child's wait returned 0 */
    res = (void *)1;
    T_OK(jg_spawn(&g, dedicated_parent, NULL, NULL));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, NULL);
}

T_MAIN(T_CASE(test_wait_on_parked_sliced_object),
       T_CASE(test_set_parked_sliced_object),
       T_CASE(test_heap_or_dedicated_objects_work))
