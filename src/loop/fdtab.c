/* SPDX-License-Identifier: MIT */
/*
 * fdtab.c - process-wide facts about fd numbers, for the loops: each
 * number's generation, bumped by every close juggle sees (jg_close, and so
 * the preload library's close), and which loop watches the number, so that
 * a close on one OS thread reaches the waiters in another thread's loop.
 * Invariant: a loop's beliefs about an fd (its watchers, what it registered
 * with the kernel) belong to the generation it recorded (jg__fd.gen); a
 * newer generation makes them stale, and a stale watcher is woken with
 * JG_CLOSED, never handed the readiness of the file that reused the number.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"

/* Two levels: CHUNK entries per chunk, allocated on first use and never
 * freed, so a reader needs no lock. Numbers past the table are not
 * tracked (their generation reads 0 and never changes). */
#define CHUNK_SHIFT 10
#define CHUNK (1u << CHUNK_SHIFT)
#define NCHUNKS 4096u           /* 4M fds: past any RLIMIT_NOFILE here */

/* A loop pointer meaning "two or more loops watch this number". */
#define MANY ((struct jg_loop *)(uintptr_t)1)

/*
 * The generation counts in steps of 4 (GEN_STEP); two flags sit below it.
 * BUSY is set while a loop makes a system call on the number outside any
 * call of the user's (a lazy deregistration): a close waits for it, so the
 * call never lands on a closed or reused number, and the two are ordered
 * for TSan too. CLOSING is set from the start of a close until close(2)
 * has returned: a watcher that starts meanwhile would register the file
 * that is going away under the new generation, and is refused (-EBADF).
 */
#define BUSY 1u
#define CLOSING 2u
#define FLAGS (BUSY | CLOSING)
#define GEN_STEP 4u

struct slot {
    _Atomic uint32_t gen;
    _Atomic(struct jg_loop *) owner;
};

static _Atomic(struct slot *) chunks[NCHUNKS];

/* The loops that watch fds: notices go only to members, under the lock,
 * so a loop being destroyed (it leaves first) is never posted to. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct jg_loop *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

/* A close seen on one thread, on its way to a loop that watched the fd. */
struct notice {
    struct jg__post post;
    struct jg_loop *loop;
    int fd;
    uint32_t gen;
};

static struct slot *slot_of(int fd, bool make)
{
    unsigned i = (unsigned)fd >> CHUNK_SHIFT;
    struct slot *c;

