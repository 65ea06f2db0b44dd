/* SPDX-License-Identifier: MIT */
/*
 * peer_children.c - child processes from green threads under the preload
 * library, as gevent makes subprocess and os.waitpid cooperative:
 * waitpid/waitid/wait4 (through a pidfd), wait for any child, system(),
 * popen reads and writes through its FILE, pclose: each parks only its
 * own green thread (all of them are inside at once, and a ticker runs
 * while the children sleep), every status is the child's own, the
 * children find their inherited stdin/stdout/stderr blocking, and the
 * same calls from a plain thread are libc's.
 *
 * The children are this program again (--child): they first check
 * O_NONBLOCK on fds 0-2, then wait for a gate (EOF on a pipe the test
 * closes once every green thread is inside its call), so the overlap is
 * counted, not timed: a call that blocked the hub would keep the others
 * out, and its child would wait out the gate's 10 s.
 */
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "peer.h"

static char self[512];          /* this program's path */

/* ---- the child ----------------------------------------------------------- */

/* Which of fds 0-2 are O_NONBLOCK (bit per fd). */
static int nonblock_bits(void)
{
    int bits = 0;

    for (int fd = 0; fd < 3; fd++) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_NONBLOCK))
            bits |= 1 << fd;
    }
    return bits;
}

/* Wait for EOF on gate (10 s at most). */
static void child_gate(int gate)
{
    char b[64];
    int64_t end = t_now_ns() + JG_SEC(10);

    for (;;) {
        struct pollfd p = { .fd = gate, .events = POLLIN };
        int64_t left = (end - t_now_ns()) / 1000000;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return;
        if (read(gate, b, sizeof(b)) <= 0)
            return;
    }
}

/* The byte at offset k of what popen(..., "w") writes. */
static unsigned char pattern(size_t k)
{
    return (unsigned char)(k * 7 % 251);
}

/*
 * --child GATEFD MS CODE MODE [BYTES]: exit 100 + bits if any of fds 0-2
 * came non-blocking; else, after the gate and MS ms:
 *   exit   exit CODE
 *   print  "flags B" then five lines "line K", MS/5 ms apart; exit CODE
 *   sum    read BYTES bytes of pattern() from stdin; exit CODE, 1 if wrong
 * (100 + bits comes after the reading and the printing).
 */
static int child_main(int argc, char **argv)
{
    /* First: what it inherited, before anything of its own runs. */
    int bits = nonblock_bits();

    if (argc < 6)
        return 2;
    int gate = atoi(argv[2]), ms = atoi(argv[3]), code = atoi(argv[4]);
    const char *mode = argv[5];
    if (gate >= 0)
        child_gate(gate);
    if (!strcmp(mode, "print")) {
        printf("flags %d\n", bits);
        for (int k = 0; k < 5; k++) {
            fflush(stdout);
            usleep((useconds_t)ms * 200);
            printf("line %d\n", k);
        }
        return code;
    }
    usleep((useconds_t)ms * 1000);
    if (!strcmp(mode, "sum")) {
        /* All of it, even when the answer is known: the writer must not
         * meet a closed pipe. */
        size_t want = argc > 6 ? strtoul(argv[6], NULL, 10) : 0, got = 0;
        unsigned char b[8192];
        ssize_t n;
        int ok = 1;
        while ((n = read(0, b, sizeof(b))) > 0) {
            for (ssize_t i = 0; i < n; i++)
                ok &= b[i] == pattern(got + (size_t)i);
            got += (size_t)n;
        }
        if (!ok || got != want)
            return 1;
    }
    if (bits)
        return 100 + bits;
    return code;
}

/* ---- the gate and the overlap -------------------------------------------- */

/* The gate: children hold the read end, the test closes the write end. */
static int gate_rd = -1, gate_wr = -1;
static struct peer_overlap ov;
static long nwant;              /* green threads that must be inside */
static _Atomic int64_t released_at;
static volatile int done;       /* the ticker stops */
static long ticks;

static void gate_open(void)
{
    int fds[2];

    T_OK(pipe2(fds, O_CLOEXEC));
    gate_rd = fds[0];
    gate_wr = fds[1];
    atomic_store(&ov.inside, 0);
    atomic_store(&ov.peak, 0);
    done = 0;
    ticks = 0;
}

