/* SPDX-License-Identifier: MIT */
/*
 * pool_process.c - the process pool: map order, a worker killed with
 * SIGKILL (only its future fails, the pool keeps working), a task that
 * exits, per-task timeout, max tasks per child, initializer once per
 * worker, shutdown with pending work, 8 MiB in and out, and starting from
 * a program that already runs threads (-EINVAL without jg_main_init; the
 * re-exec start works). main() calls jg_main_init first, as programs must.
 */
#include <juggle.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

extern char **environ;

#define JG_ARRAY_SIZE_(a) (sizeof(a) / sizeof((a)[0]))

/* A page shared with every worker: made before jg_main_init forks the
 * fork server, so the workers (cloned from it) map it too. */
struct shared {
    _Atomic int hang_pid;       /* set by "mark_hang" when it started */
};
static struct shared *S;

/* ---- tasks --------------------------------------------------------------- */

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

static int t_getpid(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    int32_t pid = (int32_t)getpid();
    return jg_task_out_write(out, &pid, sizeof(pid));
}
JG_TASK("getpid", t_getpid)

static int t_mark_hang(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    (void)out;
    atomic_store(&S->hang_pid, (int)getpid());
    for (;;)
        pause();
    return 0;
}
JG_TASK("mark_hang", t_mark_hang)

static int t_exit(const void *in, size_t n, struct jg_task_out *out)
{
    int code = 0;
    (void)out;
    if (n == sizeof(code))
        memcpy(&code, in, sizeof(code));
    exit(code);
}
JG_TASK("exit", t_exit)

static int t_sleep_ms(const void *in, size_t n, struct jg_task_out *out)
{
    int ms = 0;
    if (n == sizeof(ms))
        memcpy(&ms, in, sizeof(ms));
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return jg_task_out_write(out, &ms, sizeof(ms));
}
JG_TASK("sleep_ms", t_sleep_ms)

static int t_fail(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    return jg_task_fail(out, -EDOM, "bad input of %zu bytes", n);
}
JG_TASK("fail", t_fail)

/* Each byte complemented, in reverse order. */
static int t_flip(const void *in, size_t n, struct jg_task_out *out)
{
    unsigned char *o = jg_task_out_reserve(out, n);
    if (!o)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        o[i] = (unsigned char)~((const unsigned char *)in)[n - 1 - i];
    jg_task_out_commit(out, n);
    return 0;
}
JG_TASK("flip", t_flip)

/* The "global session" of the seeds: set up once per worker. */
static int init_runs;
static char session[32];

static int t_init_session(const void *in, size_t n, struct jg_task_out *out)
{
    (void)out;
    init_runs++;
    if (n >= sizeof(session))
        n = sizeof(session) - 1;
    memcpy(session, in, n);
    return 0;
}
JG_TASK("init_session", t_init_session)

struct session_rep {
    int32_t pid, init_runs;
    char session[32];
};

static int t_session(const void *in, size_t n, struct jg_task_out *out)
{
    struct session_rep r;
    (void)in;
    (void)n;
    memset(&r, 0, sizeof(r));
    r.pid = (int32_t)getpid();
    r.init_runs = init_runs;
    memcpy(r.session, session, sizeof(r.session));
    return jg_task_out_write(out, &r, sizeof(r));
}
JG_TASK("session", t_session)

static int t_init_fail(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    return jg_task_fail(out, -EACCES, "no credentials");
}
JG_TASK("init_fail", t_init_fail)

/* ---- helpers ------------------------------------------------------------- */

static struct jg_executor *pool(int workers, const char *init,
                                const char *arg, unsigned max_tasks,
                                int64_t timeout_ns)
{
    struct jg_process_pool_opts o;
    struct jg_executor *ex = NULL;

    memset(&o, 0, sizeof(o));
    o.workers = workers;
    o.init_task = init;
    o.init_arg = arg;
    o.init_len = arg ? strlen(arg) : 0;
    o.max_tasks_per_child = max_tasks;
    o.task_timeout_ns = timeout_ns;
    T_OK(jg_process_pool_create(&ex, &o));
    return ex;
}

