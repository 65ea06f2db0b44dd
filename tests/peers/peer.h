/* SPDX-License-Identifier: MIT */
/*
 * peer.h - what the conformance tests against real libraries and servers
 * share: finding a Debian program (a missing one skips the test, 77), a
 * temp dir removed at exit, servers started as children of the test (as
 * nobody when the test runs as root, without the preload library, killed
 * with the test by PR_SET_PDEATHSIG) and stopped by their PID from an
 * atexit handler, so a failed assertion stops them too; overlap counting;
 * and the monitor check that no hub was blocked past 10 ms.
 */
#ifndef JG_PEER_H
#define JG_PEER_H

#include <juggle.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <execinfo.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys.h"
#include "t.h"

extern char **environ;

/* ---- programs ------------------------------------------------------------ */

/* The first executable `name` in PATH, the usual bin dirs, then each
 * pattern of `globs` (":"-separated, the last match wins: the highest
 * version dir sorts last), or NULL. The result is static. */
static inline const char *peer_find(const char *name, const char *globs)
{
    static char path[512];
    const char *p = getenv("PATH");
    char dirs[2048];

    snprintf(dirs, sizeof(dirs), "%s:/usr/bin:/usr/sbin:/usr/local/bin",
             p ? p : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof(path), "%s/%s", d, name);
        if (access(path, X_OK) == 0)
            return path;
    }
    if (!globs)
        return NULL;
    snprintf(dirs, sizeof(dirs), "%s", globs);
    const char *found = NULL;
    for (char *save = NULL, *g = strtok_r(dirs, ":", &save); g;
         g = strtok_r(NULL, ":", &save)) {
        glob_t gl;
        char pat[600];
        snprintf(pat, sizeof(pat), "%s/%s", g, name);
        if (glob(pat, 0, NULL, &gl) == 0) {
            for (size_t i = 0; i < gl.gl_pathc; i++)
                if (access(gl.gl_pathv[i], X_OK) == 0) {
                    snprintf(path, sizeof(path), "%s", gl.gl_pathv[i]);
                    found = path;
                }
            globfree(&gl);
        }
    }
    return found;
}

/* ---- the temp dir -------------------------------------------------------- */

static char peer_dir[128];

static inline int peer_rm_one(const char *p, const struct stat *st,
                              int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(p);
    return 0;
}

static inline void peer_rm_dir(void)
{
    if (peer_dir[0])
        (void)nftw(peer_dir, peer_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    peer_dir[0] = '\0';
}

/* Remove /tmp/jg-<tag>-* dirs left by a run that was killed (a test
 * timeout): those whose owner process is gone. */
static inline void peer_rm_stale(const char *tag)
{
    char pat[128], own[600];
    glob_t gl;

    snprintf(pat, sizeof(pat), "/tmp/jg-%s-*", tag);
    if (glob(pat, GLOB_ONLYDIR, NULL, &gl) != 0)
        return;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        snprintf(own, sizeof(own), "%s/owner", gl.gl_pathv[i]);
        FILE *f = fopen(own, "r");
        int pid = 0;
        if (!f)
            continue;           /* not ours, or being made right now */
        if (fscanf(f, "%d", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 &&
            errno == ESRCH)
            (void)nftw(gl.gl_pathv[i], peer_rm_one, 16,
                       FTW_DEPTH | FTW_PHYS);
        fclose(f);
    }
    globfree(&gl);
}

/* Make /tmp/jg-<tag>-XXXXXX, removed at exit (after the servers stop:
 * atexit handlers run last-registered first). */
static inline const char *peer_mkdir(const char *tag)
{
    peer_rm_stale(tag);
    snprintf(peer_dir, sizeof(peer_dir), "/tmp/jg-%s-XXXXXX", tag);
    T_ASSERT(mkdtemp(peer_dir) != NULL);
    atexit(peer_rm_dir);
    char own[160];
    snprintf(own, sizeof(own), "%s/owner", peer_dir);
    FILE *f = fopen(own, "w");
    T_ASSERT(f);
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return peer_dir;
}

/* A path inside the temp dir (static: copy it before the next call). */
static inline const char *peer_path(const char *name)
{
    static char p[4][256];
    static int i;

    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", peer_dir, name);
    return p[i];
}

/* ---- the unprivileged user ----------------------------------------------- */

struct peer_user {
    bool drop;                  /* running as root: become uid/gid */
    uid_t uid;
    gid_t gid;
};

/* Servers that refuse root (PostgreSQL) run as nobody:nogroup when the
 * test is root; the temp dir then belongs to them. */
static inline struct peer_user peer_unprivileged(void)
{
    struct peer_user u = { .drop = geteuid() == 0 };

    if (!u.drop)
        return u;
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    if (!pw)
        T_SKIP("running as root and there is no user nobody to run the "
               "server as");
    u.uid = pw->pw_uid;
    u.gid = gr ? gr->gr_gid : pw->pw_gid;
    T_OK(chown(peer_dir, u.uid, u.gid) < 0 ? -errno : 0);
    return u;
}

/* ---- children: servers and one-shot commands ----------------------------- */

#define PEER_MAXPROC 8

struct peer_proc {
    pid_t pid;
    int sig;                    /* how to ask it to stop */
    const char *name;
};

static struct peer_proc peer_procs[PEER_MAXPROC];

/* Sleep in the kernel: also safe at exit inside a green thread, and on
 * the monitor's thread. */
static inline void peer_nap_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000L };

    (void)jg__sys_nanosleep(&ts, NULL);
}

