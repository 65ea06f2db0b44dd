/* SPDX-License-Identifier: MIT */
/*
 * hub.c - the per-OS-thread hub: the scheduler that switches between green
 * threads, the hub context that runs the event loop, jg__park (the one
 * parking primitive of every layer), the slicer that moves sliced green
 * threads' frames on and off the shared stack, and the fork reset.
 * Invariant: only the hub's own OS thread touches the hub and its green
 * threads; other threads reach it through the loop's inbox (jg__wake_remote).
 */
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clause.h"

_Thread_local struct jg_hub *jg__tls_hub JG_TLS_IE;

/* Run at most this many green threads between two polls of the loop. */
#define BURST_MAX 64
/* ... and for at most this long. */
#define SLICE_NS JG_MS(1)
/* Descriptors kept for reuse by each hub. */
#define FREE_G_MAX 1024

static pthread_key_t hub_key;
/* The layer above that watches hubs (jg__hub_observe), or NULL. */
static _Atomic(const struct jg__hub_observer *) observer;

void jg__hub_observe(const struct jg__hub_observer *o)
{
    /* release: the observer's table is complete before a hub reads it. */
    atomic_store_explicit(&observer, o, memory_order_release);
}

static const struct jg__hub_observer *hub_observer(void)
{
    return atomic_load_explicit(&observer, memory_order_acquire);
}
static pthread_once_t hub_once = PTHREAD_ONCE_INIT;

/* ---- sanitizer annotations --------------------------------------------- */
/*
 * Every switch tells ASan which stack it moves to (fiber annotations) and
 * TSan which fiber runs; release builds compile all of it out.
 */
#if JG_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save,
                                    const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#endif
#if JG_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

#if JG_ASAN
/* Stack bounds of a green thread, for ASan. */
static void stack_bounds(struct jg_hub *h, struct jg_green *g,
                         const void **lo, size_t *size)
{
    struct jg__stack *s = (g->flags & JG__G_SLICED) ? h->shared : g->stack;

    if (s) {
        *lo = s->base;
        *size = s->size;
    } else {
        *lo = NULL;
        *size = 0;
    }
}
#endif

static inline void before_switch(struct jg_hub *h, struct jg_green *from,
                                 struct jg_green *to, bool dying)
{
#if JG_ASAN
    const void *lo;
    size_t size;

    stack_bounds(h, to, &lo, &size);
    if (to->flags & JG__G_MAIN) {
        lo = h->main_lo;
        size = h->main_size;
    }
    /* A dying context passes NULL: its fake stack is freed with it. */
    __sanitizer_start_switch_fiber(dying ? NULL : &from->asan_fake, lo, size);
#endif
#if JG_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    (void)h, (void)from, (void)to, (void)dying;
}

static inline void after_switch(struct jg_green *self)
{
#if JG_ASAN
    __sanitizer_finish_switch_fiber(self ? self->asan_fake : NULL, NULL,
                                    NULL);
#endif
    (void)self;
}

/* ---- descriptors ---------------------------------------------------------- */

static void free_desc(struct jg_hub *h, struct jg_green *g)
{
    free(g->name);
    free(g->saved);
    if (h && h->nfree_g < FREE_G_MAX) {
        /* Keep it for the next spawn: malloc + free cost more than a
         * spawn should. The link field chains the cache. */
        g->parent = h->free_g;
        h->free_g = g;
        h->nfree_g++;
        return;
    }
    free(g);
}

/* Drop one reference; the last frees the descriptor and its parent ref. */
void jg__green_unref(struct jg_green *g)
{
    while (g && --g->refs == 0) {
        struct jg_green *parent = g->parent;

        free_desc(g->hub, g);
        g = parent;
    }
}

struct jg_green *jg__green_alloc(struct jg_hub *h)
{
    struct jg_green *g = h->free_g;

    if (g) {
        h->free_g = g->parent;
        h->nfree_g--;
    } else {
        g = malloc(sizeof *g);
        if (!g)
            return NULL;
    }
    memset(g, 0, sizeof *g);
    g->hub = h;
    g->deadline = INT64_MAX;
    g->id = ++h->next_id;
    return g;
}

/* ---- stacks of green threads ------------------------------------------- */

/* Give back the stack of a finished green thread (we are off it now). */
static void release_stack(struct jg_hub *h, struct jg_green *g)
{
    if (g->flags & JG__G_SLICED) {
        if (h->shared_owner == g)
            h->shared_owner = NULL;
        free(g->saved);
        g->saved = NULL;
        g->saved_len = 0;
    } else if (g->stack) {
        /* Kept whatever the pool's bound: a burst of spawns reuses the
         * stacks of the last one. The excess is unmapped when the hub
         * next has nothing to run (trim in hub_main). */
        jg__stack_put(&h->pool, g->stack, SIZE_MAX / 2);
        g->stack = NULL;
    }
    if (g->flags & JG__G_RESERVED) {
        g->flags &= (uint16_t)~JG__G_RESERVED;
        h->reserved--;
    }
}

/* Free what a finished green thread held once nobody runs on its stack. */
static JG_NOINLINE void reap(struct jg_hub *h)
{
    struct jg_green *g = h->zombie;

    h->zombie = NULL;
    release_stack(h, g);
#if JG_TSAN
    if (g->tsan_fiber && !(g->flags & JG__G_SLICED)) {
        __tsan_destroy_fiber(g->tsan_fiber);
        g->tsan_fiber = NULL;
    }
#endif
    jg__green_unref(g);          /* the run's reference */
}

static void green_entry(void *val);

