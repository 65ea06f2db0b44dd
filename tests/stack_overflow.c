/* SPDX-License-Identifier: MIT */
/*
 * stack_overflow.c - a green thread that recurses without bound is reported
 * ("juggle: green thread 'deep' overflowed its N-byte stack") and the
 * process dies by SIGABRT; faults that are not overflows go to the handler
 * the user installed before juggle, or kill as they would without juggle.
 * Every case runs in a forked child whose stderr the parent reads.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "juggle.h"
#include "t.h"

/* Recursion the compiler can neither unroll into a loop nor tail-call. */
static volatile int keep_going = 1;

static __attribute__((noinline)) int recurse(int n)
{
    volatile char frame[512];

    frame[n % 512] = (char)n;
    if (keep_going)
        return recurse(n + 1) + frame[(n * 7) % 512];
    return frame[0];
}

static void *deep_fn(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

/* Address 16: not near any guard (volatile: the compiler cannot see it). */
static volatile int *volatile stray_ptr = (volatile int *)(uintptr_t)16;

static void *null_write_fn(void *arg)
{
    (void)arg;
    *stray_ptr = 1;
    return NULL;
}

/* Spawn fn as a green thread called name, with a stack of size (0 =
 * default), and join it from the main context. */
static void run_green(jg_green_fn fn, const char *name, size_t size)
{
    struct jg_spawn_opts o = { .name = name, .stack_size = size };
    struct jg_green *g;

    T_OK(jg_spawn(&g, fn, NULL, &o));
    T_OK(jg_join(g, NULL, JG_FOREVER));
}

/* Run body in a child with stderr on a pipe; return its wait status and
 * what it wrote. */
static int in_child(void (*body)(void), char *out, size_t cap)
{
    int fds[2];
    size_t len = 0;
    ssize_t n;
    int st;

    T_OK(pipe(fds));
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        body();
        _exit(0);
    }
    close(fds[1]);
    while (len + 1 < cap && (n = read(fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    T_EQ(waitpid(pid, &st, 0), pid);
    fprintf(stderr, "   child said: %s", len ? out : "(nothing)\n");
    return st;
}

static void expect_overflow(int st, const char *out, const char *name,
                            size_t size)
{
    char want[160];

    snprintf(want, sizeof(want),
             "juggle: green thread '%s' overflowed its %zu-byte stack\n",
             name, size);
    if (!strstr(out, want))
        T_FAIL_("child's stderr lacks \"%s\"", want);
    T_ASSERT(WIFSIGNALED(st));
    T_EQ(WTERMSIG(st), SIGABRT);
}

static void deep_default(void)
{
    run_green(deep_fn, "deep", 0);
}

static void overflow_reported(void)
{
    char out[4096];
    int st = in_child(deep_default, out, sizeof(out));

    expect_overflow(st, out, "deep", jg_stack_size_default());
}

static void deep_small(void)
{
    run_green(deep_fn, "small", 64 * 1024);
}

/* The size in the report is the green thread's own, not the default. */
static void overflow_small_stack(void)
{
    char out[4096];
    int st = in_child(deep_small, out, sizeof(out));

    expect_overflow(st, out, "small", 64 * 1024);
}

static void *thread_main(void *arg)
{
    (void)arg;
    run_green(deep_fn, "worker-deep", 0);
    return NULL;
}

static void deep_in_thread(void)
{
    pthread_t t;

    T_EQ(pthread_create(&t, NULL, thread_main, NULL), 0);
    pthread_join(t, NULL);
}

/* Another OS thread's hub gets its own sigaltstack: the report works there
 * too (the handler cannot run on the overflowed stack itself). */
static void overflow_other_thread(void)
{
    char out[4096];
    int st = in_child(deep_in_thread, out, sizeof(out));

    expect_overflow(st, out, "worker-deep", jg_stack_size_default());
}

/* write(2) from a signal handler; its result does not matter here. */
static void say(const char *s, size_t n)
{
    if (write(STDERR_FILENO, s, n) < 0)
        _exit(2);
}

static void user_info_handler(int sig, siginfo_t *si, void *uc)
{
    static const char yes[] = "user handler: SIGSEGV at 16\n";
    static const char no[] = "user handler: wrong signal or address\n";

    (void)uc;
    if (sig == SIGSEGV && (uintptr_t)si->si_addr == 16) {
        say(yes, sizeof(yes) - 1);
        _exit(42);
    }
    say(no, sizeof(no) - 1);
    _exit(1);
}

static void user_plain_handler(int sig)
{
    static const char msg[] = "plain user handler\n";

    say(msg, sizeof(msg) - 1);
    _exit(sig == SIGSEGV ? 43 : 1);
}

static void segv_with_info_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = user_info_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    T_OK(sigaction(SIGSEGV, &sa, NULL));
    /* juggle starts after the user's handler is in place. */
    run_green(null_write_fn, "stray", 0);
}

static void segv_with_plain_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = user_plain_handler;
    sigemptyset(&sa.sa_mask);
    T_OK(sigaction(SIGSEGV, &sa, NULL));
    run_green(null_write_fn, "stray", 0);
}

/* A fault that is not an overflow reaches the user's earlier handler, with
 * its siginfo when it asked for one. */
static void chains_to_user_handler(void)
{
    char out[4096];
    int st = in_child(segv_with_info_handler, out, sizeof(out));

    T_ASSERT(WIFEXITED(st));
    T_EQ(WEXITSTATUS(st), 42);
    T_ASSERT(strstr(out, "user handler: SIGSEGV at 16"));
    T_ASSERT(!strstr(out, "overflowed"));

    st = in_child(segv_with_plain_handler, out, sizeof(out));
    T_ASSERT(WIFEXITED(st));
    T_EQ(WEXITSTATUS(st), 43);
    T_ASSERT(strstr(out, "plain user handler"));
}

static void segv_no_handler(void)
{
    run_green(null_write_fn, "stray", 0);
}

/* With no earlier handler the fault kills as it would without juggle
 * (under ASan, ASan's own handler was the earlier one and reports it). */
static void stray_fault_default(void)
{
    char out[4096];
    int st = in_child(segv_no_handler, out, sizeof(out));

    T_ASSERT(!strstr(out, "overflowed"));
    if (T_SANITIZED) {
        T_ASSERT(!WIFEXITED(st) || WEXITSTATUS(st) != 0);
    } else {
        T_ASSERT(WIFSIGNALED(st));
        T_EQ(WTERMSIG(st), SIGSEGV);
    }
}

T_MAIN(T_CASE(overflow_reported), T_CASE(overflow_small_stack),
       T_CASE(overflow_other_thread), T_CASE(chains_to_user_handler),
       T_CASE(stray_fault_default))
