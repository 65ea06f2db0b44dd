/* SPDX-License-Identifier: MIT */
/*
 * future.c - the one future type: completion (exactly once, under the
 * future's lock), done-callbacks, and every way to wait for futures:
 * result, jg_wait, as_completed. All waits share one mechanism (struct
 * fwait): a green thread parks (its hub keeps serving), a plain OS thread
 * blocks on a futex. Invariant: a completer touches a waiter only with the
 * future's lock held and the waiter's node linked, and a waiter unlinks its
 * nodes under those locks before it frees them.
 */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "future.h"
#include "clause.h"

/* ---- futex and the small lock -------------------------------------------- */

int jg__futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t deadline)
{
    struct timespec ts, *tp = NULL;

    if (deadline != INT64_MAX) {
        ts.tv_sec = deadline / 1000000000LL;
        ts.tv_nsec = deadline % 1000000000LL;
        tp = &ts;
    }
    /* WAIT_BITSET takes an absolute CLOCK_MONOTONIC time: a retry after a
     * spurious wake-up needs no arithmetic. */
    if (syscall(SYS_futex, w, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val,
                tp, NULL, FUTEX_BITSET_MATCH_ANY) < 0)
        return -errno;
    return 0;
}

void jg__futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

void jg__lock_slow(struct jg__lock *l)
{
    uint32_t c;

    /* Critical sections here are a few stores: a short spin usually wins
     * before a system call would. */
    for (int i = 0; i < 64; i++) {
        c = 0;
        if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->v, &c, 1,
                memory_order_acquire, memory_order_relaxed))
            return;
        jg__cpu_relax();
    }
    /* Drepper's mutex: 2 says "someone may sleep", so the holder's unlock
     * makes the wake call. */
    while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
        (void)jg__futex_wait(&l->v, 2, INT64_MAX);
}

void jg__unlock_slow(struct jg__lock *l)
{
    jg__futex_wake(&l->v, 1);
}

/* ---- allocation: a per-thread cache over a global list ------------------- */
/*
 * A pool submits and frees a future per task: malloc would pay a locked
 * arena on every cross-thread free. Each thread keeps up to CACHE_MAX
 * freed futures and trades them with a global list in batches. ASan builds
 * use plain malloc so that a use after free is still caught.
 */
#define CACHE_MAX 256
#define CACHE_BATCH 64
#define GLOBAL_MAX 8192

struct fcache {
    struct jg_future *head;
    int n;
    bool keyed;
};

static _Thread_local struct fcache tcache;
static struct jg__lock glock = JG__LOCK_INIT;
static struct jg_future *gfree;
static _Atomic size_t gcount;      /* under glock; read early unlocked */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* A free future's successor: the caches chain through `value`. */
static struct jg_future *cache_next(const struct jg_future *f)
{
    return f->value;
}

/* Give up to n futures of the list at *head to the global list. */
static void give_back(struct jg_future **head, int *count, int n)
{
    jg__lock(&glock);
    while (*head && n-- > 0) {
        struct jg_future *f = *head;
        *head = cache_next(f);
        (*count)--;
        if (atomic_load_explicit(&gcount, memory_order_relaxed)
            >= GLOBAL_MAX) {
            free(f);
            continue;
        }
        f->value = gfree;
        gfree = f;
        atomic_fetch_add_explicit(&gcount, 1, memory_order_relaxed);
    }
    jg__unlock(&glock);
}

static void cache_thread_exit(void *arg)
{
    (void)arg;
    give_back(&tcache.head, &tcache.n, INT_MAX);
}

static void cache_key_init(void)
{
    pthread_key_create(&cache_key, cache_thread_exit);
}

static struct jg_future *raw_alloc(void)
{
    struct jg_future *f;