/*
 * First run of a dedicated green thread: take its stack (reserved at
 * creation, so this cannot fail for the default size) and lay out its
 * first frame.
 */
static int start_dedicated(struct jg_hub *h, struct jg_green *g)
{
    if (!g->stack) {
        int rc = jg__stack_get(&h->pool, 0, &g->stack);
        if (rc < 0)
            return rc;
    }
    if (g->flags & JG__G_RESERVED) {
        g->flags &= (uint16_t)~JG__G_RESERVED;
        h->reserved--;
    }
    g->stack->name = g->name;
    g->stack->owner_id = g->id;
    /* Start each green thread's frames at a different offset within the
     * page: with every stack top page-aligned, the registers one green
     * thread saves and the next one restores sit at the same address
     * modulo 4 KiB, and the CPU's memory disambiguation stalls on that
     * false dependency (4K aliasing). Costs at most 448 bytes of stack. */
    jg__ctx_init(&g->ctx, g->stack->base,
                 g->stack->size - (size_t)(g->id % 8) * 64, green_entry);
#if JG_TSAN
    g->tsan_fiber = __tsan_create_fiber(0);
#endif
    return 0;
}

/* ---- the slicer --------------------------------------------------------- */
/*
 * Sliced green threads share h->shared. Their frames stay on it while they
 * are its owner; when another sliced green thread must run, the slicer
 * (a context on its own small stack, so it never stands on the bytes it
 * copies) saves the owner's used part [sp, top) to the heap and puts the
 * next one's back. While parked, a sliced green thread's stack is either
 * resident and untouched or on the heap: nothing reads or writes it.
 */
static char *shared_top(struct jg_hub *h)
{
    return (char *)h->shared->base + h->shared->size;
}

