/* SPDX-License-Identifier: MIT */
/*
 * child.c - child processes under the patch: waitpid, waitid, wait, wait3,
 * wait4, system, popen and pclose (and fileno for popen's streams). From a
 * green thread, a wait for one child parks on that child's pidfd, which
 * the hub watches like any fd; a wait for "any child" (or a process group)
 * polls with a short backoff, since no fd says "some child changed state".
 * popen returns a fopencookie stream whose reads and writes park on the
 * pipe: glibc's own popen stream reads through an internal read that no
 * interposer sees. No fd a child inherits is ever made non-blocking, and
 * every result comes from libc's own call (made with WNOHANG once the
 * child is ready), so statuses and errors are libc's.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload/preload.h"

extern char **environ;

PL_SYM(waitpid);
PL_SYM(waitid);
PL_SYM(wait);
PL_SYM(wait3);
PL_SYM(wait4);
PL_SYM(system);
PL_SYM(popen);
PL_SYM(pclose);
PL_SYM(fileno);
PL_SYM(fileno_unlocked);
PL_SYM(read);
PL_SYM(write);
PL_SYM(close);
PL_SYM(pipe2);
PL_SYM(fcntl);

/* A private errno value meaning "the call's own timeout passed". */
#define OWN_TIMEOUT ETIME

/* waitid's P_PIDFD (Linux 5.4); glibc 2.36 names it, older ones do not. */
#define PL_P_PIDFD ((idtype_t)3)

/* Polling for waits no pidfd can serve: 1 ms, doubling up to 16 ms. */
#define BACKOFF_MIN 1000000LL
#define BACKOFF_MAX 16000000LL

/* ---- fds ----------------------------------------------------------------- */

/* Close an fd we made, through jg_close when this thread has a hub, so a
 * watcher the loop still holds on the number is dropped before reuse. */
static void pl_close(int fd)
{
    const struct jg__patch_rt *rt = jg__pl_hub_rt();

    if (rt)
        (void)rt->close(fd);
    else
        (void)REAL(close)(fd);
}

/* A new fd of ours: the table and the loop forget what the number was. */
static void pl_fresh(int fd)
{
    jg__pl_fd_fresh(fd, 0);
    const struct jg__patch_rt *rt = jg__pl_hub_rt();
    if (rt)
        rt->fd_fresh(fd);
}

/* ---- the waits ----------------------------------------------------------- */

enum { W_WAIT4, W_WAITID };

/* One wait call's arguments, wait4's or waitid's. */
struct wreq {
    int how;
    pid_t pid;                  /* wait4 */
    int *status;
    struct rusage *ru;
    idtype_t idtype;            /* waitid */
    id_t id;
    siginfo_t *info;
    int options;
};

/*
 * The call itself with WNOHANG: 1 when it reported a child (*res is its
 * result), 0 when no child is ready yet, -errno (ECHILD, EINVAL, ...) as
 * libc gave it.
 */
