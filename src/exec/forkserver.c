/* SPDX-License-Identifier: MIT */
/*
 * forkserver.c - jg_main_init and the one way juggle starts children. The
 * fork server is forked while the program is single-threaded and clones
 * children with CLONE_PARENT, so every worker is a child of the program
 * itself (pidfd + waitid work, no zombie lingers in the server) and no
 * fork ever happens in a threaded process. With JG_START_SPAWN=1 children
 * are started by re-executing /proc/self/exe instead (posix_spawn).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "cpu.h"
#include "forkserver.h"
#include "executor.h"
#include "sys.h"

extern char **environ;

/* The environment variable that marks a re-executed child: "kind:fd,fd". */
#define CHILD_ENV "JG__CHILD"

/* A request to the fork server; the fds travel as SCM_RIGHTS. */
struct fs_req {
    int32_t kind;
    int32_t nfds;
};

static pthread_mutex_t fs_lock = PTHREAD_MUTEX_INITIALIZER;
static int fs_sock = -1;        /* our end of the server's socket pair */
static pid_t fs_pid;            /* the server, reaped at destroy never: it
                                 * exits when the program does */
static bool spawn_mode;
static char *saved_argv0;

/* The registered kinds of child: filled by constructors (before main, or
 * as libjuggle.so is loaded), only read after, so no lock. The fork server
 * and a re-executed child, the same program, hold the same table. */
static struct {
    jg__child_entry_fn entry;
    unsigned flags;
} kinds[JG__CHILD_KINDS];

/* In the server: what the cloned children must repair (see clone_child). */
static void *tid_addr;
static void *robust_head;
static size_t robust_len;
static pid_t server_parent;

/* ---- small helpers ------------------------------------------------------ */

int jg__futex_wait_shared(_Atomic uint32_t *w, uint32_t val,
                          int64_t timeout_ns)
{
    struct timespec ts, *tp = NULL;

    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tp = &ts;
    }
    /* Not FUTEX_PRIVATE: the word lives in memory shared with workers. */
    if (syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, tp, NULL, 0) < 0)
        return -errno;
    return 0;
}

void jg__futex_wake_shared(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, n, NULL, NULL, 0);
}

int jg__child_reap(int pidfd, bool block, siginfo_t *si)
{
    memset(si, 0, sizeof(*si));
    for (;;) {
        int rc = jg__sys_waitid((idtype_t)P_PIDFD, (id_t)pidfd, si,
                                WEXITED | (block ? 0 : WNOHANG));
        if (rc == 0)
            return si->si_pid != 0 ? 1 : 0;
        if (errno != EINTR)
            return -errno;
    }
}

void jg__describe_exit(char *buf, size_t size, const char *prefix,
                       const siginfo_t *si)
{
    if (si->si_code == CLD_EXITED) {
        snprintf(buf, size, "%sexited with status %d", prefix, si->si_status);
    } else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED) {
        const char *abbr = sigabbrev_np(si->si_status);
        snprintf(buf, size, "%skilled by signal %d (SIG%s)", prefix,
                 si->si_status, abbr ? abbr : "?");
    } else {
        snprintf(buf, size, "%sended (status unknown)", prefix);
    }
}

/* The number of threads of this process (/proc/self/stat field 20). */
static long thread_count(void)
{
    char buf[1024];
    int fd = jg__sys_open("/proc/self/stat", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t n = jg__sys_read(fd, buf, sizeof(buf) - 1);
    jg__sys_close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: skip
     * past the last ')'. p then points at the space before field 3; each
     * further space moves one field on, so field 20 is 17 spaces later. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field < 20 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtol(p + 1, NULL, 10) : -1;
}

/* Send a message with fds attached (SCM_RIGHTS). */
static int send_fds(int sock, const void *msg, size_t len, const int *fds,
                    int nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * JG__CHILD_MAXFD)];
    } c;
    struct iovec iov = { (void *)msg, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nfds > 0) {
        memset(&c, 0, sizeof(c));
        mh.msg_control = c.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    }
    for (;;) {
        ssize_t n = jg__sys_sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* Receive a message and up to JG__CHILD_MAXFD fds; returns its length. */
static ssize_t recv_fds(int sock, void *msg, size_t len, int *fds, int *nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * JG__CHILD_MAXFD)];
    } c;
    struct iovec iov = { msg, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = c.buf,
                         .msg_controllen = sizeof(c.buf) };
    ssize_t n;

    *nfds = 0;
    do
        n = jg__sys_recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
         cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(fds + *nfds, CMSG_DATA(cm), sizeof(int) * (size_t)k);
        *nfds += k;
    }
    return n;
}

