/* SPDX-License-Identifier: MIT */
/*
 * juggle/future.h - one future type for everything: pool tasks (threads or
 * processes), green threads, and promises completed by user code. Futures
 * are the only juggle objects shared across OS threads: reference-counted
 * and thread-safe. Waiting from a green thread parks only that green thread
 * (its hub keeps serving); waiting from a plain OS thread blocks it.
 */
#ifndef JUGGLE_FUTURE_H
#define JUGGLE_FUTURE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct jg_future;
struct jg_green;

enum jg_future_state {
    JG_FUTURE_PENDING = 0,      /* queued, not started */
    JG_FUTURE_RUNNING = 1,      /* started; can no longer be cancelled */
    JG_FUTURE_DONE = 2,         /* finished: a value, or an error */
    JG_FUTURE_CANCELLED = 3,    /* cancelled before it started */
};

/*
 * A promise: a PENDING future that user code completes with
 * jg_future_set_*. The caller holds one reference. 0 or -ENOMEM.
 */
JG_API int jg_future_create(struct jg_future **out);
/* Take / drop a reference; the last drop frees the future. Thread-safe. */
JG_API void jg_future_ref(struct jg_future *f);
JG_API void jg_future_unref(struct jg_future *f);
/* The state now (enum jg_future_state), -EINVAL for NULL. */
JG_API int jg_future_state(const struct jg_future *f);

/*
 * Completion (by the executor, or by user code for a promise); each is
 * thread-safe and succeeds once: a second completion is -EALREADY, and
 * completing a cancelled future is -ECANCELED.
 *  - set_running: PENDING -> RUNNING (cancel fails from then on).
 *  - set_value: DONE with a pointer value.
 *  - set_bytes: DONE with a copy of n bytes (the future owns the copy).
 *  - set_error: DONE with a negative error code and an optional message
 *    (copied), e.g. -ECHILD "worker killed by signal 9 (SIGKILL)".
 * Done-callbacks run on the completing thread before these return.
 */
JG_API int jg_future_set_running(struct jg_future *f);
JG_API int jg_future_set_value(struct jg_future *f, void *value);
JG_API int jg_future_set_bytes(struct jg_future *f, const void *p, size_t n);
JG_API int jg_future_set_error(struct jg_future *f, int code,
                               const char *msg);

/*
 * Cancel: succeeds (0) only while PENDING; -EBUSY once RUNNING, -EALREADY
 * when DONE or already CANCELLED. Waiters wake with -ECANCELED.
 */
JG_API int jg_future_cancel(struct jg_future *f);

/*
 * Wait for the outcome (timeout_ns: 0 = poll, JG_FOREVER, or a limit) and
 * report it. Returns 0 with *value set (may be NULL) for a value, the
 * future's error code for an error, -ECANCELED for a cancelled future,
 * -ETIMEDOUT, or -ECANCELED / -ETIMEDOUT of the waiting green thread
 * (killed, deadline scope); -EDEADLK when f is a green thread's future
 * on this hub that can never finish and nothing else can wake the caller
 * (as jg_join); -EPERM from a loop callback (unless 0 timeout). May switch
 * green threads.
 */
JG_API int jg_future_result(struct jg_future *f, void **value,
                            int64_t timeout_ns);
/*
 * The same for a bytes result: *p and *n point into the future (valid
 * while a reference is held). A value result gives p = value, n = 0.
 */
JG_API int jg_future_bytes(struct jg_future *f, const void **p, size_t *n,
                           int64_t timeout_ns);
/* The error message of a DONE-with-error future, "" if none, or NULL. */
JG_API const char *jg_future_error_message(const struct jg_future *f);

typedef void (*jg_future_cb)(void *ctx, struct jg_future *f);
/*
 * Run cb(ctx, f) exactly once when f completes (DONE or CANCELLED): on the
 * completing thread, or at once on this thread if f has completed. Where
 * the completer cannot park (a green thread's own future as it finishes, a
 * loop callback, the hub) cb cannot either: its blocking calls return
 * -EPERM. 0 or -ENOMEM.
 */
JG_API int jg_future_add_done_callback(struct jg_future *f, jg_future_cb cb,
                                       void *ctx);

/*
 * A future that completes with green thread g's result (DONE with its
 * return value, DONE with its JG_ERR code as the error, CANCELLED if it was
 * killed). Call on g's hub. The handle of g is not released. 0, -ENOMEM,
 * -EINVAL, -EXDEV.
 */
JG_API int jg_green_future(struct jg_green *g, struct jg_future **out);

enum jg_wait_mode {
    JG_WAIT_ALL = 0,            /* ALL_COMPLETED */
    JG_WAIT_FIRST = 1,          /* FIRST_COMPLETED */
    JG_WAIT_FIRST_ERROR = 2,    /* FIRST_EXCEPTION: an error, or all done */
};

/*
 * Wait until the mode's condition holds over fs[0..n). Returns the number
 * of completed futures (>= 0) when it holds, -ETIMEDOUT if not by the
 * timeout, -EINVAL, the waiting green thread's -ECANCELED, -EDEADLK (the
 * futures are green threads of this hub that can never finish, and
 * nothing else can wake the caller), or -EPERM from a loop callback.
 * May switch green threads.
 */
JG_API int jg_wait(struct jg_future *const *fs, size_t n,
                   enum jg_wait_mode mode, int64_t timeout_ns);

/*
 * as_completed: yields each of fs[0..n) once, in completion order. The
 * iterator holds references until jg_as_completed_destroy.
 */
struct jg_as_completed;
JG_API int jg_as_completed_create(struct jg_as_completed **out,
                                  struct jg_future *const *fs, size_t n);
/*
 * The next completed future (*f, borrowed), -ENOENT when all were yielded,
 * -ETIMEDOUT, -EDEADLK (as jg_wait). May switch green threads.
 */
JG_API int jg_as_completed_next(struct jg_as_completed *it,
                                struct jg_future **f, int64_t timeout_ns);
/* Drop the iterator and its references. 0 or -EINVAL (NULL). */
JG_API int jg_as_completed_destroy(struct jg_as_completed *it);

#ifdef __cplusplus
}
#endif
#endif