/*
 * Release the children once every green thread is inside its call, or
 * after 10 s (the test then fails on the peak). A plain thread: if the
 * calls under test blocked the hub, a green gatekeeper would wait its turn
 * behind them, and the children's 10 s gates would add up.
 */
static void *gatekeeper(void *arg)
{
    int64_t end = t_now_ns() + JG_SEC(10);

    (void)arg;
    while (atomic_load(&ov.inside) < nwant && t_now_ns() < end)
        peer_nap_us(1000);
    atomic_store(&released_at, t_now_ns());
    close(gate_wr);
    gate_wr = -1;
    return NULL;
}

/* Counts 2 ms naps until done: the hub ran while the children slept
 * (jg_sleep: it must not depend on the patch it checks). */
static void *ticker(void *arg)
{
    (void)arg;
    while (!done) {
        jg_sleep(JG_MS(2));
        if (atomic_load(&released_at))
            ticks++;
    }
    return NULL;
}

/* Start the gatekeeper and the ticker. */
static void helpers_start(pthread_t *gk, struct jg_green **tk, long n)
{
    nwant = n;
    atomic_store(&released_at, 0);
    T_EQ(pthread_create(gk, NULL, gatekeeper, NULL), 0);
    T_OK(jg_spawn(tk, ticker, NULL, NULL));
}

/* Join them and check what they saw: all n inside at once, ticks while
 * the children slept ms after the gate. */
static void helpers_check(pthread_t gk, struct jg_green *tk,
                          const char *what, int ms)
{
    T_EQ(pthread_join(gk, NULL), 0);
    done = 1;
    T_OK(jg_join(tk, NULL, JG_FOREVER));
    int64_t el = t_now_ns() - atomic_load(&released_at);
    int peak = atomic_load(&ov.peak);
    fprintf(stderr, "   %s: %ld green threads, peak inside %d, %ld ticks "
            "in %.0f ms after the gate\n", what, nwant, peak, ticks,
            (double)el / 1e6);
    T_EQ(peak, nwant);
    T_ASSERT(el >= JG_MS(ms));
    /* 2 ms naps over >= ms: a few even on a loaded machine. */
    T_ASSERT(ticks >= 3);
    if (gate_rd >= 0)
        close(gate_rd);
    gate_rd = -1;
}

/* The command line of a child (for system and popen). */
static const char *child_cmd(int gate, int ms, int code, const char *mode,
                             long bytes)
{
    static char cmd[700];

    snprintf(cmd, sizeof(cmd), "exec '%s' --child %d %d %d %s %ld", self,
             gate, ms, code, mode, bytes);
    return cmd;
}

