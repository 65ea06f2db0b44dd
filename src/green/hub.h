/* SPDX-License-Identifier: MIT */
/*
 * hub.h - green-thread descriptors, the per-thread hub, and the one parking
 * primitive (jg__park) that every blocking call of every layer uses. Only
 * the hub's own OS thread touches a hub and its green threads, except for
 * jg__wake_remote(), which is the cross-thread door.
 */
#ifndef JG_HUB_H
#define JG_HUB_H

#include "internal.h"
#include "loop.h"
#include "stack.h"
#include "switch.h"

/* Green-thread flags. */
enum {
    JG__G_CANCELLED = 1u << 0,  /* jg_kill: sticky */
    JG__G_DETACHED = 1u << 1,   /* handle released; free when done */
    JG__G_MAIN = 1u << 2,       /* the OS thread's original context */
    JG__G_HUB = 1u << 3,        /* the hub's own context */
    JG__G_SLICED = 1u << 4,     /* runs on the hub's shared stack */
    JG__G_RESERVED = 1u << 5,   /* holds a stack reservation (not yet run) */
    JG__G_JOINING = 1u << 6,    /* a joiner waits on it */
    JG__G_REMOTE = 1u << 7,     /* parked on a cross-thread source */
    JG__G_START = 1u << 8,      /* needs its stack and first frame */
    JG__G_RESUME = 1u << 9,     /* SWITCHED, made ready by kill/deadlock */
    JG__G_NOCANCEL = 1u << 10,  /* parked where jg_kill must not wake it */
    JG__G_ERRNO = 1u << 11,     /* suspended in jg_switch: its errno is in
                                 * saved_errno, restored as it resumes */
};

/* Flags of jg__park_flags. */
enum {
    /* Park even when killed, and stay parked through jg_kill (the kill
     * stays recorded): for waits that must end before their caller may
     * return, such as offloaded work that runs, or a condition variable
     * taking its mutex back. */
    JG__PARK_NOCANCEL = 1u << 0,
    /* Ignore the enclosing deadline scopes (only `deadline` applies). */
    JG__PARK_NOSCOPE = 1u << 1,
};

/*
 * What a parked green thread waits for. Everything a waker touches lives
 * here, in the descriptor, never on the green thread's stack: a parked
 * sliced green thread's stack may be copied out at any moment.
 */
struct jg__park {
    _Atomic int fired;          /* 0 while waiting; a waker claims it 0 -> 1 */
    int result;                 /* what the winning waker reports */
    struct jg_timer timer;      /* the deadline, if any */
    struct jg__post post;       /* cross-thread wake-up through the inbox */
};

struct jg__clause;              /* one wait of a green thread (clause.h) */

/*
 * Something to do when a green thread finishes (wait-for-several, groups,
 * futures of green threads, green-local destructors). The node is the
 * waiter's own memory (heap or a descriptor, never a parked green
 * thread's stack); fn runs on the hub's thread as the green thread ends
 * (also when it is killed before it ran), after which the node is unlinked.
 */
struct jg__waiter {
    struct jg__waiter *next;
    void (*fn)(struct jg__waiter *w, struct jg_green *done);
};

struct jg_green {
    struct jg__ctx ctx;         /* saved context (first: hot) */
    struct jg_hub *hub;
    uint8_t state;              /* enum jg_green_state */
    uint8_t pad_;
    uint16_t flags;
    uint32_t refs;              /* the handle, the run, each child */
    struct jg__list link;       /* ready queue (only: jg__wake pushes it
                                 * there while a waiter may still be on a
                                 * primitive's list, so wait lists use
                                 * nodes of their own) */
    jg_green_fn fn;
    void *arg;                  /* fn's argument, then its result */
    struct jg_green *parent;
    struct jg__clause *joiner;  /* the jg_join waiting for us */
    struct jg__stack *stack;    /* dedicated stack, or the shared one */
    /* Sliced stacks: the used part, copied out while another runs (the
     * buffer's capacity is malloc_usable_size's: no field for it). */
    void *saved;
    uint32_t saved_len;
    int saved_errno;            /* see JG__G_ERRNO */
    int64_t deadline;           /* effective deadline (scopes), INT64_MAX */
    struct jg__waiter *waiters; /* run when it finishes */
    void **locals;              /* green-local storage (sync layer) */
    struct jg__park park;
    struct jg_io io;            /* jg_wait_fd's watcher */
    char *name;                 /* NULL: "green-<id>" made on demand */
    uint64_t id;
#if JG_ASAN
    void *asan_fake;
#endif
#if JG_TSAN
    void *tsan_fiber;
#endif
};