/* Default signal dispositions and an empty mask, as a fresh program has. */
static void reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        (void)jg__sys_sigaction(s, &sa, NULL);  /* KILL, STOP, glibc's: EINVAL */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void jg__child_kind_register(int kind, jg__child_entry_fn entry,
                             unsigned flags)
{
    JG_ASSERT(kind > 0 && kind < JG__CHILD_KINDS && entry &&
              !kinds[kind].entry);
    kinds[kind].entry = entry;
    kinds[kind].flags = flags;
}

/* Whether kind has an entry. */
static bool kind_known(long kind)
{
    return kind > 0 && kind < JG__CHILD_KINDS && kinds[kind].entry;
}

/* The flags of kind; 0 for a kind with no entry, as for kind 0 (a start
 * that only makes ready). */
static unsigned kind_flags(long kind)
{
    return kind_known(kind) ? kinds[kind].flags : 0;
}

/* Run the entry of kind; never returns. A kind this program has no entry
 * for (a JG__CHILD marker it did not write) exits with status 127. */
static _Noreturn void child_run(long kind, const int *fds, int nfds)
{
    if (kind_known(kind)) {
        kinds[kind].entry(fds, nfds);
    } else {
        char num[24];
        jg__write_stderr("juggle: no entry for a child of kind ");
        jg__write_stderr(kind < 0 ? "-" : "");
        jg__write_stderr(jg__utoa(num, kind < 0 ? 0 - (uint64_t)kind
                                                : (uint64_t)kind));
        jg__write_stderr(" in this program\n");
    }
    _exit(127);
}

/* ---- the fork server ---------------------------------------------------- */

/*
 * clone(CLONE_PARENT) without glibc's fork: the child's parent is the
 * program, not the server. glibc's fork would also set the thread's tid
 * field (CLONE_CHILD_SETTID at the address PR_GET_TID_ADDRESS reports) and
 * re-register the robust-futex list; we do both, so robust mutexes and
 * tid-owned locks work in the child.
 */
static pid_t clone_parent(void)
{
    unsigned long flags = CLONE_PARENT | SIGCHLD;
    void *ctid = NULL;

    if (tid_addr) {
        flags |= CLONE_CHILD_SETTID;
        ctid = tid_addr;
    }
    long pid = jg__clone_raw(flags, NULL, ctid, 0);
    if (pid == 0 && robust_head)
        syscall(SYS_set_robust_list, robust_head, robust_len);
    return (pid_t)pid;
}

/*
 * In the server: close every fd but 0, 1, 2 and keep. fork copied all of
 * the program's fds, close-on-exec or not (its hub's epoll and eventfd,
 * the pipes and sockets it opened before jg_main_init or the lazy start),
 * and every child cloned from here would hold them too: a pipe's reader
 * in the program would never see EOF while a worker lives.
 */
static void close_inherited(int keep)
{
    int lo = 3;

    if (keep > lo && jg__sys_close_range((unsigned)lo, (unsigned)keep - 1,
                                         0) < 0 && errno == ENOSYS) {
        for (int fd = lo; fd < keep; fd++)
            jg__sys_close(fd);
    }
    if (keep >= lo)
        lo = keep + 1;
    if (jg__sys_close_range((unsigned)lo, ~0u, 0) < 0 && errno == ENOSYS) {
        /* Before Linux 5.9: one by one, up to the fd limit. */
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = lo; fd < max; fd++)
            jg__sys_close((int)fd);
    }
}

