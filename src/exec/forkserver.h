/* SPDX-License-Identifier: MIT */
/*
 * forkserver.h - how juggle starts child processes (process-pool workers,
 * jg_process children): from the fork server that jg_main_init starts while
 * the program is single-threaded, or by re-executing the program
 * (JG_START_SPAWN=1). Either way the child is a child of the calling
 * process, watched by a pidfd, and starts with default signal state.
 */
#ifndef JG_FORKSERVER_H
#define JG_FORKSERVER_H

#include <signal.h>
#include <spawn.h>

#include "internal.h"

/* What a child runs: one kind per client, whose entry it registers. */
enum {
    JG__CHILD_WORKER = 1,       /* a process-pool worker (pool_process/) */
    JG__CHILD_PROCESS = 2,      /* a jg_process child (process.c) */
    JG__CHILD_KINDS             /* one past the last kind */
};

/* What a kind asks of the start of its children (flags, below). */
enum {
    /* The child dies with the program (PR_SET_PDEATHSIG, SIGKILL). */
    JG__CHILD_DIE_WITH_PARENT = 1u << 0,
    /* A re-executed child (JG_START_SPAWN=1) may print: flush the
     * program's stdio before starting one. Not for kinds started from
     * juggle's own threads, which must never wait on the streams' locks. */
    JG__CHILD_FLUSH_ON_SPAWN = 1u << 1,
};

/* A kind's entry: runs in the child with its fds; it must not return (it
 * ends with _exit). */
typedef void (*jg__child_entry_fn)(const int *fds, int nfds);

/*
 * Make entry what children of kind run, with flags. Called from a
 * constructor (JG__CHILD_KIND) before main(); aborts on a kind out of range
 * or registered twice. The constructor belongs in the object that calls
 * jg__child_start for that kind: a static link (libjuggle.a) keeps that
 * object, and with it the registration, exactly when the program starts
 * such children - and a child, the same program, has the entry too.
 */
JG_HIDDEN void jg__child_kind_register(int kind, jg__child_entry_fn entry,
                                       unsigned flags);

#define JG__CHILD_KIND(kind, entry, flags) \
    __attribute__((constructor)) static void jg__child_reg_##entry(void) \
    { \
        jg__child_kind_register(kind, entry, flags); \
    }

/* Most fds a child is handed. */
#define JG__CHILD_MAXFD 4

/* Lazily start the fork server if needed and possible: 0, or -EINVAL
 * (with the stderr message) when the program already runs threads. */
JG_HIDDEN int jg__child_ready(void);

/*
 * Start a child that runs the entry of `kind` with copies of fds[0..nfds)
 * (in the same order; the caller keeps its own). Returns 0 with *pid and a
 * CLOEXEC pidfd in *pidfd, or -errno: -EINVAL (bad arguments, a kind with
 * no registered entry, or no fork server and the program already runs
 * threads: a message on stderr says to call jg_main_init), -EAGAIN,
 * -ENOMEM, -EMFILE. Thread-safe.
 */
JG_HIDDEN int jg__child_start(int kind, const int *fds, int nfds, pid_t *pid,
                              int *pidfd);

/*
 * Reap the exited child behind pidfd (waitid P_PIDFD, WNOHANG unless
 * block). Returns 1 with *si filled when it was reaped, 0 if still running,
 * or -errno (-ECHILD: reaped elsewhere, e.g. SIGCHLD set to SIG_IGN).
 */
JG_HIDDEN int jg__child_reap(int pidfd, bool block, siginfo_t *si);

/*
 * Add to fa what makes a spawned program hold only fds 0, 1, 2 and
 * pass[0..n) (sorted ascending; their close-on-exec flag is cleared):
 * every other fd is closed, inherited or not. The one place that decides
 * which fds a child gets, for jg_subprocess and for re-executed workers
 * and jg_process children. 0 or -errno.
 */
JG_HIDDEN int jg__spawn_fd_actions(posix_spawn_file_actions_t *fa,
                                   const int *pass, size_t n);

/* "killed by signal 9 (SIGKILL)" or "exited with status 3" after prefix. */
JG_HIDDEN void jg__describe_exit(char *buf, size_t size, const char *prefix,
                                 const siginfo_t *si);

/* Raw futex wait/wake on a shared (not PRIVATE) word. */
JG_HIDDEN int jg__futex_wait_shared(_Atomic uint32_t *w, uint32_t val,
                                    int64_t timeout_ns);
JG_HIDDEN void jg__futex_wake_shared(_Atomic uint32_t *w, int n);

#endif
