/* SPDX-License-Identifier: MIT */
/*
 * process.c - jg_process (multiprocessing.Process): output and exit codes,
 * join with a timeout, terminate and kill (negative signal exit codes),
 * a join from a green thread parks only it, default signal state in the
 * child, destroy of a running child leaves no zombie, bad input; the fork
 * server's table of child entries (a kind with no entry is refused, in
 * the parent and in a re-executed child).
 */
#include <juggle.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "forkserver.h"
#include "t.h"
#include "t_late.h"

extern char **environ;

static int t_echo(const void *in, size_t n, struct jg_task_out *out)
{
    int rc = jg_task_out_write(out, "echo:", 5);
    return rc < 0 ? rc : jg_task_out_write(out, in, n);
}
JG_TASK("echo", t_echo)

static int t_fail(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    return jg_task_fail(out, -EDOM, "expected failure");
}
JG_TASK("fail", t_fail)

static int t_exit7(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    (void)out;
    _exit(7);
}
JG_TASK("exit7", t_exit7)

static int t_hang(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    (void)out;
    for (;;)
        pause();
    return 0;
}
JG_TASK("hang", t_hang)

/* Reports the child's signal state: blocked mask empty, SIGINT default. */
static int t_sigstate(const void *in, size_t n, struct jg_task_out *out)
{
    sigset_t cur;
    struct sigaction sa;
    int32_t r[2];
    (void)in;
    (void)n;
    sigprocmask(SIG_SETMASK, NULL, &cur);
    sigaction(SIGINT, NULL, &sa);
    r[0] = sigismember(&cur, SIGTERM) + sigismember(&cur, SIGUSR1);
    r[1] = sa.sa_handler == SIG_DFL;
    return jg_task_out_write(out, r, sizeof(r));
}
JG_TASK("sigstate", t_sigstate)

static void test_output_and_exitcodes(void)
{
    struct jg_process *p;
    const void *o;
    size_t n;
    int code;

    T_OK(jg_process_start(&p, "echo", "hello", 5));
    T_ASSERT(jg_process_pid(p) > 0 && jg_process_pid(p) != getpid());
    T_OK(jg_process_join(p, JG_SEC(20)));
    T_ASSERT(!jg_process_alive(p));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, 0);
    T_OK(jg_process_output(p, &o, &n));
    T_EQ(n, 10);
    T_ASSERT(memcmp(o, "echo:hello", 10) == 0);
    jg_process_destroy(p);

    T_OK(jg_process_start(&p, "fail", NULL, 0));
    T_OK(jg_process_join(p, JG_SEC(20)));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, 1);
    T_ERR(jg_process_output(p, &o, &n), -ECHILD);
    jg_process_destroy(p);

    T_OK(jg_process_start(&p, "exit7", NULL, 0));
    T_OK(jg_process_join(p, JG_FOREVER));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, 7);
    jg_process_destroy(p);

    /* Large input, through a memfd. */
    size_t big = 3u << 20;
    char *in = malloc(big);
    T_ASSERT(in);
    for (size_t i = 0; i < big; i++)
        in[i] = (char)('a' + i % 26);
    T_OK(jg_process_start(&p, "echo", in, big));
    T_OK(jg_process_join(p, JG_SEC(20)));
    T_OK(jg_process_output(p, &o, &n));
    T_EQ(n, big + 5);
    T_ASSERT(memcmp((const char *)o + 5, in, big) == 0);
    jg_process_destroy(p);
    free(in);
}

static void test_join_timeout_terminate_kill(void)
{
    struct jg_process *p;
    int code;

    T_OK(jg_process_start(&p, "hang", NULL, 0));
    T_ERR(jg_process_exitcode(p, &code), -EBUSY);
    int64_t t0 = t_now_ns();
    /* At its timeout, not later: before a longer sentinel (t_late.h). */
    struct jg_green *late = t_late_start(JG_SEC(1), NULL, 0);
    T_ERR(jg_process_join(p, JG_MS(100)), -ETIMEDOUT);
    int64_t el = t_now_ns() - t0;
    T_ASSERT(el >= JG_MS(100));
    t_late_check(late);
    T_ERR(jg_process_join(p, 0), -ETIMEDOUT);
    T_ASSERT(jg_process_alive(p));
    T_OK(jg_process_terminate(p));
    T_OK(jg_process_join(p, JG_SEC(20)));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, -SIGTERM);
    T_ERR(jg_process_kill(p), -ESRCH);
    jg_process_destroy(p);

    T_OK(jg_process_start(&p, "hang", NULL, 0));
    T_OK(jg_process_kill(p));
    T_OK(jg_process_join(p, JG_SEC(20)));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, -SIGKILL);
    jg_process_destroy(p);
}

