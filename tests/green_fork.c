/* SPDX-License-Identifier: MIT */
/*
 * green_fork.c - fork() in a process with a hub and parked green threads: in
 * the child only the forking green thread survives, as main, on a fresh hub
 * that works (sleep, spawn, join, fd waits); the parent's green threads never
 * run in the child; the parent's hub, timers and fd watchers keep working.
 */
#include <juggle.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

/* Counters shared with the child: who ran the parent's tickers. */
struct shared {
    _Atomic long parent_ticks;
    _Atomic long child_ticks;
};
static struct shared *S;
static pid_t parent_pid;

enum { TICKERS = 4, TICKS = 20 };

static void shared_init(void)
{
    if (!S) {
        S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        T_ASSERT(S != MAP_FAILED);
    }
    atomic_store(&S->parent_ticks, 0);
    atomic_store(&S->child_ticks, 0);
    parent_pid = getpid();
}

/* A parent green thread that ticks every 5 ms. */
static void *ticker(void *arg)
{
    (void)arg;
    for (int k = 0; k < TICKS; k++) {
        int rc = jg_sleep(JG_MS(5));
        if (rc < 0)
            return JG_ERR(rc);
        if (getpid() == parent_pid)
            atomic_fetch_add(&S->parent_ticks, 1);
        else
            atomic_fetch_add(&S->child_ticks, 1);
    }
    return (void *)(uintptr_t)TICKS;
}

/* A parent green thread parked reading a pipe across the fork. */
static void *reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 0;
    ssize_t n = jg_read(fd, &c, 1, JG_SEC(10));
    if (n < 0)
        return JG_ERR((int)n);
    return (void *)(uintptr_t)(unsigned char)c;
}

/* In the child, report a failure through the exit status. */
#define C_CHECK(e) do { \
        if (!(e)) { \
            fprintf(stderr, "child %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #e); \
            _exit(1); \
        } \
    } while (0)

static void *triple(void *arg)
{
    if (jg_sleep(JG_MS(1)) < 0)
        return JG_ERR(-ECANCELED);
    return (void *)((uintptr_t)arg * 3);
}

static void *child_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    if (jg_sleep(JG_MS(5)) < 0)
        return JG_ERR(-ECANCELED);
    size_t done = 0;
    int rc = jg_write(fd, "k", 1, &done, JG_SEC(5));
    return rc < 0 ? JG_ERR(rc) : NULL;
}

/* What the child checks, on its fresh hub; never returns. */
static void child_work(void)
{
    struct jg_green *me = jg_current();

    C_CHECK(me != NULL);
    C_CHECK(jg_state(me) == JG_GREEN_RUNNING);
    /* The parent's green threads did not come along. */
    C_CHECK(jg_count() == 0);

    int64_t t0 = t_now_ns();
    C_CHECK(jg_sleep(JG_MS(60)) == 0);
    C_CHECK(t_now_ns() - t0 >= JG_MS(60));

    struct jg_green *g[3];
    for (int i = 0; i < 3; i++)
        C_CHECK(jg_spawn(&g[i], triple, (void *)(uintptr_t)(i + 1),
                         NULL) == 0);
    C_CHECK(jg_count() == 3);
    for (int i = 0; i < 3; i++) {
        void *res = NULL;
        C_CHECK(jg_join(g[i], &res, JG_FOREVER) == 0);
        C_CHECK(res == (void *)(uintptr_t)((i + 1) * 3));
    }
    C_CHECK(jg_count() == 0);

    /* The fresh loop watches fds: read what a green thread writes. */
    int p[2];
    C_CHECK(pipe(p) == 0);
    struct jg_green *w;
    C_CHECK(jg_spawn(&w, child_writer, (void *)(intptr_t)p[1], NULL) == 0);
    char c = 0;
    C_CHECK(jg_read(p[0], &c, 1, JG_SEC(5)) == 1);
    C_CHECK(c == 'k');
    C_CHECK(jg_join(w, NULL, JG_FOREVER) == 0);

    /* Nothing the parent left parked ran here, even while we slept. */
    C_CHECK(jg_sleep(JG_MS(30)) == 0);
    C_CHECK(atomic_load(&S->child_ticks) == 0);
    _exit(0);
}

/* Wait for the child without blocking the hub: the parent's green threads
 * keep running meanwhile. */
static int reap(pid_t pid)
{
    int st = 0;
    int64_t end = t_now_ns() + JG_SEC(20);

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 || t_now_ns() > end)
            return -1;
        if (jg_sleep(JG_MS(2)) < 0)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The parent's side after the child is gone: everything still works. */
static void parent_after(struct jg_green **t, struct jg_green *rd, int wfd)
{
    void *res;

    /* The reader was registered with the loop before the fork; the child
     * must not have touched that registration. */
    T_EQ(jg_state(rd), JG_GREEN_PARKED);
    T_EQ(write(wfd, "p", 1), 1);
    T_OK(jg_join(rd, &res, JG_SEC(5)));
    T_PEQ(res, (void *)(uintptr_t)'p');

    for (int i = 0; i < TICKERS; i++) {
        T_OK(jg_join(t[i], &res, JG_FOREVER));
        T_PEQ(res, (void *)(uintptr_t)TICKS);
    }
    T_EQ(atomic_load(&S->parent_ticks), TICKERS * TICKS);
    T_EQ(atomic_load(&S->child_ticks), 0);

    /* New work after all that. */
    struct jg_green *g;
    T_OK(jg_spawn(&g, triple, (void *)(uintptr_t)5, NULL));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(uintptr_t)15);
}

