/* SPDX-License-Identifier: MIT */
/*
 * executor.h - what an executor backend (thread pool, process pool; MPI
 * later) provides behind the public jg_executor_* calls, and the task
 * output buffer. executor.c owns the generic parts (argument checks, map
 * in chunks through a built-in chunk task, the default pool).
 */
#ifndef JG_EXECUTOR_INTERNAL_H
#define JG_EXECUTOR_INTERNAL_H

#include "internal.h"
#include "juggle/executor.h"

/* The growable result buffer a task writes into. */
struct jg_task_out {
    char *p;
    size_t len, cap;
    char *msg;                  /* an error message, malloc'd, or NULL */
};

struct jg_executor;

struct jg__executor_ops {
    const char *name;           /* "thread", "process" */
    /* Queue task `name` over in[0..n) (copied) to complete f (the backend
     * takes a reference of its own). 0 or -errno (f untouched then). */
    int (*submit)(struct jg_executor *ex, const char *name, const void *in,
                  size_t n, struct jg_future *f);
    /* Queue fn(arg); NULL when the backend cannot (-ENOTSUP). */
    int (*call)(struct jg_executor *ex, void *(*fn)(void *), void *arg,
                struct jg_future *f);
    int (*shutdown)(struct jg_executor *ex, bool wait, bool cancel_pending);
    /* Free everything; called after shutdown(wait). */
    void (*destroy)(struct jg_executor *ex);
};

/* Every backend's struct starts with this. */
struct jg_executor {
    const struct jg__executor_ops *ops;
};

/* Run a registered task in this thread: the engine of every backend.
 * Returns the task's code (or -ENOENT); out holds its bytes. */
JG_HIDDEN int jg__task_run(const char *name, const void *in, size_t n,
                           struct jg_task_out *out);
JG_HIDDEN void jg__task_out_init(struct jg_task_out *o);
JG_HIDDEN void jg__task_out_fini(struct jg_task_out *o);

#endif
