/* SPDX-License-Identifier: MIT */
/*
 * loop.h - the loop's internals shared with the hub (hub.c, green.c, io.c):
 * one-iteration driving, liveness for deadlock detection, the thread-safe
 * inbox, fd invalidation on jg_close, and the fork reset.
 */
#ifndef JG_LOOP_INTERNAL_H
#define JG_LOOP_INTERNAL_H

#include "internal.h"
#include "backend/backend.h"


/*
 * A node of a loop's thread-safe inbox: another thread pushes it with
 * jg__loop_post() and the loop's thread calls fn(node) on its next iteration.
 * The node must stay valid until fn runs; it may be posted again from fn.
 */
struct jg__post {
    struct jg__post *next;
    void (*fn)(struct jg__post *p);
};

/* A watcher list: NULL-terminated through jg_watcher.next/prev, appended at
 * the tail so callbacks run in start order. */
struct jg__wlist {
    struct jg_watcher *head, *tail;
};

/* Per-fd state: the watchers on the fd and what the kernel has registered.
 * registered is a superset of wanted: interest is dropped lazily (an fd
 * left with no watcher before the next poll, or an event nobody wants),
 * so a stop/start within one iteration costs no system call. */
struct jg__fd {
    struct jg__wlist watchers;    /* active struct jg_io */
    uint32_t registered;          /* events registered with the backend */
    uint32_t wanted;              /* union of the active watchers' events */
    bool queued;                  /* in the loop's changed[] */
    bool trusted;                 /* made by juggle, closed by jg_close */
    uint32_t gen;                 /* the fd generation (fdtab.c) that the
                                     watchers and registration belong to */
};

/* A callback due in this iteration (the watcher carries JG__W_PENDING). */
struct jg__pending {
    struct jg_watcher *w;
    uint32_t revents;             /* io: events; signal: the number */
};

/* Watcher kinds (jg_watcher.kind) and flags (jg_watcher.flags). */
enum {
    JG__K_IO = 1, JG__K_TIMER, JG__K_SIGNAL, JG__K_ASYNC,
    JG__K_PREPARE, JG__K_CHECK, JG__K_IDLE,
};
enum {
    JG__W_ACTIVE = 1u << 0,
    JG__W_UNREF = 1u << 1,        /* does not keep the loop alive */
    JG__W_PENDING = 1u << 2,      /* in the loop's pending array */
};

#define JG__LOOP_EVENTS 128       /* readiness reports taken per poll */

struct jg_loop {
    const struct jg__backend_ops *ops;
    void *backend;                /* the backend's state */
    /* Set by the layer that owns the loop (the hub): jg_loop_run on it
     * from outside a callback is the owner's to do (it schedules green
     * threads around the iterations); NULL for a private loop. */
    int (*run_hook)(struct jg_loop *l, int mode);
    /* The hub's watchdog heartbeat (monitor.c), or NULL: bumped by one
     * before and after the backend poll, so it is odd exactly while the
     * thread waits in the kernel; callbacks count as busy. */
    _Atomic uint64_t *beat;
    const void *owner;            /* identity of the owning OS thread */

    int64_t now;                  /* cached clock, read once per poll */
    uint64_t timer_seq;           /* start order of timers */
    struct jg_timer **heap;       /* binary min-heap of active timers */
    uint32_t heap_len, heap_cap;

    struct jg__fd *fds;           /* indexed by fd */
    int nfds;                     /* size of fds[] */
    int *changed;                 /* fds whose last watcher stopped; their
                                     registration is dropped before the
                                     next poll unless restarted (size nfds) */
    int nchanged;

    /* Callbacks collected in a phase, then run; its capacity is kept at
     * least the number of active watchers, so collecting never allocates. */
    struct jg__pending *pending;
    uint32_t npending, pending_cap;
    struct jg__backend_event events[JG__LOOP_EVENTS];

    struct jg__wlist asyncs;      /* active async watchers */
    struct jg__wlist prepares, checks, idles;
    struct jg__wlist signals;     /* active signal watchers */

    uint32_t nactive;             /* active watchers */
    int nregistered;              /* fds with a kernel registration */
    uint32_t active_refs;         /* active referenced watchers */
    uint32_t depth;               /* nesting of jg_loop_run */
    uint32_t dispatching;         /* this loop's callbacks running */
    bool stop;                    /* jg_loop_stop was called */
    uint8_t epoch;                /* bumped by a fork: older watchers are
                                     forgotten (flags carry their epoch) */