static JG_NO_ASAN void copy_bytes(void *dst, const void *src, size_t n)
{
    /* The shared stack holds ASan redzones of frames that are not running;
     * a plain (intercepted) memcpy would report them. */
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (!JG_ASAN) {
        memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

static void save_out(struct jg_hub *h, struct jg_green *g)
{
    char *sp = g->ctx.sp;
    char *top = shared_top(h);
    size_t n;

    if (sp < (char *)h->shared->base)
        sp = h->shared->base;
    n = (size_t)(top - sp);
    if (n > g->saved_len && n > malloc_usable_size(g->saved)) {
        /* Exact size, not doubled: idle sliced green threads are the
         * reason this model exists, and their memory is what counts. */
        void *p = realloc(g->saved, n);
        if (!p)
            JG_PANIC("out of memory saving a sliced stack (%zu bytes)", n);
        g->saved = p;
    }
    copy_bytes(g->saved, sp, n);
    g->saved_len = (uint32_t)n;
}

static void restore_in(struct jg_hub *h, struct jg_green *g)
{
    char *top = shared_top(h);

    copy_bytes(top - g->saved_len, g->saved, g->saved_len);
#if JG_ASAN
    /* The redzones of the frames that ran here before are stale. */
    __asan_unpoison_memory_region(h->shared->base, h->shared->size);
#endif
}

static void slicer_main(void *unused)
{
    struct jg_hub *h = jg__tls_hub;

    (void)unused;
    after_switch(NULL);
    for (;;) {
        struct jg_green *to = h->slice_to;
        struct jg_green *owner = h->shared_owner;

        if (owner && owner != to && owner->state != JG_GREEN_DONE)
            save_out(h, owner);
        if (to->flags & JG__G_START) {
            to->flags &= (uint16_t)~JG__G_START;
            jg__ctx_init(&to->ctx, h->shared->base, h->shared->size,
                         green_entry);
#if JG_TSAN
            /* One TSan fiber for all sliced green threads: TSan maps a
             * shadow stack per fiber, which a million of them would
             * exhaust (vm.max_map_count). Races between two sliced green
             * threads go unseen; none is reported falsely. */
            to->tsan_fiber = h->sliced_fiber;
#endif
#if JG_ASAN
            __asan_unpoison_memory_region(h->shared->base, h->shared->size);
#endif
        } else if (owner != to) {
            restore_in(h, to);
        }
        h->shared_owner = to;
        h->shared->name = to->name;
        h->shared->owner_id = to->id;
#if JG_ASAN
        __sanitizer_start_switch_fiber(&h->slicer_fake, h->shared->base,
                                       h->shared->size);
#endif
#if JG_TSAN
        __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
        (void)jg__ctx_switch(&h->slicer, &to->ctx, h->slice_val);
#if JG_ASAN
        __sanitizer_finish_switch_fiber(h->slicer_fake, NULL, NULL);
#endif
    }
}

static int slicer_init(struct jg_hub *h)
{
    /* Not a stack an unstarted green thread reserved: it would find the
     * pool empty at its first run, past vm.max_map_count a panic. */
    int rc = jg__stack_get_spare(&h->pool, h->reserved, &h->slicer_stack);

    if (rc < 0)
        return rc;
    jg__ctx_init(&h->slicer, h->slicer_stack->base, h->slicer_stack->size,
                 slicer_main);
#if JG_TSAN
    h->slicer_fiber = __tsan_create_fiber(0);
    h->sliced_fiber = __tsan_create_fiber(0);
#endif
    return 0;
}

/* ---- switching ------------------------------------------------------------ */

/* The rare cases of a switch: a first run, or a sliced target. */
static JG_NOINLINE void *switch_slow(struct jg_hub *h, struct jg_green *from,
                                     struct jg_green *to, void *val,
                                     bool dying)
{
    void *v;

    /* One suspended in jg_switch finds errno as it left it, however it is
     * resumed (errno is the OS thread's, shared by all green threads). */
    if (to->flags & JG__G_ERRNO) {
        to->flags &= (uint16_t)~JG__G_ERRNO;
        *h->errno_loc = to->saved_errno;
    }
    if (to->flags & JG__G_SLICED) {
        if (h->shared_owner != to || (to->flags & JG__G_START)) {
            /* Hop through the slicer; it completes the switch to `to`. */
            h->slice_to = to;
            h->slice_val = val;
#if JG_ASAN
            __sanitizer_start_switch_fiber(dying ? NULL : &from->asan_fake,
                                           h->slicer_stack->base,
                                           h->slicer_stack->size);
#endif
#if JG_TSAN
            __tsan_switch_to_fiber(h->slicer_fiber, 0);
#endif
            v = jg__ctx_switch(&from->ctx, &h->slicer, val);
            goto resumed;
        }
    } else if (to->flags & JG__G_START) {
        int rc = start_dedicated(h, to);
        if (rc < 0)
            JG_PANIC("no stack for a reserved green thread: %s",
                     jg_strerror(rc));
        to->flags &= (uint16_t)~JG__G_START;
    }
    before_switch(h, from, to, dying);
    v = jg__ctx_switch(&from->ctx, &to->ctx, val);
resumed:
    if (unlikely(h->zombie))
        reap(h);
    after_switch(from);
    return v;
}

/*
 * Switch from the running green thread `from` to `to`, passing val. The
 * caller has set from->state; this sets `to` running. Returns the value
 * passed when something switches back to `from`.
 */
static inline void *switch_to(struct jg_hub *h, struct jg_green *from,
                              struct jg_green *to, void *val)
{
    void *v;

    jg__set_current(h, to);
    to->state = JG_GREEN_RUNNING;
    if (unlikely(to->flags & (JG__G_SLICED | JG__G_START | JG__G_ERRNO)))
        return switch_slow(h, from, to, val, false);
    before_switch(h, from, to, false);
    v = jg__ctx_switch(&from->ctx, &to->ctx, val);
    /* We run again: free what a green thread that died meanwhile held. */
    if (unlikely(h->zombie))
        reap(h);
    after_switch(from);
    return v;
}

/*
 * The value a ready green thread is resumed with: NULL for a park (it reads
 * park.result), the error for one suspended in jg_switch that kill or
 * deadlock detection made ready (its jg_switch returns the value as is).
 */
static inline void *resume_value(struct jg_green *g)
{
    if (unlikely(g->flags & JG__G_RESUME)) {
        g->flags &= (uint16_t)~JG__G_RESUME;
        return JG_ERR(g->park.result);
    }
    return NULL;
}

/*
 * Is the run slice over? Read the clock only every 16 switches while green
 * threads run briefly (a reading costs about as much as a switch); after a
 * slice that overran (green threads that compute between switches), read
 * it at every switch of the next slice, so the loop is polled at the first
 * switch past the 1 ms bound. Overran slices are counted by the hub loop.
 */
static inline bool slice_over(struct jg_hub *h, int mask)
{
    if ((h->burst & mask) != 0)
        return false;
    if (jg_now() < h->tick_end)
        return false;
    h->overran = true;
    return true;
}

/*
 * The coarse clock (vDSO, about 4 ns, in kernel ticks of 1-4 ms): enough
 * to notice that a green thread computed for a tick, at a fifth of the
 * cost of a precise reading.
 */
static inline int64_t coarse_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * The green thread to run next without a visit to the hub, or NULL when
 * the loop is due a poll: at most 64 green threads, or 1 ms, per slice.
 * Every direct hand-over (park, yield, switch away, finish) asks this.
 * A finish (`finishing`) also reads the coarse clock: once it has ticked
 * since the slice began, the precise one decides. Green threads that
 * compute and end hold the hub for a kernel tick at most, not for 16 of
 * them, where a precise reading at every finish would cost 40% of a
 * spawn and join.
 */
static inline struct jg_green *next_ready(struct jg_hub *h, bool finishing)
{
    struct jg__list *n;

    if (unlikely(h->burst >= BURST_MAX))
        return NULL;
    h->burst++;
    if (unlikely(slice_over(h, finishing && coarse_ns() != h->coarse_start
                                   ? 0 : h->clock_mask)))
        return NULL;
    n = jg__list_pop_front(&h->ready);
    return n ? JG_CONTAINER_OF(n, struct jg_green, link) : NULL;
}

/*
 * The running green thread has stopped running (parked, switched, done or
 * yielded, state already set): run the next ready one directly while the
 * run slice lasts, else go back to the hub to poll.
 */
static inline __attribute__((always_inline)) void *
schedule(struct jg_hub *h, struct jg_green *self)
{
    struct jg_green *g = next_ready(h, false);

    if (g)
        return switch_to(h, self, g, resume_value(g));
    return switch_to(h, self, h->hub_g, NULL);
}

/* ---- finishing ----------------------------------------------------------- */

/*
 * Tell everything that waits for g that it finished; each node once. The
 * nodes run user code (done-callbacks of g's future, a group's on_done,
 * green-local destructors) on the stack of a green thread that is DONE, or
 * of whoever ended one that never ran: none of it may park, or g would be
 * left half-finished. So they run as loop callbacks do, with the callback
 * depth raised: every blocking call, jg_yield and jg_switch there return
 * -EPERM, while jg_spawn still works (blocking work goes to a new green
 * thread). DESIGN.md, "Seams".
 */
static void run_waiters(struct jg_green *g)
{
    struct jg__waiter *w;

    jg__cb_depth++;
    while ((w = g->waiters) != NULL) {
        g->waiters = w->next;
        w->next = NULL;
        w->fn(w, g);
    }
    jg__cb_depth--;
}

void jg__waiter_add(struct jg_green *g, struct jg__waiter *w)
{
    if (g->state == JG_GREEN_DONE) {
        w->next = NULL;
        w->fn(w, g);
        return;
    }
    w->next = g->waiters;
    g->waiters = w;
}

bool jg__waiter_remove(struct jg_green *g, struct jg__waiter *w)
{
    for (struct jg__waiter **p = &g->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            w->next = NULL;
            return true;
        }
    }
    return false;
}

/* The first ancestor that has not finished (the hub's children: the hub). */
static struct jg_green *live_ancestor(struct jg_green *g)
{
    struct jg_green *p = g->parent;

    while (p && p->state == JG_GREEN_DONE)
        p = p->parent;
    return p;
}

static _Noreturn void finish(struct jg_hub *h, struct jg_green *g, void *res)
{
    struct jg_green *to;

    g->arg = res;
    g->state = JG_GREEN_DONE;
    h->count--;
    if (g->joiner)
        (void)jg__clause_wake(g->joiner, 0);
    run_waiters(g);
    /* greenlet: control and the result go to the first live ancestor, if
     * it can take a value (suspended in jg_switch, or not started);
     * otherwise (it waits in the runtime, or is the hub) to the scheduler. */
    to = live_ancestor(g);
    /* jg_switch's fast path does not reap after it resumes: a previous
     * zombie may still wait. We are on g's stack, not on that one's. */
    if (h->zombie)
        reap(h);
    h->zombie = g;
    if (to && !(to->flags & JG__G_HUB) &&
        (to->state == JG_GREEN_SWITCHED ||
         (to->state == JG_GREEN_NEW && !jg__list_linked(&to->link)))) {
        jg__set_current(h, to);
        to->state = JG_GREEN_RUNNING;
        switch_slow(h, g, to, res, true);
    } else {
        /* As any hand-over: the loop is polled once the slice is over. */
        struct jg_green *n = next_ready(h, true);
        to = n ? n : h->hub_g;
        jg__set_current(h, to);
        to->state = JG_GREEN_RUNNING;
        switch_slow(h, g, to, n ? resume_value(to) : NULL, true);
    }
    JG_PANIC("a finished green thread was resumed");
}

static void green_entry(void *val)
{
    struct jg_hub *h = jg__tls_hub;
    struct jg_green *g = h->current;
    void *res = NULL;

    (void)val;
    after_switch(NULL);
    if (unlikely(h->zombie))
        reap(h);
    if (!(g->flags & JG__G_CANCELLED))
        res = g->fn(g->arg);
    h = jg__tls_hub;
    if (unlikely(g->flags & JG__G_MAIN)) {
        /* A forked child's surviving green thread is its main context:
         * its function returning ends the process. */
        fflush(NULL);
        exit(JG_IS_ERR(res) ? 1 : 0);
    }
    finish(h, g, res);
}

/* ---- parking ------------------------------------------------------------- */

static void park_timer_cb(struct jg_timer *t)
{
    struct jg_green *g = JG_CONTAINER_OF(t, struct jg_green, park.timer);

    jg__wake(g, -ETIMEDOUT);
}

int jg__park_flags(int64_t deadline, unsigned pflags)
{
    struct jg_hub *h = jg__tls_hub;
    struct jg_green *g;
    int64_t eff;
    int saved_errno, rc;

    if (unlikely(!h))
        return -EPERM;
    g = h->current;
    if (unlikely(!jg__may_park(h, g)))
        return -EPERM;
    if (unlikely((g->flags & JG__G_CANCELLED) &&
                 !(pflags & JG__PARK_NOCANCEL))) {
        rc = -ECANCELED;
        goto early;
    }
    eff = deadline;
    if (!(pflags & JG__PARK_NOSCOPE) && g->deadline < eff)
        eff = g->deadline;
    if (eff != INT64_MAX) {
        int64_t left = eff - jg_now();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            goto early;
        }
        jg_timer_init(&g->park.timer, park_timer_cb);
        /* -ENOMEM (the timer heap cannot grow): parking without the
         * timer would sleep past the deadline, maybe for good. */
        rc = jg_timer_start(&h->loop, &g->park.timer, left, 0);
        if (unlikely(rc < 0))
            goto early;
    }
    if (pflags & JG__PARK_NOCANCEL)
        g->flags |= JG__G_NOCANCEL;
    /* errno is per OS thread and every green thread shares it: a parked
     * green thread must find it as it left it. Its address is the
     * thread's, kept in the hub: no call to __errno_location per park. */
    saved_errno = *h->errno_loc;
    g->state = JG_GREEN_PARKED;
    schedule(h, g);
    *h->errno_loc = saved_errno;
    g->flags &= (uint16_t)~JG__G_NOCANCEL;
    if (eff != INT64_MAX)
        jg_timer_stop(&g->park.timer);
    return g->park.result;

early:
    /* Not parking after all. With a cross-thread source registered, a
     * remote waker may claim the park at any moment and post a wake-up:
     * claim it first, so none comes; if one already won, its post is on
     * the way and must find us parked, so wait for it. */
    if (g->flags & JG__G_REMOTE) {
        int zero = 0;
        if (!atomic_compare_exchange_strong(&g->park.fired, &zero, 1)) {
            saved_errno = errno;
            g->state = JG_GREEN_PARKED;
            schedule(h, g);
            errno = saved_errno;
            return g->park.result;
        }
    }
    return rc;
}

