/* SPDX-License-Identifier: MIT */
/*
 * clause.c - the per-thread cache of free clauses (clause.h) that every
 * wait of a green thread takes its node from: no malloc per wait, and the
 * cache goes back to malloc as its thread exits.
 */
#include <pthread.h>

#include "clause.h"

/* Free clauses kept per thread; beyond this they go back to malloc. */
#define CFREE_MAX 4096

_Thread_local struct jg__clause_cache jg__clauses JG_TLS_IE;
static pthread_key_t cfree_key;
static pthread_once_t cfree_once = PTHREAD_ONCE_INIT;

static struct jg__clause *next_free(const struct jg__clause *c)
{
    return (struct jg__clause *)(void *)c->link.next;
}

/* Thread exit: free the cache (the key's value is only a trigger). */
static void cfree_drain(void *unused)
{
    struct jg__clause *c;

    (void)unused;
    while ((c = jg__clauses.head) != NULL) {
        jg__clauses.head = next_free(c);
        free(c);
    }
    jg__clauses.n = 0;
}

static void cfree_key_make(void)
{
    /* Without a key an exiting thread's cache leaks; nothing worse. */
    (void)pthread_key_create(&cfree_key, cfree_drain);
}

struct jg__clause *jg__clause_alloc(void)
{
    static _Thread_local bool keyed;

    if (!keyed) {
        pthread_once(&cfree_once, cfree_key_make);
        (void)pthread_setspecific(cfree_key, (void *)1);
        keyed = true;
    }
    return malloc(sizeof(struct jg__clause));
}

void jg__clause_put(struct jg__clause *c)
{
    if (jg__clauses.n >= CFREE_MAX) {
        free(c);
        return;
    }
    c->link.next = (struct jg__list *)(void *)jg__clauses.head;
    jg__clauses.head = c;
    jg__clauses.n++;
}