static int attempt(const struct wreq *w, long *res)
{
    if (w->how == W_WAIT4) {
        pid_t r;
        do
            r = REAL(wait4)(w->pid, w->status, w->options | WNOHANG, w->ru);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return -errno;
        *res = r;
        return r > 0;
    }
    /* Linux takes a NULL infop; we need one to tell "nothing yet". */
    siginfo_t local, *si = w->info ? w->info : &local;
    int r;
    do {
        si->si_pid = 0;
        r = REAL(waitid)(w->idtype, w->id, si, w->options | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    *res = 0;
    return si->si_pid != 0;
}

/* The pid a wait for one child watches, or 0 ("any", a process group). */
static pid_t one_child(const struct wreq *w)
{
    if (w->how == W_WAIT4)
        return w->pid > 0 ? w->pid : 0;
    return w->idtype == P_PID && w->id > 0 && w->id <= INT_MAX
        ? (pid_t)w->id : 0;
}

/*
 * Wait as the blocking call would, parking the green thread: the call's
 * result, -errno (libc's, or ECANCELED/ETIMEDOUT when killed or a deadline
 * scope ended), or -EPERM when it cannot park here (the caller then makes
 * libc's blocking call). Exits come through the child's pidfd; stops and
 * continues (WUNTRACED, WSTOPPED, WCONTINUED), which no pidfd reports, and
 * waits for any child are polled with a backoff. name is counted when
 * the call parks (PL_NNAMES: counted by the caller).
 */
static long coop_wait(enum jg__pl_name name, const struct wreq *w)
{
    long res = 0;
    int a = attempt(w, &res);

    if (a != 0)
        return a < 0 ? a : res;
    if (name != PL_NNAMES)
        jg__pl_note(name);
    bool exits = w->how == W_WAIT4 || (w->options & WEXITED);
    bool other = w->how == W_WAIT4 ? (w->options & (WUNTRACED | WCONTINUED))
                                   : (w->options & (WSTOPPED | WCONTINUED));
    int pidfd = -1;
    bool own = false;
    pid_t pid = one_child(w);
    if (exits && pid > 0) {
        /* The pid cannot be recycled while it is our unreaped child; the
         * attempt below, after the open, rules out a reap in between. */
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        own = pidfd >= 0;
        if (own)
            pl_fresh(pidfd);
    } else if (exits && w->how == W_WAITID && w->idtype == PL_P_PIDFD) {
        pidfd = (int)w->id;     /* the caller's own: never closed here */
    }
    int64_t backoff = BACKOFF_MIN;
    bool fired = false;
    long r;
    for (;;) {
        a = attempt(w, &res);
        if (a != 0) {
            r = a < 0 ? a : res;
            break;
        }
        if (fired) {
            /* The pidfd said "exited" and still nothing to report (the
             * exit was not asked for, or another waiter reaped it): it
             * stays readable, so poll from now on instead of spinning. */
            if (own)
                pl_close(pidfd);
            pidfd = -1;
            own = fired = false;
        }
        int wr;
        if (pidfd >= 0) {
            int64_t until = other ? jg__pl_after(backoff) : INT64_MAX;
            wr = jg__pl_wait(pidfd, JG_READ, until, OWN_TIMEOUT);
            if (wr == 0) {
                fired = true;
                continue;
            }
            if (wr == -EBADF) {
                /* Closed under us (its number may be reused already):
                 * forget it, never close it. */
                pidfd = -1;
                own = false;
                continue;
            }
        } else {
            wr = jg__pl_sleep_until(jg__pl_after(backoff));
            if (wr == 0)
                wr = -OWN_TIMEOUT;
        }
        if (wr == -OWN_TIMEOUT) {
            if (backoff < BACKOFF_MAX)
                backoff *= 2;
            continue;
        }
        r = wr;                 /* -EPERM, -ECANCELED, -ETIMEDOUT, ... */
        break;
    }
    if (own)
        pl_close(pidfd);
    return r;
}

PL_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    if (!jg__pl_green() || (options & WNOHANG))
        return REAL(wait4)(pid, status, options, ru);
    struct wreq w = { .how = W_WAIT4, .pid = pid, .status = status,
                      .ru = ru, .options = options };
    long r = coop_wait(PL_wait4, &w);
    if (r == -EPERM)
        return REAL(wait4)(pid, status, options, ru);
    return (pid_t)jg__pl_ret(r);
}

PL_EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    if (!jg__pl_green() || (options & WNOHANG))
        return REAL(waitpid)(pid, status, options);
    struct wreq w = { .how = W_WAIT4, .pid = pid, .status = status,
                      .options = options };
    long r = coop_wait(PL_waitpid, &w);
    if (r == -EPERM)
        return REAL(waitpid)(pid, status, options);
    return (pid_t)jg__pl_ret(r);
}

PL_EXPORT pid_t wait(int *status)
{
    if (!jg__pl_green())
        return REAL(wait)(status);
    struct wreq w = { .how = W_WAIT4, .pid = -1, .status = status };
    long r = coop_wait(PL_wait, &w);
    if (r == -EPERM)
        return REAL(wait)(status);
    return (pid_t)jg__pl_ret(r);
}