/* Stop one server: its stop signal, up to 10 s, then SIGKILL. System calls
 * made directly, since this also runs from exit() in a green thread. */
static inline void peer_stop(struct peer_proc *p)
{
    int st;

    if (p->pid <= 0)
        return;
    if (kill(p->pid, p->sig) == 0) {
        for (int i = 0; i < 1000; i++) {
            if (jg__sys_waitpid(p->pid, &st, WNOHANG) != 0)
                goto done;
            peer_nap_us(10000);
        }
        fprintf(stderr, "   %s (pid %d) ignored signal %d: SIGKILL\n",
                p->name, (int)p->pid, p->sig);
        (void)kill(p->pid, SIGKILL);
        (void)jg__sys_waitpid(p->pid, &st, 0);
    }
done:
    p->pid = 0;
}

static inline void peer_stop_all(void)
{
    for (int i = PEER_MAXPROC - 1; i >= 0; i--)
        peer_stop(&peer_procs[i]);
}

/* The environment without LD_PRELOAD (the preload library, and ASan's
 * runtime that the ASan build puts first in it), plus extra (NULL-ended).
 * Static storage: one at a time. */
static inline char **peer_env(const char *const *extra)
{
    static char *envp[512];
    size_t n = 0;

    for (char **e = environ; *e && n < 500; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            envp[n++] = *e;
    for (; extra && *extra && n < 510; extra++)
        envp[n++] = (char *)*extra;
    envp[n] = NULL;
    return envp;
}

struct peer_spawn_opts {
    const struct peer_user *user;   /* NULL: as the test */
    const char *log;                /* stdout+stderr to this file */
    int out_fd;                     /* or stdout to this fd (-1: none) */
    const char *const *env;         /* extra environment */
    int deathsig;                   /* when the test dies (0: SIGKILL) */
};

/* fork + exec argv[0] as a child of the test; the pid, or the test fails.
 * The child gets o->deathsig when the thread that forked it dies
 * (PR_SET_PDEATHSIG, set after dropping privileges, which would clear
 * it): a test killed by its timeout takes its servers along. */
static inline pid_t peer_exec(const char *const *argv,
                       const struct peer_spawn_opts *o)
{
    char **envp = peer_env(o->env);
    pid_t parent = getpid();

    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid > 0)
        return pid;
    /* The child makes its system calls directly: the forked copy of the
     * hub is not ours to touch. */
    int fd = jg__sys_open("/dev/null", O_RDONLY, 0);
    if (fd > 0) {
        jg__sys_dup2(fd, 0);
        jg__sys_close(fd);
    }
    if (o->log) {
        fd = jg__sys_open(o->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            jg__sys_dup2(fd, 1);
            jg__sys_dup2(fd, 2);
            jg__sys_close(fd);
        }
    }
    if (o->out_fd >= 0)
        jg__sys_dup2(o->out_fd, 1);
    /* Nothing else of the test (its pipes, its epoll) goes along. */
    (void)syscall(SYS_close_range, 3, ~0U, 0);
    if (o->user && o->user->drop) {
        if (setgroups(0, NULL) < 0 || setgid(o->user->gid) < 0 ||
            setuid(o->user->uid) < 0)
            _exit(126);
    }
    prctl(PR_SET_PDEATHSIG, o->deathsig ? o->deathsig : SIGKILL);
    if (getppid() != parent)
        _exit(126);
    execve(argv[0], (char *const *)argv, envp);
    _exit(127);
}