static _Noreturn void server_main(int sock)
{
    close_inherited(sock);
    /* Ctrl-C goes to the whole process group: the server outlives it so a
     * program that handles SIGINT keeps working pools. Its children get
     * default dispositions back (reset_signals). */
    jg__sys_signal(SIGINT, SIG_IGN);
    jg__sys_signal(SIGQUIT, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != server_parent)
        _exit(0);
    if (prctl(PR_GET_TID_ADDRESS, &tid_addr) != 0)
        tid_addr = NULL;
    if (syscall(SYS_get_robust_list, 0, &robust_head, &robust_len) != 0)
        robust_head = NULL;

    for (;;) {
        struct fs_req r;
        int fds[JG__CHILD_MAXFD], nfds;
        ssize_t n = recv_fds(sock, &r, sizeof(r), fds, &nfds);
        if (n <= 0)
            _exit(0);           /* the program is gone */
        int32_t reply;
        if (n != (ssize_t)sizeof(r) || r.nfds != nfds) {
            reply = -EINVAL;
        } else {
            pid_t pid = clone_parent();
            if (pid == 0) {
                jg__sys_close(sock);
                reset_signals();
                if (kind_flags(r.kind) & JG__CHILD_DIE_WITH_PARENT) {
                    /* They die with the program (its main thread). */
                    prctl(PR_SET_PDEATHSIG, SIGKILL);
                    if (getppid() != server_parent)
                        _exit(0);
                }
                child_run(r.kind, fds, nfds);
            }
            reply = pid < 0 ? -errno : pid;
        }
        for (int i = 0; i < nfds; i++)
            jg__sys_close(fds[i]);
        if (jg__sys_send(sock, &reply, sizeof(reply), MSG_NOSIGNAL) < 0)
            _exit(0);
    }
}

/* Fork the server; the caller holds fs_lock and knows we are alone. */
static int server_start(void)
{
    int sv[2];

    if (jg__sys_socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    /* The caller flushed stdio before it took the lock (lock_for_start). */
    server_parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        jg__sys_close(sv[0]);
        jg__sys_close(sv[1]);
        return e;
    }
    if (pid == 0) {
        jg__sys_close(sv[0]);
        server_main(sv[1]);
    }
    jg__sys_close(sv[1]);
    fs_sock = sv[0];
    fs_pid = pid;
    return 0;
}

/* Ask the server for a child. */
static int server_clone(int kind, const int *fds, int nfds, pid_t *pid)
{
    struct fs_req r = { kind, nfds };
    int32_t reply;
    ssize_t n;

    int rc = send_fds(fs_sock, &r, sizeof(r), fds, nfds);
    if (rc < 0)
        return rc == -EPIPE ? -ECHILD : rc;
    do
        n = jg__sys_recv(fs_sock, &reply, sizeof(reply), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n != sizeof(reply))
        return -ECHILD;         /* the server died */
    if (reply < 0)
        return reply;
    *pid = reply;
    return 0;
}

/* ---- re-exec (JG_START_SPAWN=1) ------------------------------------------ */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int spawn_child(int kind, const int *fds, int nfds, pid_t *pid)
{
    char marker[64];
    size_t len = (size_t)snprintf(marker, sizeof(marker), CHILD_ENV "=%d:",
                                  kind);
    for (int i = 0; i < nfds; i++)
        len += (size_t)snprintf(marker + len, sizeof(marker) - len, "%s%d",
                                i ? "," : "", fds[i]);

    size_t ne = 0;
    while (environ && environ[ne])
        ne++;
    char **envp = malloc((ne + 2) * sizeof(*envp));
    if (!envp)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], CHILD_ENV "=", sizeof(CHILD_ENV)) != 0)
            envp[k++] = environ[i];
    envp[k++] = marker;
    envp[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) {
        free(envp);
        return -rc;
    }
    /* Only these fds (and 0, 1, 2) reach the new program: every fd the
     * program opened without O_CLOEXEC would be inherited otherwise (a
     * pipe's write end held by a worker, its reader never sees EOF). */
    int pass[JG__CHILD_MAXFD];
    memcpy(pass, fds, sizeof(int) * (size_t)nfds);
    qsort(pass, (size_t)nfds, sizeof(int), cmp_int);
    rc = jg__spawn_fd_actions(&fa, pass, (size_t)nfds);
    if (rc < 0) {
        posix_spawn_file_actions_destroy(&fa);
        free(envp);
        return rc;
    }
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                             POSIX_SPAWN_SETSIGDEF);
    char *argv[] = { saved_argv0 ? saved_argv0 : (char *)"juggle-worker",
                     NULL };
    rc = posix_spawn(pid, "/proc/self/exe", &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    return -rc;
}

