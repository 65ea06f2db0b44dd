/* SPDX-License-Identifier: MIT */
/*
 * subprocess.c - programs with pipes: 10 MiB through cat both ways at once
 * (green and plain thread), a child that closes stdin early (-EPIPE, no
 * SIGPIPE death), wait timeouts then kill, exit codes and signals, missing
 * programs, the child's clean signal state and fds, env/cwd/pass_fds,
 * stderr routing, resuming after a timeout, and a hub that keeps serving
 * while a green thread waits on a slow child.
 */
#include <juggle.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <unistd.h>
#include "t.h"
#include "t_late.h"

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const struct jg_subprocess_opts PIPES = {
    .stdin_mode = JG_STDIO_PIPE, .stdout_mode = JG_STDIO_PIPE,
    .stderr_mode = JG_STDIO_PIPE,
};

/* Open fds of this process (to catch leaks). */
static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static char *pattern(size_t n)
{
    char *p = malloc(n);
    T_ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i * 131 + (i >> 12));
    return p;
}

/* 10 MiB into cat and back at once: any order of blocking would deadlock
 * on the 64 KiB pipes. */
static void cat_roundtrip(size_t n)
{
    struct jg_subprocess *p;
    struct jg_subprocess_output r;
    char *in = pattern(n);

    T_OK(jg_subprocess_spawn(&p, ARGV("cat"), &PIPES));
    T_ASSERT(jg_subprocess_pid(p) > 0);
    T_OK(jg_subprocess_communicate(p, &r, in, n, JG_SEC(30)));
    T_EQ(r.out_len, n);
    T_ASSERT(memcmp(r.out, in, n) == 0);
    T_EQ(r.out[n], '\0');
    T_EQ(r.err_len, 0);
    T_ASSERT(r.err != NULL);
    T_EQ(r.in_written, n);
    T_EQ(r.status, 0);
    jg_subprocess_output_destroy(&r);
    T_PEQ(r.out, NULL);
    T_ERR(jg_subprocess_stdin(p), -EBADF);
    T_ERR(jg_subprocess_stdout(p), -EBADF);
    T_OK(jg_subprocess_destroy(p));
    free(in);
}

static void test_cat_10mib_green(void)
{
    int fds = count_fds();
    cat_roundtrip((size_t)10 << 20);
    T_EQ(count_fds(), fds);
}

static void *cat_thread(void *arg)
{
    (void)arg;
    cat_roundtrip((size_t)10 << 20);
    return NULL;
}

/* The same from a plain OS thread (no hub: ppoll and blocking waits). */
static void test_cat_10mib_plain_thread(void)
{
    pthread_t t;
    T_EQ(pthread_create(&t, NULL, cat_thread, NULL), 0);
    T_EQ(pthread_join(t, NULL), 0);
}

/* ---- a child that stops reading ------------------------------------------ */

static void test_stdin_closed_early(void)
{
    struct jg_subprocess *p;
    struct jg_subprocess_output r;
    size_t n = 1 << 20;
    char *in = pattern(n);

    /* The default disposition: a stray SIGPIPE would kill this test. */
    signal(SIGPIPE, SIG_DFL);

    /* head takes 10 bytes and exits: communicate drops the rest. */
    T_OK(jg_subprocess_spawn(&p, ARGV("head", "-c", "10"), &PIPES));
    T_OK(jg_subprocess_communicate(p, &r, in, n, JG_SEC(10)));
    T_EQ(r.out_len, 10);
    T_ASSERT(memcmp(r.out, in, 10) == 0);
    T_ASSERT(r.in_written >= 10 && r.in_written < n);
    T_EQ(r.status, 0);
    jg_subprocess_output_destroy(&r);
    T_OK(jg_subprocess_destroy(p));

    /* true never reads: once it is gone, writing gives -EPIPE. */
    T_OK(jg_subprocess_spawn(&p, ARGV("true"), &PIPES));
    int st = -1;
    T_OK(jg_subprocess_wait(p, &st, JG_SEC(10)));
    T_EQ(st, 0);
    size_t done = 1;
    T_ERR(jg_write(jg_subprocess_stdin(p), in, n, &done, JG_SEC(5)), -EPIPE);
    T_EQ(done, 0);
    T_OK(jg_subprocess_close_stdin(p));
    T_ERR(jg_subprocess_close_stdin(p), -EBADF);
    T_OK(jg_subprocess_destroy(p));

    /* And through communicate, with the child gone before we start. */
    T_OK(jg_subprocess_spawn(&p, ARGV("true"), &PIPES));
    T_OK(jg_subprocess_wait(p, NULL, JG_SEC(10)));
    T_OK(jg_subprocess_communicate(p, &r, in, n, JG_SEC(10)));
    T_EQ(r.in_written, 0);
    T_EQ(r.out_len, 0);
    jg_subprocess_output_destroy(&r);
    T_OK(jg_subprocess_destroy(p));
    free(in);
}