PL_EXPORT pid_t wait3(int *status, int options, struct rusage *ru)
{
    if (!jg__pl_green() || (options & WNOHANG))
        return REAL(wait3)(status, options, ru);
    struct wreq w = { .how = W_WAIT4, .pid = -1, .status = status,
                      .ru = ru, .options = options };
    long r = coop_wait(PL_wait3, &w);
    if (r == -EPERM)
        return REAL(wait3)(status, options, ru);
    return (pid_t)jg__pl_ret(r);
}

PL_EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
    if (!jg__pl_green() || (options & WNOHANG))
        return REAL(waitid)(idtype, id, info, options);
    struct wreq w = { .how = W_WAITID, .idtype = idtype, .id = id,
                      .info = info, .options = options };
    long r = coop_wait(PL_waitid, &w);
    if (r == -EPERM)
        return REAL(waitid)(idtype, id, info, options);
    return (int)jg__pl_ret(r);
}

/* waitpid(pid, status, 0) for our own children: parked when we may,
 * blocking otherwise (a plain thread, the hub, a fallback). */
static pid_t reap(pid_t pid, int *status, int *err)
{
    long r = -EPERM;

    if (jg__pl_green()) {
        struct wreq w = { .how = W_WAIT4, .pid = pid, .status = status };
        r = coop_wait(PL_NNAMES, &w);
    }
    if (r == -EPERM) {
        do
            r = REAL(wait4)(pid, status, 0, NULL);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            r = -errno;
    }
    *err = r < 0 ? (int)-r : 0;
    return r < 0 ? -1 : (pid_t)r;
}

/* After a killed or timed-out wait for a child of ours that nobody else
 * can reap: end it and reap it (as glibc's system does on cancellation);
 * a SIGKILLed child is gone at once. */
static void reap_killed(pid_t pid)
{
    (void)kill(pid, SIGKILL);
    while (REAL(wait4)(pid, NULL, 0, NULL) < 0 && errno == EINTR)
        ;
}

/* ---- popen's streams ----------------------------------------------------- */

/* One popen stream of ours: the cookie of its FILE. */
struct pstream {
    FILE *f;
    int fd;                     /* our end of the pipe */
    pid_t pid;
    int status;                 /* the child's wait status, once closed */
    int err;                    /* errno of a failed wait */
    bool by_pclose;             /* pclose frees it, after fclose */
    struct pstream *next;
};

/* Our open streams: for pclose and fileno to know them, and to close
 * their fds in later children (POSIX). Held only briefly, never across a
 * park. n_open lets fileno skip the lock while none is open. */
static pthread_mutex_t ps_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pstream *ps_list;
static _Atomic int ps_open;

/* POSIX: streams of earlier popen calls are closed in the child (ours
 * without "e" would be inherited). Their fds now, but target, in a new
 * array (*out, NULL for none): the count, or -ENOMEM. A stream closed
 * after this only makes the child close a number it need not inherit. */
static int ps_snapshot(int target, int **out)
{
    int n = 0, *fds = NULL;

    pthread_mutex_lock(&ps_mu);
    int max = atomic_load_explicit(&ps_open, memory_order_relaxed);
    if (max > 0 && !(fds = malloc(sizeof(int) * (size_t)max))) {
        pthread_mutex_unlock(&ps_mu);
        return -ENOMEM;
    }
    for (struct pstream *q = ps_list; q && n < max; q = q->next)
        if (q->fd != target)
            fds[n++] = q->fd;
    pthread_mutex_unlock(&ps_mu);
    *out = fds;
    return n;
}

/* ---- spawning the shell -------------------------------------------------- */

