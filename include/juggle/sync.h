/* SPDX-License-Identifier: MIT */
/*
 * juggle/sync.h - green synchronization: event, one-shot result cell,
 * semaphore (plain and bounded), mutex, condition variable, scoped deadlines
 * and green-local storage. Every blocking call parks only the calling green
 * thread, serves waiters first-come first-served, honours the enclosing
 * deadline scope and fails with -ECANCELED once the caller is killed.
 *
 * Common rules (docs/sync.md):
 * - Objects are caller-owned structs; their fields are private. An object
 *   belongs to the hub (OS thread) that initialized it: any call from
 *   another OS thread returns -EXDEV (futures are the cross-thread objects).
 * - timeout_ns: 0 does not park: an attempt that cannot proceed (taking a
 *   permit, locking) returns -EAGAIN, a wait that is not over (event,
 *   result, condition) -ETIMEDOUT — the rule of the whole library (io.h,
 *   queue.h, jg_join); > 0 waits at most that long; JG_FOREVER waits
 *   without a limit; any other negative value is -EINVAL. The earliest active
 *   deadline scope (jg_deadline_push) also bounds the wait: -ETIMEDOUT.
 * - A killed green thread's blocking calls (timeout_ns != 0) fail with
 *   -ECANCELED at once, even when they would not block.
 * - -EDEADLK: the caller is the thread's main context and nothing can ever
 *   wake it. -EPERM: a call that must park was made from a loop callback or
 *   the hub. -ENOMEM: no wait node could be allocated. -EINVAL: a NULL or
 *   uninitialized (or destroyed) object, or a bad argument.
 * - destroy returns -EBUSY while green threads wait on the object or were
 *   woken by it and have not run yet; the struct may then be reused.
 */
#ifndef JUGGLE_SYNC_H
#define JUGGLE_SYNC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct jg_hub;
struct jg_mutex;
/* Private: a FIFO of parked green threads (their nodes live on the heap). */
struct jg_waitq {
    struct jg__list l;
};

/* ---- event ------------------------------------------------------------- */

/* A flag green threads wait for (gevent.event.Event). Fields are private. */
struct jg_event {
    uint32_t magic;
    uint32_t nwait;             /* queued, or woken and not yet run */
    bool set;
    struct jg_hub *hub;
    struct jg_waitq q;
};

/* Initialize e, clear, on the caller's hub. 0, -EINVAL, -ENOMEM (no hub). */
JG_API int jg_event_init(struct jg_event *e);
/* Forget e. 0, -EBUSY (waiters), -EINVAL, -EXDEV. */
JG_API int jg_event_destroy(struct jg_event *e);
/*
 * Set the flag and wake every waiter (each of them returns 0, even if the
 * flag is cleared again before it runs). 0 (also if already set), -EINVAL,
 * -EXDEV. Does not switch; callable from loop callbacks.
 */
JG_API int jg_event_set(struct jg_event *e);
/* Clear the flag. 0, -EINVAL, -EXDEV. */
JG_API int jg_event_clear(struct jg_event *e);
/* 1 if set, 0 if clear, -EINVAL, -EXDEV. */
JG_API int jg_event_is_set(const struct jg_event *e);
/*
 * Wait until the flag is set: at once if it is. Returns 0 (the flag is or
 * was set), -ETIMEDOUT, -ECANCELED, -EDEADLK, -EPERM, -ENOMEM, -EINVAL,
 * -EXDEV. May switch green threads.
 */
JG_API int jg_event_wait(struct jg_event *e, int64_t timeout_ns);

/* ---- result cell ------------------------------------------------------- */

/*
 * A value or an error, set once, that any number of green threads wait for
 * (gevent.event.AsyncResult). Fields are private.
 */
struct jg_result {
    uint32_t magic;
    uint32_t nwait;
    int state;                  /* 0 empty, 1 value, 2 error */
    int error;
    void *value;
    struct jg_hub *hub;
    struct jg_waitq q;
};

/* Initialize r, empty, on the caller's hub. 0, -EINVAL, -ENOMEM. */
JG_API int jg_result_init(struct jg_result *r);
/* Forget r. 0, -EBUSY (waiters), -EINVAL, -EXDEV. */
JG_API int jg_result_destroy(struct jg_result *r);
/*
 * Store value and wake every waiter. 0, -EALREADY (a value or an error was
 * already set; the cell keeps the first), -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_result_set(struct jg_result *r, void *value);
/*
 * Store an error, code in [-4095, -1], and wake every waiter. 0, -EALREADY,
 * -EINVAL (bad code), -EXDEV. Does not switch.
 */