/*
 * A parked sliced green thread costs its descriptor (a malloc chunk of
 * sizeof + 8, in steps of 16) plus its saved frames, and BENCHMARKS.md
 * holds that to 640 bytes: 8 more bytes here cost 16 per green thread and
 * broke it once. Grow it only by taking room from another field.
 */
#if defined(JG_SWITCH_ASM) && !JG_ASAN && !JG_TSAN && UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct jg_green) <= 296,
               "struct jg_green grew past its 296-byte budget");
#endif

struct jg_hub {
    /* The head the preload library reads (struct jg__hub_head in
     * patch/abi.h; patch/runtime.c asserts the layout): first, hot. */
    struct jg_green *current;   /* running green thread */
    struct jg_green *hub_g;     /* the hub's own context */
    /* Bumped with every change of `current` (jg__set_current), beside it
     * on the hot line: the watchdog (monitor.c) tells from it that the
     * green thread holding the hub handed the CPU on, also when it went
     * straight to the next one without the hub loop seeing it. Written
     * only by this thread; the watchdog thread reads it. */
    _Atomic uint64_t switches;
    int *errno_loc;             /* this thread's errno */
    /* In a forked child: the last id of the parent's green threads, which
     * never run here (jg__wakeable); 0 otherwise. */
    uint64_t fork_floor;
    struct jg__list ready;      /* READY green threads, FIFO */
    struct jg_green *main_g;    /* the thread's original context */
    struct jg_green *zombie;    /* finished; its stack is freed next */
    struct jg_green *forsaken;  /* old mains of forked children, DONE,
                                 * chained through `saved` (a main is
                                 * never sliced) */
    struct jg_loop loop;
    struct jg__stack_pool pool;
    struct jg__stack *shared;   /* the sliced green threads' stack */
    struct jg_green *shared_owner; /* whose frames are on it now */
    struct jg__ctx slicer;      /* runs the copies between sliced threads */
    struct jg__stack *slicer_stack;
    struct jg_green *slice_to;  /* where the slicer goes next */
    void *slice_val;
    struct jg_green *free_g;    /* cache of freed descriptors */
    size_t nfree_g;
    int64_t tick_end;           /* end of the current 1 ms run slice */
    size_t reserved;            /* stacks reserved by unstarted threads */
    size_t count;               /* live green threads, main and hub aside */
    uint64_t next_id;
    int burst;                  /* direct switches since the last poll */
    int clock_mask;             /* read the clock when burst & mask == 0 */
    bool overran;               /* this slice went past tick_end */
    int64_t coarse_start;       /* the coarse clock as the slice began */
    _Atomic int remote;         /* cross-thread waits outstanding */
    /* Heartbeat for the blocking watchdog (monitor.c): +2 on every return
     * to the hub loop, +1 entering and +1 leaving the backend's poll (the
     * loop does those), so it is odd exactly while the thread waits in
     * the kernel; a loop callback that blocks is seen. Written only by
     * this thread; the watchdog thread reads it. */
    _Atomic uint64_t beat;
    struct jg__monitor_hub *mon; /* the watchdog's record of this hub */
#if JG_ASAN
    const void *main_lo;        /* the thread's own stack, for ASan */
    size_t main_size;
    void *slicer_fake;
#endif
#if JG_TSAN
    void *slicer_fiber;
    void *sliced_fiber;         /* shared by every sliced green thread */
#endif
};

/* The calling thread's hub; NULL before first use. */
extern _Thread_local struct jg_hub *jg__tls_hub JG_TLS_IE;
/* The calling thread's hub, created on first use; NULL if out of memory. */
JG_HIDDEN struct jg_hub *jg__hub_get(void);

/*
 * Park the calling green thread until a waker calls jg__wake(_remote), the
 * deadline (absolute ns, INT64_MAX for none; the green thread's own
 * effective deadline also applies) passes, or it is killed. Before calling,
 * prepare with jg__park_prepare() and register the wake sources; after it
 * returns, unregister them (the caller's one cleanup path). Returns the
 * waker's result, -ETIMEDOUT, -ECANCELED, -EDEADLK (nothing can ever wake
 * it), or -EPERM (from a loop callback or the hub). errno is preserved.
 */
JG_HIDDEN int jg__park_flags(int64_t deadline, unsigned flags);
static inline int jg__park(int64_t deadline)
{
    return jg__park_flags(deadline, 0);
}
/* The same from any thread: the wake-up goes through the hub's inbox. The
 * waiter must have counted the wait with jg__remote_begin(). */
