/* SPDX-License-Identifier: MIT */
/*
 * juggle/subprocess.h - run programs with pipes (Python's subprocess):
 * feed stdin and read stdout/stderr at once without deadlock, wait with a
 * timeout, signal. From a green thread every wait parks only that green
 * thread; from a plain OS thread (one without a hub) it blocks the thread.
 * The child starts with an empty signal mask, default signal dispositions
 * and only fds 0-2 (plus pass_fds) open, and is watched by a pidfd: no
 * SIGCHLD handler is installed or needed.
 */
#ifndef JUGGLE_SUBPROCESS_H
#define JUGGLE_SUBPROCESS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the child's fd 0, 1 or 2 is. */
enum jg_stdio {
    JG_STDIO_INHERIT = 0,   /* the parent's own fd */
    JG_STDIO_PIPE = 1,      /* a pipe to the parent */
    JG_STDIO_NULL = 2,      /* /dev/null */
    JG_STDIO_STDOUT = 3,    /* stderr only: wherever stdout goes */
};

struct jg_subprocess_opts {
    /* "NAME=value" strings, NULL-terminated; NULL: the parent's. */
    const char *const *env;
    /* Working directory of the child; NULL: the parent's. */
    const char *cwd;
    int stdin_mode, stdout_mode, stderr_mode;   /* enum jg_stdio */
    /* fds (>= 3) the child keeps open at the same numbers, close-on-exec
     * or not (e.g. jg_shm_fd); every other fd >= 3 is closed. */
    const int *pass_fds;
    size_t npass_fds;
};

struct jg_subprocess;

/*
 * Start argv[0] with arguments argv (NULL-terminated; argv[0] without a
 * '/' is searched in the parent's PATH). o may be NULL (inherit all three
 * fds, parent's env and cwd). The child is made with posix_spawn, which
 * glibc runs as clone(CLONE_VM|CLONE_VFORK): safe in a threaded parent,
 * and an exec that fails is reported here as its errno. The parent's
 * pipe ends are non-blocking and close-on-exec: use jg_read/jg_write (or
 * communicate) on them. stdio buffers are flushed first (fflush(NULL)).
 * Returns 0, -ENOENT (no such program or cwd), -EACCES, -ENOEXEC,
 * -EINVAL (NULL out or argv, empty argv, a bad mode, a pass_fd < 3),
 * -EBADF (a pass_fd that is not open),
 * -EMFILE, -ENOMEM, -ENOSYS (kernel before 5.3: no pidfd_open).
 * Thread-safe. Does not switch.
 */
JG_API int jg_subprocess_spawn(struct jg_subprocess **out,
                               const char *const argv[],
                               const struct jg_subprocess_opts *o);

/* The child's pid (> 0), or -EINVAL. */
JG_API pid_t jg_subprocess_pid(const struct jg_subprocess *p);
/* The parent's end of the child's stdin / stdout / stderr pipe (owned by
 * p), or -EBADF when that stream is not a pipe (or closed), -EINVAL. */
JG_API int jg_subprocess_stdin(const struct jg_subprocess *p);
JG_API int jg_subprocess_stdout(const struct jg_subprocess *p);
JG_API int jg_subprocess_stderr(const struct jg_subprocess *p);
/* Close the stdin pipe (the child reads end of file). 0, -EBADF, -EINVAL. */
JG_API int jg_subprocess_close_stdin(struct jg_subprocess *p);

/*
 * Wait until the child exits, up to timeout_ns (0: check once). *status
 * (if non-NULL) receives Python's returncode: the exit code (>= 0), or
 * -signal for a child killed by a signal. Waiting again after success
 * returns the same status. Returns 0, -ETIMEDOUT (also for timeout 0),
 * -ECANCELED (a killed green thread), -ECHILD (someone else reaped it:
 * SIGCHLD set to SIG_IGN, or a stray waitpid(-1)), -EINVAL, -EPERM (from
 * a loop callback). May switch green threads.
 */
JG_API int jg_subprocess_wait(struct jg_subprocess *p, int *status,
                              int64_t timeout_ns);

/*
 * Send sig (through the pidfd: never a recycled pid). terminate is
 * SIGTERM, kill is SIGKILL. 0 also when the child was already waited for
 * (then nothing is sent); -EINVAL (bad signal). Does not switch.
 */
JG_API int jg_subprocess_signal(struct jg_subprocess *p, int sig);
JG_API int jg_subprocess_terminate(struct jg_subprocess *p);
JG_API int jg_subprocess_kill(struct jg_subprocess *p);

/* What communicate collected; free it with jg_subprocess_output_destroy. */
struct jg_subprocess_output {
    char *out;              /* stdout (NUL-terminated), NULL if not piped */
    size_t out_len;         /* without the NUL */
    char *err;              /* stderr, the same */
    size_t err_len;
    size_t in_written;      /* input bytes the child took before it
                             * closed its stdin (in_len if all) */
    int status;             /* returncode, as jg_subprocess_wait */
};

/*
 * Write in[in_len] to the child's stdin and close it, read its stdout and
 * stderr to end of file, all at once (no deadlock whatever the sizes),
 * then wait for it to exit; within timeout_ns overall. A child that
 * closes its stdin early is not an error: the rest of the input is
 * dropped (res->in_written says how much went). With in == NULL a piped
 * stdin is closed at once. On success *res (if non-NULL) is filled and
 * the output buffers are the caller's. On -ETIMEDOUT nothing is lost:
 * what was read stays in p, and a later call (with the same in/in_len)
 * carries on, e.g. after jg_subprocess_kill. Returns 0, -ETIMEDOUT (also
 * for timeout 0), -ECANCELED, -ENOMEM, -EINVAL (in_len > 0 with
 * stdin not piped, in NULL with in_len > 0), -EPERM (from a loop
 * callback), -ECHILD. Buffers are the caller's memory, touched only while
 * the caller runs. One thread at a time per p. May switch green threads.
 */
JG_API int jg_subprocess_communicate(struct jg_subprocess *p,
                                     struct jg_subprocess_output *res,
                                     const void *in, size_t in_len,
                                     int64_t timeout_ns);
/* Free res's buffers and zero it. 0 or -EINVAL (NULL). */
JG_API int jg_subprocess_output_destroy(struct jg_subprocess_output *res);

/*
 * spawn + communicate (Python's subprocess.run): *res is zeroed first; on
 * -ETIMEDOUT the child is killed and reaped, and res holds nothing. o's
 * stdout/stderr modes are used as given (set JG_STDIO_PIPE to capture).
 * Returns what spawn or communicate returns. May switch green threads.
 */
JG_API int jg_subprocess_run(struct jg_subprocess_output *res,
                             const char *const argv[],
                             const struct jg_subprocess_opts *o,
                             const void *in, size_t in_len,
                             int64_t timeout_ns);

/*
 * Close p's pipes and pidfd and free it. A child that has not been waited
 * for is killed (SIGKILL) and reaped first, so no zombie and no orphan is
 * left (the calling thread blocks for that short wait). 0 or -EINVAL.
 */
JG_API int jg_subprocess_destroy(struct jg_subprocess *p);

#ifdef __cplusplus
}
#endif
#endif