static void test_child_signal_state(void)
{
    sigset_t block, old;
    struct jg_process *p;
    const void *o;
    size_t n;
    int32_t r[2];

    /* Our mask and SIGINT disposition must not leak into the child. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    void (*prev)(int) = signal(SIGINT, SIG_IGN);
    T_OK(jg_process_start(&p, "sigstate", NULL, 0));
    signal(SIGINT, prev);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    T_OK(jg_process_join(p, JG_SEC(20)));
    T_OK(jg_process_output(p, &o, &n));
    T_EQ(n, sizeof(r));
    memcpy(r, o, sizeof(r));
    T_EQ(r[0], 0);
    T_EQ(r[1], 1);
    jg_process_destroy(p);
}

/* ---- join from a green thread parks only it ---- */

static _Atomic int ticks;
static _Atomic int joined;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&joined)) {
        if (jg_sleep(JG_MS(5)) < 0)
            break;
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

static void *joiner(void *arg)
{
    struct jg_process *p = arg;
    int rc = jg_process_join(p, JG_SEC(20));
    atomic_store(&joined, 1);
    return JG_ERR(rc);
}

static int t_sleep300(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    (void)out;
    usleep(300000);
    return 0;
}
JG_TASK("sleep300", t_sleep300)

static void test_green_join_parks_only_it(void)
{
    struct jg_process *p;
    struct jg_green *a, *b;
    void *res;
    int code;

    atomic_store(&ticks, 0);
    atomic_store(&joined, 0);
    T_OK(jg_process_start(&p, "sleep300", NULL, 0));
    T_OK(jg_spawn(&a, joiner, p, NULL));
    T_OK(jg_spawn(&b, ticker, NULL, NULL));
    T_OK(jg_join(a, &res, JG_SEC(30)));
    T_EQ(JG_ERR_CODE(res), 0);
    T_OK(jg_join(b, NULL, JG_SEC(30)));
    /* The hub kept serving the ticker during the 300 ms join. */
    T_ASSERT(atomic_load(&ticks) >= 10);
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, 0);
    jg_process_destroy(p);

    /* A timed-out green join parks and comes back with -ETIMEDOUT. */
    T_OK(jg_process_start(&p, "hang", NULL, 0));
    int64_t t0 = t_now_ns();
    T_ERR(jg_process_join(p, JG_MS(50)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    jg_process_destroy(p);
}

static void test_destroy_running_no_zombie(void)
{
    struct jg_process *p;
    T_OK(jg_process_start(&p, "hang", NULL, 0));
    pid_t pid = jg_process_pid(p);
    jg_process_destroy(p);
    /* Reaped: the pid is no child of ours any more. */
    T_ASSERT(waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD);
}

static void test_bad_input(void)
{
    struct jg_process *p;
    int code;
    const void *o;
    size_t n;

    T_ERR(jg_process_start(&p, "no-such-task", NULL, 0), -ENOENT);
    T_ERR(jg_process_start(NULL, "echo", NULL, 0), -EINVAL);
    T_ERR(jg_process_start(&p, NULL, NULL, 0), -EINVAL);
    T_ERR(jg_process_start(&p, "echo", NULL, 4), -EINVAL);
    T_ERR(jg_process_join(NULL, 0), -EINVAL);
    T_ERR(jg_process_exitcode(NULL, &code), -EINVAL);
    T_ERR(jg_process_output(NULL, &o, &n), -EINVAL);
    T_ERR(jg_process_signal(NULL, SIGTERM), -EINVAL);
    T_OK(jg_process_start(&p, "echo", "x", 1));
    T_ERR(jg_process_join(p, -5), -EINVAL);
    T_ERR(jg_process_signal(p, -1), -EINVAL);
    T_OK(jg_process_join(p, JG_SEC(20)));
    jg_process_destroy(p);
    jg_process_destroy(NULL);
}

/*
 * A start of a kind with no registered entry is -EINVAL. This program
 * makes no process pool, so its static link (libjuggle.a) leaves the pool's
 * objects out, and with them the worker kind's registration: only the kind
 * it starts, jg_process's, is in its table.
 */
static void test_kind_without_entry_einval(void)
{
    pid_t pid;
    int pidfd;

    T_ERR(jg__child_start(0, NULL, 0, &pid, &pidfd), -EINVAL);
    T_ERR(jg__child_start(-1, NULL, 0, &pid, &pidfd), -EINVAL);
    T_ERR(jg__child_start(JG__CHILD_KINDS, NULL, 0, &pid, &pidfd), -EINVAL);
    T_ERR(jg__child_start(JG__CHILD_WORKER, NULL, 0, &pid, &pidfd),
          -EINVAL);
}

/* Re-execute this program as a child of `marker` ("kind:fds"); its exit
 * status, and its stderr in err. */
static int run_marked_child(const char *marker, char *err, size_t size)
{
    size_t ne = 0, k = 0;
    int fds[2], st;
    pid_t pid;

    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 2, sizeof(*envp));
    T_ASSERT(envp);
    for (size_t i = 0; i < ne; i++)
        envp[k++] = environ[i];
    envp[k] = (char *)marker;
    T_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = { (char *)"process", NULL };
    fflush(NULL);
    T_EQ(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size &&
           (n = read(fds[0], err + got, size - 1 - got)) > 0)
        got += (size_t)n;
    err[got] = '\0';
    close(fds[0]);
    T_EQ(waitpid(pid, &st, 0), pid);
    T_ASSERT(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* A re-executed child of a kind this program has no entry for (the pool
 * worker's, see above; or a number no kind has) says so and exits 127. */
static void test_child_of_unknown_kind_exits_127(void)
{
    char err[512];

    T_EQ(run_marked_child("JG__CHILD=1:", err, sizeof(err)), 127);
    T_ASSERT(strstr(err, "juggle: no entry for a child of kind 1 in this "
                         "program\n"));
    T_EQ(run_marked_child("JG__CHILD=99:", err, sizeof(err)), 127);
    T_ASSERT(strstr(err, "juggle: no entry for a child of kind 99 in this "
                         "program\n"));
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_output_and_exitcodes),
        T_CASE(test_join_timeout_terminate_kill),
        T_CASE(test_child_signal_state),
        T_CASE(test_green_join_parks_only_it),
        T_CASE(test_destroy_running_no_zombie),
        T_CASE(test_bad_input),
        T_CASE(test_kind_without_entry_einval),
        T_CASE(test_child_of_unknown_kind_exits_127),
    };

    T_OK(jg_main_init(argc, argv));
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
