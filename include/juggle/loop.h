/* SPDX-License-Identifier: MIT */
/*
 * juggle/loop.h - the event loop of one OS thread, public as a callback API
 * (the libev layer). Watchers are caller-owned structs; the loop links them
 * while they are active and never allocates per start/stop. A loop belongs to
 * the OS thread that created it: every call but jg_async_send() must come from
 * that thread (-EXDEV otherwise).
 *
 * Each OS thread that uses green threads has a hub, and the hub's loop is
 * jg_loop_default(): green threads and callback watchers share it. Callbacks
 * run on the hub (or on the stack of whoever runs a private loop); a blocking
 * jg_* call from inside a callback returns -EPERM.
 */
#ifndef JUGGLE_LOOP_H
#define JUGGLE_LOOP_H

#include <stdatomic.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct jg_loop;

/* Event bits for fd watchers (events asked for, and revents delivered). */
#define JG_READ   0x01u   /* readable, or peer closed its write side */
#define JG_WRITE  0x04u   /* writable */
#define JG_ERROR  0x08u   /* error condition on the fd (revents only) */
#define JG_HUP    0x10u   /* hang-up (revents only) */
#define JG_CLOSED 0x20u   /* the fd was closed through jg_close() (revents only) */

/*
 * The head every watcher starts with. `data` is the user's; the other fields
 * are private to the loop.
 */
struct jg_watcher {
    void *data;
    struct jg_loop *loop;           /* set while active */
    struct jg_watcher *next, *prev; /* list the loop keeps it on */
    uint16_t flags;                 /* private: active, unref, kind */
    uint16_t kind;
};

/*
 * Keep a watcher from holding the loop alive (jg_watcher_unref) or make it
 * count again (jg_watcher_ref). A loop in JG_RUN_DEFAULT returns once no
 * active referenced watcher remains. Both are idempotent.
 */
JG_API void jg_watcher_ref(struct jg_watcher *w);
JG_API void jg_watcher_unref(struct jg_watcher *w);
/* true while the watcher is started. */
JG_API bool jg_watcher_active(const struct jg_watcher *w);

/* ---- fd watchers ----------------------------------------------------- */
struct jg_io;
typedef void (*jg_io_cb)(struct jg_io *w, uint32_t revents);

struct jg_io {
    struct jg_watcher base;
    jg_io_cb cb;
    int fd;
    uint32_t events;                /* JG_READ | JG_WRITE */
};

/*
 * Prepare an fd watcher. Any number of watchers may watch one fd, for the
 * same or different events: each is called when its events are ready (level
 * triggered). Registration with the kernel is kept across stop/start so a
 * watcher re-armed after every EAGAIN costs no system call.
 */
JG_API void jg_io_init(struct jg_io *w, jg_io_cb cb, int fd, uint32_t events);
/*
 * Start watching. Returns 0 (also if already active), -EINVAL for a negative
 * fd or events outside JG_READ|JG_WRITE, -EPERM for an fd the loop cannot watch
 * (a regular file), -EBADF, -ENOMEM, -EXDEV from another thread.
 */
JG_API int jg_io_start(struct jg_loop *l, struct jg_io *w);
/* Stop watching; 0, also if not active. */
JG_API int jg_io_stop(struct jg_io *w);
/* Change the events of a watcher, active or not. Errors as jg_io_start. */
JG_API int jg_io_set(struct jg_io *w, uint32_t events);

/* ---- timers ---------------------------------------------------------- */
struct jg_timer;
typedef void (*jg_timer_cb)(struct jg_timer *w);

struct jg_timer {
    struct jg_watcher base;
    jg_timer_cb cb;
    int64_t when_ns;                /* absolute expiry, CLOCK_MONOTONIC */
    int64_t repeat_ns;              /* 0 = one-shot */
    uint64_t seq;                   /* start order, breaks ties */
    uint32_t index;                 /* private: place in the heap */
};

JG_API void jg_timer_init(struct jg_timer *w, jg_timer_cb cb);
/*
 * Fire after timeout_ns (>= 0), then every repeat_ns if repeat_ns > 0, at a
 * fixed rate (expiry k is start + timeout + k * repeat; periods missed while
 * the loop was busy are skipped, not fired in a burst). The timeout counts
 * from a fresh clock reading, not the loop's cached time. Equal expiries fire
 * in start order. Starting an active timer re-arms it. Returns 0, -EINVAL for
 * negative values, -ENOMEM, -EXDEV.
 */
JG_API int jg_timer_start(struct jg_loop *l, struct jg_timer *w,
                          int64_t timeout_ns, int64_t repeat_ns);