    /* Cross-thread wake-up. wake_state holds JG__WAKE_SLEEPING (the loop
     * may block in poll) and JG__WAKE_WOKEN (something was posted since the
     * loop last looked). Every access is a seq_cst RMW on both sides: the
     * loop's "about to sleep" and a sender's "posted, is it asleep?" race,
     * and only a single total order makes one of them see the other. */
    _Atomic(struct jg__post *) inbox;
    _Atomic unsigned wake_state;
    _Atomic int async_pending;    /* some async watcher was sent */
    int slot;                     /* signal slot index, -1 if none */
    /* fdtab.c: membership of the registry of loops that watch fds, and
     * "a close notice could not be allocated: check every fd". */
    struct jg_loop *reg_next;
    bool in_reg;
    _Atomic int fd_recheck;
    uint16_t sigcount[65];        /* active signal watchers per number */
};

#define JG__WAKE_SLEEPING 1u
#define JG__WAKE_WOKEN 2u
#define JG__W_EPOCH_SHIFT 8

/* A watcher activated before the loop's last fork reset is inactive and not
 * pending, whatever its flags say; clear them before using them. */
static inline void jg__watcher_sync(struct jg_watcher *w)
{
    if (w->loop && (w->flags & (JG__W_ACTIVE | JG__W_PENDING))
        && (uint8_t)(w->flags >> JG__W_EPOCH_SHIFT) != w->loop->epoch)
        w->flags &= JG__W_UNREF;
}

/* Create/destroy the loop structure of a hub or a private loop. */
JG_HIDDEN int jg__loop_init(struct jg_loop *l);
JG_HIDDEN void jg__loop_fini(struct jg_loop *l);

/*
 * One iteration: prepare hooks, poll (blocking until the next timer or
 * event when may_block and no idle hook is active, at most max_block_ns if
 * >= 0), refresh the cached time, dispatch fd events, expired timers,
 * signals, async watchers and inbox posts, then check (and idle) hooks.
 * Callbacks run with jg__cb_depth raised. Returns the number of callbacks
 * and posts run.
 */
JG_HIDDEN int jg__loop_iterate(struct jg_loop *l, bool may_block,
                               int64_t max_block_ns);

/* true while active referenced watchers exist or inbox posts are pending. */
JG_HIDDEN bool jg__loop_alive(const struct jg_loop *l);

/*
 * Push p to the loop's inbox and wake the loop if it sleeps. Any thread;
 * the eventfd write is coalesced to one per sleep.
 */
JG_HIDDEN void jg__loop_post(struct jg_loop *l, struct jg__post *p);

/*
 * fd is being closed (jg_close, on any thread; own is the caller's loop or
 * NULL): a new generation of the number begins, every other loop that
 * watched it is told (jg__loop_fd_stale), and own's watchers are called
 * with JG_CLOSED while the number still names the file.
 */
JG_HIDDEN void jg__loop_fd_closing(struct jg_loop *own, int fd);

/*
 * fd was just returned by a juggle call that creates fds (accept, socket):
 * no registration can exist for it, so forget any belief left from an
 * earlier fd of that number (waking its stale watchers with JG_CLOSED),
 * and mark it trusted: it will be closed with jg_close, so a watcher
 * restarted on it needs no re-check with the kernel.
 */
JG_HIDDEN void jg__loop_fd_fresh(struct jg_loop *l, int fd);

/*
 * In a forked child: close the loop's inherited kernel objects without
 * touching them (no epoll_ctl), forget every watcher, and make fresh ones.
 */
JG_HIDDEN int jg__loop_after_fork(struct jg_loop *l);

/* ---- fdtab.c: process-wide generations of fd numbers ------------------ */

/* fd's generation now (0 for a number past the table). */
JG_HIDDEN uint32_t jg__fd_gen(int fd);
/* l is about to watch fd: record it as a watcher and set *gen to the
 * generation its beliefs must belong to. 0, or -EBADF while another thread
 * closes the number. */
JG_HIDDEN int jg__fd_watch(struct jg_loop *l, int fd, uint32_t *gen);
/* Begin a generation of fd and tell the other loops that watched it. With
 * `closing`, the number still names the file and close(2) (or dup2 over
 * it) follows: its registrations in the other loops are removed now, and
 * the number reads as closing until jg__fd_close_end (or a creation of
 * the number). Returns the new generation. Any thread. */
