/* SPDX-License-Identifier: MIT */
/*
 * green.c - the public green-thread API over the hub: create, spawn, join,
 * detach, kill, sleep and the getters. A descriptor lives while it has
 * references: its handle (released by jg_join or jg_detach), its run
 * (released when it finishes and is off its stack), and one per child that
 * names it as parent.
 */
#include <stdio.h>
#include <string.h>

#include "clause.h"

/* The largest stack a spawn may ask for. */
#define STACK_MAX ((size_t)1 << 30)

size_t jg_stack_size_default(void)
{
    return jg__stack_default_size();
}

static int check_opts(const struct jg_spawn_opts *o)
{
    if (!o)
        return 0;
    if (o->stack_model != JG_STACK_DEDICATED &&
        o->stack_model != JG_STACK_SLICED)
        return -EINVAL;
    if (o->stack_size > STACK_MAX)
        return -EINVAL;
    if (o->stack_model == JG_STACK_SLICED && o->stack_size &&
        o->stack_size > jg__stack_default_size())
        return -EINVAL;
    return 0;
}

/*
 * Give g what it needs to run later: a reservation in the stack pool for a
 * default-size dedicated stack (so a spawn past vm.max_map_count fails here
 * with -ENOMEM while the stack itself is taken at first run), a stack of its
 * own for another size, or the shared stack for the sliced model.
 */
static int provide_stack(struct jg_hub *h, struct jg_green *g,
                         const struct jg_spawn_opts *o)
{
    size_t size = o ? o->stack_size : 0;

    if (o && o->stack_model == JG_STACK_SLICED) {
        g->flags |= JG__G_SLICED;
        return jg__hub_sliced_init(h);
    }
    if (size == 0 || size == jg__stack_default_size()) {
        if (h->pool.count <= h->reserved) {
            int rc = jg__stack_reserve(&h->pool);
            if (rc < 0)
                return rc;
        }
        h->reserved++;
        g->flags |= JG__G_RESERVED;
        return 0;
    }
    return jg__stack_get(&h->pool, size, &g->stack);
}

static int create(struct jg_green **out, jg_green_fn fn, void *arg,
                  const struct jg_spawn_opts *o, bool spawn)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *g;
    int rc;

    if (!fn || (!out && !spawn))
        return -EINVAL;
    rc = check_opts(o);
    if (rc < 0)
        return rc;
    if (!h)
        return -ENOMEM;
    g = jg__green_alloc(h);
    if (!g)
        return -ENOMEM;
    if (o && o->name) {
        g->name = strdup(o->name);
        if (!g->name) {
            rc = -ENOMEM;
            goto err_free;
        }
    }
    rc = provide_stack(h, g, o);
    if (rc < 0)
        goto err_free;
    g->fn = fn;
    g->arg = arg;
    g->state = JG_GREEN_NEW;
    g->flags |= JG__G_START;
    /* The handle and the run; a detached spawn has no handle. */
    g->refs = 2;
    g->parent = spawn ? h->hub_g : h->current;
    g->parent->refs++;
    h->count++;
    if (spawn) {
        jg__make_ready(g);
        if (!out) {
            g->flags |= JG__G_DETACHED;
            g->refs--;
        }
    }
    if (out)
        *out = g;
    return 0;

err_free:
    g->refs = 1;
    g->parent = NULL;
    if (g->flags & JG__G_RESERVED)
        h->reserved--;
    jg__green_unref(g);
    return rc;
}

int jg_create(struct jg_green **out, jg_green_fn fn, void *arg,
              const struct jg_spawn_opts *opts)
{
    return create(out, fn, arg, opts, false);
}

int jg_spawn(struct jg_green **out, jg_green_fn fn, void *arg,
             const struct jg_spawn_opts *opts)
{
    return create(out, fn, arg, opts, true);
}

/* Common checks of a handle passed by the user. */
static int check_handle(struct jg_hub *h, const struct jg_green *g)
{
    if (!g || (g->flags & (JG__G_MAIN | JG__G_HUB)))
        return -EINVAL;
    if (g->hub != h)
        return -EXDEV;
    if (g->flags & JG__G_DETACHED)
        return -EINVAL;
    return 0;
}