/* Start a server; stopped with `sig` at exit, or by peer_stop_all. */
static inline struct peer_proc *peer_server(const char *name, int sig,
                                     const char *const *argv,
                                     const struct peer_spawn_opts *o)
{
    static bool registered;

    if (!registered) {
        atexit(peer_stop_all);
        registered = true;
    }
    for (int i = 0; i < PEER_MAXPROC; i++)
        if (peer_procs[i].pid <= 0) {
            peer_procs[i] = (struct peer_proc){
                .pid = peer_exec(argv, o), .sig = sig, .name = name,
            };
            return &peer_procs[i];
        }
    T_FAIL_("too many servers");
}

/* Whether a server exited (it is then reaped: *status says how). */
static inline bool peer_exited(struct peer_proc *p, int *status)
{
    if (p->pid <= 0)
        return true;
    if (jg__sys_waitpid(p->pid, status, WNOHANG) == p->pid) {
        p->pid = 0;
        return true;
    }
    return false;
}

/* Run a command to its end (without the preload library); its status. */
static inline int peer_run(const char *const *argv,
                           const struct peer_spawn_opts *o)
{
    int st;
    pid_t pid = peer_exec(argv, o);

    while (jg__sys_waitpid(pid, &st, 0) < 0)
        T_ASSERT(errno == EINTR);
    return st;
}

/* A file's text on stderr (a server's log, when it failed). */
static inline void peer_cat(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];

    while (f && fgets(line, sizeof(line), f))
        fputs(line, stderr);
    if (f)
        fclose(f);
}

/* A TCP port on 127.0.0.1 that was free a moment ago, for servers that
 * cannot take port 0 and tell which they got. */
static inline int peer_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    T_ASSERT(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0);
    T_OK(getsockname(fd, (struct sockaddr *)&a, &len) < 0 ? -errno : 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- overlap ------------------------------------------------------------- */

/*
 * How many green threads are inside a blocking call at once. With the
 * library's calls cooperative, all of them are; if one blocked the hub,
 * the others could not even enter theirs and the peak would stay 1.
 * (The peak's update is not atomic as a whole: green threads of one hub
 * never run at once.)
 */
struct peer_overlap {
    _Atomic int inside, peak;   /* atomic: a plain thread may watch */
};

static inline void peer_enter(struct peer_overlap *o)
{
    int in = atomic_fetch_add(&o->inside, 1) + 1;

    if (in > atomic_load(&o->peak))
        atomic_store(&o->peak, in);
}

static inline void peer_leave(struct peer_overlap *o)
{
    atomic_fetch_sub(&o->inside, 1);
}

/* ---- the monitor --------------------------------------------------------- */

/*
 * The watchdog reports a hub out of its loop past the threshold. A report
 * counts against the library only when the hub's thread is asleep in a
 * system call (state S or D): a blocking call that escaped the patch. Not
 * counted, only printed: a runnable thread (R: computing, or preempted by
 * a loaded machine, ctest -j beside a CPU hog); the loop's own wait (epoll
 * or io_uring: the episode ended before the report came); and futex, a
 * lock shared with another thread (malloc's, OpenSSL's, the offload
 * pool's) whose holder was preempted: blocking between OS threads, which
 * the patch leaves alone by design (docs/preload.md). The thread is looked
 * at five times over 2 ms, since the sampling signal itself wakes it for
 * a moment.
 */
static pid_t peer_mon_tid;
static _Atomic int peer_mon_blocked, peer_mon_busy;
static _Atomic int64_t peer_mon_worst;

/* A /proc/self/task/<tid>/ file's text (empty on failure). */
static inline void peer_task_file(pid_t tid, const char *name, char *buf,
                                  size_t size)
{
    char path[64];

    buf[0] = '\0';
    snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, name);
    int fd = jg__sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return;
    ssize_t n = jg__sys_read(fd, buf, size - 1);
    jg__sys_close(fd);
    buf[n > 0 ? n : 0] = '\0';
}