static struct jg_future *submit_u64(struct jg_executor *ex, const char *name,
                                    uint64_t x)
{
    struct jg_future *f;
    T_OK(jg_executor_submit(ex, &f, name, &x, sizeof(x)));
    return f;
}

static struct jg_future *submit_int(struct jg_executor *ex, const char *name,
                                    int x)
{
    struct jg_future *f;
    T_OK(jg_executor_submit(ex, &f, name, &x, sizeof(x)));
    return f;
}

static uint64_t result_u64(struct jg_future *f)
{
    const void *p;
    size_t n;
    uint64_t v;
    T_OK(jg_future_bytes(f, &p, &n, JG_SEC(30)));
    T_EQ(n, sizeof(v));
    memcpy(&v, p, sizeof(v));
    return v;
}

static int32_t result_i32(struct jg_future *f)
{
    const void *p;
    size_t n;
    int32_t v;
    T_OK(jg_future_bytes(f, &p, &n, JG_SEC(30)));
    T_EQ(n, sizeof(v));
    memcpy(&v, p, sizeof(v));
    return v;
}

/* No child of ours is a zombie (the fork server is a live child). */
static void assert_no_zombie(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int rc = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
    T_ASSERT(rc == 0 || errno == ECHILD);
    T_EQ(si.si_pid, 0);
}

static void *plain_call(void *arg)
{
    return arg;
}

/* ---- cases --------------------------------------------------------------- */

static void test_map_order(void)
{
    struct jg_executor *ex = pool(2, NULL, NULL, 0, 0);
    size_t n = (size_t)t_scale(100000);
    uint64_t *in = malloc(n * sizeof(*in)), *out = malloc(n * sizeof(*out));
    size_t chunks[] = { 0, 7, 1000 };

    T_ASSERT(in && out);
    for (size_t i = 0; i < n; i++)
        in[i] = i;
    for (size_t c = 0; c < JG_ARRAY_SIZE_(chunks); c++) {
        memset(out, 0, n * sizeof(*out));
        T_OK(jg_executor_map(ex, "square", in, 8, n, out, 8, chunks[c],
                             JG_SEC(60)));
        for (size_t i = 0; i < n; i++)
            if (out[i] != (uint64_t)i * i)
                T_FAIL_("chunk %zu: item %zu = %llu", chunks[c], i,
                        (unsigned long long)out[i]);
    }
    /* One task per submit: results match their inputs in order. */
    size_t k = (size_t)t_scale(2000);
    struct jg_future **fs = calloc(k, sizeof(*fs));
    for (size_t i = 0; i < k; i++)
        fs[i] = submit_u64(ex, "square", i + 3);
    for (size_t i = 0; i < k; i++) {
        T_EQ(result_u64(fs[i]), (uint64_t)(i + 3) * (i + 3));
        jg_future_unref(fs[i]);
    }
    /* A task's own error and message come back; unknown tasks fail. */
    struct jg_future *f;
    T_OK(jg_executor_submit(ex, &f, "fail", "abc", 3));
    T_ERR(jg_future_result(f, NULL, JG_SEC(30)), -EDOM);
    T_STREQ(jg_future_error_message(f), "bad input of 3 bytes");
    jg_future_unref(f);
    T_ERR(jg_executor_submit(ex, &f, "no-such-task", NULL, 0), -ENOENT);
    T_ERR(jg_executor_call(ex, &f, plain_call, NULL), -ENOTSUP);
    jg_executor_destroy(ex);
    free(fs);
    free(in);
    free(out);
    assert_no_zombie();
}