    if (JG_ASAN)
        return malloc(sizeof(*f));
    /* relaxed: a stale zero only costs one malloc. */
    if (!tcache.head &&
        atomic_load_explicit(&gcount, memory_order_relaxed) == 0)
        return malloc(sizeof(*f));
    if (!tcache.head) {
        jg__lock(&glock);
        for (int i = 0; i < CACHE_BATCH && gfree; i++) {
            f = gfree;
            gfree = cache_next(f);
            atomic_fetch_sub_explicit(&gcount, 1, memory_order_relaxed);
            f->value = tcache.head;
            tcache.head = f;
            tcache.n++;
        }
        jg__unlock(&glock);
        if (!tcache.head)
            return malloc(sizeof(*f));
    }
    f = tcache.head;
    tcache.head = cache_next(f);
    tcache.n--;
    return f;
}

static void raw_free(struct jg_future *f)
{
    if (JG_ASAN) {
        free(f);
        return;
    }
    if (!tcache.keyed) {
        /* The key's destructor returns this thread's cache at its exit. */
        pthread_once(&cache_once, cache_key_init);
        pthread_setspecific(cache_key, &tcache);
        tcache.keyed = true;
    }
    f->value = tcache.head;
    tcache.head = f;
    if (++tcache.n > CACHE_MAX)
        give_back(&tcache.head, &tcache.n, CACHE_BATCH);
}

/* A user done-callback, in the order added. */
struct jg__fcb {
    struct jg__fcb *next;
    jg_future_cb cb;
    void *arg;
};

struct jg_future *jg__future_alloc(void)
{
    struct jg_future *f = raw_alloc();

    if (!f)
        return NULL;
    atomic_init(&f->state, JG_FUTURE_PENDING);
    atomic_init(&f->refs, 1);
    atomic_init(&f->lock.v, 0);
    f->code = 0;
    f->has_bytes = false;
    f->value = NULL;
    f->len = 0;
    f->msg = NULL;
    jg__list_init(&f->nodes);
    f->home = NULL;
    f->cbs = NULL;
    f->cbs_tail = &f->cbs;
    return f;
}

static void future_free(struct jg_future *f)
{
    struct jg__fcb *c, *next;

    if (f->has_bytes)
        free(f->value);
    free(f->msg);
    /* Callbacks of a future that never completed never run. */
    for (c = f->cbs; c; c = next) {
        next = c->next;
        free(c);
    }
    raw_free(f);
}

/* ---- the public basics --------------------------------------------------- */

int jg_future_create(struct jg_future **out)
{
    struct jg_future *f;

    if (!out)
        return -EINVAL;
    f = jg__future_alloc();
    if (!f)
        return -ENOMEM;
    *out = f;
    return 0;
}

void jg_future_ref(struct jg_future *f)
{
    /* relaxed: taking a reference needs one already held. */
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void jg_future_unref(struct jg_future *f)
{
    /* acq_rel: the last dropper must see every other holder's writes. */
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel)
             == 1)
        future_free(f);
}

int jg_future_state(const struct jg_future *f)
{
    if (!f)
        return -EINVAL;
    return atomic_load_explicit(&((struct jg_future *)f)->state,
                                memory_order_acquire);
}

const char *jg_future_error_message(const struct jg_future *f)
{
    if (!f || !jg__future_done(f) || f->code >= 0)
        return NULL;
    return f->msg ? f->msg : "";
}

/* ---- completion ---------------------------------------------------------- */

/*
 * Complete f once: record the outcome, run the internal nodes under the
 * lock (they only wake waiters), then the user callbacks outside it (they
 * may call anything, f's own functions included). msg and an owned value
 * are f's from here on, also on failure (then freed).
 */
