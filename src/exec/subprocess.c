/* SPDX-License-Identifier: MIT */
/*
 * subprocess.c - programs run with pipes, watched by a pidfd. The child is
 * made by posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), safe in a
 * threaded parent, exec errors returned to us); every wait is on an fd,
 * so a green thread parks on its hub and a plain thread polls.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkserver.h"
#include "hub.h"
#include "iofd.h"
#include "sys.h"

extern char **environ;

/* A growing output buffer. */
struct obuf {
    char *data;
    size_t len, cap;
};

struct jg_subprocess {
    pid_t pid;
    int pidfd;
    int fd[3];                  /* parent's pipe ends; -1 if none/closed */
    bool piped[3];              /* stdout/stderr were pipes (after EOF too) */
    bool reaped;
    int status;                 /* returncode once reaped */
    size_t in_off;              /* communicate's input progress */
    bool in_broken;             /* the child closed its stdin */
    struct obuf out[2];         /* stdout, stderr read so far */
};

/* ---- waiting: a green thread parks, a plain thread polls --------------- */

/* Wait for fd to be readable/writable (jg__poll_any): 1 or -errno. */
static int wait_one(int fd, uint32_t ev, int64_t deadline)
{
    struct jg__pollfd p = { fd, ev };

    return jg__poll_any(&p, 1, deadline);
}

/* Close an fd we own; jg_close tells this thread's loop and io cache. */
static void close_fd(int *fd)
{
    if (*fd >= 0)
        jg_close(*fd);
    *fd = -1;
}

/* ---- spawning ------------------------------------------------------------ */