JG_HIDDEN bool jg__wake_remote(struct jg_green *g, int result);
/* A green thread is about to wait on a cross-thread source (or stops). */
JG_HIDDEN void jg__remote_begin(struct jg_hub *h);
JG_HIDDEN void jg__remote_end(struct jg_hub *h);
/* The same, counted as outstanding cross-thread work only if `counted`:
 * a wake-up through the inbox from this hub itself (a green thread's
 * future) leaves deadlock detection on. */
JG_HIDDEN void jg__remote_begin_flags(struct jg_hub *h, bool counted);
JG_HIDDEN void jg__remote_end_flags(struct jg_hub *h, bool counted);

/*
 * Wait until fd is ready for events or the absolute deadline passes; the
 * engine behind jg_wait_fd and every cooperative I/O call. Returns ready
 * events (> 0), -ETIMEDOUT, -ECANCELED, -EBADF (jg_close), -EPERM, or a
 * backend error. Outside green context (no hub yet) it parks the main
 * context all the same: the hub is created on demand.
 */
JG_HIDDEN int jg__wait_fd_until(int fd, uint32_t events, int64_t deadline);
/* jg_close's notification, from any thread: a new generation of fd
 * begins; its waiters, on this hub and on others, wake with -EBADF. */
JG_HIDDEN void jg__fd_closing(int fd);

/*
 * Make g the running green thread of h (hub thread only). A relaxed load
 * and store, no locked read-modify-write: only this thread writes
 * `switches`, and the watchdog only compares its values for change.
 */
static inline void jg__set_current(struct jg_hub *h, struct jg_green *g)
{
    uint64_t n = atomic_load_explicit(&h->switches, memory_order_relaxed);

    h->current = g;
    atomic_store_explicit(&h->switches, n + 1, memory_order_relaxed);
}

/* The running green thread (creating the hub if needed), or NULL. */
static inline struct jg_green *jg__current(void)
{
    struct jg_hub *h = jg__tls_hub;
    if (unlikely(!h))
        h = jg__hub_get();
    return h ? h->current : NULL;
}

/*
 * Whether g, running on h, may park: not inside a loop callback and not
 * the hub's own context, which must never block (the one test; callers
 * report -EPERM).
 */
static inline bool jg__may_park(const struct jg_hub *h,
                                const struct jg_green *g)
{
    return likely(jg__cb_depth == 0 && g != h->hub_g);
}

/*
 * How the calling thread waits for something a wait may take long for:
 * 1 it parks (a green thread, or the main context of a thread with a hub),
 * 0 it blocks the OS thread (no hub: none is made just to wait), -EPERM
 * it must not wait (a loop callback, the hub's own context).
 */
static inline int jg__wait_kind(void)
{
    const struct jg_hub *h = jg__tls_hub;

    if (!h)
        return 0;
    return jg__may_park(h, h->current) ? 1 : -EPERM;
}

/* Whether g was killed (jg_kill; sticky). */
static inline bool jg__killed(const struct jg_green *g)
{
    return g->flags & JG__G_CANCELLED;
}

/*
 * The checks before g, the caller, parks on something of its own making
 * (fd waits): 0, -ENOMEM (no g: no hub could be made), -EPERM (a loop
 * callback or the hub), -ECANCELED (g was killed; sticky).
 */
static inline int jg__park_check(const struct jg_green *g)
{
    if (!g)
        return -ENOMEM;
    if (!jg__may_park(g->hub, g))
        return -EPERM;
    return jg__killed(g) ? -ECANCELED : 0;
}

/* Whether the caller is a green thread that was killed (no hub: no).
 * Reads no more than a thread-local and the running descriptor. */
static inline bool jg__self_killed(void)
{
    const struct jg_hub *h = jg__tls_hub;

    return h && h->current && jg__killed(h->current);
}

/* Make a NEW/PARKED/SWITCHED green thread ready (hub thread only). */
static inline void jg__make_ready(struct jg_green *g)
{
    g->state = JG_GREEN_READY;
    jg__list_push_back(&g->hub->ready, &g->link);
}

/* Arm g's park state: no waker has claimed it yet. g runs (or is about
 * to park): before any cross-thread source is registered. */
static inline void jg__park_arm(struct jg_green *g)
{
    atomic_store_explicit(&g->park.fired, 0, memory_order_relaxed);
    g->park.result = 0;
}

/*
 * Arm the calling green thread's park state. Returns it, or NULL when no
 * hub can be made (the -EPERM conditions are jg__park's to report).
 */