static int complete(struct jg_future *f, int state, int code, void *value,
                    size_t len, bool bytes, char *msg, bool from_running)
{
    struct jg__fcb *c, *next;
    struct jg__list *n;
    int s;

    jg__lock(&f->lock);
    s = atomic_load_explicit(&f->state, memory_order_relaxed);
    for (;;) {
        if (s >= JG_FUTURE_DONE ||
            (state == JG_FUTURE_CANCELLED && s == JG_FUTURE_RUNNING &&
             !from_running)) {
            jg__unlock(&f->lock);
            free(msg);
            if (bytes)
                free(value);
            if (s == JG_FUTURE_RUNNING)
                return -EBUSY;
            /* Completing a cancelled future is -ECANCELED; cancelling it
             * again is -EALREADY, like cancelling a done one. */
            if (s == JG_FUTURE_CANCELLED && state != JG_FUTURE_CANCELLED)
                return -ECANCELED;
            return -EALREADY;
        }
        f->code = code;
        f->value = value;
        f->len = len;
        f->has_bytes = bytes;
        f->msg = msg;
        /* A CAS, not a store: jg_future_set_running moves PENDING to
         * RUNNING without the lock, so a cancel that saw PENDING must not
         * overwrite a start that won meanwhile (both would have won).
         * release: whoever sees the new state (lock-free readers in
         * result and wait) sees the outcome written above. */
        if (atomic_compare_exchange_strong_explicit(&f->state, &s, state,
                memory_order_acq_rel, memory_order_relaxed))
            break;
        /* s is now what set_running made it: look again. Nobody reads
         * the outcome fields before the state says it is complete. */
        f->msg = NULL;
    }
    while ((n = jg__list_pop_front(&f->nodes)) != NULL) {
        struct jg__fnode *fn = JG_CONTAINER_OF(n, struct jg__fnode, link);
        fn->fn(fn, f);
    }
    c = f->cbs;
    f->cbs = NULL;
    f->cbs_tail = &f->cbs;
    jg__unlock(&f->lock);
    for (; c; c = next) {
        next = c->next;
        c->cb(c->arg, f);
        free(c);
    }
    return 0;
}

int jg_future_set_running(struct jg_future *f)
{
    int s = JG_FUTURE_PENDING;

    if (!f)
        return -EINVAL;
    /* A CAS, not the lock: a pool worker does this per task. cancel()
     * changes PENDING with a CAS too, so exactly one of them wins. */
    if (atomic_compare_exchange_strong_explicit(&f->state, &s,
            JG_FUTURE_RUNNING, memory_order_acq_rel, memory_order_acquire))
        return 0;
    return s == JG_FUTURE_CANCELLED ? -ECANCELED : -EALREADY;
}

int jg_future_set_value(struct jg_future *f, void *value)
{
    if (!f)
        return -EINVAL;
    return complete(f, JG_FUTURE_DONE, 0, value, 0, false, NULL, true);
}

int jg__future_set_owned(struct jg_future *f, void *p, size_t n)
{
    return complete(f, JG_FUTURE_DONE, 0, p, n, true, NULL, true);
}

int jg_future_set_bytes(struct jg_future *f, const void *p, size_t n)
{
    char *copy;

    if (!f || (!p && n))
        return -EINVAL;
    if (jg__future_done(f))
        return jg_future_state(f) == JG_FUTURE_CANCELLED ? -ECANCELED
                                                         : -EALREADY;
    /* One spare byte keeps a text result NUL-terminated for free. */
    copy = malloc(n + 1);
    if (!copy)
        return -ENOMEM;
    if (n)
        memcpy(copy, p, n);
    copy[n] = '\0';
    return complete(f, JG_FUTURE_DONE, 0, copy, n, true, NULL, true);
}

int jg_future_set_error(struct jg_future *f, int code, const char *msg)
{
    char *copy = NULL;

    if (!f || code >= 0)
        return -EINVAL;
    if (msg && !(copy = strdup(msg)))
        return -ENOMEM;
    return complete(f, JG_FUTURE_DONE, code, NULL, 0, false, copy, true);
}

int jg_future_cancel(struct jg_future *f)
{
    if (!f)
        return -EINVAL;
    return complete(f, JG_FUTURE_CANCELLED, -ECANCELED, NULL, 0, false,
                    NULL, false);
}