/* posix_spawn a child with the gate as its stdin. */
static pid_t spawn_child(int ms, int code)
{
    posix_spawn_file_actions_t fa;
    char a2[16], a3[16];
    pid_t pid;

    snprintf(a2, sizeof(a2), "%d", ms);
    snprintf(a3, sizeof(a3), "%d", code);
    const char *argv[] = { self, "--child", "0", a2, a3, "exit", NULL };
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, gate_rd, 0);
    T_EQ(posix_spawn(&pid, self, &fa, NULL, (char *const *)argv, environ),
         0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* ---- waitpid, waitid, wait4 on one child --------------------------------- */

struct waiter {
    int idx;
    pid_t pid;
    int how;                    /* 0 waitpid, 1 waitid, 2 wait4, 3 P_PIDFD */
    int ok;
};

static void *wait_one(void *arg)
{
    struct waiter *w = arg;
    int code = w->idx % 90, st = -1;
    siginfo_t si;
    struct rusage ru;

    int pidfd = w->how == 3 ? (int)syscall(SYS_pidfd_open, w->pid, 0) : -1;
    memset(&si, 0, sizeof(si));
    peer_enter(&ov);
    switch (w->how) {
    case 0:
        w->ok = waitpid(w->pid, &st, 0) == w->pid && WIFEXITED(st) &&
                WEXITSTATUS(st) == code;
        break;
    case 1:
        w->ok = waitid(P_PID, (id_t)w->pid, &si, WEXITED) == 0 &&
                si.si_pid == w->pid && si.si_code == CLD_EXITED &&
                si.si_status == code;
        break;
    case 2:
        w->ok = wait4(w->pid, &st, 0, &ru) == w->pid && WIFEXITED(st) &&
                WEXITSTATUS(st) == code;
        break;
    default:
        w->ok = pidfd >= 0 &&
                waitid((idtype_t)3 /* P_PIDFD */, (id_t)pidfd, &si,
                       WEXITED) == 0 &&
                si.si_pid == w->pid && si.si_status == code;
        break;
    }
    peer_leave(&ov);
    if (pidfd >= 0)
        close(pidfd);
    return NULL;
}

static void test_waitpid_parks(void)
{
    long n = t_scale(100);
    struct waiter *w = calloc((size_t)n, sizeof(*w));
    pthread_t gk;
    struct jg_green **g = calloc((size_t)n, sizeof(*g)), *tk;
    int64_t before = jg_patch_calls("waitpid") + jg_patch_calls("waitid") +
                     jg_patch_calls("wait4");

    T_ASSERT(w && g);
    gate_open();
    /* The children first (posix_spawn holds the hub while each execs):
     * what is watched is the waits. */
    for (long i = 0; i < n; i++) {
        w[i] = (struct waiter){ .idx = (int)i, .how = (int)(i % 4) };
        w[i].pid = spawn_child(100, (int)i % 90);
    }
    peer_monitor_start();
    helpers_start(&gk, &tk, n);
    for (long i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], wait_one, &w[i], NULL));
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    helpers_check(gk, tk, "waitpid/waitid/wait4", 100);
    peer_monitor_check("waitpid");
    for (long i = 0; i < n; i++)
        if (!w[i].ok)
            T_FAIL_("waiter %ld (kind %d, pid %d): wrong result", i,
                    w[i].how, (int)w[i].pid);
    /* Every one of them parked (its child was still at the gate). */
    T_EQ(jg_patch_calls("waitpid") + jg_patch_calls("waitid") +
         jg_patch_calls("wait4") - before, n);
    free(w);
    free(g);
}

/* ---- wait for any child: polled, still parked ---------------------------- */

static void *wait_any(void *arg)
{
    pid_t *got = arg;
    int st;

    peer_enter(&ov);
    for (int i = 0; i < 3; i++) {
        got[i] = wait(&st);
        if (got[i] > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 7))
            got[i] = -2;
    }
    peer_leave(&ov);
    return NULL;
}