static void test_kill9_fails_only_its_task(void)
{
    struct jg_executor *ex = pool(2, NULL, NULL, 0, 0);
    long before = t_scale(200), after = t_scale(1000);
    struct jg_future **fs = calloc((size_t)(before + after), sizeof(*fs));

    atomic_store(&S->hang_pid, 0);
    struct jg_future *hang;
    T_OK(jg_executor_submit(ex, &hang, "mark_hang", NULL, 0));
    for (long i = 0; i < before; i++)
        fs[i] = submit_u64(ex, "square", (uint64_t)i);
    /* Wait until the task marked itself started, then kill its worker. */
    int64_t end = t_now_ns() + JG_SEC(20);
    while (atomic_load(&S->hang_pid) == 0 && t_now_ns() < end)
        usleep(1000);
    int pid = atomic_load(&S->hang_pid);
    T_ASSERT(pid > 0);
    T_EQ(jg_future_state(hang), JG_FUTURE_RUNNING);
    T_OK(kill(pid, SIGKILL));
    T_ERR(jg_future_result(hang, NULL, JG_SEC(20)), -ECHILD);
    T_STREQ(jg_future_error_message(hang),
            "worker killed by signal 9 (SIGKILL)");
    jg_future_unref(hang);
    for (long i = 0; i < after; i++)
        fs[before + i] = submit_u64(ex, "square", (uint64_t)i);
    for (long i = 0; i < before + after; i++) {
        uint64_t x = (uint64_t)(i < before ? i : i - before);
        T_EQ(result_u64(fs[i]), x * x);
        jg_future_unref(fs[i]);
    }
    /* The dead worker was replaced: two distinct live pids serve. */
    struct jg_future *g = submit_int(ex, "getpid", 0);
    T_ASSERT(result_i32(g) != pid);
    jg_future_unref(g);
    jg_executor_destroy(ex);
    free(fs);
    assert_no_zombie();
}

static void test_task_exit3(void)
{
    struct jg_executor *ex = pool(2, NULL, NULL, 0, 0);
    struct jg_future *f = submit_int(ex, "exit", 3);

    T_ERR(jg_future_result(f, NULL, JG_SEC(20)), -ECHILD);
    T_STREQ(jg_future_error_message(f), "worker exited with status 3");
    jg_future_unref(f);
    for (int i = 0; i < 50; i++) {
        f = submit_u64(ex, "square", (uint64_t)i);
        T_EQ(result_u64(f), (uint64_t)i * i);
        jg_future_unref(f);
    }
    jg_executor_destroy(ex);
    assert_no_zombie();
}

static void test_task_timeout(void)
{
    struct jg_executor *ex = pool(2, NULL, NULL, 0, JG_MS(200));
    int64_t t0 = t_now_ns();
    struct jg_future *slow = submit_int(ex, "sleep_ms", 10000);
    struct jg_future *quick = submit_int(ex, "sleep_ms", 10);

    T_EQ(result_i32(quick), 10);
    T_ERR(jg_future_result(slow, NULL, JG_SEC(20)), -ETIMEDOUT);
    int64_t el = t_now_ns() - t0;
    T_ASSERT(el >= JG_MS(200));
    /* The task's own 200 ms limit ended it (DONE, with its message), not
     * the 20 s wait, which would leave it RUNNING. */
    T_EQ(jg_future_state(slow), JG_FUTURE_DONE);
    T_ASSERT(strstr(jg_future_error_message(slow), "timed out") != NULL);
    jg_future_unref(slow);
    jg_future_unref(quick);
    /* The pool keeps working, and tasks under the limit succeed. */
    for (int i = 0; i < 20; i++) {
        struct jg_future *f = submit_int(ex, "sleep_ms", i % 3);
        T_EQ(result_i32(f), i % 3);
        jg_future_unref(f);
    }
    jg_executor_destroy(ex);
    assert_no_zombie();
}

static void test_max_tasks_per_child(void)
{
    enum { K = 5, ROUNDS = 4 };
    struct jg_executor *ex = pool(1, NULL, NULL, K, 0);
    int32_t pids[K * ROUNDS];

    for (int i = 0; i < K * ROUNDS; i++) {
        struct jg_future *f = submit_int(ex, "getpid", 0);
        pids[i] = result_i32(f);
        jg_future_unref(f);
    }
    /* Every K tasks the worker is replaced: a new pid each round. */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 1; i < K; i++)
            T_EQ(pids[r * K + i], pids[r * K]);
        if (r > 0)
            T_ASSERT(pids[r * K] != pids[(r - 1) * K]);
    }
    jg_executor_destroy(ex);
    assert_no_zombie();
}