JG_HIDDEN uint32_t jg__fd_bump(struct jg_loop *own, int fd, bool closing);
JG_HIDDEN void jg__fd_close_end(int fd);
/* Hold fd's number for a system call outside the user's calls while it is
 * still generation gen (false: it is not, make no call); unhold after. */
JG_HIDDEN bool jg__fd_hold(int fd, uint32_t gen);
JG_HIDDEN void jg__fd_unhold(int fd, uint32_t gen);
/* l is going away: it leaves the registry and owns no number. */
JG_HIDDEN void jg__fd_loop_leave(struct jg_loop *l);
/* On l's thread: generation gen of fd began elsewhere; watchers of an
 * older one are woken with JG_CLOSED and its registration forgotten. */
JG_HIDDEN void jg__loop_fd_stale(struct jg_loop *l, int fd, uint32_t gen);

/* ---- shared by loop.c, timer.c and signal.c only ------------------- */

/* 0 if the calling thread owns l, else -EXDEV. */
JG_HIDDEN int jg__loop_check(const struct jg_loop *l);
/* Count w as active on l (grows the pending array: 0 or -ENOMEM). */
JG_HIDDEN int jg__watcher_activate(struct jg_loop *l, struct jg_watcher *w);
/* Count w as inactive (it may stay pending: a one-shot timer that fired). */
JG_HIDDEN void jg__watcher_deactivate(struct jg_loop *l,
                                      struct jg_watcher *w);
/* Queue w's callback for this iteration, or drop it from the queue. */
JG_HIDDEN void jg__pending_add(struct jg_loop *l, struct jg_watcher *w,
                               uint32_t revents);
JG_HIDDEN void jg__pending_drop(struct jg_loop *l, struct jg_watcher *w);

/*
 * The first half of every jg_*_start, after its own argument checks: the
 * loop is the caller's, and w is not active yet. Returns 1 (go on and
 * activate it), 0 (already active on l: nothing to do), -EXDEV or
 * -EINVAL (active on another loop).
 */
static inline int jg__watcher_start_begin(struct jg_loop *l,
                                          struct jg_watcher *w)
{
    int rc = jg__loop_check(l);

    if (rc < 0)
        return rc;
    jg__watcher_sync(w);
    if (w->flags & JG__W_ACTIVE)
        return w->loop == l ? 0 : -EINVAL;
    return 1;
}

/*
 * The first half of every jg_*_stop: forget a due callback of w and say
 * whether w is still active, to be unlinked by the caller. Returns 1
 * (active: *lp is its loop), 0 (nothing to do) or -EXDEV / -EINVAL.
 */
static inline int jg__watcher_stop_begin(struct jg_watcher *w,
                                         struct jg_loop **lp)
{
    int rc;

    jg__watcher_sync(w);
    if (!(w->flags & (JG__W_ACTIVE | JG__W_PENDING)))
        return 0;
    *lp = w->loop;
    rc = jg__loop_check(*lp);
    if (rc < 0)
        return rc;
    jg__pending_drop(*lp, w);
    return (w->flags & JG__W_ACTIVE) ? 1 : 0;
}
JG_HIDDEN void jg__wlist_append(struct jg__wlist *h, struct jg_watcher *w);
JG_HIDDEN void jg__wlist_remove(struct jg__wlist *h, struct jg_watcher *w);
/* Wake l's poll (coalesced); any thread, async-signal-safe. */
JG_HIDDEN void jg__loop_wake(struct jg_loop *l);

/* timer.c: queue the timers due at l->now; earliest expiry or INT64_MAX. */
JG_HIDDEN void jg__timers_expire(struct jg_loop *l);
JG_HIDDEN int64_t jg__timers_next(const struct jg_loop *l);

/* signal.c: queue the signal watchers whose signal arrived; give the
 * loop's slot back (destroy; waits out a handler still using it). */
JG_HIDDEN void jg__signals_collect(struct jg_loop *l);
JG_HIDDEN void jg__signals_release(struct jg_loop *l);

/* > 0 while a loop callback runs on this OS thread. */
extern _Thread_local int jg__cb_depth JG_TLS_IE;
/* An address unique to the calling thread, the owner of its loops. */
JG_HIDDEN const void *jg__thread_id(void);

#endif
