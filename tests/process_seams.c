/* SPDX-License-Identifier: MIT */
/*
 * process_seams.c - where the process layer meets the rest of the program:
 *  - children hold no fd of the program's but their own: a pipe opened
 *    without O_CLOEXEC before the fork server started (jg_main_init after
 *    it, or the lazy start) or before a re-exec start (JG_START_SPAWN=1)
 *    reaches neither pool workers nor jg_process children, so its reader
 *    sees EOF once the program closes its write end;
 *  - the lazy start docs/processes.md promises: without jg_main_init, the
 *    first pool or jg_process of a single-threaded program starts the fork
 *    server itself (a command name with spaces and ')' included).
 * Cases that need a program in its first moments run in a fresh copy of
 * this test (run_self), which opens its pipes before anything else.
 */
#include <juggle.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

/* Waits for its kill; dies with its parent too, should a failed check
 * end the parent first (a jg_process child outlives it otherwise, holding
 * the test's output pipe). */
static int t_hang(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    (void)out;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(1);
    for (;;)
        pause();
    return 0;
}
JG_TASK("hang", t_hang)

/* How many of this process's fds are the pipe with inode *in. */
static int pipe_refs(ino_t ino)
{
    char want[64], path[64], link[64];
    int count = 0;

    snprintf(want, sizeof(want), "pipe:[%llu]", (unsigned long long)ino);
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(path, link, sizeof(link) - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        count += strcmp(link, want) == 0;
    }
    return count;
}

static int t_pipe_refs(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t ino;
    if (n != sizeof(ino))
        return jg_task_fail(out, -EINVAL, "want an inode");
    memcpy(&ino, in, sizeof(ino));
    int32_t c = pipe_refs((ino_t)ino);
    return jg_task_out_write(out, &c, sizeof(c));
}
JG_TASK("pipe_refs", t_pipe_refs)

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

static int32_t result_i32(struct jg_future *f)
{
    const void *p;
    size_t len;
    int32_t v;
    T_OK(jg_future_bytes(f, &p, &len, JG_SEC(60)));
    T_EQ(len, sizeof(v));
    memcpy(&v, p, sizeof(v));
    jg_future_unref(f);
    return v;
}

/* A pipe without O_CLOEXEC, as programs (and libraries) open them. */
struct tpipe {
    int rd, wr;
    uint64_t ino;
};

static void tpipe_open(struct tpipe *p)
{
    int fds[2];
    struct stat st;
    T_EQ(pipe(fds), 0);
    T_EQ(fstat(fds[0], &st), 0);
    p->rd = fds[0];
    p->wr = fds[1];
    p->ino = (uint64_t)st.st_ino;
}

/*
 * Close our write end and read: with no other writer anywhere, the read
 * sees EOF at once; a copy of the write end in a child (or in the fork
 * server) makes it would-block instead. No timing involved.
 */
static void expect_eof(struct tpipe *p, const char *who)
{
    char c;
    T_EQ(close(p->wr), 0);
    T_EQ(fcntl(p->rd, F_SETFL, O_NONBLOCK), 0);
    ssize_t r = read(p->rd, &c, 1);
    if (r != 0)
        T_FAIL_("%s: no EOF on the pipe after its writer closed it "
                "(read: %zd, %s): a child holds its write end", who, r,
                r < 0 ? strerror(errno) : "data");
    close(p->rd);
}

/* ---- in a fresh copy: children inherit none of the program's fds -------- */

/*
 * The pipes are opened first; then, by the variable run_self set: the fork
 * server started by jg_main_init, the lazy start (no jg_main_init), or the
 * re-exec start (JG_START_SPAWN=1).
 */
static int sub_no_inherited_fds(int argc, char **argv)
{
    struct tpipe a, b;
    tpipe_open(&a);
    tpipe_open(&b);
    bool lazy = getenv("JG_TEST_LAZY") != NULL;
    if (!lazy)
        T_OK(jg_main_init(argc, argv));
    else if (threads_now() != 1)
        T_SKIP("this build runs threads of its own: no lazy start");

    /* A pool worker: alive once it has answered. */
    struct jg_process_pool_opts o = { .workers = 1 };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    T_ASSERT(result_i32(submit(ex, "getpid", NULL, 0)) != getpid());
    int32_t refs = result_i32(submit(ex, "pipe_refs", &a.ino,
                                     sizeof(a.ino)));
    expect_eof(&a, "process pool worker");
    T_EQ(refs, 0);
    jg_executor_destroy(ex);

    /* A jg_process child: it counts, then another one lives while we
     * close our end. */
    struct jg_process *p;
    const void *out;
    size_t n;
    T_OK(jg_process_start(&p, "pipe_refs", &b.ino, sizeof(b.ino)));
    T_OK(jg_process_join(p, JG_SEC(30)));
    T_OK(jg_process_output(p, &out, &n));
    T_EQ(n, sizeof(refs));
    memcpy(&refs, out, sizeof(refs));
    jg_process_destroy(p);
    T_OK(jg_process_start(&p, "hang", NULL, 0));
    expect_eof(&b, "jg_process child");
    T_EQ(refs, 0);
    jg_process_destroy(p);
    return 0;
}

static void test_children_inherit_no_fds_fork_server(void)
{
    T_EQ(run_self("sub_no_inherited_fds", NULL), 0);
}

static void test_children_inherit_no_fds_lazy_start(void)
{
    int rc = run_self("sub_no_inherited_fds", "JG_TEST_LAZY=1");
    if (rc == 77)
        T_SKIP_CASE("threads run before main()");
    T_EQ(rc, 0);
}

static void test_children_inherit_no_fds_spawn(void)
{
    T_EQ(run_self("sub_no_inherited_fds", "JG_START_SPAWN=1"), 0);
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
        T_CASE(test_children_inherit_no_fds_fork_server),
        T_CASE(test_children_inherit_no_fds_lazy_start),
        T_CASE(test_children_inherit_no_fds_spawn),
        T_CASE(test_lazy_fork_server_start),
    };

    /* The sub-cases come first: they open fds before the fork server. */
    if (argc > 1 && strcmp(argv[1], "sub_no_inherited_fds") == 0)
        return sub_no_inherited_fds(argc, argv);
    if (argc > 1 && strcmp(argv[1], "sub_lazy_start") == 0)
        return sub_lazy_start();
    T_OK(jg_main_init(argc, argv));
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