static void remote_post_cb(struct jg__post *p)
{
    struct jg_green *g = JG_CONTAINER_OF(p, struct jg_green, park.post);

    jg__make_ready(g);
}

bool jg__wake_remote(struct jg_green *g, int result)
{
    int zero = 0;

    /* seq_cst CAS: pairs with the local claim's CAS for REMOTE parks. */
    if (!atomic_compare_exchange_strong(&g->park.fired, &zero, 1))
        return false;
    g->park.result = result;
    g->park.post.fn = remote_post_cb;
    jg__loop_post(&g->hub->loop, &g->park.post);
    return true;
}

void jg__remote_begin_flags(struct jg_hub *h, bool counted)
{
    h->current->flags |= JG__G_REMOTE;
    if (counted)
        atomic_fetch_add(&h->remote, 1);
}

void jg__remote_end_flags(struct jg_hub *h, bool counted)
{
    h->current->flags &= (uint16_t)~JG__G_REMOTE;
    if (counted)
        atomic_fetch_sub(&h->remote, 1);
}

void jg__remote_begin(struct jg_hub *h)
{
    jg__remote_begin_flags(h, true);
}

void jg__remote_end(struct jg_hub *h)
{
    jg__remote_end_flags(h, true);
}

/* ---- fd waits ------------------------------------------------------------ */