/* A re-executed child: parse "kind:fd,fd" and run it. */
static _Noreturn void spawned_child(const char *marker)
{
    int fds[JG__CHILD_MAXFD], nfds = 0;
    char *end;
    long kind = strtol(marker, &end, 10);

    if (*end == ':') {
        const char *p = end + 1;
        while (*p && nfds < JG__CHILD_MAXFD) {
            fds[nfds++] = (int)strtol(p, &end, 10);
            p = *end == ',' ? end + 1 : end;
            if (end == p && *p)
                break;
        }
    }
    unsetenv(CHILD_ENV);
    for (int i = 0; i < nfds; i++)
        jg__sys_fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    if (kind_flags(kind) & JG__CHILD_DIE_WITH_PARENT)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    child_run(kind, fds, nfds);
}

/* ---- public -------------------------------------------------------------- */

static bool spawn_env(void)
{
    const char *s = getenv("JG_START_SPAWN");
    return s && strcmp(s, "1") == 0;
}

/*
 * Whether a start of `kind` (0: only make ready) must flush stdio first:
 * forking the server would copy our buffers (written twice, by us and by
 * a child), and a re-executed child of a kind that may print (flag
 * JG__CHILD_FLUSH_ON_SPAWN: jg_process's) should not print before output
 * we buffered earlier. Workers started by a pool's manager never flush:
 * that thread must not wait on the locks of the program's streams.
 * Called with fs_lock held; the flush itself is made without it (a
 * stream's write may park its green thread - a fopencookie stream over
 * cooperative I/O - and another green thread of the hub would then block
 * the hub on the lock).
 */
static bool flush_wanted_locked(int kind)
{
    if (spawn_mode || spawn_env())
        return kind_flags(kind) & JG__CHILD_FLUSH_ON_SPAWN;
    return fs_sock < 0;
}

/* Take fs_lock, flushing stdio first if the start needs it. */
static void lock_for_start(int kind)
{
    pthread_mutex_lock(&fs_lock);
    if (flush_wanted_locked(kind)) {
        pthread_mutex_unlock(&fs_lock);
        fflush(NULL);
        pthread_mutex_lock(&fs_lock);
    }
}

int jg_main_init(int argc, char **argv)
{
    const char *marker = getenv(CHILD_ENV);
    int rc = 0;

    if (argc < 0 || (argc > 0 && !argv))
        return -EINVAL;
    if (marker)
        spawned_child(marker);
    lock_for_start(0);
    if (argc > 0 && argv[0] && !saved_argv0)
        saved_argv0 = strdup(argv[0]);
    if (spawn_env())
        spawn_mode = true;
    else if (fs_sock < 0)
        rc = server_start();
    pthread_mutex_unlock(&fs_lock);
    return rc;
}

/* Make sure children can be started: lazily start the server if alone. */
static int ready_locked(void)
{
    if (spawn_mode || fs_sock >= 0)
        return 0;
    if (spawn_env()) {
        spawn_mode = true;
        return 0;
    }
    if (thread_count() != 1) {
        jg__write_stderr("juggle: process pools and jg_process need a fork "
                         "server, and this program already runs threads: "
                         "call jg_main_init(argc, argv) first thing in "
                         "main(), or set JG_START_SPAWN=1\n");
        return -EINVAL;
    }
    return server_start();
}

int jg__child_ready(void)
{
    lock_for_start(0);
    int rc = ready_locked();
    pthread_mutex_unlock(&fs_lock);
    return rc;
}

int jg__child_start(int kind, const int *fds, int nfds, pid_t *pid,
                    int *pidfd)
{
    int rc;

    if (!kind_known(kind) || nfds < 0 || nfds > JG__CHILD_MAXFD || !pid ||
        !pidfd)
        return -EINVAL;
    lock_for_start(kind);
    rc = ready_locked();
    if (rc == 0)
        rc = spawn_mode ? spawn_child(kind, fds, nfds, pid)
                        : server_clone(kind, fds, nfds, pid);
    pthread_mutex_unlock(&fs_lock);
    if (rc < 0)
        return rc;
    /* The child is ours and unreaped, so its pid cannot be reused before
     * this pidfd pins it. */
    int fd = (int)syscall(SYS_pidfd_open, *pid, 0);
    if (fd < 0) {
        rc = -errno;
        kill(*pid, SIGKILL);
        jg__sys_waitpid(*pid, NULL, 0);
        return rc;
    }
    jg__sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
    *pidfd = fd;
    return 0;
}