int jg__future_cancel_any(struct jg_future *f)
{
    return complete(f, JG_FUTURE_CANCELLED, -ECANCELED, NULL, 0, false,
                    NULL, true);
}

int jg_future_add_done_callback(struct jg_future *f, jg_future_cb cb,
                                void *arg)
{
    struct jg__fcb *c;

    if (!f || !cb)
        return -EINVAL;
    if (jg__future_done(f)) {
        cb(arg, f);
        return 0;
    }
    c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->arg = arg;
    c->next = NULL;
    jg__lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed)
        >= JG_FUTURE_DONE) {
        /* Completed between the check and the lock: run it here. */
        jg__unlock(&f->lock);
        free(c);
        cb(arg, f);
        return 0;
    }
    *f->cbs_tail = c;
    f->cbs_tail = &c->next;
    jg__unlock(&f->lock);
    return 0;
}

bool jg__future_node_add(struct jg_future *f, struct jg__fnode *n)
{
    bool linked = false;

    jg__lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed)
        < JG_FUTURE_DONE) {
        jg__list_push_back(&f->nodes, &n->link);
        linked = true;
    } else {
        n->link.next = n->link.prev = NULL;
    }
    jg__unlock(&f->lock);
    return linked;
}

void jg__future_node_del(struct jg_future *f, struct jg__fnode *n)
{
    /* Taking the lock also waits out a completer running n->fn now. */
    jg__lock(&f->lock);
    if (jg__list_linked(&n->link))
        jg__list_remove(&n->link);
    jg__unlock(&f->lock);
}

/* ---- the one waiting mechanism ------------------------------------------- */
/*
 * struct fwait is one blocked waiter. A notifier calls fire() (with some
 * lock held that the waiter takes again before it frees the fwait); the
 * waiter calls block(). For a plain OS thread the fwait may live on its
 * stack and fire() sets a futex word. For a green thread the fwait is on
 * the heap (never on its stack) and fire() posts to the hub's inbox; the
 * post's callback, on the hub thread, wakes the green thread only if it
 * still waits here. So no other thread ever touches the green thread
 * itself, and jg__park's early returns (killed, deadline passed) are safe.
 */
struct fwait {
    struct jg__lock mu;
    bool armed;                 /* a waiter sleeps or is about to (mu) */
    bool fired;                 /* the condition holds (mu) */
    bool posted;                /* a post is in the hub's inbox (mu) */
    _Atomic uint32_t word;      /* OS thread: 1 once fired */
    struct jg_green *g;         /* the green waiter, or NULL */
    struct jg__clause cl;       /* g's wait (clause.h) */
    struct jg_hub *hub;
    struct jg__post post;
    /* The hub thread's own fields (the waiter and the post callback). */
    bool active;                /* g is inside block() */
    bool post_done;             /* the post callback has run */
    bool orphan;                /* the waiter left: the callback frees */
    bool local;                 /* every future waited on is g's hub's
                                 * (home): not a cross-thread wait */
};

static void fwait_post_cb(struct jg__post *p)
{
    struct fwait *w = JG_CONTAINER_OF(p, struct fwait, post);

    if (w->orphan) {
        free(w);
        return;
    }
    w->post_done = true;
    /* The wake checks that g is still parked: a timer or a kill may have
     * woken it already, and then it is ready or running. */
    if (w->active)
        (void)jg__clause_wake(&w->cl, 0);
}

static void fwait_init(struct fwait *w, struct jg_green *g)
{
    atomic_init(&w->mu.v, 0);
    w->armed = w->fired = w->posted = false;
    atomic_init(&w->word, 0);
    w->g = g;
    if (g)
        jg__clause_init(&w->cl, g);
    w->hub = g ? g->hub : NULL;
    w->active = w->post_done = w->orphan = false;
    w->local = g != NULL;
}