static void fd_wait_cb(struct jg_io *w, uint32_t revents)
{
    struct jg_green *g = JG_CONTAINER_OF(w, struct jg_green, io);

    jg__wake(g, (revents & JG_CLOSED) ? -EBADF : (int)revents);
}

int jg__wait_fd_until(int fd, uint32_t events, int64_t deadline)
{
    struct jg_green *g = jg__park_prepare();
    uint32_t gen;
    int rc;

    if ((rc = jg__park_check(g)) < 0)
        return rc;
    jg_io_init(&g->io, fd_wait_cb, fd, events);
    rc = jg_io_start(&g->hub->loop, &g->io);
    if (rc < 0)
        return rc;
    gen = g->hub->loop.fds[fd].gen;
    rc = jg__park(deadline);
    jg_io_stop(&g->io);
    /* Closed while we waited, here or on another thread: even if we were
     * woken by readiness first and had not run yet, the number may name
     * another file now, and our caller must not touch it. */
    if (unlikely(jg__fd_gen(fd) != gen))
        rc = -EBADF;
    return rc;
}

void jg__fd_closing(int fd)
{
    struct jg_hub *h = jg__tls_hub;

    jg__loop_fd_closing(h ? &h->loop : NULL, fd);
}


/* ---- the hub context ----------------------------------------------------- */

/*
 * Advance the watchdog's heartbeat (see h->beat). Only this thread writes
 * it, so a relaxed load and store make the increment, with no locked
 * read-modify-write. Relaxed is enough for a watchdog: it only compares
 * values for change and orders no other data by them; a stale read at most
 * delays a report by one of its ticks.
 */
static inline void beat(struct jg_hub *h, uint64_t by)
{
    uint64_t b = atomic_load_explicit(&h->beat, memory_order_relaxed);

    atomic_store_explicit(&h->beat, b + by, memory_order_relaxed);
}


/*
 * Nothing can ever wake a blocked main context: no ready green thread, no
 * referenced watcher, no cross-thread operation outstanding.
 */
static bool deadlocked(struct jg_hub *h)
{
    return jg__list_empty(&h->ready) && !jg__loop_alive(&h->loop) &&
           atomic_load(&h->remote) == 0;
}

/* Resume a blocked main context with -EDEADLK (gevent's LoopExit). */
static void break_deadlock(struct jg_hub *h)
{
    struct jg_green *m = h->main_g;

    if (m->state == JG_GREEN_PARKED) {
        jg__wake(m, -EDEADLK);
    } else if (m->state == JG_GREEN_SWITCHED) {
        m->park.result = -EDEADLK;
        m->flags |= JG__G_RESUME;
        jg__make_ready(m);
    } else {
        JG_PANIC("deadlock: every green thread waits and main (state %d) "
                 "cannot be woken", m->state);
    }
}

static void hub_main(void *val)
{
    struct jg_hub *h = jg__tls_hub;

    (void)val;
    after_switch(NULL);
    for (;;) {
        struct jg__list *n;

        /* Run the ready green threads; they may also run each other
         * directly (schedule) within the same slice. */
        h->burst = 0;
        /* After a slice that overran, watch the clock at every switch. */
        h->clock_mask = h->overran ? 0 : 15;
        h->overran = false;
        /* The loop read the clock right after its poll: reuse it. */
        h->tick_end = h->loop.now + SLICE_NS;
        h->coarse_start = coarse_ns();
        while (h->burst < BURST_MAX &&
               (n = jg__list_pop_front(&h->ready)) != NULL) {
            struct jg_green *g = JG_CONTAINER_OF(n, struct jg_green, link);

            h->burst++;
            h->hub_g->state = JG_GREEN_PARKED;
            switch_to(h, h->hub_g, g, resume_value(g));
            /* Back in the hub loop: the green thread gave the CPU up. */
            beat(h, 2);
            /* Bounded by time too, not only by count: also when a hand-over
             * found the slice over and came back here for the poll. */
            if (h->overran || slice_over(h, h->clock_mask))
                break;
        }
        if (deadlocked(h)) {
            break_deadlock(h);
            continue;
        }
        if (jg__list_empty(&h->ready)) {
            /* Idle: return the stacks a burst left beyond the bound. */
            if (h->pool.count > h->pool.max + h->reserved)
                jg__stack_pool_trim(&h->pool, h->reserved);
        }
        jg__loop_iterate(&h->loop, jg__list_empty(&h->ready), -1);
    }
}