static int set_nonblock(int fd)
{
    int fl = jg__sys_fcntl(fd, F_GETFL, 0);

    if (fl < 0 || jg__sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/*
 * A close-on-exec pipe whose child end is at fd >= 3 (a parent with fd 0,
 * 1 or 2 closed would otherwise get one there, and the dup2 onto another
 * standard fd could clobber it) and whose parent end is non-blocking.
 * child_reads: the child reads (stdin). 0 or -errno.
 */
static int make_pipe(int *parent, int *child, bool child_reads)
{
    int p[2], rc;

    if (jg__sys_pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    int c = child_reads ? p[0] : p[1];
    *parent = child_reads ? p[1] : p[0];
    *child = c;
    if (c < 3) {
        *child = jg__sys_fcntl(c, F_DUPFD_CLOEXEC, 3);
        jg__sys_close(c);
        if (*child < 0) {
            rc = -errno;
            jg__sys_close(*parent);
            return rc;
        }
    }
    if ((rc = set_nonblock(*parent)) < 0) {
        jg__sys_close(*parent);
        jg__sys_close(*child);
        return rc;
    }
    jg__fd_fresh(*parent);
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/*
 * Close every fd >= 3 in the child but pass[n] (sorted): their own dup2
 * clears close-on-exec (glibc >= 2.29 does so for oldfd == newfd), the
 * gaps below the largest are closed one by one, the rest with closefrom.
 * An fd below 3 in pass[] is only kept open (0, 1 and 2 always are).
 */
int jg__spawn_fd_actions(posix_spawn_file_actions_t *fa, const int *pass,
                         size_t n)
{
    int lo = 3, rc;

    for (size_t i = 0; i < n; i++) {
        if ((rc = posix_spawn_file_actions_adddup2(fa, pass[i], pass[i])))
            return -rc;
        for (; lo < pass[i]; lo++)
            if ((rc = posix_spawn_file_actions_addclose(fa, lo)))
                return -rc;
        if (lo < pass[i] + 1)
            lo = pass[i] + 1;
    }
    rc = posix_spawn_file_actions_addclosefrom_np(fa, lo);
    return -rc;
}

/* The file action making the child's fd `std` what mode says. */
static int add_std_action(posix_spawn_file_actions_t *fa, int std, int mode,
                          int child_end)
{
    switch (mode) {
    case JG_STDIO_PIPE:
        return -posix_spawn_file_actions_adddup2(fa, child_end, std);
    case JG_STDIO_NULL:
        return -posix_spawn_file_actions_addopen(fa, std, "/dev/null",
            std == 0 ? O_RDONLY : O_WRONLY, 0);
    case JG_STDIO_STDOUT:
        return -posix_spawn_file_actions_adddup2(fa, 1, 2);
    }
    return 0;
}

static int check_opts(const struct jg_subprocess_opts *o, const char *const
                      argv[])
{
    if (!argv || !argv[0])
        return -EINVAL;
    if (!o)
        return 0;
    int modes[3] = { o->stdin_mode, o->stdout_mode, o->stderr_mode };
    for (int i = 0; i < 3; i++) {
        int max = i == 2 ? JG_STDIO_STDOUT : JG_STDIO_NULL;
        if (modes[i] < 0 || modes[i] > max)
            return -EINVAL;
    }
    if (o->npass_fds && !o->pass_fds)
        return -EINVAL;
    for (size_t i = 0; i < o->npass_fds; i++)
        if (o->pass_fds[i] < 3 || jg__sys_fcntl(o->pass_fds[i], F_GETFD, 0) < 0)
            return o->pass_fds[i] < 3 ? -EINVAL : -EBADF;
    return 0;
}

/*
 * Every signal, glibc's internal ones (SIGCANCEL 32, SIGSETXID 33) too,
 * which sigfillset and sigaddset refuse. glibc's spawn helper sets those to
 * SIG_IGN in the child (it shares our memory and must not run our
 * handlers), and SIG_IGN survives exec: a program that uses them (musl,
 * Go) would find them ignored unless they are in the "default" set.
 */
static void all_signals(sigset_t *set)
{
    const size_t bits = 8 * sizeof(unsigned long);

    sigfillset(set);
    /* The kernel's first real-time signal is 32; glibc keeps the ones
     * below SIGRTMIN for itself. */
    for (int sig = 32; sig < SIGRTMIN; sig++) {
        size_t bit = (size_t)(sig - 1);
        set->__val[bit / bits] |= 1UL << (bit % bits);
    }
}

/* Spawn the child with the prepared ends; 0 or -errno. */
static int do_spawn(struct jg_subprocess *p, const char *const argv[],
                    const struct jg_subprocess_opts *o, const int child[3])
{
    static const struct jg_subprocess_opts none;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t empty, all;
    int *pass = NULL, rc;

    if (!o)
        o = &none;
    int modes[3] = { o->stdin_mode, o->stdout_mode, o->stderr_mode };
    if ((rc = posix_spawn_file_actions_init(&fa)))
        return -rc;
    if ((rc = posix_spawnattr_init(&at))) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = add_std_action(&fa, i, modes[i], child[i]);
    if (rc == 0 && o->npass_fds) {
        pass = malloc(o->npass_fds * sizeof *pass);
        if (!pass) {
            rc = -ENOMEM;
        } else {
            memcpy(pass, o->pass_fds, o->npass_fds * sizeof *pass);
            qsort(pass, o->npass_fds, sizeof *pass, cmp_int);
        }
    }
    if (rc == 0)
        rc = jg__spawn_fd_actions(&fa, pass, pass ? o->npass_fds : 0);
    if (rc == 0 && o->cwd)
        rc = -posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    /* juggle's threads block every signal and the caller may ignore some
     * (SIGPIPE): the child starts with none blocked and all default. */
    sigemptyset(&empty);
    all_signals(&all);
    if (rc == 0)
        rc = -posix_spawnattr_setsigmask(&at, &empty);
    if (rc == 0)
        rc = -posix_spawnattr_setsigdefault(&at, &all);
    if (rc == 0)
        rc = -posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) {
        char *const *av = (char *const *)argv;
        char *const *env = o->env ? (char *const *)o->env : environ;
        /* Without this, output the parent buffered before the spawn
         * would appear after the child's (no copy is made: no fork). */
        fflush(NULL);
        if (strchr(argv[0], '/'))
            rc = -posix_spawn(&p->pid, argv[0], &fa, &at, av, env);
        else
            rc = -posix_spawnp(&p->pid, argv[0], &fa, &at, av, env);
    }
    free(pass);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

int jg_subprocess_spawn(struct jg_subprocess **out, const char *const argv[],
                        const struct jg_subprocess_opts *o)
{
    struct jg_subprocess *p;
    int child[3] = { -1, -1, -1 };
    int rc;

    if (!out || (rc = check_opts(o, argv)) < 0)
        return out ? rc : -EINVAL;
    if (!(p = calloc(1, sizeof *p)))
        return -ENOMEM;
    p->pidfd = p->fd[0] = p->fd[1] = p->fd[2] = -1;
    if (o) {
        int modes[3] = { o->stdin_mode, o->stdout_mode, o->stderr_mode };
        for (int i = 0; i < 3; i++)
            if (modes[i] == JG_STDIO_PIPE) {
                if ((rc = make_pipe(&p->fd[i], &child[i], i == 0)) < 0)
                    goto err;
                p->piped[i] = true;
            }
    }
    if ((rc = do_spawn(p, argv, o, child)) < 0)
        goto err;
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            jg__sys_close(child[i]);
    /*
     * The pid cannot be recycled before we reap it, so opening its pidfd
     * now is race-free unless someone else reaps our children (SIGCHLD
     * ignored, waitpid(-1)): then we report that.
     */
    p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    if (p->pidfd < 0) {
        rc = -errno;
        kill(p->pid, SIGKILL);
        while (jg__sys_waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        goto err_parent;
    }
    jg__fd_fresh(p->pidfd);
    *out = p;
    return 0;
err:
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            jg__sys_close(child[i]);
err_parent:
    for (int i = 0; i < 3; i++)
        close_fd(&p->fd[i]);
    free(p);
    return rc;
}

pid_t jg_subprocess_pid(const struct jg_subprocess *p)
{
    return p ? p->pid : -EINVAL;
}

static int std_fd(const struct jg_subprocess *p, int i)
{
    if (!p)
        return -EINVAL;
    return p->fd[i] >= 0 ? p->fd[i] : -EBADF;
}

int jg_subprocess_stdin(const struct jg_subprocess *p)
{
    return std_fd(p, 0);
}

int jg_subprocess_stdout(const struct jg_subprocess *p)
{
    return std_fd(p, 1);
}

int jg_subprocess_stderr(const struct jg_subprocess *p)
{
    return std_fd(p, 2);
}

int jg_subprocess_close_stdin(struct jg_subprocess *p)
{
    if (!p)
        return -EINVAL;
    if (p->fd[0] < 0)
        return -EBADF;
    close_fd(&p->fd[0]);
    return 0;
}

/* ---- waiting and signals ------------------------------------------------- */

/* Reap the child if it has exited: 1 reaped, 0 still running, -errno. */
static int try_reap(struct jg_subprocess *p)
{
    siginfo_t si;

    if (p->reaped)
        return 1;
    for (;;) {
        si.si_pid = 0;
        /* This pid only: it cannot be recycled until we reap it. */
        if (jg__sys_waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) == 0)
            break;
        if (errno != EINTR)
            return -errno;
    }
    if (si.si_pid == 0)
        return 0;
    p->status = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    p->reaped = true;
    return 1;
}

/* Wait for the exit until the absolute deadline; 0 or -errno. */
static int wait_until(struct jg_subprocess *p, int64_t deadline)
{
    for (;;) {
        int r = try_reap(p);
        if (r != 0)
            return r < 0 ? r : 0;
        /* The pidfd is readable once the child has exited. */
        if ((r = wait_one(p->pidfd, JG_READ, deadline)) < 0)
            return r;
    }
}

int jg_subprocess_wait(struct jg_subprocess *p, int *status,
                       int64_t timeout_ns)
{
    int rc;

    if (!p || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (timeout_ns != 0 && jg__self_killed())
        return -ECANCELED;
    if (timeout_ns == 0) {
        rc = try_reap(p);
        rc = rc == 0 ? -ETIMEDOUT : rc < 0 ? rc : 0;
    } else {
        rc = wait_until(p, jg__deadline_after(timeout_ns));
    }
    if (rc == 0 && status)
        *status = p->status;
    return rc;
}

int jg_subprocess_signal(struct jg_subprocess *p, int sig)
{
    if (!p || sig < 0 || sig >= NSIG)
        return -EINVAL;
    if (p->reaped)
        return 0;
    /* Through the pidfd: the pid may be reaped (by us, on another
     * thread) and reused meanwhile, the pidfd cannot. */
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
        return errno == ESRCH ? 0 : -errno;
    return 0;
}

int jg_subprocess_terminate(struct jg_subprocess *p)
{
    return jg_subprocess_signal(p, SIGTERM);
}

int jg_subprocess_kill(struct jg_subprocess *p)
{
    return jg_subprocess_signal(p, SIGKILL);
}

/* ---- communicate --------------------------------------------------------- */

/* write(2) to the stdin pipe: a child that closed its stdin gives -EPIPE
 * instead of killing us (jg__fifo_write, the one SIGPIPE-safe write). */
static ssize_t pipe_write(int fd, const void *buf, size_t n)
{
    ssize_t r;

    do
        r = jg__fifo_write(fd, buf, n, NULL, 0);
    while (r == -EINTR);
    return r;
}

/* Feed stdin until it would block. 1 progress made, 0 none, -errno. */
static int feed(struct jg_subprocess *p, const char *in, size_t in_len)
{
    int moved = 0;

    while (p->in_off < in_len) {
        ssize_t w = pipe_write(p->fd[0], in + p->in_off, in_len - p->in_off);
        if (w == -EAGAIN)
            return moved;
        if (w == -EPIPE) {
            /* The child stopped reading: drop the rest, as Python does. */
            p->in_broken = true;
            break;
        }
        if (w < 0)
            return (int)w;
        p->in_off += (size_t)w;
        moved = 1;
    }
    close_fd(&p->fd[0]);
    return 1;
}

/* Read stream i until it would block; closes it at end of file.
 * 1 progress made, 0 none, -errno. */
static int drain(struct jg_subprocess *p, int i)
{
    struct obuf *b = &p->out[i - 1];
    int moved = 0;

    for (;;) {
        /* Keep 64 KiB free (one pipe's worth) and room for the NUL. */
        if (b->cap - b->len < 65536 + 1) {
            size_t cap = b->cap < 131072 ? 131072 : b->cap * 2;
            char *d = realloc(b->data, cap);
            if (!d)
                return -ENOMEM;
            b->data = d;
            b->cap = cap;
        }
        ssize_t r = jg__sys_read(p->fd[i], b->data + b->len,
                                  b->cap - b->len - 1);
        if (r > 0) {
            b->len += (size_t)r;
            moved = 1;
            continue;
        }
        if (r == 0) {
            close_fd(&p->fd[i]);
            return 1;
        }
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? moved : -errno;
    }
}

/* Wait until one of the live pipes is ready (parks a green caller). */
static int wait_pipes(struct jg_subprocess *p, int64_t deadline)
{
    struct jg__pollfd pf[3];
    int n = 0;

    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            pf[n++] = (struct jg__pollfd){ p->fd[i],
                                           i == 0 ? JG_WRITE : JG_READ };
    return jg__poll_any(pf, n, deadline);
}

/* Move the collected stream i-1 to the caller (NULL if never piped). */
static void hand_over(struct obuf *b, bool piped, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!piped)
        return;
    if (!b->data)
        b->data = calloc(1, 1);
    if (b->data)
        b->data[b->len] = '\0';
    *data = b->data;
    *len = b->len;
    *b = (struct obuf){ 0 };
}

int jg_subprocess_communicate(struct jg_subprocess *p,
                              struct jg_subprocess_output *res,
                              const void *in, size_t in_len,
                              int64_t timeout_ns)
{
    int rc = 0;

    if (!p || (!in && in_len) || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (in_len && p->fd[0] < 0 && !p->in_broken && p->in_off < in_len)
        return -EINVAL;
    if (timeout_ns != 0 && jg__self_killed())
        return -ECANCELED;
    int64_t deadline = jg__deadline_after(timeout_ns);
    while (p->fd[0] >= 0 || p->fd[1] >= 0 || p->fd[2] >= 0) {
        int moved = 0;
        if (p->fd[0] >= 0) {
            /* A write error is the call's (EPIPE is handled in feed):
             * going on to wait for the exit would leave the output
             * pipes undrained. */
            if ((rc = feed(p, in, in_len)) < 0)
                goto out;
            moved |= rc;
        }
        for (int i = 1; i < 3; i++) {
            if (p->fd[i] >= 0 && (rc = drain(p, i)) < 0)
                goto out;
            moved |= rc;
        }
        if (moved)
            continue;
        /* Nothing moved: every live pipe would block. */
        if (timeout_ns == 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        if ((rc = wait_pipes(p, deadline)) < 0)
            goto out;
    }
    rc = timeout_ns == 0 ? try_reap(p) : wait_until(p, deadline);
    if (rc == 0 && timeout_ns == 0)
        rc = -ETIMEDOUT;
    if (rc > 0)
        rc = 0;
out:
    if (rc < 0)
        return rc;
    if (res) {
        hand_over(&p->out[0], p->piped[1], &res->out, &res->out_len);
        hand_over(&p->out[1], p->piped[2], &res->err, &res->err_len);
        res->in_written = in_len ? p->in_off : 0;
        res->status = p->status;
    } else {
        for (int i = 0; i < 2; i++) {
            free(p->out[i].data);
            p->out[i] = (struct obuf){ 0 };
        }
    }
    return 0;
}

int jg_subprocess_output_destroy(struct jg_subprocess_output *res)
{
    if (!res)
        return -EINVAL;
    free(res->out);
    free(res->err);
    *res = (struct jg_subprocess_output){ 0 };
    return 0;
}

int jg_subprocess_run(struct jg_subprocess_output *res,
                      const char *const argv[],
                      const struct jg_subprocess_opts *o, const void *in,
                      size_t in_len, int64_t timeout_ns)
{
    struct jg_subprocess *p;
    int rc;

    if (res)
        *res = (struct jg_subprocess_output){ 0 };
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if ((rc = jg_subprocess_spawn(&p, argv, o)) < 0)
        return rc;
    rc = jg_subprocess_communicate(p, res, in, in_len, timeout_ns);
    /* free kills and reaps a child still running (timeout, error). */
    jg_subprocess_destroy(p);
    return rc;
}

int jg_subprocess_destroy(struct jg_subprocess *p)
{
    if (!p)
        return -EINVAL;
    for (int i = 0; i < 3; i++)
        close_fd(&p->fd[i]);
    if (!p->reaped) {
        /* SIGKILL cannot be caught: the wait is short, so block for it
         * rather than leave a zombie (or an orphan) behind. */
        syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
        while (jg__sys_waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&p->pidfd);
    for (int i = 0; i < 2; i++)
        free(p->out[i].data);
    free(p);
    return 0;
}