JG_API int jg_result_set_error(struct jg_result *r, int code);
/* 1 once a value or an error is set, 0 before, -EINVAL, -EXDEV. */
JG_API int jg_result_ready(const struct jg_result *r);
/*
 * Wait until r is set. Returns 0 and stores the value in *value (if
 * non-NULL), or the stored error code (*value untouched; an error set as
 * -ETIMEDOUT is indistinguishable from a timeout: jg_result_ready tells),
 * or -ETIMEDOUT, -ECANCELED, -EDEADLK, -EPERM, -ENOMEM, -EINVAL, -EXDEV.
 * *value is written after the caller resumes, so it may point into the
 * caller's stack. May switch green threads.
 */
JG_API int jg_result_get(struct jg_result *r, void **value,
                         int64_t timeout_ns);

/* ---- semaphore --------------------------------------------------------- */

/* The largest count of a semaphore. */
#define JG_SEM_MAX 0x7fffffff

/*
 * A counting semaphore; bounded if made with jg_sem_init_bounded. A release
 * with waiters hands the permit straight to the first of them (no barging).
 * Fields are private.
 */
struct jg_sem {
    uint32_t magic;
    uint32_t nwait;
    uint32_t count;
    uint32_t bound;             /* JG_SEM_MAX when unbounded */
    struct jg_hub *hub;
    struct jg_waitq q;
};

/* Initialize s with value permits (<= JG_SEM_MAX). 0, -EINVAL, -ENOMEM. */
JG_API int jg_sem_init(struct jg_sem *s, unsigned value);
/*
 * A bounded semaphore (Python's BoundedSemaphore): value is also the bound,
 * and a release that would raise the count above it fails with -EOVERFLOW.
 */
JG_API int jg_sem_init_bounded(struct jg_sem *s, unsigned value);
/* Forget s. 0, -EBUSY (waiters), -EINVAL, -EXDEV. */
JG_API int jg_sem_destroy(struct jg_sem *s);
/*
 * Take a permit, waiting for one. 0, -EAGAIN (timeout 0 and none free),
 * -ETIMEDOUT, -ECANCELED (a permit
 * handed to the caller before it could resume goes to the next waiter),
 * -EDEADLK, -EPERM, -ENOMEM, -EINVAL, -EXDEV. May switch green threads.
 */
JG_API int jg_sem_acquire(struct jg_sem *s, int64_t timeout_ns);
/*
 * Give a permit back: to the first waiter, else to the count. 0,
 * -EOVERFLOW (bounded: the count is at its bound; or JG_SEM_MAX), -EINVAL,
 * -EXDEV. Does not switch; callable from loop callbacks.
 */
JG_API int jg_sem_release(struct jg_sem *s);
/* The permits available now (>= 0), -EINVAL, -EXDEV. */
JG_API int jg_sem_value(const struct jg_sem *s);

/* ---- mutex ------------------------------------------------------------- */

/*
 * A non-recursive green mutex. The owner is a green thread (the thread's
 * main context counts); unlock hands the mutex straight to the first waiter
 * (FIFO, no barging). A green thread that ends while holding it leaves it
 * locked. Fields are private.
 */
struct jg_mutex {
    uint32_t magic;
    uint32_t nwait;
    struct jg_green *owner;
    struct jg_hub *hub;
    struct jg_waitq q;
};

/* Initialize m, unlocked. 0, -EINVAL, -ENOMEM. */
JG_API int jg_mutex_init(struct jg_mutex *m);
/* Forget m. 0, -EBUSY (locked, or waiters), -EINVAL, -EXDEV. */
JG_API int jg_mutex_destroy(struct jg_mutex *m);
/*
 * Lock m, waiting for it. 0, -EDEADLK (the caller holds it, or nothing can
 * wake main), -EAGAIN (timeout 0, held by another), -ETIMEDOUT,
 * -ECANCELED (a killed waiter never takes the lock,
 * even one it was handed before it could resume), -EPERM, -ENOMEM, -EINVAL,
 * -EXDEV. May switch green threads.
 */
JG_API int jg_mutex_lock(struct jg_mutex *m, int64_t timeout_ns);
/* jg_mutex_lock(m, 0): 0 or -EAGAIN (held by another), -EDEADLK, ... */
JG_API int jg_mutex_trylock(struct jg_mutex *m);
/*
 * Unlock m, handing it to the first waiter. 0, -EPERM (the caller does not
 * hold it), -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_mutex_unlock(struct jg_mutex *m);
/* 1 if the caller holds m, 0 if not, -EINVAL, -EXDEV. */
JG_API int jg_mutex_held(const struct jg_mutex *m);

/* ---- condition variable ------------------------------------------------ */

/* A condition variable used with a jg_mutex. Fields are private. */
struct jg_cond {
    uint32_t magic;
    uint32_t nwait;
    struct jg_hub *hub;
    struct jg_waitq q;
};

