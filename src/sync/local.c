/* SPDX-License-Identifier: MIT */
/*
 * local.c - green-local storage (gevent.local): per green thread values
 * indexed by process-wide keys, kept in a block that g->locals points to.
 * The block is made on first use and freed, after the value destructors
 * ran, when its green thread ends (a jg__waiter) or, for an OS thread's
 * main context, which never ends, when the OS thread exits.
 */
#include <pthread.h>
#include <string.h>

#include "waitq.h"

/* Rounds of destructors when destructors set values again (as pthread). */
#define DTOR_ROUNDS 4

/* Keys are process-wide: slot i holds key i + 1's destructor. A key is
 * published to other threads only by the user, after create returns, so
 * relaxed loads of a slot see its store through that hand-off; the
 * atomics keep TSan and the compiler honest about concurrent creates. */
static void (*_Atomic dtors[JG_LOCAL_KEYS_MAX])(void *);
static _Atomic uint32_t nkeys;

static pthread_key_t main_key;
static pthread_once_t main_once = PTHREAD_ONCE_INIT;

int jg_local_key_create(jg_local_key *k, void (*dtor)(void *))
{
    uint32_t i;

    if (!k)
        return -EINVAL;
    i = atomic_load_explicit(&nkeys, memory_order_relaxed);
    do {
        if (i >= JG_LOCAL_KEYS_MAX)
            return -EAGAIN;
    } while (!atomic_compare_exchange_weak(&nkeys, &i, i + 1));
    atomic_store_explicit(&dtors[i], dtor, memory_order_release);
    *k = i + 1;
    return 0;
}

/* Call the destructors of b's values until none is left (bounded). */
static void run_dtors(struct jg__locals *b)
{
    for (int round = 0; round < DTOR_ROUNDS; round++) {
        bool called = false;

        /* b->n is read each time: a destructor may grow the array. */
        for (uint32_t i = 0; i < b->n; i++) {
            void *v = b->vals[i];
            void (*d)(void *);

            if (!v)
                continue;
            b->vals[i] = NULL;
            d = atomic_load_explicit(&dtors[i], memory_order_acquire);
            if (d) {
                d(v);
                called = true;
            }
        }
        if (!called)
            break;
    }
}

static void block_free(struct jg__locals *b)
{
    free(b->vals);
    free(b);
}

/* A green thread ended (or was killed before it ran): its values go. */
static void locals_end(struct jg__waiter *w, struct jg_green *done)
{
    struct jg__locals *b = JG_CONTAINER_OF(w, struct jg__locals, w);

    run_dtors(b);
    done->locals = NULL;
    block_free(b);
}

/*
 * An OS thread exits: its main context's block. The hub's own thread-exit
 * destructor may have run already (and freed main's descriptor), so main
 * is reached through the hub only while the hub still exists.
 */
static void main_exit(void *p)
{
    struct jg__locals *b = p;
    struct jg_hub *h = jg__tls_hub;

    run_dtors(b);
    if (h && h->main_g && locals_of(h->main_g) == b)
        h->main_g->locals = NULL;
    block_free(b);
}

static void main_key_make(void)
{
    /* Without a key main's block leaks at thread exit; nothing worse. */
    (void)pthread_key_create(&main_key, main_exit);
}

struct jg__locals *jg__locals_get(struct jg_green *g)
{
    struct jg__locals *b = locals_of(g);

    if (likely(b != NULL))
        return b;
    b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (g->flags & JG__G_MAIN) {
        pthread_once(&main_once, main_key_make);
        if (pthread_setspecific(main_key, b) != 0) {
            free(b);
            return NULL;
        }
    } else {
        b->w.fn = locals_end;
        jg__waiter_add(g, &b->w);
    }
    g->locals = (void **)(void *)b;
    return b;
}

int jg_local_set(jg_local_key k, void *value)
{
    struct jg_hub *h;
    struct jg_green *g;
    struct jg__locals *b;

    if (k == 0 || k > atomic_load_explicit(&nkeys, memory_order_relaxed))
        return -EINVAL;
    h = jg__hub_get();
    if (!h)
        return -ENOMEM;
    g = h->current;
    /* The hub's context (callbacks) is no green thread and never ends. */
    if (g == h->hub_g)
        return -EPERM;
    b = locals_of(g);
    if (!b) {
        if (!value)
            return 0;
        /* Its destructors ran already (a later waiter of a finished
         * green thread): a new block would never be freed. */
        if (g->state == JG_GREEN_DONE)
            return -EPERM;
        if (!(b = jg__locals_get(g)))
            return -ENOMEM;
    }
    if (k > b->n) {
        /* Room for every key made so far: one realloc covers them. */
        uint32_t n = atomic_load_explicit(&nkeys, memory_order_relaxed);
        void **p;

        if (n < 8)
            n = 8;
        p = realloc(b->vals, n * sizeof *p);
        if (!p)
            return -ENOMEM;
        memset(p + b->n, 0, (n - b->n) * sizeof *p);
        b->vals = p;
        b->n = n;
    }
    b->vals[k - 1] = value;
    return 0;
}

void *jg_local_get(jg_local_key k)
{
    struct jg_hub *h = jg__tls_hub;
    struct jg__locals *b;

    if (!h)
        return NULL;
    b = locals_of(h->current);
    if (!b || k == 0 || k > b->n)
        return NULL;
    return b->vals[k - 1];
}