static void test_wait_any_child(void)
{
    pid_t pids[3], got[3] = { 0 };
    struct jg_green *g, *tk;
    pthread_t gk;

    gate_open();
    for (int i = 0; i < 3; i++)
        pids[i] = spawn_child(100, 7);
    peer_monitor_start();
    helpers_start(&gk, &tk, 1);
    T_OK(jg_spawn(&g, wait_any, got, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    helpers_check(gk, tk, "wait(-1)", 100);
    peer_monitor_check("wait");
    /* Each child reaped once, in any order. */
    for (int i = 0; i < 3; i++) {
        int seen = 0;
        for (int j = 0; j < 3; j++)
            seen += got[j] == pids[i];
        T_EQ(seen, 1);
    }
    int st;
    errno = 0;
    T_EQ(waitpid(-1, &st, 0), -1);
    T_EQ(errno, ECHILD);
}

/* ---- system -------------------------------------------------------------- */

struct sys_run {
    int idx;
    int status;
};

static int saved_stdin = -1;

/* fd 0 becomes the gate (system's children inherit it); restored after. */
static void stdin_is_gate(bool on)
{
    if (on) {
        saved_stdin = dup(0);
        T_ASSERT(dup2(gate_rd, 0) == 0);
    } else {
        T_ASSERT(dup2(saved_stdin, 0) == 0);
        close(saved_stdin);
        saved_stdin = -1;
    }
}

static void *system_one(void *arg)
{
    struct sys_run *s = arg;

    peer_enter(&ov);
    s->status = system(child_cmd(0, 100, s->idx % 90, "exit", 0));
    peer_leave(&ov);
    return NULL;
}

/* A cooperative read of the (inherited) stdin meanwhile: EOF at the gate. */
static void *stdin_reader(void *arg)
{
    char b[16];

    *(ssize_t *)arg = read(0, b, sizeof(b));
    return NULL;
}

static void test_system_parks(void)
{
    long n = t_scale(100);
    struct sys_run *s = calloc((size_t)n, sizeof(*s));
    pthread_t gk;
    struct jg_green **g = calloc((size_t)n, sizeof(*g)), *tk, *rd;
    struct sigaction before, during, after;
    ssize_t got = -2;

    T_ASSERT(s && g);
    T_ASSERT(system(NULL) != 0);
    gate_open();
    stdin_is_gate(true);
    sigaction(SIGINT, NULL, &before);
    peer_monitor_start();
    helpers_start(&gk, &tk, n);
    T_OK(jg_spawn(&rd, stdin_reader, &got, NULL));
    for (long i = 0; i < n; i++) {
        s[i].idx = (int)i;
        T_OK(jg_spawn(&g[i], system_one, &s[i], NULL));
    }
    /* While commands run, the caller ignores SIGINT, as with glibc. */
    while (!atomic_load(&released_at))
        jg_sleep(JG_MS(1));
    sigaction(SIGINT, NULL, &during);
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_OK(jg_join(rd, NULL, JG_FOREVER));
    helpers_check(gk, tk, "system", 100);
    peer_monitor_check("system");
    sigaction(SIGINT, NULL, &after);
    stdin_is_gate(false);
    T_EQ(got, 0);
    T_ASSERT(during.sa_handler == SIG_IGN);
    T_ASSERT(after.sa_handler == before.sa_handler);
    for (long i = 0; i < n; i++) {
        /* 100 + bits: the child found its stdio non-blocking. */
        if (!WIFEXITED(s[i].status) || WEXITSTATUS(s[i].status) != i % 90)
            T_FAIL_("system %ld: status 0x%x, want exit %ld", i,
                    s[i].status, i % 90);
    }
    /* The shell's own statuses come through too. */
    T_EQ(WEXITSTATUS(system("exit 3")), 3);
    T_EQ(WEXITSTATUS(system("/nonexistent/program 2>/dev/null")), 127);
    int st = system("kill -9 $$");
    T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    free(s);
    free(g);
}

/* ---- popen: reads through the FILE --------------------------------------- */

struct reader {
    int idx;
    int ok;
    int status;
    int flags;                  /* the child's nonblock bits */
};

static void *popen_reader(void *arg)
{
    struct reader *r = arg;
    char line[64];
    int k = 0;

    FILE *f = popen(child_cmd(0, 50, 3, "print", 0), "r");
    if (!f)
        return JG_ERR(-errno);
    r->flags = -1;
    r->ok = fileno(f) >= 0;
    /* Counted from the first read: the child prints after the gate. */
    peer_enter(&ov);
    while (fgets(line, sizeof(line), f)) {
        char want[32];
        if (r->flags < 0) {
            r->ok &= sscanf(line, "flags %d", &r->flags) == 1;
            continue;
        }
        snprintf(want, sizeof(want), "line %d\n", k++);
        r->ok &= !strcmp(line, want);
    }
    peer_leave(&ov);
    r->ok &= k == 5 && !ferror(f);
    r->status = pclose(f);
    return NULL;
}

static void test_popen_read_parks(void)
{
    long n = t_scale(100);
    struct reader *r = calloc((size_t)n, sizeof(*r));
    pthread_t gk;
    struct jg_green **g = calloc((size_t)n, sizeof(*g)), *tk;
    int64_t before = jg_patch_calls("popen");

    T_ASSERT(r && g);
    gate_open();
    /* popen's child inherits our stdin: that is its gate. */
    stdin_is_gate(true);
    peer_monitor_start();
    helpers_start(&gk, &tk, n);
    for (long i = 0; i < n; i++) {
        r[i].idx = (int)i;
        T_OK(jg_spawn(&g[i], popen_reader, &r[i], NULL));
    }
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    helpers_check(gk, tk, "popen r", 50);
    peer_monitor_check("popen r");
    stdin_is_gate(false);
    T_EQ(jg_patch_calls("popen") - before, n);
    for (long i = 0; i < n; i++) {
        T_EQ(r[i].flags, 0);
        T_EQ(r[i].ok, 1);
        T_ASSERT(WIFEXITED(r[i].status));
        T_EQ(WEXITSTATUS(r[i].status), 3);
    }
    free(r);
    free(g);
}

/* ---- popen: writes through the FILE -------------------------------------- */

#define WBYTES (192 * 1024)     /* three pipe buffers: the writer must park */
#define GATE_FD 9

static void *popen_writer(void *arg)
{
    struct reader *r = arg;
    static unsigned char buf[WBYTES];

    if (!buf[1])
        for (size_t k = 0; k < WBYTES; k++)
            buf[k] = pattern(k);
    FILE *f = popen(child_cmd(GATE_FD, 50, 4, "sum", WBYTES), "w");
    if (!f)
        return JG_ERR(-errno);
    peer_enter(&ov);
    r->ok = fwrite(buf, 1, WBYTES, f) == WBYTES;
    peer_leave(&ov);
    r->status = pclose(f);
    return NULL;
}

static void test_popen_write_parks(void)
{
    long n = t_scale(100);
    struct reader *r = calloc((size_t)n, sizeof(*r));
    pthread_t gk;
    struct jg_green **g = calloc((size_t)n, sizeof(*g)), *tk;

    T_ASSERT(r && g);
    gate_open();
    /* The children's stdin is the pipe: the gate goes on fd 9. */
    T_ASSERT(dup2(gate_rd, GATE_FD) == GATE_FD);
    peer_monitor_start();
    helpers_start(&gk, &tk, n);
    for (long i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], popen_writer, &r[i], NULL));
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    close(GATE_FD);
    helpers_check(gk, tk, "popen w", 50);
    peer_monitor_check("popen w");
    for (long i = 0; i < n; i++) {
        T_EQ(r[i].ok, 1);
        T_ASSERT(WIFEXITED(r[i].status));
        /* 1: bytes lost or out of order; 100 + bits: non-blocking stdio */
        T_EQ(WEXITSTATUS(r[i].status), 4);
    }
    free(r);
    free(g);
}