/* Note that w also waits for f: a future another thread may complete
 * makes the wait a cross-thread one. */
static inline void fwait_on(struct fwait *w, const struct jg_future *f)
{
    if (f->home != w->hub)
        w->local = false;
}

/* The waiter's condition holds: wake it (once). */
static void fire(struct fwait *w)
{
    jg__lock(&w->mu);
    if (!w->fired) {
        w->fired = true;
        if (w->armed && w->g) {
            w->posted = true;
            w->post.fn = fwait_post_cb;
            jg__loop_post(&w->hub->loop, &w->post);
        } else if (w->armed) {
            /* release: the waiter's acquire load sees what led here. */
            atomic_store_explicit(&w->word, 1, memory_order_release);
            jg__futex_wake(&w->word, 1);
        }
    }
    jg__unlock(&w->mu);
}

/*
 * Who waits: a green thread (*g set), a plain OS thread (*g NULL: no hub
 * on this thread; none is made just to wait), or -EPERM from a loop
 * callback or the hub's own context, which must not block.
 */
static int waiter_kind(struct jg_green **g)
{
    int kind = jg__wait_kind();

    *g = kind > 0 ? jg__tls_hub->current : NULL;
    return kind < 0 ? kind : 0;
}

/*
 * Sleep until fired or the absolute deadline. Returns 0 (fired),
 * -ETIMEDOUT, or the green thread's -ECANCELED / -ETIMEDOUT (scope).
 */
static int block(struct fwait *w, int64_t deadline, unsigned pflags)
{
    bool fired;
    int rc = 0;

    jg__lock(&w->mu);
    if (w->fired) {
        jg__unlock(&w->mu);
        return 0;
    }
    w->armed = true;
    jg__unlock(&w->mu);
    if (w->g) {
        w->active = true;
        /* The wake-up comes through the inbox either way (fire posts, the
         * post's callback wakes the clause on the hub thread); but a wait
         * only on this hub's own green threads is not counted as
         * outstanding work. */
        jg__remote_begin_flags(w->hub, !w->local);
        rc = jg__clause_wait(NULL, &w->cl, deadline, pflags);
        jg__remote_end_flags(w->hub, !w->local);
        w->active = false;
    } else {
        /* acquire: pairs with fire()'s release store. */
        while (atomic_load_explicit(&w->word, memory_order_acquire) == 0) {
            if (jg__futex_wait(&w->word, 0, deadline) == -ETIMEDOUT &&
                jg_now() >= deadline) {
                rc = -ETIMEDOUT;
                break;
            }
        }
    }
    jg__lock(&w->mu);
    w->armed = false;
    fired = w->fired;
    jg__unlock(&w->mu);
    if (rc == -ECANCELED)
        return rc;
    return fired ? 0 : (rc ? rc : -ETIMEDOUT);
}

/* The waiter is done with w (its nodes are unlinked): free a heap one,
 * or leave it to the post callback still in the inbox. */
static void fwait_release(struct fwait *w)
{
    if (!w->g)
        return;
    if (w->posted && !w->post_done)
        w->orphan = true;
    else
        free(w);
}

/* ---- waiting for one future ---------------------------------------------- */

struct swait {
    struct fwait w;             /* first: fwait_release frees the block */
    struct jg__fnode node;
};

static void swait_fn(struct jg__fnode *n, struct jg_future *f)
{
    (void)f;
    fire(&JG_CONTAINER_OF(n, struct swait, node)->w);
}

/* Wait until f completes or the deadline: 0 or block()'s errors. */
static int wait_one(struct jg_future *f, int64_t deadline, unsigned pflags)
{
    struct swait local, *s = &local;
    struct jg_green *g;
    int rc = waiter_kind(&g);

    if (rc < 0)
        return rc;
    if (g && !(s = malloc(sizeof(*s))))
        return -ENOMEM;
    fwait_init(&s->w, g);
    fwait_on(&s->w, f);
    s->node.fn = swait_fn;
    if (jg__future_node_add(f, &s->node)) {
        rc = block(&s->w, deadline, pflags);
        jg__future_node_del(f, &s->node);
    }
    fwait_release(&s->w);
    return rc;
}

/* The outcome of a completed future, as jg_future_result reports it. */
static int outcome(struct jg_future *f)
{
    if (atomic_load_explicit(&f->state, memory_order_acquire)
        == JG_FUTURE_CANCELLED)
        return -ECANCELED;
    return f->code < 0 ? f->code : 0;
}

static int wait_done(struct jg_future *f, int64_t timeout_ns)
{
    int rc;

    if (!f || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (jg__future_done(f))
        return 0;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    rc = wait_one(f, jg__deadline_after(timeout_ns), 0);
    if (rc == -ECANCELED || rc == -EPERM || rc == -ENOMEM)
        return rc;
    return jg__future_done(f) ? 0 : (rc < 0 ? rc : -ETIMEDOUT);
}

int jg_future_result(struct jg_future *f, void **value, int64_t timeout_ns)
{
    int rc = wait_done(f, timeout_ns);

    if (rc < 0)
        return rc;
    rc = outcome(f);
    if (rc == 0 && value)
        *value = f->value;
    return rc;
}

int jg_future_bytes(struct jg_future *f, const void **p, size_t *n,
                    int64_t timeout_ns)
{
    int rc = wait_done(f, timeout_ns);

    if (rc < 0)
        return rc;
    rc = outcome(f);
    if (rc == 0) {
        if (p)
            *p = f->value;
        if (n)
            *n = f->has_bytes ? f->len : 0;
    }
    return rc;
}

bool jg__future_wait_uninterruptible(struct jg_future *f)
{
    /* Neither a kill nor a deadline scope ends this wait (jg_kill leaves a
     * NOCANCEL park alone and only records the kill). From a plain thread
     * or a callback, wait_one blocks the OS thread or fails: loop. */
    while (!jg__future_done(f))
        (void)wait_one(f, INT64_MAX, JG__PARK_NOCANCEL | JG__PARK_NOSCOPE);
    return jg__self_killed();
}

/* ---- jg_wait ------------------------------------------------------------- */

struct mwait;

struct mnode {
    struct jg__fnode node;
    struct mwait *m;
};

struct mwait {
    struct fwait w;             /* first: fwait_release frees the block */
    _Atomic size_t left;        /* completions still needed for ALL */
    enum jg_wait_mode mode;
    struct mnode nodes[];
};

static bool is_error(struct jg_future *f)
{
    return atomic_load_explicit(&f->state, memory_order_acquire)
           == JG_FUTURE_DONE && f->code < 0;
}

/* One of m's futures completed: fire when the mode's condition holds. */
static void mwait_count(struct mwait *m, struct jg_future *f)
{
    if (m->mode == JG_WAIT_FIRST ||
        (m->mode == JG_WAIT_FIRST_ERROR && is_error(f)) ||
        atomic_fetch_sub(&m->left, 1) == 1)
        fire(&m->w);
}

static void mnode_fn(struct jg__fnode *n, struct jg_future *f)
{
    mwait_count(JG_CONTAINER_OF(n, struct mnode, node)->m, f);
}

/* Completed futures in fs, and whether the mode's condition holds. */
static size_t wait_scan(struct jg_future *const *fs, size_t n,
                        enum jg_wait_mode mode, bool *holds)
{
    size_t done = 0;
    bool err = false;

    for (size_t i = 0; i < n; i++) {
        if (jg__future_done(fs[i])) {
            done++;
            err = err || is_error(fs[i]);
        }
    }
    if (mode == JG_WAIT_FIRST)
        *holds = done > 0 || n == 0;
    else if (mode == JG_WAIT_FIRST_ERROR)
        *holds = err || done == n;
    else
        *holds = done == n;
    return done;
}

int jg_wait(struct jg_future *const *fs, size_t n, enum jg_wait_mode mode,
            int64_t timeout_ns)
{
    struct jg_green *g;
    struct mwait *m;
    size_t done, pending;
    bool holds;
    int rc;

    if ((!fs && n) || !jg__timeout_ok(timeout_ns) || mode < JG_WAIT_ALL ||
        mode > JG_WAIT_FIRST_ERROR || n > INT_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    done = wait_scan(fs, n, mode, &holds);
    if (holds)
        return (int)done;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    if ((rc = waiter_kind(&g)) < 0)
        return rc;
    m = malloc(sizeof(*m) + n * sizeof(m->nodes[0]));
    if (!m)
        return -ENOMEM;
    fwait_init(&m->w, g);
    m->mode = mode;
    pending = n;
    atomic_init(&m->left, pending);
    for (size_t i = 0; i < n; i++)
        fwait_on(&m->w, fs[i]);
    for (size_t i = 0; i < n; i++) {
        m->nodes[i].node.fn = mnode_fn;
        m->nodes[i].m = m;
        /* Completed already (before or since the scan): count it here. */
        if (!jg__future_node_add(fs[i], &m->nodes[i].node))
            mwait_count(m, fs[i]);
    }
    rc = block(&m->w, jg__deadline_after(timeout_ns), 0);
    for (size_t i = 0; i < n; i++)
        jg__future_node_del(fs[i], &m->nodes[i].node);
    if (g)
        fwait_release(&m->w);
    else
        free(m);                /* heap for its size, not for safety */
    if (rc == -ECANCELED || rc == -EPERM)
        return rc;
    done = wait_scan(fs, n, mode, &holds);
    if (holds)
        return (int)done;
    return rc == -EDEADLK ? rc : -ETIMEDOUT;
}

/* ---- as_completed -------------------------------------------------------- */

struct acnode {
    struct jg__fnode node;
    struct jg_as_completed *it;
    size_t idx;
};

struct jg_as_completed {
    struct jg__lock mu;         /* ready[], cur */
    size_t n, yielded;
    size_t rhead, rtail;        /* ready[rhead..rtail): completed, unseen */
    struct jg_future **fs;      /* one reference each */
    size_t *ready;
    struct acnode *nodes;
    struct fwait *cur;          /* the blocked next(), or NULL */
};

static void acnode_fn(struct jg__fnode *n, struct jg_future *f)
{
    struct acnode *a = JG_CONTAINER_OF(n, struct acnode, node);
    struct jg_as_completed *it = a->it;

    (void)f;
    /* Lock order: the future's, then the iterator's, then the fwait's. */
    jg__lock(&it->mu);
    it->ready[it->rtail++] = a->idx;
    if (it->cur)
        fire(it->cur);
    jg__unlock(&it->mu);
}

int jg_as_completed_create(struct jg_as_completed **out,
                           struct jg_future *const *fs, size_t n)
{
    struct jg_as_completed *it;

    if (!out || (!fs && n))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    it = calloc(1, sizeof(*it));
    if (!it)
        return -ENOMEM;
    it->n = n;
    it->fs = malloc((n ? n : 1) * sizeof(*it->fs));
    it->ready = malloc((n ? n : 1) * sizeof(*it->ready));
    it->nodes = malloc((n ? n : 1) * sizeof(*it->nodes));
    if (!it->fs || !it->ready || !it->nodes) {
        free(it->fs);
        free(it->ready);
        free(it->nodes);
        free(it);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        it->fs[i] = fs[i];
        jg_future_ref(fs[i]);
        it->nodes[i].node.fn = acnode_fn;
        it->nodes[i].it = it;
        it->nodes[i].idx = i;
        if (!jg__future_node_add(fs[i], &it->nodes[i].node)) {
            jg__lock(&it->mu);
            it->ready[it->rtail++] = i;
            jg__unlock(&it->mu);
        }
    }
    *out = it;
    return 0;
}

/* Take the next completed index under it->mu; false if none yet. */
static bool ac_take(struct jg_as_completed *it, struct jg_future **f)
{
    if (it->rhead == it->rtail)
        return false;
    *f = it->fs[it->ready[it->rhead++]];
    it->yielded++;
    return true;
}

int jg_as_completed_next(struct jg_as_completed *it, struct jg_future **f,
                         int64_t timeout_ns)
{
    struct fwait local, *w = &local;
    struct jg_green *g;
    bool got;
    int rc;

    if (!it || !f || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    jg__lock(&it->mu);
    got = ac_take(it, f);
    rc = it->yielded == it->n ? -ENOENT : -ETIMEDOUT;
    jg__unlock(&it->mu);
    if (got)
        return 0;
    if (rc == -ENOENT || timeout_ns == 0)
        return rc;
    if ((rc = waiter_kind(&g)) < 0)
        return rc;
    if (g && !(w = malloc(sizeof(*w))))
        return -ENOMEM;
    fwait_init(w, g);
    for (size_t i = 0; i < it->n; i++)
        fwait_on(w, it->fs[i]);
    jg__lock(&it->mu);
    got = ac_take(it, f);
    if (!got)
        it->cur = w;
    jg__unlock(&it->mu);
    if (!got) {
        rc = block(w, jg__deadline_after(timeout_ns), 0);
        /* Once cur is cleared under mu, no completer can reach w. */
        jg__lock(&it->mu);
        it->cur = NULL;
        got = rc != -ECANCELED && ac_take(it, f);
        jg__unlock(&it->mu);
    }
    fwait_release(w);
    if (got)
        return 0;
    return rc < 0 ? rc : -ETIMEDOUT;
}

int jg_as_completed_destroy(struct jg_as_completed *it)
{
    if (!it)
        return -EINVAL;
    for (size_t i = 0; i < it->n; i++) {
        jg__future_node_del(it->fs[i], &it->nodes[i].node);
        jg_future_unref(it->fs[i]);
    }
    free(it->fs);
    free(it->ready);
    free(it->nodes);
    free(it);
    return 0;
}

/* ---- futures of green threads -------------------------------------------- */

struct gfut {
    struct jg__waiter w;
    struct jg_future *f;
};

/* g finished (on its hub's thread): complete the future with its result. */
static void gfut_done(struct jg__waiter *w, struct jg_green *done)
{
    struct gfut *gf = JG_CONTAINER_OF(w, struct gfut, w);
    void *res = done->arg;

    if (done->flags & JG__G_CANCELLED)
        (void)jg__future_cancel_any(gf->f);
    else if (JG_IS_ERR(res))
        (void)jg_future_set_error(gf->f, JG_ERR_CODE(res), NULL);
    else
        (void)jg_future_set_value(gf->f, res);
    jg_future_unref(gf->f);
    free(gf);
}

int jg_green_future(struct jg_green *g, struct jg_future **out)
{
    struct jg_hub *h = jg__tls_hub;
    struct gfut *gf;
    struct jg_future *f;

    if (!g || !out || (g->flags & JG__G_HUB))
        return -EINVAL;
    if (!h || g->hub != h)
        return -EXDEV;
    f = jg__future_alloc();
    gf = malloc(sizeof(*gf));
    if (!f || !gf) {
        jg_future_unref(f);
        free(gf);
        return -ENOMEM;
    }
    /* The green thread exists and will run: the future is RUNNING, and
     * only jg_kill stops it (the future then ends CANCELLED). */
    (void)jg_future_set_running(f);
    jg_future_ref(f);
    f->home = h;
    gf->f = f;
    gf->w.fn = gfut_done;
    *out = f;
    jg__waiter_add(g, &gf->w);
    return 0;
}
