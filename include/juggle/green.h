/* SPDX-License-Identifier: MIT */
/*
 * juggle/green.h - green threads (greenlet + gevent): a per-OS-thread hub
 * runs the event loop and schedules ready green threads; jg_switch() gives
 * greenlet-style explicit switching with values. Green threads never migrate
 * between OS threads; all of these calls act on the calling thread's hub.
 */
#ifndef JUGGLE_GREEN_H
#define JUGGLE_GREEN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct jg_green;
typedef void *(*jg_green_fn)(void *arg);

enum jg_stack_model {
    /* An mmap'd stack with a guard region below: the fastest switch. */
    JG_STACK_DEDICATED = 0,
    /*
     * Run on a stack shared by the hub's sliced green threads; the used part
     * is copied out when another sliced green thread needs the stack
     * (greenlet's stack slicing). A parked sliced green thread costs a few
     * hundred bytes. Its stack size is the hub's shared stack size.
     */
    JG_STACK_SLICED = 1,
};

struct jg_spawn_opts {
    const char *name;       /* copied; NULL: "green-<id>" */
    size_t stack_size;      /* 0: default (256 KiB; 1 MiB under ASan) */
    enum jg_stack_model stack_model;
};

/* The default stack size of a dedicated stack (and of the shared one). */
JG_API size_t jg_stack_size_default(void);

enum jg_green_state {
    JG_GREEN_NEW = 0,       /* created, never run */
    JG_GREEN_READY = 1,     /* queued to run */
    JG_GREEN_RUNNING = 2,   /* the caller */
    JG_GREEN_SWITCHED = 3,  /* suspended in jg_switch() */
    JG_GREEN_PARKED = 4,    /* blocked in a runtime wait */
    JG_GREEN_DONE = 5,      /* its function returned */
};

/*
 * Create a green thread that does not run until something switches to it
 * (greenlet's greenlet(run)). Its parent is the calling green thread. Its
 * stack is taken when it first runs. Returns 0, -EINVAL (NULL fn or out, bad
 * options), -ENOMEM (including no stack can be mapped: past
 * vm.max_map_count the sliced model is the answer), -EPERM from a callback.
 */
JG_API int jg_create(struct jg_green **out, jg_green_fn fn, void *arg,
                     const struct jg_spawn_opts *opts);
/*
 * Create a green thread whose parent is the hub and make it ready. With out
 * == NULL it is detached. Errors as jg_create. Does not switch.
 */
JG_API int jg_spawn(struct jg_green **out, jg_green_fn fn, void *arg,
                    const struct jg_spawn_opts *opts);
/*
 * Wait until g finishes, store its return value in *result (if non-NULL) and
 * release the handle. Returns the code of a JG_ERR() result, -ECANCELED if g
 * was killed, 0 otherwise; without releasing the handle: -ETIMEDOUT,
 * -ECANCELED (the caller was killed), -EDEADLK (g is the caller, or nothing
 * can ever wake the caller), -EBUSY (another green thread already joins g),
 * -EINVAL (bad timeout, g detached), -EXDEV (g lives on another hub), -EPERM
 * from a callback. May switch green threads.
 */
JG_API int jg_join(struct jg_green *g, void **result, int64_t timeout_ns);
/*
 * Release the handle without waiting: g's descriptor is freed when it ends.
 * Returns 0, -EINVAL if already detached, -EXDEV.
 */
JG_API int jg_detach(struct jg_green *g);
/*
 * Request cancellation (sticky): every blocking call of g fails with
 * -ECANCELED from now on, a parked g is woken, a g suspended in jg_switch()
 * is made ready and its jg_switch returns JG_ERR(-ECANCELED), a g that never
 * ran never will. Returns 0 (also for a finished g), -EXDEV. Does not switch.
 */
JG_API int jg_kill(struct jg_green *g);
/*
 * Switch to target, passing value; returns the value passed back when
 * something switches to the caller again (or the result of a child that
 * finished with the caller as its first live ancestor). target must be NEW
 * (it then starts fn(arg) with its own arg; value is ignored) or suspended in
 * jg_switch.
 * Errors, as JG_ERR(code): -EBUSY (target parked in a runtime wait or
 * queued ready, or running), -EINVAL (NULL or finished target), -ECANCELED
 * (the caller was killed while suspended), -EXDEV, -EPERM from a callback.
 * May switch green threads.
 */
JG_API void *jg_switch(struct jg_green *target, void *value);
/* Let every other ready green thread run once. 0, -ECANCELED, -EPERM. */
JG_API int jg_yield(void);
/*
 * Sleep for ns nanoseconds (>= 0). Returns 0, -ECANCELED, -ETIMEDOUT (an
 * enclosing deadline expired first), -EINVAL, -EPERM from a callback.
 * May switch green threads.
 */
JG_API int jg_sleep(int64_t ns);
/* The calling green thread (the thread's main context counts as one). */
JG_API struct jg_green *jg_current(void);
/* g's name (g == NULL: the caller's). */
JG_API const char *jg_name(const struct jg_green *g);
/* g's state (enum jg_green_state). */
JG_API int jg_state(const struct jg_green *g);
/* A state's name ("new", "ready", "running", "switched", "parked",
 * "done"), "unknown" for any other value; static storage, thread-safe. */
JG_API const char *jg_state_name(enum jg_green_state state);
/*
 * g's parent: its creator for jg_create, the hub's own context for jg_spawn
 * (jg_name gives "hub"; it cannot be switched to, joined or killed), NULL
 * for main and the hub.
 */
JG_API struct jg_green *jg_parent(const struct jg_green *g);
/* true once the calling green thread has been killed (for CPU-bound code). */
JG_API bool jg_cancelled(void);
/* Green threads on this thread's hub that have not finished (main and the
 * hub itself not counted). */
JG_API size_t jg_count(void);

#ifdef __cplusplus
}
#endif
#endif
