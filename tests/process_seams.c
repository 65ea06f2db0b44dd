/* SPDX-License-Identifier: MIT */
/*
 * process_seams.c - where the process layer meets the rest of the program:
 *  - the lazy start docs/processes.md promises: without jg_main_init, the
 *    first pool or jg_process of a single-threaded program starts the fork
 *    server itself (a command name with spaces and ')' included).
 * Cases that need a program in its first moments run in a fresh copy of
 * this test (run_self).
 */
#include <juggle.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

extern char **environ;

/* ---- tasks --------------------------------------------------------------- */

static int t_getpid(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    int32_t pid = (int32_t)getpid();
    return jg_task_out_write(out, &pid, sizeof(pid));
}
JG_TASK("getpid", t_getpid)

static int t_square(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t x;
    if (n != sizeof(x))
        return jg_task_fail(out, -EINVAL, "want 8 bytes, got %zu", n);
    memcpy(&x, in, sizeof(x));
    x *= x;
    return jg_task_out_write(out, &x, sizeof(x));
}
JG_TASK("square", t_square)

/* ---- helpers ------------------------------------------------------------- */

/* The number of threads of this process, from /proc/self/status. */
static int threads_now(void)
{
    char line[256];
    int n = -1;
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return -1;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(fp);
    return n;
}

/* Run this test binary again with argv[1] = sub and one extra variable;
 * its exit status (77: the sub-case skipped itself). */
static int run_self(const char *sub, const char *env1)
{
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 2, sizeof(*envp));
    T_ASSERT(envp);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "JG_START_SPAWN=", 15) != 0)
            envp[k++] = environ[i];
    if (env1)
        envp[k++] = (char *)env1;
    char *argv[] = { (char *)"process_seams", (char *)sub, NULL };
    pid_t pid;
    fflush(NULL);
    T_EQ(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp), 0);
    free(envp);
    int st;
    T_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st))
        T_FAIL_("%s (%s) ended by signal %d", sub, env1 ? env1 : "",
                WTERMSIG(st));
    return WEXITSTATUS(st);
}

static struct jg_future *submit(struct jg_executor *ex, const char *task,
                                const void *in, size_t n)
{
    struct jg_future *f;
    T_OK(jg_executor_submit(ex, task, in, n, &f));
    return f;
}

/* ---- in a fresh copy: the lazy fork-server start ------------------------- */

static int sub_lazy_start(void)
{
    /* /proc/self/stat's command name may hold spaces and ')': the field
     * count must start after the last one. */
    prctl(PR_SET_NAME, "a) b (c) d");
    if (threads_now() != 1)
        T_SKIP("this build runs threads of its own: no lazy start");

    struct jg_process_pool_opts o = { .workers = 2 };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    /* Workers are children of ours, cloned from the server. */
    for (uint64_t i = 0; i < 16; i++) {
        struct jg_future *f = submit(ex, "square", &i, sizeof(i));
        const void *p;
        size_t len;
        uint64_t v;
        T_OK(jg_future_bytes(f, &p, &len, JG_SEC(60)));
        T_EQ(len, sizeof(v));
        memcpy(&v, p, sizeof(v));
        T_EQ(v, i * i);
        jg_future_unref(f);
    }
    /* The manager thread runs now, and the server started before it
     * serves jg_process too. */
    T_ASSERT(threads_now() >= 2);
    struct jg_process *p;
    int code;
    T_OK(jg_process_start(&p, "getpid", NULL, 0));
    T_OK(jg_process_join(p, JG_SEC(30)));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, 0);
    jg_process_destroy(p);
    jg_executor_destroy(ex);
    return 0;
}

static void test_lazy_fork_server_start(void)
{
    int rc = run_self("sub_lazy_start", NULL);
    if (rc == 77)
        T_SKIP_CASE("threads run before main()");
    T_EQ(rc, 0);
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_lazy_fork_server_start),
    };

    /* The sub-cases come first: before the fork server. */
    if (argc > 1 && strcmp(argv[1], "sub_lazy_start") == 0)
        return sub_lazy_start();
    T_OK(jg_main_init(argc, argv));
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