static void test_initializer_once_per_worker(void)
{
    struct jg_executor *ex = pool(2, "init_session", "sess-42", 0, 0);
    long n = t_scale(400);
    struct jg_future **fs = calloc((size_t)n, sizeof(*fs));
    int32_t seen[2] = { 0, 0 };

    for (long i = 0; i < n; i++)
        T_OK(jg_executor_submit(ex, &fs[i], "session", NULL, 0));
    for (long i = 0; i < n; i++) {
        const void *p;
        size_t len;
        struct session_rep r;
        T_OK(jg_future_bytes(fs[i], &p, &len, JG_SEC(30)));
        T_EQ(len, sizeof(r));
        memcpy(&r, p, sizeof(r));
        T_EQ(r.init_runs, 1);
        T_STREQ(r.session, "sess-42");
        if (r.pid != seen[0] && r.pid != seen[1]) {
            T_ASSERT(seen[1] == 0);     /* at most two workers */
            seen[seen[0] ? 1 : 0] = r.pid;
        }
        jg_future_unref(fs[i]);
    }
    jg_executor_destroy(ex);
    free(fs);

    /* A failing initializer fails the tasks with its error, no respawn
     * storm; the pool still shuts down cleanly. */
    ex = pool(2, "init_fail", NULL, 0, 0);
    for (int i = 0; i < 10; i++) {
        struct jg_future *f = submit_u64(ex, "square", 2);
        T_ERR(jg_future_result(f, NULL, JG_SEC(20)), -EACCES);
        T_ASSERT(strstr(jg_future_error_message(f), "no credentials"));
        T_ASSERT(strstr(jg_future_error_message(f), "init_fail"));
        jg_future_unref(f);
    }
    jg_executor_destroy(ex);
    assert_no_zombie();
}

static void test_shutdown_pending(void)
{
    for (int cancel = 0; cancel < 2; cancel++) {
        struct jg_executor *ex = pool(1, NULL, NULL, 0, 0);
        enum { N = 60 };
        struct jg_future *fs[N];
        fs[0] = submit_int(ex, "sleep_ms", 100);
        for (int i = 1; i < N; i++)
            fs[i] = submit_u64(ex, "square", (uint64_t)i);
        /* Let the first task start, so that it is RUNNING. */
        int64_t end = t_now_ns() + JG_SEC(10);
        while (jg_future_state(fs[0]) != JG_FUTURE_RUNNING &&
               t_now_ns() < end)
            usleep(1000);
        T_OK(jg_executor_shutdown(ex, JG_SHUTDOWN_WAIT |
                                  (cancel ? JG_SHUTDOWN_CANCEL_PENDING : 0)));
        struct jg_future *late;
        T_ERR(jg_executor_submit(ex, &late, "square", "12345678", 8),
              -ESHUTDOWN);
        int done = 0, cancelled = 0;
        for (int i = 0; i < N; i++) {
            int st = jg_future_state(fs[i]);
            T_ASSERT(st == JG_FUTURE_DONE || st == JG_FUTURE_CANCELLED);
            if (st == JG_FUTURE_DONE) {
                done++;
                if (i > 0)
                    T_EQ(result_u64(fs[i]), (uint64_t)i * i);
            } else {
                cancelled++;
                T_ERR(jg_future_result(fs[i], NULL, 0), -ECANCELED);
            }
        }
        T_EQ(jg_future_state(fs[0]), JG_FUTURE_DONE);
        T_EQ(done + cancelled, N);
        if (!cancel)
            T_EQ(done, N);
        else
            T_ASSERT(cancelled > 0);
        for (int i = 0; i < N; i++)
            jg_future_unref(fs[i]);
        jg_executor_destroy(ex);
        assert_no_zombie();
    }
}