/*
 * jg_loop_run(jg_loop_default()) from a green thread. The hub is never
 * suspended inside an iteration (callbacks cannot switch), so the caller
 * iterates the loop itself, on its own stack, with the callback depth
 * raised as usual; it yields whenever other green threads are ready, so
 * they keep running, and blocks in the poll only when nothing is ready.
 */
static int hub_loop_run(struct jg_loop *l, int mode)
{
    struct jg_hub *h = JG_CONTAINER_OF(l, struct jg_hub, loop);
    int rc;

    if (h != jg__tls_hub)
        return -EXDEV;
    if (mode < JG_RUN_DEFAULT || mode > JG_RUN_NOWAIT)
        return -EINVAL;
    if (!jg__may_park(h, h->current))
        return -EPERM;
    do {
        if (!jg__list_empty(&h->ready)) {
            rc = jg_yield();
            if (rc < 0)
                return rc;
        }
        jg__loop_iterate(&h->loop,
                         mode != JG_RUN_NOWAIT && jg__list_empty(&h->ready),
                         -1);
        if (h->loop.stop) {
            h->loop.stop = false;
            break;
        }
    } while (mode == JG_RUN_DEFAULT && jg__loop_alive(&h->loop));
    return jg__loop_alive(&h->loop) ? 1 : 0;
}

/* The calling thread's hub's loop (the hub owns it, so this lives here). */
struct jg_loop *jg_loop_default(void)
{
    struct jg_hub *h = jg__hub_get();

    return h ? &h->loop : NULL;
}

/* The stack the calling thread runs on (the overflow handler asks). */
static struct jg__stack *running_stack(void)
{
    struct jg_hub *h = jg__tls_hub;
    struct jg_green *g;

    if (!h || !(g = h->current))
        return NULL;
    if (g->flags & JG__G_SLICED)
        return h->shared;
    return g->stack;
}

/* ---- hub lifecycle ------------------------------------------------------- */

static void hub_destroy(void *arg)
{
    struct jg_hub *h = arg;

    /* Thread exit. Green threads still alive are abandoned (their
     * descriptors leak); what the hub itself owns is returned. The
     * watchdog forgets the hub in any case: its thread is ending. */
    const struct jg__hub_observer *o = hub_observer();

    if (h && o)
        o->removed(h);
    if (h && h->count > 0) {
        /* Abandoned, but no longer told of closes (fdtab.c): notices
         * would pile up in an inbox nobody drains. */
        jg__fd_loop_leave(&h->loop);
        return;
    }
    if (!h)
        return;
    jg__tls_hub = NULL;
    jg__loop_fini(&h->loop);
    if (h->hub_g->stack)
        jg__stack_unmap(h->hub_g->stack);
    if (h->slicer_stack)
        jg__stack_unmap(h->slicer_stack);
    if (h->shared)
        jg__stack_unmap(h->shared);
    jg__stack_pool_drain(&h->pool);
    while (h->free_g) {
        struct jg_green *g = h->free_g;
        h->free_g = g->parent;
        free(g);
    }
    while (h->forsaken) {
        struct jg_green *g = h->forsaken;
        h->forsaken = g->saved;
        free(g->name);
        free(g);
    }
    free(h->hub_g);
    free(h->main_g);
    free(h);
}

static void after_fork_child(void);

static void hub_once_init(void)
{
    pthread_key_create(&hub_key, hub_destroy);
    pthread_atfork(NULL, NULL, after_fork_child);
}

static int hub_start_context(struct jg_hub *h)
{
    struct jg_green *hg = h->hub_g;
    int rc = jg__stack_get(&h->pool, 0, &hg->stack);

    if (rc < 0)
        return rc;
    hg->stack->name = "hub";
    jg__ctx_init(&hg->ctx, hg->stack->base, hg->stack->size, hub_main);
    return 0;
}

static void main_stack_bounds(struct jg_hub *h)
{
#if JG_ASAN
    pthread_attr_t a;
    void *lo;
    size_t size;

    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        h->main_lo = lo;
        h->main_size = size;
        pthread_attr_destroy(&a);
    }
#else
    (void)h;
#endif
}

struct jg_hub *jg__hub_get(void)
{
    struct jg_hub *h = jg__tls_hub;

    if (h)
        return h;
    pthread_once(&hub_once, hub_once_init);
    h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    jg__list_init(&h->ready);
    jg__stack_pool_init(&h->pool);
    h->hub_g = calloc(1, sizeof *h->hub_g);
    h->main_g = calloc(1, sizeof *h->main_g);
    if (!h->hub_g || !h->main_g)
        goto err_free;
    h->loop.beat = &h->beat;
    if (jg__loop_init(&h->loop) < 0)
        goto err_free;
    h->loop.run_hook = hub_loop_run;
    if (jg__stack_thread_init(running_stack) < 0 || hub_start_context(h) < 0)
        goto err_loop;

