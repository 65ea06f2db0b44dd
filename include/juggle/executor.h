/* SPDX-License-Identifier: MIT */
/*
 * juggle/executor.h - the task registry and one executor interface over a
 * thread pool and a process pool (concurrent.futures + multiprocessing),
 * plus the blocking-offload pool for green threads. A task is a function
 * registered by name that takes bytes and returns bytes, so one task runs
 * unchanged in any backend. Every submission returns a jg_future.
 */
#ifndef JUGGLE_EXECUTOR_H
#define JUGGLE_EXECUTOR_H

#include <netdb.h>
#include "common.h"
#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tasks -------------------------------------------------------------- */

/*
 * Where a task writes its result: jg_task_out_write appends bytes (the
 * buffer grows as needed); jg_task_out_reserve gives room for n bytes to
 * fill in place (commit with jg_task_out_commit).
 */
struct jg_task_out;
JG_API int jg_task_out_write(struct jg_task_out *o, const void *p, size_t n);
JG_API void *jg_task_out_reserve(struct jg_task_out *o, size_t n);
JG_API void jg_task_out_commit(struct jg_task_out *o, size_t n);
/* Attach a message to a failing task's error; returns code (< 0), so a
 * task can `return jg_task_fail(out, -EINVAL, "bad input %d", x);`. */