/* ---- stops, continues and signals: polled beside the pidfd --------------- */

static void test_waitpid_stop_continue(void)
{
    int st;

    gate_open();
    pid_t pid = spawn_child(0, 0);
    T_EQ(kill(pid, SIGSTOP), 0);
    T_EQ(waitpid(pid, &st, WUNTRACED), pid);
    T_ASSERT(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    T_EQ(kill(pid, SIGCONT), 0);
    T_EQ(waitpid(pid, &st, WCONTINUED), pid);
    T_ASSERT(WIFCONTINUED(st));
    T_EQ(kill(pid, SIGKILL), 0);
    T_EQ(waitpid(pid, &st, WUNTRACED | WCONTINUED), pid);
    T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    close(gate_wr);
    close(gate_rd);
    gate_rd = gate_wr = -1;
}

/* ---- killed or timed out while waiting ----------------------------------- */

static void *wait_killed(void *arg)
{
    int st, *err = arg;

    errno = 0;
    pid_t r = waitpid((pid_t)err[0], &st, 0);
    err[1] = r < 0 ? errno : 0;
    return NULL;
}

static void *system_killed(void *arg)
{
    int *res = arg;

    errno = 0;
    res[0] = system(child_cmd(-1, 10000, 0, "exit", 0));
    res[1] = errno;
    return NULL;
}

static void test_wait_cancelled(void)
{
    struct jg_green *g;
    int arg[2] = { 0, -1 }, st;

    gate_open();
    pid_t pid = spawn_child(0, 5);
    arg[0] = pid;
    T_OK(jg_spawn(&g, wait_killed, arg, NULL));
    T_OK(jg_sleep(JG_MS(20)));
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(arg[1], ECANCELED);
    /* The child was left alone: still ours to reap. */
    close(gate_wr);
    gate_wr = -1;
    T_EQ(waitpid(pid, &st, 0), pid);
    T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    close(gate_rd);
    gate_rd = -1;

    /* A deadline scope ends the wait with ETIMEDOUT. */
    struct jg_deadline d;
    gate_open();
    pid = spawn_child(0, 6);
    T_OK(jg_deadline_push(&d, JG_MS(30)));
    errno = 0;
    T_EQ(waitpid(pid, &st, 0), -1);
    T_EQ(errno, ETIMEDOUT);
    T_OK(jg_deadline_pop(&d));
    close(gate_wr);
    gate_wr = -1;
    T_EQ(waitpid(pid, &st, 0), pid);
    T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 6);
    close(gate_rd);
    gate_rd = -1;

    /* system() killed: its child is ended and reaped, none is left. */
    int res[2] = { 0, 0 };
    T_OK(jg_spawn(&g, system_killed, res, NULL));
    T_OK(jg_sleep(JG_MS(50)));
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(res[0], -1);
    T_EQ(res[1], ECANCELED);
    errno = 0;
    T_EQ(waitpid(-1, &st, WNOHANG), -1);
    T_EQ(errno, ECHILD);
}