    h->hub_g->hub = h;
    h->hub_g->flags = JG__G_HUB;
    h->hub_g->state = JG_GREEN_PARKED;
    h->hub_g->refs = 1;
    h->hub_g->deadline = INT64_MAX;
    h->main_g->hub = h;
    h->main_g->flags = JG__G_MAIN;
    h->main_g->state = JG_GREEN_RUNNING;
    h->main_g->refs = 1;
    h->main_g->deadline = INT64_MAX;
    main_stack_bounds(h);
#if JG_TSAN
    h->main_g->tsan_fiber = __tsan_get_current_fiber();
    h->hub_g->tsan_fiber = __tsan_create_fiber(0);
#endif
    h->current = h->main_g;
    h->errno_loc = &errno;
    jg__tls_hub = h;
    pthread_setspecific(hub_key, h);
    {
        const struct jg__hub_observer *o = hub_observer();
        if (o)
            o->added(h);
    }
    return h;

err_loop:
    jg__loop_fini(&h->loop);
err_free:
    free(h->hub_g);
    free(h->main_g);
    free(h);
    return NULL;
}

/* p lies on the shared stack (jg__obj_check): is it outside the running
 * green thread's own frames? Those are [sp, top) of a sliced green thread
 * that runs on it; below its sp, or for any other context, the bytes are
 * a parked sliced green thread's (resident or copied out) or dead. */
bool jg__on_parked_stack(const struct jg_hub *h, const void *p)
{
    const struct jg_green *g = h->current;

    if ((g->flags & JG__G_SLICED) && h->shared_owner == g)
        return (const char *)p < (const char *)__builtin_frame_address(0);
    return true;
}

void jg__parked_stack_panic(const void *p, const char *what)
{
    JG_PANIC("the %s at %p is on the stack of a parked sliced green thread: "
             "while it is parked its stack is copied out and nothing may "
             "touch it; put objects that green threads share on the heap, "
             "in static storage or on a dedicated stack", what, p);
}

/* Map the sliced green threads' shared stack and the slicer on first use. */
int jg__hub_sliced_init(struct jg_hub *h)
{
    int rc;

    if (h->shared)
        return 0;
    rc = jg__stack_get_spare(&h->pool, h->reserved, &h->shared);
    if (rc < 0)
        return rc;
    rc = slicer_init(h);
    if (rc < 0) {
        jg__stack_put(&h->pool, h->shared, 0);
        h->shared = NULL;
    }
    return rc;
}

/*
 * fork() in a process with a hub: in the child only the forking context
 * survives, on a fresh hub. The other green threads' descriptors and stacks
 * are abandoned (their memory is the parent's, copied on write); the loop's
 * inherited kernel objects are closed, never epoll_ctl'd.
 *
 * A green thread that forks becomes the child's main context (the old
 * main's descriptor is freed). A loop callback that forks runs on the hub
 * context, whose stack must not be laid out afresh under it: the hub goes
 * on, and the main context survives beside it as it was - ready again if
 * it was ready, its timed park re-armed for the time left, any other wait
 * ended by deadlock detection (-EDEADLK), since what would have woken it
 * stayed in the parent.
 */
static void after_fork_child(void)
{
    struct jg_hub *h = jg__tls_hub;
    struct jg_green *self, *m;
    int64_t main_due = INT64_MAX;

    if (!h)
        return;
    /* The parent's other green threads stay parked for good. */
    h->fork_floor = h->next_id;
    self = h->current;
    m = h->main_g;
    /* Forked from the hub's context (a loop callback) or from a green
     * thread's finish hooks: no green thread can go on as main, so the
     * old main does. */
    bool keep_main = self == h->hub_g || self->state == JG_GREEN_DONE;
    if (keep_main && m->state == JG_GREEN_PARKED &&
        jg_watcher_active(&m->park.timer.base))
        main_due = m->park.timer.when_ns;
    jg__loop_after_fork(&h->loop);
    jg__list_init(&h->ready);
    h->count = 0;
    h->reserved = 0;
    h->zombie = NULL;
    /* A sliced survivor is running on the shared stack: it owns it. */
    h->shared_owner = (self->flags & JG__G_SLICED) ? self : NULL;
    atomic_store(&h->remote, 0);
    if (keep_main) {
        m->flags &= (uint16_t)~JG__G_REMOTE;
#if JG_TSAN
        /* TSan's fibers made before the fork are stale in the child, but
         * for the forking one (the hub's, or the finishing thread's). */
        m->tsan_fiber = __tsan_create_fiber(0);
        if (self != h->hub_g)
            h->hub_g->tsan_fiber = __tsan_create_fiber(0);
        if (h->shared) {
            h->slicer_fiber = __tsan_create_fiber(0);
            h->sliced_fiber = __tsan_create_fiber(0);
        }
#endif
        if (m->state == JG_GREEN_READY) {
            jg__make_ready(m);
        } else if (main_due != INT64_MAX) {
            int64_t left = main_due - jg_now();
            jg_timer_init(&m->park.timer, park_timer_cb);
            jg_timer_start(&h->loop, &m->park.timer, left > 0 ? left : 0, 0);
        }
        return;
    }
    if (self != m) {
        self->flags |= JG__G_MAIN;
        self->parent = NULL;
        h->main_g = self;
        /* The old main's descriptor may still be named by what it waited
         * on (a wait queue's node, a future's waiter): DONE, every waker
         * passes it by. Kept reachable, not freed, so neither a waker nor
         * LeakSanitizer finds it gone. */
        m->state = JG_GREEN_DONE;
        m->flags &= (uint16_t)~(JG__G_MAIN | JG__G_REMOTE);
        m->saved = h->forsaken;
        h->forsaken = m;
    }
    /* What waited for it belonged to the parent's other green threads,
     * which never run here: their clause is ours to free. */
    if (self->joiner)
        jg__clause_put(self->joiner);
    self->joiner = NULL;
    self->waiters = NULL;
    /* Its deadline scopes stay: the child goes on inside them, and the
     * clock they use is the machine's. */
    self->flags &= (uint16_t)~(JG__G_CANCELLED | JG__G_REMOTE);
    /* The hub context starts over on its own stack. */
    h->hub_g->state = JG_GREEN_PARKED;
#if JG_TSAN
    /* TSan's view of fibers made before the fork is stale in the child. */
    h->hub_g->tsan_fiber = __tsan_create_fiber(0);
    if (h->shared) {
        h->slicer_fiber = __tsan_create_fiber(0);
        h->sliced_fiber = __tsan_create_fiber(0);
    }
#endif
    jg__ctx_init(&h->hub_g->ctx, h->hub_g->stack->base, h->hub_g->stack->size,
                 hub_main);
#if JG_ASAN
    if (self->flags & JG__G_SLICED) {
        h->main_lo = h->shared->base;
        h->main_size = h->shared->size;
    } else if (self->stack) {
        h->main_lo = self->stack->base;
        h->main_size = self->stack->size;
    }
#endif
}