/* ---- waiting, signals, exit status --------------------------------------- */

static void test_wait_timeout_then_kill(void)
{
    struct jg_subprocess *p;
    int st = 12345;

    T_OK(jg_subprocess_spawn(&p, ARGV("sleep", "10"), NULL));
    /* Timeout 0: a wait that is not over, as everywhere in juggle. */
    T_ERR(jg_subprocess_wait(p, &st, 0), -ETIMEDOUT);
    T_ERR(jg_subprocess_communicate(p, NULL, NULL, 0, 0), -ETIMEDOUT);
    int64_t t0 = t_now_ns();
    /* At its timeout, not later: before a longer sentinel (t_late.h). */
    struct jg_green *late = t_late_start(JG_MS(500), NULL, 0);
    T_ERR(jg_subprocess_wait(p, &st, JG_MS(100)), -ETIMEDOUT);
    int64_t dt = t_now_ns() - t0;
    T_ASSERT(dt >= JG_MS(100));
    t_late_check(late);
    T_EQ(st, 12345);
    T_OK(jg_subprocess_kill(p));
    T_OK(jg_subprocess_wait(p, &st, JG_SEC(10)));
    T_EQ(st, -SIGKILL);
    /* Reaped: waiting again repeats the status, signals are no-ops. */
    st = 0;
    T_OK(jg_subprocess_wait(p, &st, 0));
    T_EQ(st, -SIGKILL);
    T_OK(jg_subprocess_terminate(p));
    T_ERR(jg_subprocess_signal(p, -1), -EINVAL);
    T_ERR(jg_subprocess_wait(p, &st, -2), -EINVAL);
    T_OK(jg_subprocess_destroy(p));

    T_OK(jg_subprocess_spawn(&p, ARGV("sleep", "10"), NULL));
    T_OK(jg_subprocess_terminate(p));
    T_OK(jg_subprocess_wait(p, &st, JG_SEC(10)));
    T_EQ(st, -SIGTERM);
    T_OK(jg_subprocess_destroy(p));

    /* free kills and reaps a child still running: no zombie. */
    T_OK(jg_subprocess_spawn(&p, ARGV("sleep", "10"), NULL));
    pid_t pid = jg_subprocess_pid(p);
    T_OK(jg_subprocess_destroy(p));
    T_ASSERT(kill(pid, 0) < 0 && errno == ESRCH);
}