static inline struct jg_green *jg__park_prepare(void)
{
    struct jg_green *g = jg__current();

    if (likely(g != NULL))
        jg__park_arm(g);
    return g;
}

/*
 * Whether g is parked where a waker may end the park. Not a parent's green
 * thread that a forked child inherited parked on something (an event, a
 * queue, a timer): it never runs in the child, where its stack and its
 * caller's state belong to the parent; only the green thread that forked
 * (now main), or main and the hub when a callback forked, go on.
 */
static inline bool jg__wakeable(const struct jg_green *g)
{
    const struct jg_hub *h = g->hub;

    return g->state == JG_GREEN_PARKED &&
           (likely(g->id > h->fork_floor) || g == h->main_g ||
            g == h->hub_g);
}

/*
 * Wake g if it still waits (hub thread only): claim the park, record
 * result, make g ready. Returns true if this call woke it. Exactly one
 * waker wins: with a cross-thread source in play (JG__G_REMOTE) the claim
 * is a real compare-and-swap against jg__wake_remote; otherwise only this
 * thread wakes g and a plain load and store suffice.
 */
static inline bool jg__wake(struct jg_green *g, int result)
{
    if (!jg__wakeable(g))
        return false;
    if (unlikely(g->flags & JG__G_REMOTE)) {
        int zero = 0;
        if (!atomic_compare_exchange_strong(&g->park.fired, &zero, 1))
            return false;
    } else {
        if (atomic_load_explicit(&g->park.fired, memory_order_relaxed))
            return false;
        atomic_store_explicit(&g->park.fired, 1, memory_order_relaxed);
    }
    g->park.result = result;
    jg__make_ready(g);
    return true;
}

/*
 * Who wants to know of hubs as they come and go: the watchdog (monitor.c,
 * a layer above, which registers from a constructor). Called on the hub's
 * own thread as it is made and as it is destroyed, before the thread
 * ends; neither is on a switch path. Set once, before the first hub.
 */
struct jg__hub_observer {
    void (*added)(struct jg_hub *h);
    void (*removed)(struct jg_hub *h);
};
JG_HIDDEN void jg__hub_observe(const struct jg__hub_observer *o);


/* Run f when g finishes (at once if it has). Hub thread only. */
JG_HIDDEN void jg__waiter_add(struct jg_green *g, struct jg__waiter *w);
/* Forget w if it has not run. Returns true if it was still linked. */
JG_HIDDEN bool jg__waiter_remove(struct jg_green *g, struct jg__waiter *w);

/* Descriptors: a zeroed one with hub, id and deadline set; drop a ref. */
JG_HIDDEN struct jg_green *jg__green_alloc(struct jg_hub *h);
JG_HIDDEN void jg__green_unref(struct jg_green *g);
/* Map the shared stack and the slicer on first sliced spawn. */
JG_HIDDEN int jg__hub_sliced_init(struct jg_hub *h);

/*
 * Objects that green threads share must not live on a parked sliced green
 * thread's stack: it is copied out while another sliced one runs, so the
 * object reads as another thread's frames (DESIGN.md, "Seams"). p (a sync
 * object, `what` names it) is checked against the hub's shared stack: if
 * it lies there outside the running green thread's own frames, abort with
 * a message that says so. One range test when p is elsewhere; the sync
 * layer makes it where it parks or wakes, and on every call in debug and
 * sanitizer builds.
 */
JG_HIDDEN _Noreturn void jg__parked_stack_panic(const void *p,
                                               const char *what);
JG_HIDDEN bool jg__on_parked_stack(const struct jg_hub *h, const void *p);
static inline bool jg__on_shared_stack(const void *p)
{
    const struct jg_hub *h = jg__tls_hub;

    return unlikely(h && h->shared &&
                    (const char *)p >= (const char *)h->shared->base &&
                    (const char *)p < (const char *)h->shared->base +
                                      h->shared->size);
}

static inline void jg__obj_check(const void *p, const char *what)
{
    if (jg__on_shared_stack(p) && jg__on_parked_stack(jg__tls_hub, p))
        jg__parked_stack_panic(p, what);
}

/* Make a green thread suspended in jg_switch ready; its jg_switch returns
 * JG_ERR(code). */
JG_HIDDEN void jg__resume_switched(struct jg_green *g, int code);
/* End a green thread that never ran (killed while NEW or queued unstarted). */
JG_HIDDEN void jg__finish_unstarted(struct jg_green *g);

#endif