/* ---- switching API (here, so the fast path inlines) ------------------------ */

/* jg_switch with every check, and the rare cases: errors, first runs,
 * sliced targets, a zombie to reap, sanitizer builds. */
static JG_NOINLINE void *switch_checked(struct jg_green *target, void *value)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *self;

    if (unlikely(!h))
        return JG_ERR(-ENOMEM);
    if (unlikely(!target))
        return JG_ERR(-EINVAL);
    if (unlikely(target->hub != h))
        return JG_ERR(-EXDEV);
    if (unlikely(jg__cb_depth > 0))
        return JG_ERR(-EPERM);
    self = h->current;
    if (unlikely(self == h->hub_g))
        return JG_ERR(-EPERM);
    if (target->state != JG_GREEN_SWITCHED) {
        if (target->state == JG_GREEN_DONE)
            return JG_ERR(-EINVAL);
        if (target->state != JG_GREEN_NEW || jg__list_linked(&target->link))
            return JG_ERR(-EBUSY);
    }
    if (unlikely(jg__killed(self)))
        return JG_ERR(-ECANCELED);
    if (unlikely(h->zombie))
        reap(h);
    self->saved_errno = *h->errno_loc;
    self->flags |= JG__G_ERRNO;
    self->state = JG_GREEN_SWITCHED;
    jg__set_current(h, target);
    target->state = JG_GREEN_RUNNING;
    return switch_slow(h, self, target, value, false);
}

void *jg_switch(struct jg_green *target, void *value)
{
#if !JG_ASAN && !JG_TSAN
    struct jg_hub *h = jg__tls_hub;

    /* The common case in as few instructions as possible, and as a tail
     * call: whatever resumes us later enters our caller directly with its
     * value, and nothing is left to do here. Anything unusual (an error,
     * a first run, a sliced target, a zombie to reap) takes the checked
     * path. */
    /* A target's hub is never NULL, so this also means h != NULL. The
     * hub context runs user code only in callbacks, so cb_depth == 0 also
     * means the caller is not the hub. A SWITCHED target has started (no
     * JG__G_START). A zombie left by a finished green thread waits for
     * the next switch that reaps (finish() reaps before it makes another). */
    if (likely(target && target->hub == h && jg__cb_depth == 0)) {
        struct jg_green *self = h->current;

        if (likely(target->state == JG_GREEN_SWITCHED &&
                   !(target->flags & JG__G_SLICED) &&
                   !(self->flags & JG__G_CANCELLED))) {
            /* errno: ours kept, the target's put back (JG__G_ERRNO; a
             * SWITCHED green thread always carries it). */
            int *e = h->errno_loc;
            self->saved_errno = *e;
            self->flags |= JG__G_ERRNO;
            *e = target->saved_errno;
            target->flags &= (uint16_t)~JG__G_ERRNO;
            self->state = JG_GREEN_SWITCHED;
            jg__set_current(h, target);
            target->state = JG_GREEN_RUNNING;
            return jg__ctx_jump(&self->ctx, &target->ctx, value);
        }
    }
#endif
    return switch_checked(target, value);
}

int jg_yield(void)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *self;
    int saved_errno;

    if (!h)
        return -ENOMEM;
    self = h->current;
    if (!jg__may_park(h, self))
        return -EPERM;
    if (jg__killed(self))
        return -ECANCELED;
    saved_errno = errno;
    /* Behind every green thread that is ready now; the hub polls once
     * the slice ends, so a yielding loop does not starve I/O. */
    jg__make_ready(self);
    schedule(h, self);
    errno = saved_errno;
    return 0;
}

/* Kill of a green thread suspended in jg_switch: resume it with the error. */
void jg__resume_switched(struct jg_green *g, int code)
{
    g->park.result = code;
    g->flags |= JG__G_RESUME;
    jg__make_ready(g);
}

/* Finish a green thread that never ran (killed while NEW). */
void jg__finish_unstarted(struct jg_green *g)
{
    struct jg_hub *h = g->hub;

    if (jg__list_linked(&g->link))
        jg__list_remove(&g->link);
    g->arg = NULL;
    g->state = JG_GREEN_DONE;
    h->count--;
    if (g->joiner)
        (void)jg__clause_wake(g->joiner, 0);
    run_waiters(g);
    release_stack(h, g);
    jg__green_unref(g);         /* the run's reference */
}
