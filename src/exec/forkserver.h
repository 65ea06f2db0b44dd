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

/* What a child runs. */
enum {
    JG__CHILD_WORKER = 1,       /* a process-pool worker (pool_process.c) */
    JG__CHILD_PROCESS = 2,      /* a jg_process child (process.c) */
};

/* Most fds a child is handed. */
#define JG__CHILD_MAXFD 4

/* Lazily start the fork server if needed and possible: 0, or -EINVAL
 * (with the stderr message) when the program already runs threads. */
JG_HIDDEN int jg__child_ready(void);

/*
 * Start a child that runs the entry of `kind` with copies of fds[0..nfds)
 * (in the same order; the caller keeps its own). Returns 0 with *pid and a
 * CLOEXEC pidfd in *pidfd, or -errno: -EINVAL (bad arguments, or no fork
 * server and the program already runs threads: a message on stderr says to
 * call jg_main_init), -EAGAIN, -ENOMEM, -EMFILE. Thread-safe.
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

/* The children's entries: they never return (they end with _exit). */
JG_HIDDEN _Noreturn void jg__pool_worker_main(const int *fds, int nfds);
JG_HIDDEN _Noreturn void jg__process_child_main(const int *fds, int nfds);

/* Raw futex wait/wake on a shared (not PRIVATE) word. */
JG_HIDDEN int jg__futex_wait_shared(_Atomic uint32_t *w, uint32_t val,
                                    int64_t timeout_ns);
JG_HIDDEN void jg__futex_wake_shared(_Atomic uint32_t *w, int n);

#endif