/*
 * One "sh -c cmd", as system and popen start it. posix_spawn suspends the
 * calling thread until the child has exec'd (vfork: about a millisecond
 * for a large program), so from a green thread the spawn is handed, from
 * the offload pool, to the spawner: one thread of ours that lives as long
 * as the process. The children's parent thread matters for
 * PR_SET_PDEATHSIG (a child that sets it dies with the thread that made
 * it): a pool thread retires when idle, the spawner never does. The hub
 * goes on meanwhile. Everything the other threads read is on the heap:
 * the caller's stack may be a sliced one, copied out while it is parked.
 * The signal mask is the caller's, set explicitly, since our threads
 * block every signal.
 */
struct spawn_job {
    char *cmd;                  /* our copy */
    sigset_t mask;              /* the caller's */
    sigset_t reset;             /* system: set to SIG_DFL in the child */
    bool sys;                   /* system's attributes (reset) */
    int theirs, target;         /* popen: dup2(theirs, target); -1: none */
    int *closes, nclose;        /* popen: fds to close in the child */
    pid_t pid;
    int rc;                     /* posix_spawn's result; -1: never ran */
    bool done;                  /* the spawner is through with it */
    struct spawn_job *next;     /* in the spawner's queue */
};

/* posix_spawn of j, on the calling thread. */
static void spawn_now(struct spawn_job *j)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    short flags = POSIX_SPAWN_SETSIGMASK;

    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &j->mask);
    if (j->sys) {
        posix_spawnattr_setsigdefault(&attr, &j->reset);
        flags |= POSIX_SPAWN_SETSIGDEF;
    }
    posix_spawnattr_setflags(&attr, flags);
    posix_spawn_file_actions_init(&fa);
    if (j->theirs >= 0 && j->theirs != j->target)
        posix_spawn_file_actions_adddup2(&fa, j->theirs, j->target);
    for (int i = 0; i < j->nclose; i++)
        posix_spawn_file_actions_addclose(&fa, j->closes[i]);
    j->rc = posix_spawn(&j->pid, "/bin/sh", &fa, &attr,
                        (char *const[]){ (char *)"sh", (char *)"-c",
                                         j->cmd, NULL },
                        environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
}

/* The spawner's queue; sp_mu is held only to queue and to signal. */
static pthread_mutex_t sp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sp_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t sp_done = PTHREAD_COND_INITIALIZER;
static struct spawn_job *sp_head, **sp_tail = &sp_head;
static bool sp_running;

static void *spawner_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sp_mu);
    for (;;) {
        struct spawn_job *j;
        while (!(j = sp_head))
            pthread_cond_wait(&sp_work, &sp_mu);
        if (!(sp_head = j->next))
            sp_tail = &sp_head;
        pthread_mutex_unlock(&sp_mu);
        spawn_now(j);
        pthread_mutex_lock(&sp_mu);
        j->done = true;
        pthread_cond_broadcast(&sp_done);
    }
    return NULL;
}

/* A forked child has no spawner, and our locks may have been held by a
 * thread the fork did not copy. */
static void child_after_fork(void);

static void spawner_atfork(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
}

/* On a pool thread: the spawner makes the child, we wait for it (the
 * green thread waits for us; run_in_thread returns only after we end). */
static void *spawn_run(void *arg)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct spawn_job *j = arg;

    pthread_once(&once, spawner_atfork);
    pthread_mutex_lock(&sp_mu);
    if (!sp_running) {
        pthread_attr_t a;
        pthread_t t;
        sigset_t all, old;
        sigfillset(&all);
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        sp_running = pthread_create(&t, &a, spawner_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&a);
        if (!sp_running) {
            /* No thread to be had: here, on the pool thread. */
            pthread_mutex_unlock(&sp_mu);
            spawn_now(j);
            return NULL;
        }
    }
    j->next = NULL;
    *sp_tail = j;
    sp_tail = &j->next;
    pthread_cond_signal(&sp_work);
    while (!j->done)
        pthread_cond_wait(&sp_done, &sp_mu);
    pthread_mutex_unlock(&sp_mu);
    return NULL;
}

/*
 * Start j: 0 with j->pid running, or -errno (posix_spawn's error, or
 * ECANCELED/ETIMEDOUT when the caller was killed or its deadline scope
 * ended first: a child made meanwhile is ended and reaped).
 */