static void test_large_payload(void)
{
    struct jg_executor *ex = pool(2, NULL, NULL, 0, 0);
    size_t n = 8u << 20;
    unsigned char *in = malloc(n);
    struct jg_future *f;
    const void *p;
    size_t len;

    T_ASSERT(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 131 + (i >> 12));
    for (int round = 0; round < 3; round++) {
        T_OK(jg_executor_submit(ex, &f, "flip", in, n));
        T_OK(jg_future_bytes(f, &p, &len, JG_SEC(60)));
        T_EQ(len, n);
        const unsigned char *o = p;
        for (size_t i = 0; i < n; i++)
            if (o[i] != (unsigned char)~in[n - 1 - i])
                T_FAIL_("byte %zu wrong", i);
        jg_future_unref(f);
    }
    /* Sizes around the inline limit too. */
    size_t sizes[] = { 0, 1, 32767, 32768, 32769, 100000 };
    for (size_t k = 0; k < JG_ARRAY_SIZE_(sizes); k++) {
        T_OK(jg_executor_submit(ex, &f, "flip", in, sizes[k]));
        T_OK(jg_future_bytes(f, &p, &len, JG_SEC(60)));
        T_EQ(len, sizes[k]);
        if (len)
            T_EQ(((const unsigned char *)p)[0],
                 (unsigned char)~in[len - 1]);
        jg_future_unref(f);
    }
    jg_executor_destroy(ex);
    free(in);
}

/* ---- starting from a threaded program (in a child of this test) --------- */

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* Run this test binary again with argv[1] = sub and extra env; its exit
 * status. */