static void start_parent_work(struct jg_green **t, struct jg_green **rd,
                              int p[2])
{
    shared_init();
    T_OK(pipe(p));
    for (int i = 0; i < TICKERS; i++)
        T_OK(jg_spawn(&t[i], ticker, NULL, NULL));
    T_OK(jg_spawn(rd, reader, (void *)(intptr_t)p[0], NULL));
    /* Let them all park (tickers on timers, the reader on its fd). */
    T_OK(jg_sleep(JG_MS(1)));
    T_EQ(jg_state(*rd), JG_GREEN_PARKED);
}

static void test_fork_from_main(void)
{
    struct jg_green *t[TICKERS], *rd;
    int p[2];

    start_parent_work(t, &rd, p);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0)
        child_work();
    T_EQ(reap(pid), 0);
    /* The parent's tickers ran while it waited for the child. */
    T_ASSERT(atomic_load(&S->parent_ticks) > 0);
    parent_after(t, rd, p[1]);
    T_OK(jg_close(p[0]));
    T_OK(jg_close(p[1]));
}

/* A green thread (not main) forks: in the child it is the main context. */
static void *forker(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return JG_ERR(-errno);
    if (pid == 0)
        child_work();
    int st = reap(pid);
    return (void *)(intptr_t)(st + 1);
}

static void test_fork_from_green(void)
{
    struct jg_green *t[TICKERS], *rd, *f;
    int p[2];
    void *res;

    start_parent_work(t, &rd, p);
    T_OK(jg_spawn(&f, forker, NULL, NULL));
    T_OK(jg_join(f, &res, JG_FOREVER));
    /* reap() gave 0: the child's checks passed. */
    T_PEQ(res, (void *)(intptr_t)1);
    parent_after(t, rd, p[1]);
    T_OK(jg_close(p[0]));
    T_OK(jg_close(p[1]));
}

/* A sliced green thread forks: its frames must come along intact. */
static void test_fork_from_sliced(void)
{
    struct jg_green *t[TICKERS], *rd, *f;
    struct jg_spawn_opts sl = { .stack_model = JG_STACK_SLICED };
    int p[2];
    void *res;

    start_parent_work(t, &rd, p);
    T_OK(jg_spawn(&f, forker, NULL, &sl));
    T_OK(jg_join(f, &res, JG_FOREVER));
    T_PEQ(res, (void *)(intptr_t)1);
    parent_after(t, rd, p[1]);
    T_OK(jg_close(p[0]));
    T_OK(jg_close(p[1]));
}

/* A loop callback (the hub's context) forks. In the child the hub goes on
 * and main, parked in a sleep, sleeps out its time there. Before: the
 * child re-laid the hub's stack under the running callback (SIGSEGV). */
static pid_t cb_pid = -1;

static void fork_cb(struct jg_timer *t)
{
    (void)t;
    fflush(NULL);
    cb_pid = fork();
}

static void test_fork_from_loop_callback(void)
{
    struct jg_green *t[TICKERS], *rd;
    struct jg_timer tm;
    int p[2];

    start_parent_work(t, &rd, p);
    jg_timer_init(&tm, fork_cb);
    T_OK(jg_timer_start(jg_loop_default(), &tm, JG_MS(5), 0));
    int64_t t0 = t_now_ns();
    T_OK(jg_sleep(JG_MS(40)));
    T_ASSERT(t_now_ns() - t0 >= JG_MS(40));
    T_ASSERT(cb_pid >= 0);
    if (cb_pid == 0)
        child_work();
    T_EQ(reap(cb_pid), 0);
    parent_after(t, rd, p[1]);
    T_OK(jg_close(p[0]));
    T_OK(jg_close(p[1]));
}

/* The forking green thread becomes the child's main and ends it by
 * returning (exit(), so LeakSanitizer runs in ASan builds). Before: the old
 * main's descriptor leaked, and LSan failed the child. */
static void *forker_returns(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return JG_ERR(-errno);
    if (pid == 0) {
        struct jg_green *g;
        void *res = NULL;
        C_CHECK(jg_spawn(&g, triple, (void *)(uintptr_t)7, NULL) == 0);
        C_CHECK(jg_join(g, &res, JG_FOREVER) == 0);
        C_CHECK(res == (void *)(uintptr_t)21);
        return NULL;            /* the child exits with status 0 */
    }
    return (void *)(intptr_t)(reap(pid) + 1);
}

static void test_forked_green_returns_cleanly(void)
{
    struct jg_green *f;
    void *res;

    shared_init();
    T_OK(jg_spawn(&f, forker_returns, NULL, NULL));
    T_OK(jg_join(f, &res, JG_FOREVER));
    T_PEQ(res, (void *)(intptr_t)1);
}

