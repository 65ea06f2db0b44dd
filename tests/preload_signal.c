/* SPDX-License-Identifier: MIT */
/*
 * preload_signal.c - inside a signal handler the interposers are libc
 * (DESIGN.md, Seams): a handler that interrupts a green thread and writes
 * to a full blocking pipe blocks its OS thread until a reader drains it,
 * as libc's write does; no other green thread runs inside the handler.
 * sigaction and signal report the user's own handlers; a handler left by
 * siglongjmp does not leave the patch off. Run under LD_PRELOAD.
 */
#include <juggle.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include "t.h"

static int pfd[2];
static pthread_t hub_thread;
static _Atomic int ticks;          /* the other green thread's progress */
static _Atomic int in_handler, handler_done;
static int ticks_in_handler = -1;
static ssize_t handler_wrote;
static _Atomic int drained;

/* Runs on the hub's thread, interrupting the spinning green thread. */
static void on_usr1(int sig)
{
    int t0 = atomic_load(&ticks);
    int e = errno;

    (void)sig;
    atomic_store(&in_handler, 1);
    /* The pipe is full: libc's write blocks until the reader drains it. */
    handler_wrote = write(pfd[1], "h", 1);
    ticks_in_handler = atomic_load(&ticks) - t0;
    atomic_store(&handler_done, 1);
    errno = e;
}

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&handler_done)) {
        if (jg_sleep(JG_MS(1)) < 0)
            return NULL;
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

/* Computes (never yields) until the handler has run. */
static void *spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&handler_done))
        ;
    return NULL;
}

/* A plain thread: signals the hub's thread, waits, then drains. */
static void *signaller(void *arg)
{
    char buf[4096];

    (void)arg;
    usleep(20000);
    T_EQ(pthread_kill(hub_thread, SIGUSR1), 0);
    while (!atomic_load(&in_handler))
        usleep(1000);
    /* Long enough for a 1 ms ticker to run many times, had the handler
     * parked instead of blocking. */
    usleep(50000);
    int fl = fcntl(pfd[0], F_GETFL);
    T_EQ(fcntl(pfd[0], F_SETFL, fl | O_NONBLOCK), 0);
    while (read(pfd[0], buf, sizeof(buf)) > 0)
        ;
    T_EQ(fcntl(pfd[0], F_SETFL, fl), 0);
    atomic_store(&drained, 1);
    return NULL;
}

/* Before: the handler's write parked the spinner, the ticker ran ~50
 * times inside the handler. */
static void test_handler_write_blocks_as_libc(void)
{
    struct jg_green *t, *s;
    pthread_t sig;
    struct sigaction sa = { .sa_handler = on_usr1 };

    T_ASSERT(jg_patch_enabled());
    T_EQ(pipe(pfd), 0);
    /* Fill the pipe (made non-blocking only for this), then blocking. */
    T_EQ(fcntl(pfd[1], F_SETFL, O_NONBLOCK), 0);
    while (write(pfd[1], "xxxxxxxxxxxxxxxx", 16) > 0)
        ;
    T_EQ(fcntl(pfd[1], F_SETFL, 0), 0);
    sigemptyset(&sa.sa_mask);
    T_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    hub_thread = pthread_self();
    T_OK(jg_spawn(&t, ticker, NULL, NULL));
    T_OK(jg_yield());
    T_OK(jg_spawn(&s, spinner, NULL, NULL));
    T_EQ(pthread_create(&sig, NULL, signaller, NULL), 0);
    T_OK(jg_join(s, NULL, JG_FOREVER));
    T_OK(jg_join(t, NULL, JG_FOREVER));
    T_EQ(pthread_join(sig, NULL), 0);
    fprintf(stderr, "   handler wrote %zd, %d ticks inside it\n",
            handler_wrote, ticks_in_handler);
    T_EQ(handler_wrote, 1);
    T_EQ(ticks_in_handler, 0);
    T_EQ(atomic_load(&drained), 1);
    signal(SIGUSR1, SIG_DFL);
    close(pfd[0]);
    close(pfd[1]);
}

/* ---- what sigaction and signal report ------------------------------------ */

static void h_plain(int sig)
{
    (void)sig;
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
}

static _Atomic int once_calls;

static void h_once(int sig)
{
    (void)sig;
    atomic_fetch_add(&once_calls, 1);
}

static void test_old_action_is_users(void)
{
    struct sigaction sa, old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = h_info;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    T_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
    T_EQ(sigaction(SIGUSR2, NULL, &old), 0);
    T_PEQ((void *)old.sa_sigaction, (void *)h_info);
    T_ASSERT(old.sa_flags & SA_SIGINFO);
    T_ASSERT(old.sa_flags & SA_RESTART);
    /* signal() gives the previous handler back, and installs a plain one. */
    T_PEQ((void *)signal(SIGUSR2, h_plain), (void *)h_info);
    T_EQ(sigaction(SIGUSR2, NULL, &old), 0);
    T_PEQ((void *)old.sa_handler, (void *)h_plain);
    T_EQ(old.sa_flags & SA_SIGINFO, 0);
    T_PEQ((void *)signal(SIGUSR2, SIG_IGN), (void *)h_plain);
    T_PEQ((void *)signal(SIGUSR2, SIG_DFL), (void *)SIG_IGN);
    /* A one-shot handler runs once; then the default is reported. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = h_once;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    T_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
    T_EQ(raise(SIGUSR2), 0);
    T_EQ(atomic_load(&once_calls), 1);
    T_EQ(sigaction(SIGUSR2, NULL, &old), 0);
    T_PEQ((void *)old.sa_handler, (void *)SIG_DFL);
    T_EQ(old.sa_flags & SA_SIGINFO, 0);
}

/* ---- a handler left by siglongjmp ---------------------------------------- */

static sigjmp_buf jump;

static void h_jump(int sig)
{
    (void)sig;
    siglongjmp(jump, 1);
}

static void *sleep_twice(void *arg)
{
    (void)arg;
    usleep(1000);
    usleep(1000);
    return NULL;
}

static void test_longjmp_out_of_handler(void)
{
    struct sigaction sa = { .sa_handler = h_jump };
    struct jg_green *g;

    sigemptyset(&sa.sa_mask);
    T_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
    if (sigsetjmp(jump, 1) == 0) {
        raise(SIGUSR2);
        T_ASSERT(0);
    }
    signal(SIGUSR2, SIG_DFL);
    /* Back outside: green threads' calls are cooperative again. */
    int64_t before = jg_patch_calls("usleep");
    T_OK(jg_spawn(&g, sleep_twice, NULL, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(jg_patch_calls("usleep") - before, 2);
}

static const struct t_case cases[] = {
    T_CASE(test_handler_write_blocks_as_libc),
    T_CASE(test_old_action_is_users),
    T_CASE(test_longjmp_out_of_handler),
};

int main(int argc, char **argv)
{
    /* TSan's runtime intercepts sigaction itself: it installs its own
     * handler (which the trampoline wraps) and runs the user's later, at
     * a point of its choosing outside it, and reports old actions from
     * its own table. What this file checks is then TSan's behaviour. */
    if (T_TSAN)
        T_SKIP("TSan defers signal handlers past the trampoline");
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