static void test_exit_status(void)
{
    struct jg_subprocess_output r;

    T_OK(jg_subprocess_run(&r, ARGV("sh", "-c", "exit 3"), NULL, NULL, 0,
                           JG_SEC(10)));
    T_EQ(r.status, 3);
    T_PEQ(r.out, NULL);             /* not piped */
    T_OK(jg_subprocess_run(&r, ARGV("sh", "-c", "exit 255"), NULL, NULL, 0,
                           JG_SEC(10)));
    T_EQ(r.status, 255);
    T_OK(jg_subprocess_run(&r, ARGV("true"), NULL, NULL, 0, JG_SEC(10)));
    T_EQ(r.status, 0);
    T_OK(jg_subprocess_run(&r, ARGV("sh", "-c", "kill -USR1 $$"), NULL, NULL,
                           0, JG_SEC(10)));
    T_EQ(r.status, -SIGUSR1);
    /* run's timeout kills the child. */
    int64_t t0 = t_now_ns();
    /* The child is killed at the timeout, not waited out (10 s). */
    struct jg_green *late = t_late_start(JG_SEC(2), NULL, 0);
    T_ERR(jg_subprocess_run(&r, ARGV("sleep", "10"), NULL, NULL, 0,
                            JG_MS(50)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    t_late_check(late);
}

static void test_missing_program(void)
{
    struct jg_subprocess *p = NULL;
    struct jg_subprocess_opts o = PIPES;
    int fds = count_fds();

    T_ERR(jg_subprocess_spawn(&p, ARGV("/nonexistent/program"), &PIPES),
          -ENOENT);
    T_ERR(jg_subprocess_spawn(&p, ARGV("no-such-program-jg"), &PIPES),
          -ENOENT);
    /* Not executable (even root needs one x bit), and not a program. */
    char path[] = "/tmp/jg-subprocess-XXXXXX";
    int tfd = mkstemp(path);
    T_ASSERT(tfd >= 0);
    T_EQ(write(tfd, "junk\n", 5), 5);
    close(tfd);
    T_OK(chmod(path, 0644));
    T_ERR(jg_subprocess_spawn(&p, ARGV(path), NULL), -EACCES);
    T_OK(chmod(path, 0755));
    T_ERR(jg_subprocess_spawn(&p, ARGV(path), NULL), -ENOEXEC);
    unlink(path);
    o.cwd = "/nonexistent/dir";
    T_ERR(jg_subprocess_spawn(&p, ARGV("true"), &o), -ENOENT);
    T_PEQ(p, NULL);
    /* Nothing leaked by the failures. */
    T_EQ(count_fds(), fds);

    T_ERR(jg_subprocess_spawn(NULL, ARGV("true"), NULL), -EINVAL);
    T_ERR(jg_subprocess_spawn(&p, NULL, NULL), -EINVAL);
    T_ERR(jg_subprocess_spawn(&p, ((const char *const[]){ NULL }), NULL),
          -EINVAL);
    o = PIPES;
    o.stdout_mode = 9;
    T_ERR(jg_subprocess_spawn(&p, ARGV("true"), &o), -EINVAL);
    o = PIPES;
    o.stdin_mode = JG_STDIO_STDOUT;
    T_ERR(jg_subprocess_spawn(&p, ARGV("true"), &o), -EINVAL);
    int one = 1;
    o = PIPES;
    o.pass_fds = &one;
    o.npass_fds = 1;
    T_ERR(jg_subprocess_spawn(&p, ARGV("true"), &o), -EINVAL);
    T_ERR(jg_subprocess_wait(NULL, NULL, 0), -EINVAL);
    T_ERR(jg_subprocess_communicate(NULL, NULL, NULL, 0, 0), -EINVAL);
    T_ERR(jg_subprocess_destroy(NULL), -EINVAL);
    T_EQ(count_fds(), fds);
}

/* ---- what the child starts with ------------------------------------------ */

static void test_child_signal_state(void)
{
    struct jg_subprocess_output r;
    struct jg_subprocess_opts o = { .stdout_mode = JG_STDIO_PIPE };
    sigset_t set, old;

    /* juggle's threads block everything; users ignore SIGPIPE. */
    sigfillset(&set);
    T_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    int rc = jg_subprocess_run(
        &r, ARGV("sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"),
        &o, NULL, 0, JG_SEC(10));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    T_OK(rc);
    T_EQ(r.status, 0);
    T_STREQ(r.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    jg_subprocess_output_destroy(&r);
}

static void test_child_fds_env_cwd(void)
{
    struct jg_subprocess_output r;
    struct jg_subprocess_opts o = { .stdout_mode = JG_STDIO_PIPE };
    struct jg_shm *s;

    /* An fd without close-on-exec does not reach the child. */
    T_EQ(dup2(2, 50), 50);
    T_OK(jg_subprocess_run(&r, ARGV("sh", "-c",
        "test -e /proc/self/fd/50 && echo open || echo closed"), &o, NULL,
        0, JG_SEC(10)));
    T_STREQ(r.out, "closed\n");
    jg_subprocess_output_destroy(&r);

    /* pass_fds does, even a close-on-exec one: a shm region to a program
     * that reads it by its fd number. */
    T_OK(jg_shm_create(&s, 9));
    memcpy(jg_shm_addr(s), "hello shm", 9);
    int fds[2] = { 50, jg_shm_fd(s) };
    char cmd[128];
    snprintf(cmd, sizeof cmd, "cat /proc/self/fd/%d; test -e /proc/self/fd/50"
             " && echo +50", fds[1]);
    o.pass_fds = fds;
    o.npass_fds = 2;
    T_OK(jg_subprocess_run(&r, ARGV("sh", "-c", cmd), &o, NULL, 0,
                           JG_SEC(10)));
    T_STREQ(r.out, "hello shm+50\n");
    jg_subprocess_output_destroy(&r);
    close(50);
    T_OK(jg_shm_destroy(s));

    /* env replaces the environment; cwd is where the child starts. */
    o = (struct jg_subprocess_opts){ .stdout_mode = JG_STDIO_PIPE };
    o.env = ARGV("JGTEST=42", "PATH=/usr/bin:/bin");
    o.cwd = "/";
    T_OK(jg_subprocess_run(&r, ARGV("sh", "-c", "echo $JGTEST $HOME; pwd"),
                           &o, NULL, 0, JG_SEC(10)));
    T_STREQ(r.out, "42\n/\n");
    jg_subprocess_output_destroy(&r);
}

static void test_stderr_routing(void)
{
    struct jg_subprocess_output r;
    struct jg_subprocess_opts o = PIPES;
    const char *const *argv = ARGV("sh", "-c", "echo out; echo err >&2");

    o.stdin_mode = JG_STDIO_NULL;
    T_OK(jg_subprocess_run(&r, argv, &o, NULL, 0, JG_SEC(10)));
    T_STREQ(r.out, "out\n");
    T_STREQ(r.err, "err\n");
    jg_subprocess_output_destroy(&r);

    o.stderr_mode = JG_STDIO_STDOUT;
    T_OK(jg_subprocess_run(&r, argv, &o, NULL, 0, JG_SEC(10)));
    T_STREQ(r.out, "out\nerr\n");
    T_PEQ(r.err, NULL);
    jg_subprocess_output_destroy(&r);

    o.stdout_mode = JG_STDIO_NULL;
    o.stderr_mode = JG_STDIO_PIPE;
    T_OK(jg_subprocess_run(&r, argv, &o, NULL, 0, JG_SEC(10)));
    T_PEQ(r.out, NULL);
    T_STREQ(r.err, "err\n");
    jg_subprocess_output_destroy(&r);

    /* Input to a child whose stdin is not a pipe is a caller error. */
    T_ERR(jg_subprocess_run(&r, argv, &o, "x", 1, JG_SEC(10)), -EINVAL);
}

/* A timeout keeps what was read; after a kill, communicate collects it. */
static void test_communicate_resume(void)
{
    struct jg_subprocess *p;
    struct jg_subprocess_output r;

    T_OK(jg_subprocess_spawn(&p,
        ARGV("sh", "-c", "echo partial; exec sleep 10"), &PIPES));
    int64_t t0 = t_now_ns();
    T_ERR(jg_subprocess_communicate(p, &r, NULL, 0, JG_MS(200)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(200));
    T_OK(jg_subprocess_kill(p));
    T_OK(jg_subprocess_communicate(p, &r, NULL, 0, JG_SEC(10)));
    T_STREQ(r.out, "partial\n");
    T_EQ(r.status, -SIGKILL);
    jg_subprocess_output_destroy(&r);
    T_OK(jg_subprocess_destroy(p));
}

/* ---- the hub keeps serving ----------------------------------------------- */

static _Atomic long ticks;
static _Atomic int slow_done;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&slow_done)) {
        if (jg_sleep(JG_MS(5)) < 0)
            return JG_ERR(-EIO);
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

static void *slow_child(void *arg)
{
    struct jg_subprocess_output r;
    struct jg_subprocess *p;
    int rc, st;
    (void)arg;

    rc = jg_subprocess_run(&r, ARGV("sh", "-c", "sleep 0.3; echo done"),
                           &PIPES, "in", 2, JG_SEC(10));
    if (rc == 0 && (r.status != 0 || !r.out || strcmp(r.out, "done\n")))
        rc = -EBADMSG;
    jg_subprocess_output_destroy(&r);
    /* And a bare wait on a slow child. */
    if (rc == 0 && (rc = jg_subprocess_spawn(&p, ARGV("sleep", "0.2"),
                                             NULL)) == 0) {
        rc = jg_subprocess_wait(p, &st, JG_SEC(10));
        if (rc == 0 && st != 0)
            rc = -EBADMSG;
        jg_subprocess_destroy(p);
    }
    atomic_store(&slow_done, 1);
    return rc ? JG_ERR(rc) : NULL;
}

static void test_hub_not_blocked(void)
{
    struct jg_green *t, *s;

    T_OK(jg_spawn(&t, ticker, NULL, NULL));
    T_OK(jg_spawn(&s, slow_child, NULL, NULL));
    int64_t t0 = t_now_ns();
    T_OK(jg_join(s, NULL, JG_SEC(30)));
    int64_t dt = t_now_ns() - t0;
    T_OK(jg_join(t, NULL, JG_SEC(5)));
    T_ASSERT(dt >= JG_MS(500));
    /* 500 ms of child time, 5 ms ticks: the ticker ran meanwhile. A wait
     * that blocked the hub would leave it at most a tick before and one
     * after; counted, not timed, so a loaded machine cannot fail it. */
    T_ASSERT(atomic_load(&ticks) >= 5);
}

/* A write error on the stdin pipe other than EPIPE is the call's: here
 * the pipe's number names a read-only file, so writing gives EBADF (the
 * child sees its stdin end and exits; the error must not be lost to the
 * wait for that exit). */
static void test_feed_error_reported(void)
{
    struct jg_subprocess *p;
    struct jg_subprocess_output r = { 0 };
    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);

    T_ASSERT(ro >= 0);
    T_OK(jg_subprocess_spawn(&p, ARGV("cat"), &PIPES));
    T_ASSERT(dup2(ro, jg_subprocess_stdin(p)) >= 0);
    close(ro);
    T_ERR(jg_subprocess_communicate(p, &r, "abc", 3, JG_SEC(10)), -EBADF);
    T_OK(jg_subprocess_kill(p));
    T_OK(jg_subprocess_destroy(p));
}

T_MAIN(T_CASE(test_cat_10mib_green), T_CASE(test_cat_10mib_plain_thread),
       T_CASE(test_stdin_closed_early), T_CASE(test_wait_timeout_then_kill),
       T_CASE(test_exit_status), T_CASE(test_missing_program),
       T_CASE(test_child_signal_state), T_CASE(test_child_fds_env_cwd),
       T_CASE(test_stderr_routing), T_CASE(test_communicate_resume),
       T_CASE(test_hub_not_blocked), T_CASE(test_feed_error_reported))
