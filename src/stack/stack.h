/* SPDX-License-Identifier: MIT */
/*
 * stack.h - green-thread stacks: mmap'd (MAP_NORESERVE) with a guard region
 * below, a bounded per-thread free pool, and the overflow report. A stack is
 * never handed out without its guard.
 */
#ifndef JG_STACK_H
#define JG_STACK_H

#include "internal.h"

/* The smallest guard region: a frame larger than the guard could jump it. */
#define JG_STACK_GUARD (16 * 1024)

struct jg__stack {
    void *base;                 /* lowest usable byte (just above the guard) */
    size_t size;                /* usable bytes; the top is base + size */
    void *map;                  /* the whole mapping, guard included */
    size_t map_len;
    const char *name;           /* owner's name, for the overflow report */
    uint64_t owner_id;          /* owner's id: "green-<id>" when unnamed */
    struct jg__stack *next;     /* free-pool link */
    unsigned vg_id;             /* valgrind stack id */
};

/* A per-thread pool of free stacks of the default size. */
struct jg__stack_pool {
    struct jg__stack *free;
    size_t count;               /* stacks on the free list */
    size_t max;                 /* bound on count (beyond it, unmap) */
};

/* The default bound of a pool: 64 stacks, 16 MiB of address space. */
#define JG_STACK_POOL_MAX 64

/* An empty pool with the default bound. */
static inline void jg__stack_pool_init(struct jg__stack_pool *p)
{
    p->free = NULL;
    p->count = 0;
    p->max = JG_STACK_POOL_MAX;
}

/* The default usable size: 256 KiB, x4 under ASan. */
JG_HIDDEN size_t jg__stack_default_size(void);

/*
 * Take a stack of size bytes (0 = default; otherwise rounded up to pages and
 * raised to at least JG_STACK_GUARD) from the pool, or map a new one.
 * Returns 0 or -ENOMEM (mmap or mprotect failed, e.g. past
 * vm.max_map_count; nothing is left mapped). ASan poison of a reused stack
 * is cleared; s->name is NULL until the owner sets it.
 */
JG_HIDDEN int jg__stack_get(struct jg__stack_pool *p, size_t size,
                            struct jg__stack **out);
/*
 * Give a stack back: kept on the free list while the pool holds fewer than
 * max + extra stacks, unmapped otherwise.
 */
JG_HIDDEN void jg__stack_put(struct jg__stack_pool *p, struct jg__stack *s,
                             size_t extra);
/* Map one default-size stack onto the free list now. 0 or -ENOMEM. */
JG_HIDDEN int jg__stack_reserve(struct jg__stack_pool *p);
/* A default-size stack that none of the first `keep` pooled ones (those
 * reserved by green threads not yet started) is taken for: from the pool's
 * spare stacks, else freshly mapped. 0, -ENOMEM. */
JG_HIDDEN int jg__stack_get_spare(struct jg__stack_pool *p, size_t keep,
                                  struct jg__stack **out);
/* Unmap free stacks beyond max + extra. */
JG_HIDDEN void jg__stack_pool_trim(struct jg__stack_pool *p, size_t extra);
/* Unmap everything on the free list. */
JG_HIDDEN void jg__stack_pool_drain(struct jg__stack_pool *p);
/* Unmap one stack. */
JG_HIDDEN void jg__stack_unmap(struct jg__stack *s);

/*
 * Which juggle stack the calling thread runs on, or NULL: asked from the
 * overflow handler, so lock-free and TLS only. The layer above (the hub)
 * knows; it hands the function in, the stack layer never calls up.
 */
typedef struct jg__stack *(*jg__stack_running_fn)(void);

/*
 * Install the overflow report for the calling thread: a per-thread
 * sigaltstack, and (once per process) a SIGSEGV/SIGBUS handler that chains
 * to the previous one; `running` names the stack a fault happened on.
 * 0 or -ENOMEM.
 */
JG_HIDDEN int jg__stack_thread_init(jg__stack_running_fn running);

#endif