JG_API int jg_task_fail(struct jg_task_out *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A task: reads in[0..n), writes its result to out, returns 0 or a
 * negative error code (the future's error; a message through
 * jg_task_fail).
 */
typedef int (*jg_task_fn)(const void *in, size_t n, struct jg_task_out *out);

/* Register fn under name (copied). -EEXIST, -EINVAL, -ENOMEM. Register
 * every task before a process pool starts its workers. */
JG_API int jg_task_register(const char *name, jg_task_fn fn);
/* Look a task up: the function or NULL. */
JG_API jg_task_fn jg_task_find(const char *name);

/* Register a task by a constructor, before main() runs. */
#define JG_TASK(name, fn) \
    __attribute__((constructor)) static void jg_task_reg_##fn(void) \
    { \
        (void)jg_task_register(name, fn); \
    }

/* ---- executors ---------------------------------------------------------- */

struct jg_executor;

/*
 * Error codes a future of an executor can end with (besides the task's own):
 *   -ENOENT     unknown task name
 *   -ECHILD     the process worker died: killed by a signal (the message
 *               names it: "worker killed by signal 9 (SIGKILL)") or exited
 *               ("worker exited with status 3")
 *   -ETIMEDOUT  the task ran past the pool's task timeout (worker replaced)
 *   -ESHUTDOWN  submitted to a pool that is shut down
 *   -ECANCELED  cancelled (by jg_future_cancel or shutdown)
 */

/*
 * Submit task `name` with input in[0..n) (copied). On success *out holds a
 * reference to the future. 0, -ESHUTDOWN, -ENOMEM, -EINVAL, -EAGAIN (a
 * bounded submission queue is full), -ENOENT (unknown task, when the
 * executor knows at once). Thread-safe; never switches.
 */
JG_API int jg_executor_submit(struct jg_executor *ex, struct jg_future **out,
                              const char *name, const void *in,
                              size_t n);
/*
 * Submit a plain call fn(arg) (thread pools only; a process pool gives
 * -ENOTSUP). The future's value is fn's return value.
 */
JG_API int jg_executor_call(struct jg_executor *ex, struct jg_future **out,
                            void *(*fn)(void *), void *arg);
/*
 * map: run task `name` over n fixed-size items (items + i * in_size), in
 * chunks of `chunk` items per submission (0: picked by the executor), and
 * write the i-th result into results + i * out_size (each result must be
 * exactly out_size bytes, else -EMSGSIZE). Results are in input order.
 * Returns 0, the first failing item's error, -ETIMEDOUT, -ESHUTDOWN.
 * Blocks (parks a green thread) until every item is done.
 */
JG_API int jg_executor_map(struct jg_executor *ex, const char *name,
                           const void *items, size_t in_size, size_t n,
                           void *results, size_t out_size, size_t chunk,
                           int64_t timeout_ns);
/* What jg_executor_shutdown does besides refusing new work (a bit set). */
enum jg_shutdown_flags {
    /* Return when every task has ended (parks a green thread). */
    JG_SHUTDOWN_WAIT = 1u << 0,
    /* Queued tasks end CANCELLED instead of running. */
    JG_SHUTDOWN_CANCEL_PENDING = 1u << 1,
};

/*
 * Stop accepting work (concurrent.futures' shutdown(wait,
 * cancel_futures)); flags is a set of enum jg_shutdown_flags. Returns 0,
 * -EINVAL (NULL, unknown flags); with JG_SHUTDOWN_WAIT also -EDEADLK
 * (called from one of the pool's own tasks) and a killed waiter's
 * -ECANCELED. Idempotent.
 */
JG_API int jg_executor_shutdown(struct jg_executor *ex, unsigned flags);
/*
 * Shut down (wait, run pending) and free. Returns 0, or -EINVAL (NULL, or
 * jg_executor_default(), which lives as long as the process).
 */
JG_API int jg_executor_destroy(struct jg_executor *ex);

/* ---- thread pool ------------------------------------------------------- */

struct jg_thread_pool_opts {
    int workers;                /* 0: the number of CPUs */
    size_t queue_max;           /* 0: unbounded submission queue */
    /* Run once in each worker thread before its first task. */
    void (*init)(void *arg);
    void *init_arg;
};

/* A thread pool. 0, -ENOMEM, -EAGAIN (threads), -EINVAL. */
JG_API int jg_thread_pool_create(struct jg_executor **out,
                                 const struct jg_thread_pool_opts *o);
/* The process-wide default thread pool, created on first use (or NULL). */
JG_API struct jg_executor *jg_executor_default(void);

/* ---- process pool ------------------------------------------------------ */

struct jg_process_pool_opts {
    int workers;                /* 0: the number of CPUs */
    /* Run task `init_task` (registered) once in each worker at start, with
     * init_arg[0..init_len) (the seeds' "global session" pattern). */
    const char *init_task;
    const void *init_arg;
    size_t init_len;
    unsigned max_tasks_per_child; /* 0: unlimited; then the worker is replaced */
    int64_t task_timeout_ns;    /* 0: none; past it the worker is killed */
};

/*
 * Call first thing in main(), while the program is single-threaded: starts
 * the fork server that process pools fork their workers from. With
 * JG_START_SPAWN=1 in the environment, workers are started by re-executing
 * argv[0] instead (a worker never returns from this call). 0 or -errno.
 */
JG_API int jg_main_init(int argc, char **argv);

/*
 * A process pool. -EINVAL with a message on stderr when the program already
 * runs threads and jg_main_init was not called. 0, -ENOMEM, -EAGAIN.
 */
JG_API int jg_process_pool_create(struct jg_executor **out,
                                  const struct jg_process_pool_opts *o);

/* ---- blocking offload (from green threads) ----------------------------- */

/*
 * Run fn(arg) on the blocking-offload pool (grows on demand to 64 threads)
 * and park the calling green thread until it ends; *result (may be NULL)
 * gets fn's return value. If the waiter is killed or times out while fn is
 * queued, fn never runs; while it runs, the call returns only after it ends.
 * 0, -ECANCELED, -ETIMEDOUT, -ENOMEM, -EAGAIN (no thread), -EINVAL;
 * -EPERM from a loop callback. From a plain OS thread it just calls fn.
 * May switch green threads.
 */
JG_API int jg_run_in_thread(void **result, void *(*fn)(void *), void *arg,
                            int64_t timeout_ns);
/*
 * getaddrinfo(3) on the offload pool; parks only the calling green thread.
 * Returns 0 with *res set (free with freeaddrinfo), or -errno: -ENOENT
 * (EAI_NONAME, EAI_NODATA: no such name), -EAGAIN (EAI_AGAIN), -EINVAL
 * (EAI_BADFLAGS, EAI_FAMILY, EAI_SERVICE, EAI_SOCKTYPE), -ENOMEM
 * (EAI_MEMORY), the errno of EAI_SYSTEM, -EIO (anything else), and
 * -ECANCELED, -ETIMEDOUT. May switch green threads.
 */
struct addrinfo;     /* <netdb.h>: declared here so the header stands alone */
JG_API int jg_getaddrinfo(const char *node, const char *service,
                          const struct addrinfo *hints, struct addrinfo **res,
                          int64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif
