/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the event loop of one OS thread: fd watchers, hooks, async
 * wake-ups, the inbox, and one iteration (prepare, poll, dispatch, check,
 * idle). Invariant: only the owner thread touches a loop, except the inbox,
 * async pending bits and wake_state, which are atomics any thread may use.
 */
#include <string.h>

#include "loop.h"
#include "loop.h"

_Thread_local int jg__cb_depth;
static _Thread_local char thread_anchor;

const void *jg__thread_id(void)
{
    return &thread_anchor;
}

const struct jg__backend_ops *jg__backend_choose(void)
{
    /* epoll is the only backend so far: "epoll", "uring" and unknown
     * names all get it, as the fallback rule says. */
    return &jg__backend_epoll;
}

int jg__loop_check(const struct jg_loop *l)
{
    return likely(l->owner == jg__thread_id()) ? 0 : -EXDEV;
}

/* ---- watcher bookkeeping -------------------------------------------- */

void jg__wlist_append(struct jg__wlist *h, struct jg_watcher *w)
{
    w->next = NULL;
    w->prev = h->tail;
    if (h->tail)
        h->tail->next = w;
    else
        h->head = w;
    h->tail = w;
}

void jg__wlist_remove(struct jg__wlist *h, struct jg_watcher *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        h->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        h->tail = w->prev;
    w->next = w->prev = NULL;
}

int jg__watcher_activate(struct jg_loop *l, struct jg_watcher *w)
{
    /* Every active watcher may be pending at once (each at most once per
     * phase), so a pending array as large as the active count means the
     * dispatch never allocates. Growth is amortised doubling. */
    if (l->nactive + 1 > l->pending_cap) {
        uint32_t cap = l->pending_cap ? l->pending_cap * 2 : 32;
        struct jg__pending *p = realloc(l->pending, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        l->pending = p;
        l->pending_cap = cap;
    }
    /* Written only when it changes: an async sender on another thread may
     * read it concurrently with a restart. */
    if (w->loop != l)
        w->loop = l;
    w->flags = (uint16_t)((w->flags & (JG__W_UNREF | JG__W_PENDING))
                          | JG__W_ACTIVE
                          | ((unsigned)l->epoch << JG__W_EPOCH_SHIFT));
    l->nactive++;
    if (!(w->flags & JG__W_UNREF))
        l->active_refs++;
    return 0;
}

void jg__watcher_deactivate(struct jg_loop *l, struct jg_watcher *w)
{
    w->flags &= (uint16_t)~JG__W_ACTIVE;
    l->nactive--;
    if (!(w->flags & JG__W_UNREF))
        l->active_refs--;
}

void jg__pending_add(struct jg_loop *l, struct jg_watcher *w,
                     uint32_t revents)
{
    if (unlikely(w->flags & JG__W_PENDING)) {
        for (uint32_t i = 0; i < l->npending; i++)
            if (l->pending[i].w == w)
                l->pending[i].revents |= revents;
        return;
    }
    JG_ASSERT(l->npending < l->pending_cap);
    l->pending[l->npending].w = w;
    l->pending[l->npending].revents = revents;
    l->npending++;
    w->flags |= JG__W_PENDING;
}

void jg__pending_drop(struct jg_loop *l, struct jg_watcher *w)
{
    if (!(w->flags & JG__W_PENDING))
        return;
    /* Rare (a callback stops a watcher due later in the same batch), and
     * the batch is short: a scan beats a per-watcher index. */
    for (uint32_t i = 0; i < l->npending; i++)
        if (l->pending[i].w == w)
            l->pending[i].w = NULL;
    w->flags &= (uint16_t)~JG__W_PENDING;
}

static void dispatch(struct jg_watcher *w, uint32_t revents)
{
    switch (w->kind) {
    case JG__K_IO: {
        struct jg_io *io = JG_CONTAINER_OF(w, struct jg_io, base);
        io->cb(io, revents);
        break;
    }
    case JG__K_TIMER: {
        struct jg_timer *t = JG_CONTAINER_OF(w, struct jg_timer, base);
        t->cb(t);
        break;
    }
    case JG__K_SIGNAL: {
        struct jg_signal *s = JG_CONTAINER_OF(w, struct jg_signal, base);
        s->cb(s, (int)revents);
        break;
    }
    case JG__K_ASYNC: {
        struct jg_async *a = JG_CONTAINER_OF(w, struct jg_async, base);
        a->cb(a);
        break;
    }
    default: {
        struct jg_hook *h = JG_CONTAINER_OF(w, struct jg_hook, base);
        h->cb(h);
        break;
    }
    }
}

/*
 * Run the collected callbacks in order. A callback may stop any watcher
 * (its entry is nulled) or start one (the array may be reallocated), so
 * the loop re-reads the array by index and copies each entry out first.
 */
static int run_pending(struct jg_loop *l)
{
    int ran = 0;

    if (l->npending == 0)
        return 0;
    l->dispatching++;
    jg__cb_depth++;
    for (uint32_t i = 0; i < l->npending; i++) {
        struct jg_watcher *w = l->pending[i].w;
        uint32_t revents = l->pending[i].revents;
        if (!w)
            continue;
        l->pending[i].w = NULL;
        w->flags &= (uint16_t)~JG__W_PENDING;
        dispatch(w, revents);
        ran++;
    }
    l->npending = 0;
    jg__cb_depth--;
    l->dispatching--;
    return ran;
}

/* Queue every watcher of a hook list (prepare, check, idle). */
static void collect_list(struct jg_loop *l, struct jg__wlist *h)
{
    for (struct jg_watcher *w = h->head; w; w = w->next)
        jg__pending_add(l, w, 0);
}

void jg_watcher_ref(struct jg_watcher *w)
{
    if (!w || !(w->flags & JG__W_UNREF))
        return;
    jg__watcher_sync(w);
    w->flags &= (uint16_t)~JG__W_UNREF;
    if (w->flags & JG__W_ACTIVE)
        w->loop->active_refs++;
}

void jg_watcher_unref(struct jg_watcher *w)
{
    if (!w || (w->flags & JG__W_UNREF))
        return;
    jg__watcher_sync(w);
    w->flags |= JG__W_UNREF;
    if (w->flags & JG__W_ACTIVE)
        w->loop->active_refs--;
}

bool jg_watcher_active(const struct jg_watcher *w)
{
    if (!w || !(w->flags & JG__W_ACTIVE) || !w->loop)
        return false;
    return (uint8_t)(w->flags >> JG__W_EPOCH_SHIFT) == w->loop->epoch;
}

static void watcher_init(struct jg_watcher *w, uint16_t kind)
{
    /* data is the user's: left as it is. */
    w->loop = NULL;
    w->next = w->prev = NULL;
    w->flags = 0;
    w->kind = kind;
}

/* ---- fd watchers ------------------------------------------------------ */

void jg_io_init(struct jg_io *w, jg_io_cb cb, int fd, uint32_t events)
{
    if (!w)
        return;
    watcher_init(&w->base, JG__K_IO);
    w->cb = cb;
    w->fd = fd;
    w->events = events;
}

static bool events_ok(uint32_t events)
{
    return events != 0 && !(events & ~(JG_READ | JG_WRITE));
}

static int fds_grow(struct jg_loop *l, int fd)
{
    int n = l->nfds ? l->nfds : 64;
    struct jg__fd *f;
    int *c;

    while (n <= fd)
        n *= 2;
    c = realloc(l->changed, (size_t)n * sizeof *c);
    if (!c)
        return -ENOMEM;
    l->changed = c;
    f = realloc(l->fds, (size_t)n * sizeof *f);
    if (!f)
        return -ENOMEM;
    memset(f + l->nfds, 0, (size_t)(n - l->nfds) * sizeof *f);
    l->fds = f;
    l->nfds = n;
    return 0;
}

/* Record what the kernel has registered for f, keeping the count of fds
 * with a registration (a poll that may not block skips the system call
 * when there is none: see jg__loop_iterate). */
static inline void set_registered(struct jg_loop *l, struct jg__fd *f,
                                  uint32_t events)
{
    l->nregistered += (events != 0) - (f->registered != 0);
    f->registered = events;
}

/*
 * Drop the registration of every fd whose last watcher stopped and was not
 * restarted since. Done once per poll, so the EAGAIN cycle (stop in the
 * callback, restart before the next poll) costs nothing, while an fd that
 * is closed and its number reused later cannot inherit a registration the
 * kernel silently removed at close(2).
 */
static void flush_changed(struct jg_loop *l)
{
    for (int i = 0; i < l->nchanged; i++) {
        int fd = l->changed[i];
        struct jg__fd *f = &l->fds[fd];

        f->queued = false;
        if (f->wanted == 0 && f->registered) {
            /* No call of the user's is using the fd now, and another
             * thread may be closing it: hold the number for the DEL, or
             * make none if it was closed since (the kernel dropped the
             * registration with the file). */
            if (jg__fd_hold(fd, f->gen)) {
                l->ops->fd_disarm(l->backend, fd);
                jg__fd_unhold(fd, f->gen);
            }
            set_registered(l, f, 0);
        } else if (f->wanted && f->registered && !f->trusted) {
            /* Idle, then watched again before this poll: in between, the
             * fd may have been closed with close(2) and its number reused,
             * which silently dropped the registration. Re-arm to be sure
             * (MOD; ENOENT -> ADD). fds that juggle made and jg_close
             * closes skip this, so the EAGAIN cycle of a green thread on
             * a socket from jg_accept costs no system call. */
            if (l->ops->fd_arm(l->backend, fd, f->registered,
                               f->registered | f->wanted) < 0)
                set_registered(l, f, 0);
        }
    }
    l->nchanged = 0;
}

static uint32_t fd_wanted(const struct jg__fd *f)
{
    uint32_t ev = 0;

    for (const struct jg_watcher *w = f->watchers.head; w; w = w->next)
        ev |= JG_CONTAINER_OF(w, const struct jg_io, base)->events;
    return ev;
}

/*
 * Make the kernel registration of fd cover `need`. Registration only ever
 * grows here; it shrinks lazily in fd_collect, so a watcher stopped and
 * restarted for the same events (the EAGAIN cycle) costs no system call.
 */
static int fd_cover(struct jg_loop *l, struct jg__fd *f, int fd,
                    uint32_t need)
{
    int rc;

    if (!(need & ~f->registered))
        return 0;
    rc = l->ops->fd_arm(l->backend, fd, f->registered, f->registered | need);
    if (rc < 0) {
        /* With no watcher left the belief may be stale (the fd was
         * closed): start from "nothing registered" next time. */
        if (f->wanted == 0)
            set_registered(l, f, 0);
        return rc;
    }
    set_registered(l, f, f->registered | need);
    return 0;
}

static void fd_stale(struct jg_loop *l, int fd, uint32_t gen);

int jg_io_start(struct jg_loop *l, struct jg_io *w)
{
    struct jg__fd *f;
    uint32_t gen;
    int rc;

    if (!l || !w || w->base.kind != JG__K_IO || w->fd < 0
        || !events_ok(w->events) || !w->cb)
        return -EINVAL;
    rc = jg__watcher_start_begin(l, &w->base);
    if (rc <= 0)
        return rc;
    if (w->fd >= l->nfds && (rc = fds_grow(l, w->fd)) < 0)
        return rc;
    rc = jg__watcher_activate(l, &w->base);
    if (rc < 0)
        return rc;
    /* Beliefs of an older file with this number (closed on another
     * thread, its notice not yet here) are dropped first; a number that
     * another thread is closing right now is not watched at all. */
    rc = jg__fd_watch(l, w->fd, &gen);
    if (unlikely(l->fds[w->fd].gen != gen))
        fd_stale(l, w->fd, gen);
    f = &l->fds[w->fd];
    if (rc == 0)
        rc = fd_cover(l, f, w->fd, w->events);
    if (rc < 0) {
        jg__watcher_deactivate(l, &w->base);
        return rc;
    }
    jg__wlist_append(&f->watchers, &w->base);
    f->wanted |= w->events;
    return 0;
}

int jg_io_stop(struct jg_io *w)
{
    struct jg_loop *l;
    struct jg__fd *f;
    int rc;

    if (!w || w->base.kind != JG__K_IO)
        return -EINVAL;
    rc = jg__watcher_stop_begin(&w->base, &l);
    if (rc <= 0)
        return rc;
    f = &l->fds[w->fd];
    jg__wlist_remove(&f->watchers, &w->base);
    jg__watcher_deactivate(l, &w->base);
    /* No system call: the registration stays until the next poll (see
     * flush_changed) or, for a narrowed mask, until an event nobody wants
     * arrives (fd_collect). */
    f->wanted = fd_wanted(f);
    if (f->wanted == 0 && f->registered && !f->queued) {
        f->queued = true;
        l->changed[l->nchanged++] = w->fd;
    }
    return 0;
}

int jg_io_set(struct jg_io *w, uint32_t events)
{
    struct jg_loop *l;
    struct jg__fd *f;
    int rc;

    if (!w || w->base.kind != JG__K_IO || !events_ok(events))
        return -EINVAL;
    jg__watcher_sync(&w->base);
    if (!(w->base.flags & JG__W_ACTIVE)) {
        w->events = events;
        return 0;
    }
    l = w->base.loop;
    rc = jg__loop_check(l);
    if (rc < 0)
        return rc;
    f = &l->fds[w->fd];
    rc = fd_cover(l, f, w->fd, events);
    if (rc < 0)
        return rc;
    w->events = events;
    f->wanted = fd_wanted(f);
    return 0;
}

/* Queue the watchers a readiness report concerns; drop unwanted interest. */
static void fd_collect(struct jg_loop *l, int fd, uint32_t ev)
{
    struct jg__fd *f;
    const uint32_t always = JG_ERROR | JG_HUP;

    if (fd < 0 || fd >= l->nfds) {
        /* Not ours (a stale registration): make it stop reporting. */
        l->ops->fd_disarm(l->backend, fd);
        return;
    }
    f = &l->fds[fd];
    for (struct jg_watcher *w = f->watchers.head; w; w = w->next) {
        struct jg_io *io = JG_CONTAINER_OF(w, struct jg_io, base);
        uint32_t r = ev & (io->events | always);
        if (r)
            jg__pending_add(l, w, r);
    }
    /* The lazy half of registration: only now, when the kernel reports
     * something no active watcher asked for, narrow it to what is wanted
     * (or remove it: ERROR/HUP are reported even for an empty mask). */
    if (f->wanted == 0) {
        /* As in flush_changed: nobody's call uses the fd now. */
        if (jg__fd_hold(fd, f->gen)) {
            l->ops->fd_disarm(l->backend, fd);
            jg__fd_unhold(fd, f->gen);
        }
        set_registered(l, f, 0);
    } else if (ev & ~f->wanted & (JG_READ | JG_WRITE)) {
        if (l->ops->fd_arm(l->backend, fd, f->registered, f->wanted) == 0)
            set_registered(l, f, f->wanted);
    }
}

/*
 * Stop every watcher of fd and call it once with JG_CLOSED; forget the
 * registration, with a DEL while the number still names the file (open),
 * or with no system call once the file is gone (the kernel dropped it).
 */
static void fd_gone(struct jg_loop *l, int fd, bool open)
{
    struct jg__fd *f = &l->fds[fd];
    int n = 0;

    f->trusted = false;
    /* DEL while the fd is still open: after close(2) a dup elsewhere
     * would keep the registration alive and reporting. */
    if (f->registered) {
        if (open)
            l->ops->fd_disarm(l->backend, fd);
        set_registered(l, f, 0);
    }
    for (struct jg_watcher *w = f->watchers.head; w; w = w->next)
        n++;
    /* Stop then call each watcher once. Bounded by the initial count, so a
     * callback that restarts its watcher cannot make this loop forever. */
    l->dispatching++;
    jg__cb_depth++;
    while (n-- > 0 && f->watchers.head) {
        struct jg_io *io =
            JG_CONTAINER_OF(f->watchers.head, struct jg_io, base);
        jg_io_stop(io);
        io->cb(io, JG_CLOSED);
        f = &l->fds[fd];    /* a callback may have grown the table */
    }
    jg__cb_depth--;
    l->dispatching--;
}

/* fd's file is gone (generation gen began): drop what l believed of it. */
static void fd_stale(struct jg_loop *l, int fd, uint32_t gen)
{
    struct jg__fd *f = &l->fds[fd];

    if (f->registered || f->watchers.head)
        fd_gone(l, fd, false);
    l->fds[fd].gen = gen;
}

void jg__loop_fd_stale(struct jg_loop *l, int fd, uint32_t gen)
{
    /* Newer (wrap-around safe): l's beliefs predate that close. */
    if (fd >= 0 && fd < l->nfds && (int32_t)(gen - l->fds[fd].gen) > 0)
        fd_stale(l, fd, gen);
}

/* A notice could not be allocated (fdtab.c): compare every fd l watches
 * with its generation now. */
static void fd_recheck(struct jg_loop *l)
{
    for (int fd = 0; fd < l->nfds; fd++) {
        struct jg__fd *f = &l->fds[fd];
        if (f->registered || f->watchers.head)
            jg__loop_fd_stale(l, fd, jg__fd_gen(fd));
    }
}

void jg__loop_fd_fresh(struct jg_loop *l, int fd)
{
    uint32_t gen;

    if (fd < 0)
        return;
    /* A new file: whatever any loop believed of this number is stale (its
     * old file was closed behind juggle's back). Also from a thread with
     * no loop (l NULL), for the other loops' sake. */
    gen = jg__fd_bump(l, fd, false);
    if (!l)
        return;
    if (fd >= l->nfds && fds_grow(l, fd) < 0)
        return;                 /* no belief to correct, nor trust to keep */
    fd_stale(l, fd, gen);
    l->fds[fd].trusted = true;
}

void jg__loop_fd_closing(struct jg_loop *own, int fd)
{
    uint32_t gen;

    if (fd < 0)
        return;
    /* The new generation first: a waiter that was woken but has not run
     * yet finds it changed and reports -EBADF (hub.c). */
    gen = jg__fd_bump(own, fd, true);
    if (!own || fd >= own->nfds)
        return;
    fd_gone(own, fd, true);
    own->fds[fd].gen = gen;
}

/* ---- hooks ----------------------------------------------------------- */

void jg_hook_init(struct jg_hook *w, enum jg_hook_kind kind, jg_hook_cb cb)
{
    uint16_t k = 0;

    if (!w)
        return;
    if (kind == JG_HOOK_PREPARE)
        k = JG__K_PREPARE;
    else if (kind == JG_HOOK_CHECK)
        k = JG__K_CHECK;
    else if (kind == JG_HOOK_IDLE)
        k = JG__K_IDLE;
    /* An unknown kind leaves kind 0: jg_hook_start says -EINVAL. */
    watcher_init(&w->base, k);
    w->cb = cb;
}

static struct jg__wlist *hook_list(struct jg_loop *l, uint16_t kind)
{
    if (kind == JG__K_PREPARE)
        return &l->prepares;
    if (kind == JG__K_CHECK)
        return &l->checks;
    return &l->idles;
}

static bool is_hook(uint16_t kind)
{
    return kind == JG__K_PREPARE || kind == JG__K_CHECK
           || kind == JG__K_IDLE;
}

int jg_hook_start(struct jg_loop *l, struct jg_hook *w)
{
    int rc;

    if (!l || !w || !is_hook(w->base.kind) || !w->cb)
        return -EINVAL;
    rc = jg__watcher_start_begin(l, &w->base);
    if (rc <= 0)
        return rc;
    rc = jg__watcher_activate(l, &w->base);
    if (rc < 0)
        return rc;
    jg__wlist_append(hook_list(l, w->base.kind), &w->base);
    return 0;
}

int jg_hook_stop(struct jg_hook *w)
{
    struct jg_loop *l;
    int rc;

    if (!w || !is_hook(w->base.kind))
        return -EINVAL;
    rc = jg__watcher_stop_begin(&w->base, &l);
    if (rc <= 0)
        return rc;
    jg__wlist_remove(hook_list(l, w->base.kind), &w->base);
    jg__watcher_deactivate(l, &w->base);
    return 0;
}

/* ---- cross-thread wake-ups ------------------------------------------ */

void jg__loop_wake(struct jg_loop *l)
{
    /* seq_cst RMW, paired with the loop's exchange before it sleeps: if
     * the loop announced SLEEPING first we see it and write the eventfd;
     * otherwise it sees WOKEN and does not block. Only the first sender
     * per sleep writes (coalescing). Async-signal-safe: lock-free atomics
     * and write(2). */
    unsigned old = atomic_fetch_or(&l->wake_state, JG__WAKE_WOKEN);

    if ((old & JG__WAKE_SLEEPING) && !(old & JG__WAKE_WOKEN))
        l->ops->wake(l->backend);
}

void jg__loop_post(struct jg_loop *l, struct jg__post *p)
{
    struct jg__post *head = atomic_load_explicit(&l->inbox,
                                                 memory_order_relaxed);

    /* Treiber push. The CAS is seq_cst: it must be ordered before the
     * wake_state RMW in jg__loop_wake (the lost-wake-up pitfall) and it
     * releases p->next to the loop's exchange. No ABA: the loop takes the
     * whole stack at once, never pops single nodes. */
    do {
        p->next = head;
    } while (!atomic_compare_exchange_weak(&l->inbox, &head, p));
    jg__loop_wake(l);
}

/* Run the inbox posts in the order they were pushed. */
static int run_posts(struct jg_loop *l)
{
    struct jg__post *p, *fifo = NULL;
    int ran = 0;

    if (!atomic_load_explicit(&l->inbox, memory_order_relaxed))
        return 0;
    /* seq_cst exchange: acquires every pushed node's contents. */
    p = atomic_exchange(&l->inbox, NULL);
    while (p) {     /* the stack is LIFO: reverse it */
        struct jg__post *next = p->next;
        p->next = fifo;
        fifo = p;
        p = next;
    }
    l->dispatching++;
    jg__cb_depth++;
    while (fifo) {
        /* Read next first: fn may free or re-post its node. */
        struct jg__post *next = fifo->next;
        fifo->fn(fifo);
        fifo = next;
        ran++;
    }
    jg__cb_depth--;
    l->dispatching--;
    return ran;
}

/* The public header gives C++ a plain unsigned in its place. */
_Static_assert(sizeof(_Atomic unsigned) == sizeof(unsigned) &&
               _Alignof(_Atomic unsigned) == _Alignof(unsigned),
               "jg_async.pending: the same layout for C and C++");

void jg_async_init(struct jg_async *w, jg_async_cb cb)
{
    if (!w)
        return;
    watcher_init(&w->base, JG__K_ASYNC);
    w->cb = cb;
    atomic_init(&w->pending, 0);
}

int jg_async_start(struct jg_loop *l, struct jg_async *w)
{
    int rc;

    if (!l || !w || w->base.kind != JG__K_ASYNC || !w->cb)
        return -EINVAL;
    rc = jg__watcher_start_begin(l, &w->base);
    if (rc <= 0)
        return rc;
    rc = jg__watcher_activate(l, &w->base);
    if (rc < 0)
        return rc;
    /* A send while stopped is forgotten: the watcher starts clean. */
    atomic_store(&w->pending, 0);
    jg__wlist_append(&l->asyncs, &w->base);
    return 0;
}

int jg_async_stop(struct jg_async *w)
{
    struct jg_loop *l;
    int rc;

    if (!w || w->base.kind != JG__K_ASYNC)
        return -EINVAL;
    rc = jg__watcher_stop_begin(&w->base, &l);
    if (rc <= 0)
        return rc;
    jg__wlist_remove(&l->asyncs, &w->base);
    jg__watcher_deactivate(l, &w->base);
    return 0;
}

int jg_async_send(struct jg_async *w)
{
    struct jg_loop *l;

    if (!w)
        return -EINVAL;
    /* base.loop is set by the first start and never cleared, so a send
     * that races a stop/start cycle still finds the loop. */
    l = __atomic_load_n(&w->base.loop, __ATOMIC_ACQUIRE);
    if (!l)
        return -EINVAL;
    /* seq_cst exchange: if it returns 1 the loop has not consumed the
     * previous send yet and will see this one with it; if 0, we flag the
     * loop and wake it. Either way the callback runs after this send. */
    if (atomic_exchange(&w->pending, 1u) == 0) {
        atomic_store(&l->async_pending, 1);
        jg__loop_wake(l);
    }
    return 0;
}

static void async_collect(struct jg_loop *l)
{
    /* Clear the summary flag before the per-watcher bits: a send that
     * lands after a watcher was scanned sets the flag again. */
    if (!atomic_exchange(&l->async_pending, 0))
        return;
    for (struct jg_watcher *w = l->asyncs.head; w; w = w->next) {
        struct jg_async *a = JG_CONTAINER_OF(w, struct jg_async, base);
        if (atomic_exchange(&a->pending, 0u))
            jg__pending_add(l, w, 0);
    }
}

/* ---- the loop --------------------------------------------------------- */

int jg__loop_init(struct jg_loop *l)
{
    int (*run_hook)(struct jg_loop *, int) = l->run_hook;
    _Atomic uint64_t *beat = l->beat;
    int rc;

    /* The owner may have set l->run_hook and l->beat before calling:
     * keep them. */
    memset(l, 0, sizeof *l);
    l->run_hook = run_hook;
    l->beat = beat;
    l->owner = jg__thread_id();
    l->slot = -1;
    atomic_init(&l->inbox, NULL);
    atomic_init(&l->wake_state, 0u);
    atomic_init(&l->async_pending, 0);
    l->ops = jg__backend_choose();
    rc = l->ops->init(&l->backend);
    if (rc < 0)
        return rc;
    l->now = jg_now();
    return 0;
}

void jg__loop_fini(struct jg_loop *l)
{
    jg__fd_loop_leave(l);
    jg__signals_release(l);
    l->ops->fini(l->backend);
    l->backend = NULL;
    free(l->heap);
    free(l->fds);
    free(l->changed);
    free(l->pending);
    l->heap = NULL;
    l->fds = NULL;
    l->changed = NULL;
    l->nchanged = 0;
    l->pending = NULL;
    l->heap_len = l->heap_cap = l->pending_cap = l->npending = 0;
    l->nfds = 0;
}

bool jg__loop_alive(const struct jg_loop *l)
{
    return l->active_refs > 0
           || atomic_load_explicit(&l->inbox, memory_order_relaxed) != NULL;
}

int jg__loop_iterate(struct jg_loop *l, bool may_block, int64_t max_block_ns)
{
    int ran = 0, main_ran, n;
    int64_t timeout = 0;

    if (l->prepares.head) {
        collect_list(l, &l->prepares);
        ran += run_pending(l);
    }

    /* Block only when asked to, not stopped, no idle hook wants CPU and
     * the inbox is empty; then until the next timer (a fresh clock
     * reading: callbacks since the last poll took time). */
    if (may_block && !l->stop && !l->idles.head
        && !atomic_load_explicit(&l->inbox, memory_order_relaxed)) {
        int64_t next = jg__timers_next(l);
        timeout = -1;
        if (next != INT64_MAX) {
            int64_t now = jg_now();
            timeout = next > now ? next - now : 0;
        }
        if (max_block_ns >= 0 && (timeout < 0 || timeout > max_block_ns))
            timeout = max_block_ns;
    }
    /* Announce the sleep (seq_cst RMW; see jg__loop_wake). WOKEN set means
     * a sender posted since we last announced: don't block, look. */
    if (timeout != 0
        && (atomic_exchange(&l->wake_state, JG__WAKE_SLEEPING)
            & JG__WAKE_WOKEN))
        timeout = 0;
    if (l->nchanged)
        flush_changed(l);
    /* A poll that may not block, with no fd registered, can only learn of
     * the wake-up fd; what wakes it (the inbox, async and signal flags) is
     * read from memory below, so the system call is skipped. The hub
     * polls every 64 green threads: this keeps pure green-thread
     * switching free of system calls. */
    if (timeout == 0 && l->nregistered == 0) {
        n = 0;
    } else {
        /* Only this thread writes the beat: load + store, no locked RMW;
         * relaxed, since the watchdog only looks for change. */
        if (l->beat)
            atomic_store_explicit(l->beat, atomic_load_explicit(
                l->beat, memory_order_relaxed) + 1, memory_order_relaxed);
        n = l->ops->poll(l->backend, timeout, l->events, JG__LOOP_EVENTS);
        if (l->beat)
            atomic_store_explicit(l->beat, atomic_load_explicit(
                l->beat, memory_order_relaxed) + 1, memory_order_relaxed);
    }
    if (timeout != 0)
        atomic_exchange(&l->wake_state, 0u);
    if (n < 0)
        JG_PANIC("%s backend poll failed: %s", l->ops->name,
                 jg_strerror(n));
    /* The one clock reading per poll that timers and callbacks see. */
    l->now = jg_now();

    /* Collect everything due, then run it: fd events, timers, signals,
     * asyncs, in that order, then the inbox. */
    for (int i = 0; i < n; i++)
        fd_collect(l, l->events[i].fd, l->events[i].events);
    jg__timers_expire(l);
    if (l->slot >= 0)
        jg__signals_collect(l);
    if (atomic_load_explicit(&l->async_pending, memory_order_relaxed))
        async_collect(l);
    main_ran = run_pending(l);
    main_ran += run_posts(l);
    if (unlikely(atomic_load_explicit(&l->fd_recheck, memory_order_relaxed))
        && atomic_exchange(&l->fd_recheck, 0))
        fd_recheck(l);
    ran += main_ran;

    if (l->checks.head) {
        collect_list(l, &l->checks);
        ran += run_pending(l);
    }
    if (main_ran == 0 && l->idles.head) {
        collect_list(l, &l->idles);
        ran += run_pending(l);
    }
    return ran;
}

int jg__loop_after_fork(struct jg_loop *l)
{
    /* Every watcher of the parent is forgotten: bumping the epoch makes
     * their flags read as inactive (jg__watcher_sync), so a later stop on
     * one of them is a harmless no-op instead of a list corruption. */
    l->epoch++;
    l->heap_len = 0;
    if (l->fds)
        memset(l->fds, 0, (size_t)l->nfds * sizeof *l->fds);
    l->nchanged = 0;
    l->npending = 0;
    memset(&l->asyncs, 0, sizeof l->asyncs);
    memset(&l->prepares, 0, sizeof l->prepares);
    memset(&l->checks, 0, sizeof l->checks);
    memset(&l->idles, 0, sizeof l->idles);
    memset(&l->signals, 0, sizeof l->signals);
    memset(l->sigcount, 0, sizeof l->sigcount);
    l->nactive = l->active_refs = 0;
    l->nregistered = 0;
    l->stop = false;
    /* Posts were other threads' (none survive the fork); the signal slot
     * table is reset by signal.c's own atfork handler. */
    atomic_store(&l->inbox, NULL);
    atomic_store(&l->wake_state, 0u);
    atomic_store(&l->async_pending, 0);
    l->slot = -1;
    /* fdtab.c's own fork handler emptied the registry of loops. */
    l->in_reg = false;
    l->reg_next = NULL;
    atomic_store(&l->fd_recheck, 0);
    l->owner = jg__thread_id();
    l->now = jg_now();
    return l->ops->after_fork(l->backend);
}

int jg_loop_create(struct jg_loop **out, const struct jg_loop_opts *o)
{
    struct jg_loop *l;
    int rc;

    if (!out || (o && o->reserved != 0))
        return -EINVAL;
    l = malloc(sizeof *l);
    if (!l)
        return -ENOMEM;
    l->run_hook = NULL;
    l->beat = NULL;
    rc = jg__loop_init(l);
    if (rc < 0) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int jg_loop_destroy(struct jg_loop *l)
{
    int rc;

    if (!l || l->run_hook)
        return -EINVAL;
    rc = jg__loop_check(l);
    if (rc < 0)
        return rc;
    /* Close notices (fdtab.c) are the only posts a private loop gets:
     * stop taking them, and consume those that came for watchers that
     * are gone. */
    if (!l->depth && !l->dispatching && !l->nactive) {
        jg__fd_loop_leave(l);
        run_posts(l);
    }
    /* Running, watched, or holding posts that would be lost. */
    if (l->depth || l->dispatching || l->nactive
        || atomic_load(&l->inbox) != NULL)
        return -EBUSY;
    jg__loop_fini(l);
    free(l);
    return 0;
}

int jg_loop_run(struct jg_loop *l, enum jg_run_mode mode)
{
    int rc;

    if (!l || (mode != JG_RUN_DEFAULT && mode != JG_RUN_ONCE
               && mode != JG_RUN_NOWAIT))
        return -EINVAL;
    rc = jg__loop_check(l);
    if (rc < 0)
        return rc;
    if (l->dispatching)
        return -EPERM;
    /* The hub's loop is run by the hub, which also schedules green
     * threads; only from inside some other loop's callback do we run it
     * inline, as a plain loop. */
    if (l->run_hook && jg__cb_depth == 0)
        return l->run_hook(l, mode);
    l->depth++;
    do {
        bool block = mode != JG_RUN_NOWAIT && jg__loop_alive(l);
        jg__loop_iterate(l, block, -1);
    } while (mode == JG_RUN_DEFAULT && !l->stop && jg__loop_alive(l));
    l->depth--;
    /* A stop ends exactly one run. */
    l->stop = false;
    return jg__loop_alive(l) ? 1 : 0;
}

void jg_loop_stop(struct jg_loop *l)
{
    if (l)
        l->stop = true;
}

int64_t jg_loop_now(const struct jg_loop *l)
{
    return l ? l->now : jg_now();
}

void jg_loop_update_time(struct jg_loop *l)
{
    if (l)
        l->now = jg_now();
}
