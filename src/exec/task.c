/* SPDX-License-Identifier: MIT */
/*
 * task.c - the task registry (name -> function) and the task output buffer.
 * Registration takes a mutex; lookups take no lock: entries are immutable
 * once published, slots are filled with release stores, and a grown table
 * replaces the old one with one release store (old tables are kept, since a
 * reader may still be probing one).
 */
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "executor.h"

struct entry {
    uint64_t hash;
    jg_task_fn fn;
    char name[];
};

struct table {
    struct table *older;        /* kept for readers still probing it */
    size_t cap;                 /* a power of two */
    size_t used;
    _Atomic(struct entry *) slots[];
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct table *) cur;

/* FNV-1a: names are short; any decent spread will do. */
static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct entry *probe(struct table *t, const char *name, uint64_t h)
{
    size_t mask = t->cap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        /* acquire: pairs with the release store that published e. */
        struct entry *e = atomic_load_explicit(&t->slots[i],
                                               memory_order_acquire);
        if (!e)
            return NULL;
        if (e->hash == h && strcmp(e->name, name) == 0)
            return e;
    }
}

/* Put e in the first free slot of t (under reg_mu). */
static void place(struct table *t, struct entry *e)
{
    size_t mask = t->cap - 1;
    size_t i = e->hash & mask;

    while (atomic_load_explicit(&t->slots[i], memory_order_relaxed))
        i = (i + 1) & mask;
    atomic_store_explicit(&t->slots[i], e, memory_order_release);
    t->used++;
}

static struct table *table_new(size_t cap)
{
    struct table *t = calloc(1, sizeof(*t) + cap * sizeof(t->slots[0]));

    if (t)
        t->cap = cap;
    return t;
}

int jg_task_register(const char *name, jg_task_fn fn)
{
    struct table *t, *bigger;
    struct entry *e;
    size_t len;
    uint64_t h;
    int rc = 0;

    if (!name || !*name || !fn)
        return -EINVAL;
    len = strlen(name);
    h = hash_of(name);
    pthread_mutex_lock(&reg_mu);
    t = atomic_load_explicit(&cur, memory_order_relaxed);
    if (t && probe(t, name, h)) {
        rc = -EEXIST;
        goto out;
    }
    if (!t || (t->used + 1) * 2 > t->cap) {
        /* Keep the load at most one half: probes stay short. */
        bigger = table_new(t ? t->cap * 2 : 64);
        if (!bigger) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; t && i < t->cap; i++) {
            struct entry *old = atomic_load_explicit(&t->slots[i],
                                                     memory_order_relaxed);
            if (old)
                place(bigger, old);
        }
        bigger->older = t;
        /* release: a reader that sees the new table sees its slots. */
        atomic_store_explicit(&cur, bigger, memory_order_release);
        t = bigger;
    }
    e = malloc(sizeof(*e) + len + 1);
    if (!e) {
        rc = -ENOMEM;
        goto out;
    }
    e->hash = h;
    e->fn = fn;
    memcpy(e->name, name, len + 1);
    place(t, e);
out:
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

jg_task_fn jg_task_find(const char *name)
{
    struct table *t = atomic_load_explicit(&cur, memory_order_acquire);
    struct entry *e;

    if (!name || !t)
        return NULL;
    e = probe(t, name, hash_of(name));
    return e ? e->fn : NULL;
}

/* ---- the output buffer --------------------------------------------------- */

void jg__task_out_init(struct jg_task_out *o)
{
    o->p = NULL;
    o->len = o->cap = 0;
    o->msg = NULL;
}

void jg__task_out_fini(struct jg_task_out *o)
{
    free(o->p);
    free(o->msg);
    jg__task_out_init(o);
}

/* Room for n more bytes (plus a spare NUL): 0 or -ENOMEM / -EOVERFLOW. */
static int grow(struct jg_task_out *o, size_t n)
{
    size_t want, cap;
    char *p;

    if (n > SIZE_MAX - 1 - o->len)
        return -EOVERFLOW;
    want = o->len + n + 1;
    if (want <= o->cap)
        return 0;
    cap = o->cap ? o->cap : 64;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    p = realloc(o->p, cap);
    if (!p)
        return -ENOMEM;
    o->p = p;
    o->cap = cap;
    return 0;
}

int jg_task_out_write(struct jg_task_out *o, const void *p, size_t n)
{
    int rc;

    if (!o || (!p && n))
        return -EINVAL;
    if ((rc = grow(o, n)) < 0)
        return rc;
    if (n)
        memcpy(o->p + o->len, p, n);
    o->len += n;
    o->p[o->len] = '\0';
    return 0;
}

void *jg_task_out_reserve(struct jg_task_out *o, size_t n)
{
    if (!o || grow(o, n) < 0)
        return NULL;
    return o->p + o->len;
}

void jg_task_out_commit(struct jg_task_out *o, size_t n)
{
    if (!o || !o->p)
        return;
    /* Never past what was reserved (cap keeps one spare byte). */
    if (n > o->cap - 1 - o->len)
        n = o->cap - 1 - o->len;
    o->len += n;
    o->p[o->len] = '\0';
}

int jg_task_fail(struct jg_task_out *o, int code, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;

    if (code >= 0)
        code = -EINVAL;
    if (!o || !fmt)
        return code;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    free(o->msg);
    o->msg = msg;
    return code;
}

int jg__task_run(const char *name, const void *in, size_t n,
                 struct jg_task_out *out)
{
    jg_task_fn fn = jg_task_find(name);
    int rc;

    if (!fn)
        return jg_task_fail(out, -ENOENT, "unknown task '%s'",
                            name ? name : "(null)");
    rc = fn(in, n, out);
    return rc > 0 ? 0 : rc;
}