static int spawn_sh(struct spawn_job *j)
{
    int r = -EPERM;

    j->rc = -1;
    pthread_sigmask(SIG_BLOCK, NULL, &j->mask);
    if (jg__pl_green())
        r = jg__pl_rt->run_in_thread(NULL, spawn_run, j, -1);
    if (r == -EPERM || r == -ENOMEM || r == -EAGAIN) {
        /* No pool (or a plain thread): here, as libc would. */
        spawn_now(j);
        r = 0;
    }
    if (r < 0) {
        if (j->rc == 0)
            reap_killed(j->pid);
        return r;
    }
    return j->rc == 0 ? 0 : -j->rc;
}

/* ---- system -------------------------------------------------------------- */

/*
 * As glibc's system: SIGINT and SIGQUIT ignored in the caller while a
 * command runs (counted, so overlapping calls restore them once), reset to
 * their default in the child unless ignored, the caller's signal mask for
 * the child. Unlike glibc, SIGCHLD is not blocked around the wait: the mask
 * belongs to the OS thread, which runs other green threads meanwhile.
 */
static pthread_mutex_t sys_mu = PTHREAD_MUTEX_INITIALIZER;
static int sys_refs;
static struct sigaction sys_intr, sys_quit;

static void sys_signals_enter(struct sigaction *intr, struct sigaction *quit)
{
    struct sigaction ign = { .sa_handler = SIG_IGN };

    sigemptyset(&ign.sa_mask);
    pthread_mutex_lock(&sys_mu);
    if (sys_refs++ == 0) {
        sigaction(SIGINT, &ign, &sys_intr);
        sigaction(SIGQUIT, &ign, &sys_quit);
    }
    *intr = sys_intr;
    *quit = sys_quit;
    pthread_mutex_unlock(&sys_mu);
}

static void sys_signals_leave(void)
{
    pthread_mutex_lock(&sys_mu);
    if (--sys_refs == 0) {
        sigaction(SIGINT, &sys_intr, NULL);
        sigaction(SIGQUIT, &sys_quit, NULL);
    }
    pthread_mutex_unlock(&sys_mu);
}

/* The shell runs line; its wait status, or -1 with errno. */
static int coop_system(const char *line)
{
    struct sigaction intr, quit;
    int status = -1, err = 0;
    struct spawn_job *j = calloc(1, sizeof *j);

    if (!j || !(j->cmd = strdup(line))) {
        free(j);
        errno = ENOMEM;
        return -1;
    }
    j->sys = true;
    j->theirs = j->target = -1;
    sys_signals_enter(&intr, &quit);
    sigemptyset(&j->reset);
    if (intr.sa_handler != SIG_IGN)
        sigaddset(&j->reset, SIGINT);
    if (quit.sa_handler != SIG_IGN)
        sigaddset(&j->reset, SIGQUIT);
    int rc = spawn_sh(j);
    if (rc == 0) {
        if (reap(j->pid, &status, &err) != j->pid) {
            if (err == ECANCELED || err == ETIMEDOUT)
                reap_killed(j->pid);
            status = -1;
        }
    } else if (rc == -ECANCELED || rc == -ETIMEDOUT) {
        err = -rc;
    } else {
        /* POSIX: as if the shell had terminated with _exit(127). */
        status = 127 << 8;
    }
    sys_signals_leave();
    free(j->cmd);
    free(j);
    if (status == -1)
        errno = err;
    return status;
}

PL_EXPORT int system(const char *line)
{
    if (!jg__pl_green())
        return REAL(system)(line);
    jg__pl_note(PL_system);
    /* NULL asks whether a shell is there; glibc runs "exit 0" to see. */
    if (!line)
        return coop_system("exit 0") == 0;
    return coop_system(line);
}

/* ---- popen --------------------------------------------------------------- */

static void ps_unlink(struct pstream *p)
{
    pthread_mutex_lock(&ps_mu);
    for (struct pstream **pp = &ps_list; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            atomic_fetch_sub_explicit(&ps_open, 1, memory_order_relaxed);
            break;
        }
    pthread_mutex_unlock(&ps_mu);
}