    if (fd < 0 || i >= NCHUNKS)
        return NULL;
    /* Acquire: pairs with the release CAS that published the chunk. */
    c = atomic_load_explicit(&chunks[i], memory_order_acquire);
    if (!c && make) {
        struct slot *n = calloc(CHUNK, sizeof *n), *none = NULL;
        if (!n)
            return NULL;
        if (atomic_compare_exchange_strong_explicit(&chunks[i], &none, n,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            c = n;
        else {
            free(n);
            c = none;
        }
    }
    return c ? &c[(unsigned)fd & (CHUNK - 1)] : NULL;
}

uint32_t jg__fd_gen(int fd)
{
    struct slot *s = slot_of(fd, false);

    /* seq_cst: ordered after this thread's owner store (jg__fd_watch), so
     * a closer either sees the owner or this load sees its bump. */
    return s ? atomic_load(&s->gen) & ~FLAGS : 0;
}

bool jg__fd_hold(int fd, uint32_t gen)
{
    struct slot *s = slot_of(fd, false);

    if (!s)
        return true;
    for (;;) {
        uint32_t want = gen;
        /* acq_rel: a close that came first is seen (we fail); one that
         * comes later reads our release in jg__fd_unhold. */
        if (atomic_compare_exchange_strong(&s->gen, &want, gen | BUSY))
            return true;
        /* Another loop holds it (two loops watch the number): wait out
         * its one system call. Closed, or being closed: no call. */
        if (want != (gen | BUSY))
            return false;
        sched_yield();
    }
}

void jg__fd_unhold(int fd, uint32_t gen)
{
    struct slot *s = slot_of(fd, false);

    if (s)
        atomic_store_explicit(&s->gen, gen, memory_order_release);
}

/* ---- the registry of watching loops ---------------------------------- */

static void reg_after_fork_child(void)
{
    /* Only the forking thread survives: its loop forgets its watchers
     * (jg__loop_after_fork) and no other loop exists any more. */
    pthread_mutex_init(&reg_lock, NULL);
    reg_head = NULL;
    for (unsigned i = 0; i < NCHUNKS; i++) {
        struct slot *c = atomic_load_explicit(&chunks[i],
                                              memory_order_relaxed);
        for (unsigned j = 0; c && j < CHUNK; j++) {
            /* A thread that held a number at the fork is gone. */
            atomic_store_explicit(&c[j].owner, NULL, memory_order_relaxed);
            atomic_fetch_and_explicit(&c[j].gen, ~FLAGS,
                                      memory_order_relaxed);
        }
    }
}

static void reg_init(void)
{
    pthread_atfork(NULL, NULL, reg_after_fork_child);
}

static void reg_join(struct jg_loop *l)
{
    pthread_once(&reg_once, reg_init);
    pthread_mutex_lock(&reg_lock);
    l->reg_next = reg_head;
    reg_head = l;
    l->in_reg = true;
    pthread_mutex_unlock(&reg_lock);
}

void jg__fd_loop_leave(struct jg_loop *l)
{
    if (!l->in_reg)
        return;
    pthread_mutex_lock(&reg_lock);
    for (struct jg_loop **p = &reg_head; *p; p = &(*p)->reg_next) {
        if (*p == l) {
            *p = l->reg_next;
            break;
        }
    }
    l->in_reg = false;
    /* Forget l as the owner of its numbers: a later close must not post
     * to freed memory. MANY stays (it names no loop). */
    for (int fd = 0; fd < l->nfds; fd++) {
        struct slot *s = slot_of(fd, false);
        struct jg_loop *mine = l;
        if (s)
            atomic_compare_exchange_strong(&s->owner, &mine, NULL);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ---- watching and closing -------------------------------------------- */

int jg__fd_watch(struct jg_loop *l, int fd, uint32_t *gen)
{
    struct slot *s = slot_of(fd, true);
    struct jg_loop *o;
    uint32_t g;

    *gen = 0;
    if (!s)
        return 0;
    if (unlikely(!l->in_reg))
        reg_join(l);
    o = atomic_load_explicit(&s->owner, memory_order_relaxed);
    if (o != l && o != MANY) {
        /* seq_cst, then the generation's seq_cst load (jg__fd_gen): a
         * concurrent close either finds us here or we see its bump. */
        if (!atomic_compare_exchange_strong(&s->owner, &o, l) && o != l)
            atomic_store(&s->owner, MANY);
    }
    g = atomic_load(&s->gen);
    *gen = g & ~FLAGS;
    return (g & CLOSING) ? -EBADF : 0;
}

static void notice_cb(struct jg__post *p)
{
    struct notice *n = JG_CONTAINER_OF(p, struct notice, post);
    struct jg_loop *l = n->loop;

    jg__loop_fd_stale(l, n->fd, n->gen);
    free(n);
}

/* Tell l that fd's generation gen has begun; a failed allocation makes l
 * check all its fds instead (jg__loop_fd_recheck). */
static void notify(struct jg_loop *l, int fd, uint32_t gen)
{
    struct notice *n = malloc(sizeof *n);

    if (!n) {
        atomic_store(&l->fd_recheck, 1);
        jg__loop_wake(l);
        return;
    }
    n->post.fn = notice_cb;
    n->loop = l;
    n->fd = fd;
    n->gen = gen;
    jg__loop_post(l, &n->post);
}

uint32_t jg__fd_bump(struct jg_loop *own, int fd, bool closing)
{
    /* A close makes the chunk if need be: other threads' kind caches
     * (io.c) must see the new generation even for a number never
     * watched. */
    struct slot *s = slot_of(fd, closing);
    struct jg_loop *o;
    uint32_t gen, next;

    if (!s)
        return 0;
    /* Both seq_cst (see jg__fd_watch). A loop's system call on the number
     * (BUSY) is waited out: it lasts one epoll_ctl. */
    gen = atomic_load(&s->gen);
    for (;;) {
        if (gen & BUSY) {
            sched_yield();
            gen = atomic_load(&s->gen);
            continue;
        }
        next = (gen & ~FLAGS) + GEN_STEP;
        if (atomic_compare_exchange_weak(&s->gen, &gen,
                                         next | (closing ? CLOSING : 0)))
            break;
    }
    /* The owner is cleared: the file that reuses the number starts with
     * no watcher anywhere. */
    o = atomic_exchange(&s->owner, NULL);
    if (!o || o == own)
        return next;
    pthread_mutex_lock(&reg_lock);
    for (struct jg_loop *l = reg_head; l; l = l->reg_next) {
        if (l == own || (o != MANY && l != o))
            continue;
        /* While the number still names the file: its registration in l
         * goes now, even if the file outlives the close (a dup, a child
         * holding it), which l itself could no longer remove. */
        if (closing && l->ops->fd_forget)
            l->ops->fd_forget(l->backend, fd);
        notify(l, fd, next);
    }
    pthread_mutex_unlock(&reg_lock);
    return next;
}

void jg__fd_close_end(int fd)
{
    struct slot *s = slot_of(fd, false);

    /* release: what the close did is before any watcher that sees the
     * number open again. A creation that bumped meanwhile (the number was
     * reused at once) has cleared it already. */
    if (s)
        atomic_fetch_and_explicit(&s->gen, ~CLOSING, memory_order_release);
}