int jg_join(struct jg_green *g, void **result, int64_t timeout_ns)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *self;
    int rc;

    if (!h)
        return -ENOMEM;
    self = h->current;
    if (g == self)
        return -EDEADLK;
    rc = check_handle(h, g);
    if (rc < 0)
        return rc;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (g->state != JG_GREEN_DONE) {
        if (g->joiner)
            return -EBUSY;
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        g->joiner = jg__clause_get(self);
        if (!g->joiner)
            return -ENOMEM;
        rc = jg__clause_wait(NULL, g->joiner, jg__deadline_after(timeout_ns),
                             0);
        jg__clause_put(g->joiner);
        g->joiner = NULL;
        if (g->state != JG_GREEN_DONE)
            return rc < 0 ? rc : -EAGAIN;
    }
    if (result)
        *result = g->arg;
    rc = (g->flags & JG__G_CANCELLED) ? -ECANCELED : JG_ERR_CODE(g->arg);
    g->flags |= JG__G_DETACHED;
    jg__green_unref(g);          /* the handle */
    return rc;
}

int jg_detach(struct jg_green *g)
{
    struct jg_hub *h = jg__hub_get();
    int rc;

    if (!h)
        return -ENOMEM;
    rc = check_handle(h, g);
    if (rc < 0)
        return rc;
    if (g->joiner)
        return -EBUSY;
    g->flags |= JG__G_DETACHED;
    jg__green_unref(g);
    return 0;
}

int jg_kill(struct jg_green *g)
{
    struct jg_hub *h = jg__hub_get();

    if (!h)
        return -ENOMEM;
    if (!g || (g->flags & JG__G_HUB))
        return -EINVAL;
    if (g->hub != h)
        return -EXDEV;
    if (g->state == JG_GREEN_DONE || (g->flags & JG__G_CANCELLED))
        return 0;
    g->flags |= JG__G_CANCELLED;
    switch (g->state) {
    case JG_GREEN_NEW:
        jg__finish_unstarted(g);
        break;
    case JG_GREEN_READY:
        /* Spawned but never run: it never will. A green thread that was
         * already woken sees the flag at its next blocking call. */
        if (g->flags & JG__G_START)
            jg__finish_unstarted(g);
        break;
    case JG_GREEN_PARKED:
        /* An uninterruptible wait sees the kill once it returns. */
        if (!(g->flags & JG__G_NOCANCEL))
            jg__wake(g, -ECANCELED);
        break;
    case JG_GREEN_SWITCHED:
        jg__resume_switched(g, -ECANCELED);
        break;
    default:
        break;                  /* RUNNING: the caller killed itself */
    }
    return 0;
}

int jg_sleep(int64_t ns)
{
    struct jg_green *g;
    int64_t until;
    int rc;

    if (ns < 0)
        return -EINVAL;
    if (ns == 0)
        return jg_yield();
    g = jg__park_prepare();
    if (!g)
        return -ENOMEM;
    until = jg__deadline_after(ns);
    rc = jg__park(until);
    /* The sleep's own timer reports -ETIMEDOUT: that is success, unless an
     * enclosing deadline (earlier than ours) is what fired. */
    if (rc == -ETIMEDOUT && g->deadline > until)
        return 0;
    return rc;
}

struct jg_green *jg_current(void)
{
    return jg__current();
}

const char *jg_name(const struct jg_green *cg)
{
    struct jg_green *g = (struct jg_green *)(cg ? cg : jg__current());
    char buf[32];

    if (!g)
        return NULL;
    if (!g->name) {
        if (g->flags & JG__G_MAIN)
            return "main";
        if (g->flags & JG__G_HUB)
            return "hub";
        snprintf(buf, sizeof buf, "green-%llu", (unsigned long long)g->id);
        g->name = strdup(buf);
        if (!g->name)
            return "green";
        if (g->stack)
            g->stack->name = g->name;
    }
    return g->name;
}

int jg_state(const struct jg_green *g)
{
    if (!g)
        return -EINVAL;
    return g->state;
}

const char *jg_state_name(enum jg_green_state state)
{
    static const char *const names[] = {
        [JG_GREEN_NEW] = "new", [JG_GREEN_READY] = "ready",
        [JG_GREEN_RUNNING] = "running", [JG_GREEN_SWITCHED] = "switched",
        [JG_GREEN_PARKED] = "parked", [JG_GREEN_DONE] = "done",
    };

    if ((int)state < 0 || (size_t)state >= JG_ARRAY_SIZE(names))
        return "unknown";
    return names[state];
}

struct jg_green *jg_parent(const struct jg_green *g)
{
    return g ? g->parent : NULL;
}

bool jg_cancelled(void)
{
    struct jg_green *g = jg__current();

    return g && jg__killed(g);
}

size_t jg_count(void)
{
    struct jg_hub *h = jg__hub_get();

    return h ? h->count : 0;
}
