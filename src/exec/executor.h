/* SPDX-License-Identifier: MIT */
/*
 * executor.h - what an executor backend (thread pool, process pool; MPI
 * later) provides behind the public jg_executor_* calls, and the task
 * output buffer. executor.c owns the generic parts (argument checks, map
 * in chunks through a built-in chunk task, the default pool).
 */
#ifndef JG_EXECUTOR_INTERNAL_H
#define JG_EXECUTOR_INTERNAL_H

#include "future.h"
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
    /* jg_executor_shutdown's flags (enum jg_shutdown_flags), checked. */
    int (*shutdown)(struct jg_executor *ex, unsigned flags);
    /* Free everything; called after a shutdown with JG_SHUTDOWN_WAIT. */
    void (*destroy)(struct jg_executor *ex);
};

/* Every backend's struct starts with this. */
struct jg_executor {
    const struct jg__executor_ops *ops;
};

/*
 * A queued job, laid out in its future's backend area (future.h): the
 * thread pool's and the offload pool's queue link, and what to run. The
 * backend that queued it owns it, input included (jg__job_fini).
 */
#define JG__JOB_INLINE 48       /* task input stored in place */
struct jg__job {
    union {
        struct jg_future *next; /* the thread pool's chain */
        struct jg__list link;   /* the offload pool's list */
    } q;
    void *(*call)(void *);      /* a plain call, or NULL */
    void *arg;
    jg_task_fn task;            /* a registered task, or NULL */
    void *in;                   /* its input: inl, or malloc'd */
    size_t in_len;
    char inl[JG__JOB_INLINE];
};
_Static_assert(sizeof(struct jg__job) <= JG__FUTURE_BACKEND,
               "a job must fit in a future's backend area");

static inline struct jg__job *jg__job_of(struct jg_future *f)
{
    return (struct jg__job *)(void *)f->backend;
}

/* A job of fn(arg), or of task with in[0..n) copied (inline when small):
 * 0 or -ENOMEM. */
JG_HIDDEN void jg__job_init_call(struct jg_future *f, void *(*fn)(void *),
                                 void *arg);
JG_HIDDEN int jg__job_init_task(struct jg_future *f, jg_task_fn task,
                                const void *in, size_t n);
/* Run f's job on this thread and complete f (unless it was cancelled
 * while queued), then free the job's input. */
JG_HIDDEN void jg__job_run(struct jg_future *f);
/* Free the job's input (a job that will not run). */
JG_HIDDEN void jg__job_fini(struct jg_future *f);

/* Run a registered task in this thread: the engine of every backend.
 * Returns the task's code (or -ENOENT); out holds its bytes. */
JG_HIDDEN int jg__task_run(const char *name, const void *in, size_t n,
                           struct jg_task_out *out);
JG_HIDDEN void jg__task_out_init(struct jg_task_out *o);
JG_HIDDEN void jg__task_out_fini(struct jg_task_out *o);

#endif
