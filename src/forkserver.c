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
    /* The command name may hold spaces and parentheses: skip past the
     * last ')', then field 3 (state) is first; field 20 is 17 later. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 2; field < 20 && p; field++)
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

/* Run the child's entry; never returns. */
static _Noreturn void child_run(int kind, const int *fds, int nfds)
{
    if (kind == JG__CHILD_WORKER)
        jg__pool_worker_main(fds, nfds);
    if (kind == JG__CHILD_PROCESS)
        jg__process_child_main(fds, nfds);
    _exit(127);
}

/* ---- the fork server ---------------------------------------------------- */

/*
 * clone(CLONE_PARENT) without glibc's fork: the child's parent is the
 * program, not the server. glibc's fork would also set the thread's tid
 * field (CLONE_CHILD_SETTID at the address PR_GET_TID_ADDRESS reports) and
 * re-register the robust-futex list; we do both, so robust mutexes and
 * tid-owned locks work in the child. The argument order of clone differs
 * between ISAs: x86-64 has (flags, stack, ptid, ctid, tls).
 */
static pid_t clone_parent(void)
{
    unsigned long flags = CLONE_PARENT | SIGCHLD;
    void *ctid = NULL;

    if (tid_addr) {
        flags |= CLONE_CHILD_SETTID;
        ctid = tid_addr;
    }
#if defined(__x86_64__)
    long pid = syscall(SYS_clone, flags, NULL, NULL, ctid, NULL);
#else
    long pid = syscall(SYS_clone, flags, NULL, NULL, NULL, ctid);
#endif
    if (pid == 0 && robust_head)
        syscall(SYS_set_robust_list, robust_head, robust_len);
    return (pid_t)pid;
}

static _Noreturn void server_main(int sock)
{
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
                if (r.kind == JG__CHILD_WORKER) {
                    /* Workers die with the program (its main thread). */
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
    /* Buffered output would be written twice: by us and by a child. */
    fflush(NULL);
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
    /* dup2(fd, fd) clears FD_CLOEXEC (glibc >= 2.29): only these fds
     * reach the new program. */
    for (int i = 0; i < nfds; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i], fds[i]);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                             POSIX_SPAWN_SETSIGDEF);
    char *argv[] = { saved_argv0 ? saved_argv0 : (char *)"juggle-worker",
                     NULL };
    fflush(NULL);
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
    if (kind == JG__CHILD_WORKER)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    child_run((int)kind, fds, nfds);
}

/* ---- public -------------------------------------------------------------- */

int jg_main_init(int argc, char **argv)
{
    const char *marker = getenv(CHILD_ENV);
    int rc = 0;

    if (argc < 0 || (argc > 0 && !argv))
        return -EINVAL;
    if (marker)
        spawned_child(marker);
    pthread_mutex_lock(&fs_lock);
    if (argc > 0 && argv[0] && !saved_argv0)
        saved_argv0 = strdup(argv[0]);
    const char *s = getenv("JG_START_SPAWN");
    if (s && strcmp(s, "1") == 0)
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
    const char *s = getenv("JG_START_SPAWN");
    if (s && strcmp(s, "1") == 0) {
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
    pthread_mutex_lock(&fs_lock);
    int rc = ready_locked();
    pthread_mutex_unlock(&fs_lock);
    return rc;
}

int jg__child_start(int kind, const int *fds, int nfds, pid_t *pid,
                    int *pidfd)
{
    int rc;

    if ((kind != JG__CHILD_WORKER && kind != JG__CHILD_PROCESS) ||
        nfds < 0 || nfds > JG__CHILD_MAXFD || !pid || !pidfd)
        return -EINVAL;
    pthread_mutex_lock(&fs_lock);
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