static int run_self(const char *sub, const char *env1, const char *env2)
{
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 3, sizeof(*envp));
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "JG_START_SPAWN=", 15) != 0)
            envp[k++] = environ[i];
    if (env1)
        envp[k++] = (char *)env1;
    if (env2)
        envp[k++] = (char *)env2;
    char *argv[] = { (char *)"pool_process", (char *)sub, NULL };
    pid_t pid;
    fflush(NULL);
    T_EQ(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp), 0);
    free(envp);
    int st;
    T_EQ(waitpid(pid, &st, 0), pid);
    T_ASSERT(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* In the child: threads run and jg_main_init was never called. */
static int sub_threaded_einval(void)
{
    pthread_t th;
    struct jg_executor *ex = NULL;
    T_EQ(pthread_create(&th, NULL, idle_thread, NULL), 0);
    T_ERR(jg_process_pool_create(&ex, NULL), -EINVAL);
    T_PEQ(ex, NULL);
    return 0;
}

/* In the child, started with JG_START_SPAWN=1: threads run, then a pool
 * re-executes this program for its workers. */
static int sub_spawn_works(void)
{
    pthread_t th;
    T_EQ(pthread_create(&th, NULL, idle_thread, NULL), 0);
    struct jg_executor *ex = pool(2, "init_session", "spawned", 0, 0);
    size_t n = (size_t)t_scale(20000);
    uint64_t *in = malloc(n * 8), *out = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        in[i] = i;
    T_OK(jg_executor_map(ex, "square", in, 8, n, out, 8, 0, JG_SEC(60)));
    for (size_t i = 0; i < n; i++)
        T_EQ(out[i], (uint64_t)i * i);
    struct jg_future *f;
    T_OK(jg_executor_submit(ex, &f, "session", NULL, 0));
    const void *p;
    size_t len;
    struct session_rep r;
    T_OK(jg_future_bytes(f, &p, &len, JG_SEC(30)));
    memcpy(&r, p, sizeof(r));
    T_EQ(r.init_runs, 1);
    T_STREQ(r.session, "spawned");
    T_ASSERT(r.pid != getpid());
    jg_future_unref(f);
    /* A worker dies: only its task fails, the re-exec'd one replaces it. */
    f = submit_int(ex, "exit", 3);
    T_ERR(jg_future_result(f, NULL, JG_SEC(20)), -ECHILD);
    T_STREQ(jg_future_error_message(f), "worker exited with status 3");
    jg_future_unref(f);
    f = submit_u64(ex, "square", 9);
    T_EQ(result_u64(f), 81);
    jg_future_unref(f);
    jg_executor_destroy(ex);
    free(in);
    free(out);
    return 0;
}

/* In the child: a busy pool, then the program ends (return from main, or
 * SIGINT with its default action) without destroying it. It prints a
 * worker's pid first. */
static int sub_exit_busy(const char *how)
{
    struct jg_executor *ex = pool(2, NULL, NULL, 0, 0);
    struct jg_future *f = submit_int(ex, "getpid", 0);
    printf("%d\n", (int)result_i32(f));
    fflush(stdout);
    jg_future_unref(f);
    for (int i = 0; i < 4; i++)
        f = submit_int(ex, "sleep_ms", 60000);
    usleep(50000);
    if (strcmp(how, "sigint") == 0)
        raise(SIGINT);
    return 0;                   /* exit() with the pool and tasks running */
}

/* A process is gone (or a zombie of someone else's, which is gone too). */
static int gone(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && (p[2] == 'Z' || p[2] == 'X');
}

static void test_exit_and_ctrl_c_do_not_hang(void)
{
    const char *hows[] = { "sub_exit_busy_return", "sub_exit_busy_sigint" };
    for (int k = 0; k < 2; k++) {
        int fds[2];
        T_EQ(pipe(fds), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        char *argv[] = { (char *)"pool_process", (char *)hows[k], NULL };
        pid_t pid;
        int64_t t0 = t_now_ns();
        fflush(NULL);
        T_EQ(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ),
             0);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        char line[32] = "";
        FILE *in = fdopen(fds[0], "r");
        T_ASSERT(fgets(line, sizeof(line), in) != NULL);
        fclose(in);
        int wpid = atoi(line), st;
        T_ASSERT(wpid > 0);
        T_EQ(waitpid(pid, &st, 0), pid);
        if (k == 0)
            T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        else
            T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
        if (t_plain())
            T_ASSERT(t_now_ns() - t0 < JG_SEC(10));
        /* Its workers die with it. */
        int64_t end = t_now_ns() + JG_SEC(10);
        while (!gone(wpid) && t_now_ns() < end)
            usleep(2000);
        T_ASSERT(gone(wpid));
    }
}

static void test_threaded_without_main_init(void)
{
    T_EQ(run_self("sub_threaded_einval", "JG_TEST_NO_MAIN_INIT=1", NULL),
         0);
}

static void test_spawn_start_from_threads(void)
{
    T_EQ(run_self("sub_spawn_works", "JG_START_SPAWN=1", NULL), 0);
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_map_order),
        T_CASE(test_kill9_fails_only_its_task),
        T_CASE(test_task_exit3),
        T_CASE(test_task_timeout),
        T_CASE(test_max_tasks_per_child),
        T_CASE(test_initializer_once_per_worker),
        T_CASE(test_shutdown_pending),
        T_CASE(test_large_payload),
        T_CASE(test_exit_and_ctrl_c_do_not_hang),
        T_CASE(test_threaded_without_main_init),
        T_CASE(test_spawn_start_from_threads),
    };

    S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_ASSERT(S != MAP_FAILED);
    if (!getenv("JG_TEST_NO_MAIN_INIT"))
        T_OK(jg_main_init(argc, argv));
    if (argc > 1 && strcmp(argv[1], "sub_threaded_einval") == 0)
        return sub_threaded_einval();
    if (argc > 1 && strcmp(argv[1], "sub_exit_busy_return") == 0)
        return sub_exit_busy("return");
    if (argc > 1 && strcmp(argv[1], "sub_exit_busy_sigint") == 0)
        return sub_exit_busy("sigint");
    if (argc > 1 && strcmp(argv[1], "sub_spawn_works") == 0)
        return sub_spawn_works();
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