/* Cancel; 0, also if not active. */
JG_API int jg_timer_stop(struct jg_timer *w);
/* Nanoseconds until an active timer fires (0 if due), -EINVAL if inactive. */
JG_API int64_t jg_timer_remaining(const struct jg_timer *w);

/* ---- signals --------------------------------------------------------- */
struct jg_signal;
typedef void (*jg_signal_cb)(struct jg_signal *w, int signum);

struct jg_signal {
    struct jg_watcher base;
    jg_signal_cb cb;
    int signum;
};

/*
 * Signal watchers: one process-wide handler per signal records it and wakes
 * every loop with a watcher for it; the callback runs in the loop, not in the
 * handler. Several deliveries before the loop runs coalesce into one call.
 * SIGKILL, SIGSTOP and the signals the C library reserves give -EINVAL.
 */
JG_API void jg_signal_init(struct jg_signal *w, jg_signal_cb cb, int signum);
JG_API int jg_signal_start(struct jg_loop *l, struct jg_signal *w);
JG_API int jg_signal_stop(struct jg_signal *w);

/* ---- async wake-ups -------------------------------------------------- */
struct jg_async;
typedef void (*jg_async_cb)(struct jg_async *w);

/* A private field that C accesses atomically; C++ sees the same size and
 * alignment (checked in the library) and never touches it. */
#ifdef __cplusplus
#define JG__ATOMIC_FIELD(t) t
#else
#define JG__ATOMIC_FIELD(t) _Atomic t
#endif

struct jg_async {
    struct jg_watcher base;
    jg_async_cb cb;
    JG__ATOMIC_FIELD(unsigned) pending;   /* private */
};

/*
 * A thread-safe wake-up: jg_async_send() from any thread (or a signal
 * handler) makes the loop call cb once; sends before the call coalesce.
 */
JG_API void jg_async_init(struct jg_async *w, jg_async_cb cb);
JG_API int jg_async_start(struct jg_loop *l, struct jg_async *w);
JG_API int jg_async_stop(struct jg_async *w);
/* Any thread; async-signal-safe. Returns 0, -EINVAL if never started. */
JG_API int jg_async_send(struct jg_async *w);

/* ---- idle / prepare / check hooks ------------------------------------ */
enum jg_hook_kind {
    JG_HOOK_PREPARE = 1,    /* before each poll */
    JG_HOOK_CHECK = 2,      /* after each poll, after the fd and timer callbacks */
    JG_HOOK_IDLE = 3,       /* each iteration in which nothing else was ready;
                               while one is active the poll does not block */
};
struct jg_hook;
typedef void (*jg_hook_cb)(struct jg_hook *w);

struct jg_hook {
    struct jg_watcher base;
    jg_hook_cb cb;
};

JG_API void jg_hook_init(struct jg_hook *w, enum jg_hook_kind kind,
                         jg_hook_cb cb);
JG_API int jg_hook_start(struct jg_loop *l, struct jg_hook *w);
JG_API int jg_hook_stop(struct jg_hook *w);

/* ---- the loop -------------------------------------------------------- */
enum jg_run_mode {
    JG_RUN_DEFAULT = 0,     /* until jg_loop_stop() or nothing is alive */
    JG_RUN_ONCE = 1,        /* one iteration, blocking for events if needed */
    JG_RUN_NOWAIT = 2,      /* one iteration, never blocking */
};

struct jg_loop_opts {
    int reserved;           /* zero; room for a backend choice */
};

/* A private loop for the calling thread. Returns 0, -ENOMEM, -EMFILE. */
JG_API int jg_loop_create(struct jg_loop **out, const struct jg_loop_opts *o);
/*
 * Destroy a loop made by jg_loop_create. -EBUSY while watchers are active or
 * while it runs; -EINVAL for the default loop.
 */
JG_API int jg_loop_destroy(struct jg_loop *l);
/*
 * The calling thread's hub loop, created on first use (NULL only if out of
 * memory or file descriptors).
 */
JG_API struct jg_loop *jg_loop_default(void);
/*
 * Run the loop. Returns 1 if active referenced watchers remain, 0 if none,
 * -EPERM when called from one of this loop's callbacks, -EXDEV from another
 * thread. Run from a green thread on the default loop, it parks that green
 * thread while the hub runs the loop (other green threads keep running).
 * May switch green threads.
 */
JG_API int jg_loop_run(struct jg_loop *l, enum jg_run_mode mode);
/* Make jg_loop_run return after the current iteration. */
JG_API void jg_loop_stop(struct jg_loop *l);
/* The loop's cached time: the clock read once per poll. */
JG_API int64_t jg_loop_now(const struct jg_loop *l);
/* Read the clock into the loop's cached time. */
JG_API void jg_loop_update_time(struct jg_loop *l);

#ifdef __cplusplus
}
#endif
#endif