/* Initialize c. 0, -EINVAL, -ENOMEM. */
JG_API int jg_cond_init(struct jg_cond *c);
/* Forget c. 0, -EBUSY (waiters), -EINVAL, -EXDEV. */
JG_API int jg_cond_destroy(struct jg_cond *c);
/*
 * Release m (which the caller must hold), wait for a signal, and lock m
 * again before returning, whatever the outcome: also on timeout, deadline
 * and kill (that re-lock waits for m without limit and ignores kills and
 * scopes, like pthread_cond_wait's cancellation). Returns 0 (signalled;
 * the condition may still be false: check it in a loop), -ETIMEDOUT,
 * -ECANCELED, all with m held again. Refused before m is released (m
 * unchanged): -EPERM (the caller does not hold m, or calls from a callback
 * or the hub), -EINVAL, -EXDEV, -ENOMEM, -ECANCELED (already killed), and
 * -ETIMEDOUT at once for a timeout of 0. -EDEADLK (main waits and nothing
 * can ever signal or unlock) may return with m not held: jg_mutex_held
 * tells. May switch green threads.
 */
JG_API int jg_cond_wait(struct jg_cond *c, struct jg_mutex *m,
                        int64_t timeout_ns);
/*
 * Wake the first waiter (a waiter killed before it resumed passes the
 * signal on). 0, -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_cond_signal(struct jg_cond *c);
/* Wake every waiter. 0, -EINVAL, -EXDEV. Does not switch. */
JG_API int jg_cond_broadcast(struct jg_cond *c);

/* ---- scoped deadlines -------------------------------------------------- */

/*
 * A deadline scope (gevent Timeout, asyncio timeout()): between
 * jg_deadline_push and jg_deadline_pop every blocking call of the green
 * thread that pushed it returns -ETIMEDOUT once the earliest active scope
 * has expired; this includes cooperative I/O and jg_sleep. Scopes nest
 * strictly (LIFO) and belong to the green thread that pushed them: only it
 * may move, cancel or pop them (the struct may live on its stack; nothing
 * else reads it). Fields are private.
 */
struct jg_deadline {
    struct jg_deadline *outer;  /* the scope pushed before, or NULL */
    struct jg_green *owner;
    int64_t deadline;           /* absolute ns; INT64_MAX: none */
    int state;                  /* 0 never pushed, 1 active, 2 popped */
    bool expired;               /* at pop: its own deadline had passed */
};

/*
 * Open a scope that expires timeout_ns from now (0: already expired,
 * JG_FOREVER: never, until moved). 0, -EINVAL (NULL d, bad timeout),
 * -EBUSY (d is already active), -EPERM (from a callback or the hub),
 * -ENOMEM. Does not switch.
 */
JG_API int jg_deadline_push(struct jg_deadline *d, int64_t timeout_ns);
/*
 * Close the innermost scope d. 0, -EINVAL (d is not the caller's innermost
 * active scope), -EPERM. Does not switch.
 */
JG_API int jg_deadline_pop(struct jg_deadline *d);
/*
 * true if d's own deadline has passed: while active, now; after pop, at the
 * time of the pop. Tells which of nested scopes fired. false for NULL.
 */
JG_API bool jg_deadline_expired(const struct jg_deadline *d);
/*
 * Move active scope d to expire timeout_ns from now (JG_FOREVER: never).
 * 0, -EINVAL (bad timeout, d not an active scope of the caller), -EPERM.
 */
JG_API int jg_deadline_move(struct jg_deadline *d, int64_t timeout_ns);
/*
 * Cancel active scope d: it no longer expires, and stays pushed until
 * popped. 0, -EINVAL, -EPERM.
 */
JG_API int jg_deadline_cancel(struct jg_deadline *d);
/* The caller's effective deadline (absolute ns), INT64_MAX for none. */
JG_API int64_t jg_deadline_current(void);

/* ---- green-local storage ----------------------------------------------- */

/* A key; 0 is never a valid one (a zeroed key gives -EINVAL). */
typedef uint32_t jg_local_key;

/* How many keys a process may create. */
#define JG_LOCAL_KEYS_MAX 256

/*
 * Create a key for green-local values (gevent.local). dtor, if not NULL,
 * is called with each green thread's non-NULL value when that green thread
 * ends (on the hub's thread; it cannot block: blocking calls return -EPERM
 * there, jg_spawn works). Thread-safe. 0, -EINVAL
 * (NULL k), -EAGAIN (JG_LOCAL_KEYS_MAX reached).
 */
JG_API int jg_local_key_create(jg_local_key *k, void (*dtor)(void *));
/*
 * Set the calling green thread's value for k. 0, -EINVAL (bad key), -EPERM
 * (from the hub's own context), -ENOMEM. Each OS thread's main context
 * keeps its values until the OS thread exits (destructors run then).
 */
JG_API int jg_local_set(jg_local_key k, void *value);
/* The calling green thread's value for k; NULL if unset or bad key. */
JG_API void *jg_local_get(jg_local_key k);

#ifdef __cplusplus
}
#endif
#endif