/* ---- errors are libc's; plain threads get libc itself -------------------- */

struct plain_res {
    int e_self, e_bad_opts, e_mode;
    pid_t reaped;
    int status, pstatus, fileno_ok;
};

static void errors_into(struct plain_res *r)
{
    int st;
    siginfo_t si;

    errno = 0;
    r->e_self = waitpid(getpid(), &st, 0) < 0 ? errno : 0;
    errno = 0;
    r->e_bad_opts = waitid(P_ALL, 0, &si, 0) < 0 ? errno : 0;
    errno = 0;
    r->e_mode = popen("true", "rw") ? 0 : errno;
}

static void *plain_main(void *arg)
{
    struct plain_res *r = arg;

    errors_into(r);
    pid_t pid = spawn_child(0, 9);
    close(gate_wr);
    gate_wr = -1;
    r->reaped = waitpid(pid, &r->status, 0) == pid;
    FILE *f = popen("echo hi", "r");
    char line[16] = "";
    r->fileno_ok = f && fileno(f) >= 0 && fgets(line, sizeof(line), f) &&
                   !strcmp(line, "hi\n");
    r->pstatus = f ? pclose(f) : -1;
    return NULL;
}

static void test_plain_thread_is_libc(void)
{
    struct plain_res green = { 0 }, plain = { 0 };
    pthread_t t;
    int64_t before = jg_patch_calls("waitpid") + jg_patch_calls("popen") +
                     jg_patch_calls("pclose");

    gate_open();
    T_EQ(pthread_create(&t, NULL, plain_main, &plain), 0);
    T_EQ(pthread_join(t, NULL), 0);
    close(gate_rd);
    gate_rd = -1;
    T_EQ(jg_patch_calls("waitpid") + jg_patch_calls("popen") +
         jg_patch_calls("pclose"), before);
    T_EQ(plain.reaped, 1);
    T_ASSERT(WIFEXITED(plain.status) && WEXITSTATUS(plain.status) == 9);
    T_EQ(plain.fileno_ok, 1);
    T_EQ(plain.pstatus, 0);
    /* The same errors from a green thread (the main context) as libc's. */
    errors_into(&green);
    T_EQ(green.e_self, plain.e_self);
    T_EQ(green.e_bad_opts, plain.e_bad_opts);
    T_EQ(green.e_mode, plain.e_mode);
    T_EQ(plain.e_self, ECHILD);
    T_EQ(plain.e_mode, EINVAL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--child"))
        return child_main(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    T_ASSERT(n > 0);
    self[n] = '\0';
    if (!jg_patch_enabled())
        T_FAIL_("the preload library is not attached: "
                "run with LD_PRELOAD=libjuggle_preload.so");
    /* Children run without it (a TSan-built one loads only into TSan
     * programs; the shell would carry ASan's runtime). */
    unsetenv("LD_PRELOAD");
    /* A child that died early fails its check, not the whole test. */
    signal(SIGPIPE, SIG_IGN);
    static const struct t_case cases[] = {
        T_CASE(test_waitpid_parks),
        T_CASE(test_wait_any_child),
        T_CASE(test_system_parks),
        T_CASE(test_popen_read_parks),
        T_CASE(test_popen_write_parks),
        T_CASE(test_waitpid_stop_continue),
        T_CASE(test_wait_cancelled),
        T_CASE(test_plain_thread_is_libc),
    };
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