/* Main parks on an event; a green thread forks and, in the child (where
 * it is main), sets that event: the old main's node is still on the
 * event's queue. Before: the old main's descriptor had been freed, and the
 * child crashed waking it. */
static struct jg_event *fork_ev;

static void *fork_then_set(void *arg)
{
    (void)arg;
    T_OK(jg_sleep(JG_MS(5)));   /* main is parked in its wait now */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        C_CHECK(jg_event_set(fork_ev) == 0);
        C_CHECK(jg_sleep(JG_MS(5)) == 0);
        _exit(0);
    }
    int st = reap(pid);
    T_OK(jg_event_set(fork_ev));
    return (void *)(intptr_t)(st + 1);
}

static void test_forked_child_wakes_old_mains_wait(void)
{
    struct jg_green *g;
    void *res;

    fork_ev = malloc(sizeof *fork_ev);
    T_ASSERT(fork_ev);
    T_OK(jg_event_init(fork_ev));
    T_OK(jg_spawn(&g, fork_then_set, NULL, NULL));
    T_OK(jg_event_wait(fork_ev, JG_FOREVER));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, (void *)(intptr_t)1);
    T_OK(jg_event_destroy(fork_ev));
    free(fork_ev);
}

/* A done-callback forks (the green thread is finishing): the child goes
 * on with main. Before: it panicked, "main (state 5) cannot be woken". */
static pid_t done_pid = -1;

static void fork_in_callback(void *arg, struct jg_future *f)
{
    (void)f;
    (void)arg;
    fflush(NULL);
    done_pid = fork();
}

static void test_fork_from_done_callback(void)
{
    struct jg_future *f;
    struct jg_green *g;

    T_OK(jg_spawn(&g, triple, (void *)(uintptr_t)2, NULL));
    T_OK(jg_green_future(g, &f));
    T_OK(jg_future_add_done_callback(f, fork_in_callback, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_ASSERT(done_pid >= 0);
    if (done_pid == 0) {
        /* The child: main goes on, with a working hub. */
        struct jg_green *c;
        void *res = NULL;
        C_CHECK(jg_spawn(&c, triple, (void *)(uintptr_t)3, NULL) == 0);
        C_CHECK(jg_join(c, &res, JG_FOREVER) == 0);
        C_CHECK(res == (void *)(uintptr_t)9);
        _exit(0);
    }
    jg_future_unref(f);
    T_EQ(reap(done_pid), 0);
}

/* ---- the parent's parked green threads never run in the child --------- */

static _Atomic int *ran_in_child;
static pid_t parent_pid;
static struct jg_event *inherited_ev;

/* Reap pid while this hub keeps running; its exit status, or -1. */
static int reap_green(pid_t pid)
{
    int st = 0;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 || jg_sleep(JG_MS(2)) < 0)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A green thread of the parent (not main), parked across the fork. */
static void *parked_waiter(void *arg)
{
    int rc = jg_event_wait(inherited_ev, JG_FOREVER);

    (void)arg;
    if (getpid() != parent_pid)
        atomic_fetch_add(ran_in_child, 1);
    return rc < 0 ? JG_ERR(rc) : NULL;
}

static void *forker_sets(void *arg)
{
    (void)arg;
    T_OK(jg_sleep(JG_MS(5)));   /* the waiter is parked now */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child sets the event the parent's waiter sleeps on, and
         * its timers run: the waiter must stay parked here for good. */
        C_CHECK(jg_event_set(inherited_ev) == 0);
        C_CHECK(jg_sleep(JG_MS(20)) == 0);
        C_CHECK(atomic_load(ran_in_child) == 0);
        _exit(0);
    }
    int st = reap_green(pid);
    T_OK(jg_event_set(inherited_ev));
    return (void *)(intptr_t)(st + 1);
}

static void test_fork_child_never_runs_parents_waiter(void)
{
    struct jg_green *w, *f;
    void *res;

    ran_in_child = mmap(NULL, sizeof(*ran_in_child), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_ASSERT(ran_in_child != MAP_FAILED);
    parent_pid = getpid();
    inherited_ev = malloc(sizeof *inherited_ev);
    T_OK(jg_event_init(inherited_ev));
    T_OK(jg_spawn(&w, parked_waiter, NULL, NULL));
    T_OK(jg_spawn(&f, forker_sets, NULL, NULL));
    T_OK(jg_join(f, &res, JG_FOREVER));
    T_OK(jg_join(w, NULL, JG_FOREVER));
    T_EQ(atomic_load(ran_in_child), 0);
    T_PEQ(res, (void *)(intptr_t)1);        /* the child exited 0 */
    T_OK(jg_event_destroy(inherited_ev));
    free(inherited_ev);
}

T_MAIN(T_CASE(test_fork_from_main), T_CASE(test_fork_from_green),
       T_CASE(test_fork_from_sliced), T_CASE(test_fork_from_loop_callback),
       T_CASE(test_forked_green_returns_cleanly),
       T_CASE(test_forked_child_wakes_old_mains_wait),
       T_CASE(test_fork_from_done_callback),
       T_CASE(test_fork_child_never_runs_parents_waiter))