/* The stream's read: parked until the pipe has data (or EOF). */
static ssize_t ps_read(void *c, char *buf, size_t n)
{
    struct pstream *p = c;

    if (!jg__pl_green())
        return REAL(read)(p->fd, buf, n);
    for (;;) {
        int ok = jg__pl_ready_now(p->fd, POLLIN);
        if (ok != 0)
            return ok < 0 ? jg__pl_ret(ok) : REAL(read)(p->fd, buf, n);
        int w = jg__pl_wait(p->fd, JG_READ, INT64_MAX, EAGAIN);
        if (w == -EPERM)
            return REAL(read)(p->fd, buf, n);
        if (w < 0)
            return jg__pl_ret(w);
    }
}

/* The stream's write, all of it (stdio takes a short write for an error):
 * PIPE_BUF bytes at a time once poll says the pipe takes data, which a
 * writable pipe accepts without blocking. */
static ssize_t ps_write(void *c, const char *buf, size_t n)
{
    struct pstream *p = c;
    size_t done = 0;

    while (done < n) {
        size_t k = n - done;
        ssize_t r;
        if (jg__pl_green()) {
            int ok = jg__pl_ready_now(p->fd, POLLOUT);
            if (ok == 0) {
                int w = jg__pl_wait(p->fd, JG_WRITE, INT64_MAX, EAGAIN);
                if (w < 0 && w != -EPERM)
                    return done ? (ssize_t)done : jg__pl_ret(w);
                if (w == 0)
                    continue;
            } else if (ok < 0) {
                return done ? (ssize_t)done : jg__pl_ret(ok);
            } else if (k > PIPE_BUF) {
                k = PIPE_BUF;
            }
        }
        r = REAL(write)(p->fd, buf + done, k);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/* fclose (or pclose) of the stream: close our end, reap the child. */
static int ps_close(void *c)
{
    struct pstream *p = c;

    ps_unlink(p);
    pl_close(p->fd);
    if (reap(p->pid, &p->status, &p->err) != p->pid) {
        if (p->err == ECANCELED || p->err == ETIMEDOUT)
            reap_killed(p->pid);
        p->status = -1;
    }
    if (!p->by_pclose)
        free(p);
    return 0;
}

/* popen's mode as glibc reads it: exactly one of r and w, e for CLOEXEC. */
static int ps_mode(const char *mode, bool *rd, bool *cloexec)
{
    bool r = false, w = false;

    *cloexec = false;
    for (; *mode; mode++)
        switch (*mode) {
        case 'r':
            r = true;
            break;
        case 'w':
            w = true;
            break;
        case 'e':
            *cloexec = true;
            break;
        default:
            return -EINVAL;
        }
    if (r == w)
        return -EINVAL;
    *rd = r;
    return 0;
}

static FILE *coop_popen(const char *cmd, const char *mode)
{
    bool rd, cloexec;
    int fds[2], rc;

    if ((rc = ps_mode(mode, &rd, &cloexec)) < 0) {
        errno = -rc;
        return NULL;
    }
    struct pstream *p = calloc(1, sizeof *p);
    struct spawn_job *j = calloc(1, sizeof *j);
    if (!p || !j || !(j->cmd = strdup(cmd))) {
        free(p);
        free(j);
        errno = ENOMEM;
        return NULL;
    }
    /* Both ends close-on-exec: no other child inherits them. */
    if (REAL(pipe2)(fds, O_CLOEXEC) < 0) {
        rc = -errno;
        goto err_free;
    }
    pl_fresh(fds[0]);
    pl_fresh(fds[1]);
    int mine = rd ? fds[0] : fds[1];
    j->theirs = rd ? fds[1] : fds[0];
    j->target = rd ? STDOUT_FILENO : STDIN_FILENO;
    /* Already the right number: dup2 onto itself would keep CLOEXEC, so
     * clear it (the fd is closed in this process right after). */
    if (j->theirs == j->target)
        (void)REAL(fcntl)(j->theirs, F_SETFD, 0);
    rc = j->nclose = ps_snapshot(j->target, &j->closes);
    if (rc >= 0)
        rc = spawn_sh(j);
    pl_close(j->theirs);
    if (rc < 0) {
        pl_close(mine);
        goto err_free;
    }
    if (!cloexec)
        (void)REAL(fcntl)(mine, F_SETFD, 0);
    p->fd = mine;
    p->pid = j->pid;
    p->f = fopencookie(p, rd ? "r" : "w", (cookie_io_functions_t){
        .read = rd ? ps_read : NULL,
        .write = rd ? NULL : ps_write,
        .close = ps_close,
    });
    if (!p->f) {
        rc = -errno;
        pl_close(mine);
        int st, err;
        (void)reap(p->pid, &st, &err);
        goto err_free;
    }
    pthread_mutex_lock(&ps_mu);
    p->next = ps_list;
    ps_list = p;
    atomic_fetch_add_explicit(&ps_open, 1, memory_order_relaxed);
    pthread_mutex_unlock(&ps_mu);
    free(j->closes);
    free(j->cmd);
    free(j);
    return p->f;

err_free:
    free(j->closes);
    free(j->cmd);
    free(j);
    free(p);
    errno = -rc;
    return NULL;
}

PL_EXPORT FILE *popen(const char *cmd, const char *mode)
{
    if (!jg__pl_green() || !cmd || !mode)
        return REAL(popen)(cmd, mode);
    jg__pl_note(PL_popen);
    return coop_popen(cmd, mode);
}

/* Ours: mark it for pclose, which frees it after fclose ran ps_close. */
static struct pstream *ps_claim(FILE *f)
{
    struct pstream *p;

    pthread_mutex_lock(&ps_mu);
    for (p = ps_list; p && p->f != f; p = p->next)
        ;
    if (p)
        p->by_pclose = true;
    pthread_mutex_unlock(&ps_mu);
    return p;
}

/* pclose from any thread: our streams give their child's status (parked
 * in a green thread); libc's own streams go to libc. */
PL_EXPORT int pclose(FILE *f)
{
    struct pstream *p = atomic_load_explicit(&ps_open, memory_order_relaxed)
                        ? ps_claim(f) : NULL;

    if (!p)
        return REAL(pclose)(f);
    if (jg__pl_green())
        jg__pl_note(PL_pclose);
    (void)fclose(f);
    int st = p->status, err = p->err;
    free(p);
    if (st == -1)
        errno = err;
    return st;
}

/* Our streams' fd (a cookie stream has none of its own: -1 from libc). */
static int ps_fileno(FILE *f)
{
    int fd = -1;

    pthread_mutex_lock(&ps_mu);
    for (struct pstream *p = ps_list; p; p = p->next)
        if (p->f == f) {
            fd = p->fd;
            break;
        }
    pthread_mutex_unlock(&ps_mu);
    return fd;
}

PL_EXPORT int fileno(FILE *f)
{
    if (atomic_load_explicit(&ps_open, memory_order_relaxed) == 0)
        return REAL(fileno)(f);
    int fd = ps_fileno(f);
    return fd >= 0 ? fd : REAL(fileno)(f);
}

PL_EXPORT int fileno_unlocked(FILE *f)
{
    if (atomic_load_explicit(&ps_open, memory_order_relaxed) == 0)
        return REAL(fileno_unlocked)(f);
    int fd = ps_fileno(f);
    return fd >= 0 ? fd : REAL(fileno_unlocked)(f);
}

/* ---- after fork ---------------------------------------------------------- */

static void child_after_fork(void)
{
    pthread_mutex_init(&sp_mu, NULL);
    pthread_cond_init(&sp_work, NULL);
    pthread_cond_init(&sp_done, NULL);
    sp_head = NULL;
    sp_tail = &sp_head;
    sp_running = false;
    pthread_mutex_init(&ps_mu, NULL);
    pthread_mutex_init(&sys_mu, NULL);
}
