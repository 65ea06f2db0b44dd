/* SPDX-License-Identifier: MIT */
/*
 * juggle/process.h - multiprocessing.Process for C: run a registered task
 * (juggle/executor.h) in a child process with input bytes, join it with a
 * timeout, read its exit code and output, terminate or kill it. Children
 * start from the fork server (jg_main_init) or by re-exec
 * (JG_START_SPAWN=1), with default signal mask and dispositions; each is
 * watched by its own pidfd.
 */
#ifndef JUGGLE_PROCESS_H
#define JUGGLE_PROCESS_H

#include <sys/types.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct jg_process;

/*
 * Start task `task` (registered with JG_TASK before jg_main_init) in a new
 * child process with input in[0..n) (copied; any size). The child runs the
 * task once and exits with status 0 if it returned 0, or 1 if it failed
 * (its error and message are printed on the child's stderr). Returns 0
 * with *out, -ENOENT (unknown task), -EINVAL (bad arguments; or no fork
 * server and the program already runs threads: call jg_main_init), -ENOMEM,
 * -EAGAIN, -EMFILE. Thread-safe. Switches green threads only if flushing
 * stdio before the start parks (a stream whose write is cooperative).
 */
JG_API int jg_process_start(struct jg_process **out, const char *task,
                            const void *in, size_t n);

/* The child's pid (valid until jg_process_destroy), or -EINVAL. */
JG_API pid_t jg_process_pid(const struct jg_process *p);

/*
 * Wait until the child ends (timeout_ns: 0 = poll, JG_FOREVER, or a
 * limit), then reap it. Returns 0 once it has ended, -ETIMEDOUT,
 * -ECANCELED (the waiting green thread was killed), -EINVAL. From a green
 * thread it parks only that green thread (its hub keeps serving); from a
 * plain OS thread it blocks. May switch green threads. One thread at a
 * time per jg_process.
 */
JG_API int jg_process_join(struct jg_process *p, int64_t timeout_ns);

/* 1 while the child runs, 0 once it has ended (reaping it), -EINVAL. */
JG_API int jg_process_alive(struct jg_process *p);

/*
 * multiprocessing's exitcode: 0 with *code = the exit status (0..255), or
 * -N when signal N killed it; -EBUSY while it runs; -EINVAL.
 */
JG_API int jg_process_exitcode(struct jg_process *p, int *code);

/*
 * The task's output bytes after the child exited with status 0: *out and
 * *n point into p (valid until jg_process_destroy). -EBUSY while it runs,
 * -ECHILD if it did not exit with status 0, -EINVAL, -ENOMEM.
 */
JG_API int jg_process_output(struct jg_process *p, const void **out,
                             size_t *n);

/*
 * Send signal sig to the child (through its pidfd, so never to a reused
 * pid). 0, -ESRCH once it has been reaped, -EINVAL.
 * terminate = SIGTERM, kill = SIGKILL.
 */
JG_API int jg_process_signal(struct jg_process *p, int sig);
JG_API int jg_process_terminate(struct jg_process *p);
JG_API int jg_process_kill(struct jg_process *p);

/*
 * Free p. A child still running is killed (SIGKILL) and reaped first, so
 * no zombie is left; join first to let it finish. Blocks briefly. 0 or
 * -EINVAL.
 */
JG_API int jg_process_destroy(struct jg_process *p);

#ifdef __cplusplus
}
#endif
#endif