/* Whether the thread sleeps in the kernel outside the loop's own wait;
 * *nr gets the system call it sleeps in. */
static inline bool peer_thread_blocked(pid_t tid, long *nr_out)
{
    char buf[512];

    peer_task_file(tid, "stat", buf, sizeof(buf));
    /* "tid (comm) S ...": comm may hold spaces and parens. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || (p[2] != 'S' && p[2] != 'D'))
        return false;
    peer_task_file(tid, "syscall", buf, sizeof(buf));
    long nr = strtol(buf, NULL, 10);
    if (!strncmp(buf, "running", 7))
        return false;
    *nr_out = nr;
    return nr != SYS_epoll_pwait && nr != SYS_futex &&
#ifdef SYS_epoll_wait           /* x86-64 has it; aarch64 only pwait */
           nr != SYS_epoll_wait &&
#endif
#ifdef SYS_epoll_pwait2
           nr != SYS_epoll_pwait2 &&
#endif
#ifdef SYS_io_uring_enter
           nr != SYS_io_uring_enter &&
#endif
           true;
}

static inline void peer_on_report(void *arg, const char *name,
                                  int64_t elapsed, void *const *frames,
                                  int nframes)
{
    int asleep = 0;
    long nr = -1;

    (void)arg;
    for (int i = 0; i < 5; i++) {
        asleep += peer_thread_blocked(peer_mon_tid, &nr);
        if (i < 4)
            peer_nap_us(500);
    }
    bool blocked = asleep >= 3;
    if (blocked)
        atomic_fetch_add(&peer_mon_blocked, 1);
    else
        atomic_fetch_add(&peer_mon_busy, 1);
    if (elapsed > atomic_load(&peer_mon_worst))
        atomic_store(&peer_mon_worst, elapsed);
    fprintf(stderr, "   monitor: %s held its hub %.1f ms (%s%ld)\n", name,
            (double)elapsed / 1e6,
            blocked ? "BLOCKED, asleep in system call "
                    : "running, preempted, in its loop or on a lock: not "
                      "counted; blocked samples ",
            blocked ? nr : (long)asleep);
    if (blocked)
        backtrace_symbols_fd(frames, nframes, 2);
}

/* The threshold: 10 ms; sanitizers slow everything down several times. */
static inline int64_t peer_mon_threshold(void)
{
    return T_SANITIZED ? JG_MS(100) : JG_MS(10);
}

/* Watch this thread's hub from now on. */
static inline void peer_monitor_start(void)
{
    peer_mon_tid = (pid_t)syscall(SYS_gettid);
    atomic_store(&peer_mon_blocked, 0);
    atomic_store(&peer_mon_busy, 0);
    atomic_store(&peer_mon_worst, 0);
    jg_monitor_set_callback(peer_on_report, NULL);
    T_OK(jg_monitor_start(peer_mon_threshold()));
}

/* Stop watching; no report may say the hub was blocked in the kernel. */
static inline void peer_monitor_check(const char *what)
{
    T_OK(jg_monitor_stop());
    jg_monitor_set_callback(NULL, NULL);
    int blocked = atomic_load(&peer_mon_blocked);
    fprintf(stderr, "   %s: monitor (%.0f ms): %d blocked, %d runnable "
            "reports\n", what, (double)peer_mon_threshold() / 1e6, blocked,
            atomic_load(&peer_mon_busy));
    T_EQ(blocked, 0);
}

#endif
