/* SPDX-License-Identifier: MIT */
/*
 * group.c - groups and pools of green threads, map and imap_unordered over
 * worker members, and waiting for several green threads. Each member
 * carries a heap jg__waiter that runs as it ends; that is how the group
 * counts places, failures and wakes its joiners. Invariant: grp->running
 * counts live members plus places handed to spawners not yet resumed, and
 * never exceeds grp->size in a pool.
 */
#include <limits.h>
#include <string.h>

#include "clause.h"

struct member {
    struct jg__waiter w;        /* runs as the member ends */
    struct jg__list link;       /* on grp->members */
    struct jg_group *grp;
    struct jg_green *g;
    bool killed;                /* killed by the group itself */
};

struct jg_group {
    struct jg_hub *hub;
    size_t size;
    enum jg_group_policy policy;
    bool has_spawn;
    bool failed_fast;           /* FAIL_FAST tripped: no new members */
    struct jg_spawn_opts spawn;
    void (*on_done)(void *, struct jg_green *, void *, int);
    void *ctx;
    size_t running;             /* live members + handed places */
    size_t live;                /* live members */
    size_t failed;
    size_t nwait;               /* in join or waiting for a place, woken
                                 * ones too until they run: no destroy */
    int first_err;
    struct jg__list members, slotq, joinq;
};

static int check(const struct jg_group *grp)
{
    if (!grp)
        return -EINVAL;
    if (grp->hub != jg__tls_hub)
        return -EXDEV;
    return 0;
}

/* Park on list l until woken; one cleanup path. Returns the park's rc;
 * *handed: a waker gave the caller what l is for. */
static int wait_on(struct jg__list *l, int64_t deadline, bool *handed)
{
    struct jg_green *g = jg__park_prepare();
    struct jg__clause *c;
    int rc;

    if (!g || !(c = jg__clause_get(g)))
        return -ENOMEM;
    rc = jg__clause_wait(l, c, deadline, 0);
    if (handed)
        *handed = c->handed;
    jg__clause_put(c);
    return rc;
}

/* A place came free: hand it to the first waiting spawner, if any. */
static void release_place(struct jg_group *grp)
{
    struct jg__clause *c;

    grp->running--;
    if ((grp->size == 0 || grp->running < grp->size) &&
        (c = jg__clause_first(&grp->slotq)) != NULL) {
        grp->running++;
        jg__clause_take(c, 0);
    }
    if (grp->running == 0)
        jg__clause_wake_all(&grp->joinq, 0);
}

/* Kill every live member; returns how many. */
static int kill_members(struct jg_group *grp)
{
    struct jg__list *e, *next;
    int killed = 0;

    /* jg_kill of an unstarted member ends it at once and runs its waiter,
     * which unlinks only that member: take the next one first. */
    for (e = grp->members.next; e != &grp->members; e = next) {
        struct member *m = JG_CONTAINER_OF(e, struct member, link);

        next = e->next;
        if (m->killed)
            continue;
        m->killed = true;
        killed++;
        jg_kill(m->g);
    }
    return killed;
}

/* A member ended (on the hub, inside its finish). */
static void member_done(struct jg__waiter *w, struct jg_green *g)
{
    struct member *m = JG_CONTAINER_OF(w, struct member, w);
    struct jg_group *grp = m->grp;
    int status = (g->flags & JG__G_CANCELLED) ? -ECANCELED
                                               : JG_ERR_CODE(g->arg);

    jg__list_remove(&m->link);
    grp->live--;
    /* A member the group killed itself is not a failure of its own. */
    if (status < 0 && !(m->killed && status == -ECANCELED)) {
        grp->failed++;
        if (!grp->first_err)
            grp->first_err = status;
        if (grp->policy == JG_GROUP_FAIL_FAST && !grp->failed_fast) {
            grp->failed_fast = true;
            kill_members(grp);
        }
    }
    if (grp->on_done)
        grp->on_done(grp->ctx, g, g->arg, status);
    free(m);
    release_place(grp);
}

int jg_group_create(struct jg_group **out, const struct jg_group_opts *o)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_group *grp;

    if (!out)
        return -EINVAL;
    if (o && o->policy != JG_GROUP_COLLECT &&
        o->policy != JG_GROUP_FAIL_FAST)
        return -EINVAL;
    if (!h)
        return -ENOMEM;
    grp = calloc(1, sizeof *grp);
    if (!grp)
        return -ENOMEM;
    grp->hub = h;
    if (o) {
        grp->size = o->size;
        grp->policy = o->policy;
        grp->on_done = o->on_done;
        grp->ctx = o->ctx;
        if (o->spawn) {
            grp->spawn = *o->spawn;
            grp->has_spawn = true;
        }
    }
    jg__list_init(&grp->members);
    jg__list_init(&grp->slotq);
    jg__list_init(&grp->joinq);
    *out = grp;
    return 0;
}

int jg_group_destroy(struct jg_group *grp)
{
    int rc = check(grp);

    if (rc < 0)
        return rc;
    if (grp->running || grp->nwait)
        return -EBUSY;
    free(grp);
    return 0;
}

/* Take a place, waiting until the absolute deadline (timeout 0: -EAGAIN). */
static int take_place(struct jg_group *grp, int64_t timeout_ns,
                      int64_t deadline)
{
    bool handed = false;
    int rc;

    if (grp->failed_fast)
        return -ECANCELED;
    if ((grp->size == 0 || grp->running < grp->size) &&
        !jg__clause_first(&grp->slotq)) {
        grp->running++;
        return 0;
    }
    if (timeout_ns == 0)
        return -EAGAIN;
    grp->nwait++;
    rc = wait_on(&grp->slotq, deadline, &handed);
    grp->nwait--;
    if (!handed)
        return rc < 0 ? rc : -EAGAIN;
    /* The place is ours; killed since, or the group failed? Pass it on. */
    if (jg_cancelled() || grp->failed_fast) {
        release_place(grp);
        return -ECANCELED;
    }
    return 0;
}

/* Spawn a member into a place already taken. */
static int spawn_member(struct jg_group *grp, struct jg_green **out,
                        jg_green_fn fn, void *arg, struct member **mout)
{
    struct member *m = malloc(sizeof *m);
    struct jg_green *g;
    int rc;

    if (!m) {
        release_place(grp);
        return -ENOMEM;
    }
    rc = jg_spawn(&g, fn, arg, grp->has_spawn ? &grp->spawn : NULL);
    if (rc < 0) {
        free(m);
        release_place(grp);
        return rc;
    }
    m->grp = grp;
    m->g = g;
    m->killed = false;
    m->w.fn = member_done;
    jg__list_push_back(&grp->members, &m->link);
    grp->live++;
    jg__waiter_add(g, &m->w);
    *out = g;
    if (mout)
        *mout = m;
    return 0;
}

int jg_group_spawn(struct jg_group *grp, struct jg_green **out,
                   jg_green_fn fn, void *arg, int64_t timeout_ns)
{
    struct jg_green *g;
    int rc = check(grp);

    if (rc < 0)
        return rc;
    if (!fn || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    rc = take_place(grp, timeout_ns, jg__deadline_after(timeout_ns));
    if (rc < 0)
        return rc;
    rc = spawn_member(grp, &g, fn, arg, NULL);
    if (rc < 0)
        return rc;
    if (out)
        *out = g;
    else
        jg_detach(g);
    return 0;
}

int jg_group_join(struct jg_group *grp, int64_t timeout_ns)
{
    int rc = check(grp);

    if (rc < 0)
        return rc;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (grp->running > 0) {
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        grp->nwait++;
        rc = wait_on(&grp->joinq, jg__deadline_after(timeout_ns), NULL);
        grp->nwait--;
        /* Woken with 0: every member had ended then (new spawns since
         * are the next join's). */
        if (rc < 0 && grp->running > 0)
            return rc;
    }
    return grp->first_err;
}

int jg_group_kill(struct jg_group *grp)
{
    int rc = check(grp);

    return rc < 0 ? rc : kill_members(grp);
}

ssize_t jg_group_count(const struct jg_group *grp)
{
    int rc = check(grp);

    return rc < 0 ? rc : (ssize_t)grp->live;
}

ssize_t jg_group_failed(const struct jg_group *grp)
{
    int rc = check(grp);

    return rc < 0 ? rc : (ssize_t)grp->failed;
}

/* ---- map and imap_unordered -------------------------------------------- */

/*
 * Worker members take jobs in input order. The iterator is heap memory
 * shared by its owner and its workers (refs); results are written here,
 * never into the caller's arrays while it is parked.
 */
struct jg_imap {
    struct jg_group *grp;
    jg_green_fn fn;
    size_t n, next;             /* jobs; the next to start */
    size_t ndone, nout;         /* finished; delivered */
    void **args;                /* copy of the caller's args */
    void **res;                 /* res[i]: job i's result */
    size_t *order;              /* indexes in the order jobs finished */
    size_t workers;             /* live workers */
    unsigned refs;              /* the owner + each worker */
    bool stop;                  /* start no more jobs */
    bool owned;                 /* the owner has not closed it */
    bool busy;                  /* a green thread is in jg_imap_next */
    struct jg__clause *waiter;  /* the owner parked in jg_imap_next */
    struct jg__list wks;        /* live workers' records */
};

/* One worker's record: how the iterator learns that it ended. */
struct wk {
    struct jg__waiter w;
    struct jg__list link;
    struct jg_imap *it;
    struct jg_green *g;
    struct member *m;           /* its group record (alive while k is) */
};

static void imap_unref(struct jg_imap *it)
{
    if (--it->refs > 0)
        return;
    free(it->args);
    free(it->res);
    free(it->order);
    free(it);
}

static void wake_owner(struct jg_imap *it)
{
    if (it->waiter)
        (void)jg__clause_wake(it->waiter, 0);
}

/* The owner waits in jg_imap_next for a worker to deliver or end. */
static int park_owner(struct jg_imap *it, int64_t deadline)
{
    struct jg_green *g = jg__park_prepare();
    int rc;

    if (!g || !(it->waiter = jg__clause_get(g)))
        return -ENOMEM;
    rc = jg__clause_wait(NULL, it->waiter, deadline, 0);
    jg__clause_put(it->waiter);
    it->waiter = NULL;
    return rc;
}

static void *worker_main(void *arg)
{
    struct jg_imap *it = arg;

    while (!it->stop && it->next < it->n && !jg_cancelled()) {
        size_t i = it->next++;
        void *r = it->fn(it->args[i]);

        it->res[i] = r;
        it->order[it->ndone++] = i;
        wake_owner(it);
        if (JG_IS_ERR(r) && it->grp->policy == JG_GROUP_FAIL_FAST) {
            /* The failure goes through the group: it kills the rest. */
            it->stop = true;
            return r;
        }
    }
    return NULL;
}

static void worker_done(struct jg__waiter *w, struct jg_green *g)
{
    struct wk *k = JG_CONTAINER_OF(w, struct wk, w);
    struct jg_imap *it = k->it;

    /* A killed worker means the run was stopped from outside. */
    if (jg__killed(g))
        it->stop = true;
    jg__list_remove(&k->link);
    it->workers--;
    wake_owner(it);
    free(k);
    imap_unref(it);
}

/* Start one worker in a place already taken. */
static int start_worker(struct jg_imap *it)
{
    struct wk *k = malloc(sizeof *k);
    struct jg_green *g;
    int rc;

    if (!k) {
        release_place(it->grp);
        return -ENOMEM;
    }
    rc = spawn_member(it->grp, &g, worker_main, it, &k->m);
    if (rc < 0) {
        free(k);
        return rc;
    }
    k->it = it;
    k->g = g;
    k->w.fn = worker_done;
    jg__list_push_back(&it->wks, &k->link);
    it->workers++;
    it->refs++;
    jg__waiter_add(g, &k->w);
    jg_detach(g);
    return 0;
}

/* Start workers while jobs wait for one and the pool has free places. */
static int top_up(struct jg_imap *it)
{
    while (!it->stop && it->workers < it->n - it->next) {
        int rc = take_place(it->grp, 0, INT64_MAX);
        if (rc == -EAGAIN)
            return 0;
        if (rc < 0)
            return rc;
        rc = start_worker(it);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int jg_group_imap_unordered(struct jg_group *grp, struct jg_imap **out,
                            jg_green_fn fn, void *const *args, size_t n)
{
    struct jg_imap *it;
    int rc = check(grp);

    if (rc < 0)
        return rc;
    if (!out || !fn || (n > 0 && !args))
        return -EINVAL;
    if (grp->failed_fast)
        return -ECANCELED;
    it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    it->grp = grp;
    it->fn = fn;
    it->n = n;
    it->refs = 1;
    it->owned = true;
    jg__list_init(&it->wks);
    it->args = malloc((n ? n : 1) * sizeof *it->args);
    it->res = malloc((n ? n : 1) * sizeof *it->res);
    it->order = malloc((n ? n : 1) * sizeof *it->order);
    if (!it->args || !it->res || !it->order) {
        imap_unref(it);
        return -ENOMEM;
    }
    if (n)
        memcpy(it->args, args, n * sizeof *args);
    rc = top_up(it);
    if (rc < 0 && rc != -ECANCELED) {
        jg_imap_destroy(it);
        return rc;
    }
    *out = it;
    return 0;
}

/* jg_imap_next once its arguments are checked and it->busy is set. */
static int imap_next(struct jg_imap *it, size_t *index, void **result,
                     int64_t timeout_ns)
{
    int64_t deadline = jg__deadline_after(timeout_ns);
    int rc;

    while (it->nout == it->ndone) {
        /* Nothing to deliver: more workers if places are free. */
        rc = top_up(it);
        if (rc == -ECANCELED) {
            it->stop = true;
        } else if (rc < 0) {
            return rc;
        }
        if (it->workers == 0) {
            if (it->stop || it->next >= it->n)
                return 0;
            /* The pool is full of other members: wait for a place. */
            if (timeout_ns == 0)
                return -ETIMEDOUT;
            rc = take_place(it->grp, timeout_ns, deadline);
            if (rc == -EAGAIN)
                continue;
            if (rc == -ECANCELED && !jg_cancelled()) {
                it->stop = true;
                continue;
            }
            if (rc < 0)
                return rc;
            rc = start_worker(it);
            if (rc < 0)
                return rc;
            continue;
        }
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        rc = park_owner(it, deadline);
        if (rc < 0)
            return rc;
    }
    size_t i = it->order[it->nout++];
    if (index)
        *index = i;
    if (result)
        *result = it->res[i];
    return 1;
}

/*
 * The checks of an iterator's calls: -EINVAL, -EXDEV, or -EBUSY while a
 * green thread is in jg_imap_next (one caller at a time, for the whole
 * call: it may wait for a place as well as for a result, and destroy must
 * not free the iterator under either wait).
 */
static int imap_check(const struct jg_imap *it)
{
    int rc;

    if (!it || !it->owned)
        return -EINVAL;
    if ((rc = check(it->grp)) < 0)
        return rc;
    return it->busy ? -EBUSY : 0;
}

int jg_imap_next(struct jg_imap *it, size_t *index, void **result,
                 int64_t timeout_ns)
{
    int rc = imap_check(it);

    if (rc < 0)
        return rc;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    it->busy = true;
    rc = imap_next(it, index, result, timeout_ns);
    it->busy = false;
    return rc;
}

int jg_imap_destroy(struct jg_imap *it)
{
    struct jg__list *e, *next;
    int rc = imap_check(it);

    if (rc < 0)
        return rc;
    it->stop = true;
    it->owned = false;
    /* Killing an unstarted worker ends it at once: its record goes. */
    for (e = it->wks.next; e != &it->wks; e = next) {
        struct wk *k = JG_CONTAINER_OF(e, struct wk, link);
        next = e->next;
        /* The group's own kill: not a failure of the member. */
        k->m->killed = true;
        jg_kill(k->g);
    }
    imap_unref(it);
    return 0;
}

int jg_group_map(struct jg_group *grp, jg_green_fn fn, void *const *args,
                 void **results, size_t n, int64_t timeout_ns)
{
    struct jg_imap *it;
    int64_t deadline;
    size_t got = 0;
    int rc, first = 0;

    if (!results && n > 0)
        return -EINVAL;
    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    deadline = jg__deadline_after(timeout_ns);
    rc = jg_group_imap_unordered(grp, &it, fn, args, n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        results[i] = JG_ERR(-ECANCELED);
    for (;;) {
        size_t idx;
        void *r;

        rc = jg_imap_next(it, &idx, &r, jg__deadline_left(deadline));
        if (rc <= 0)
            break;
        results[idx] = r;
        got++;
        if (JG_IS_ERR(r) && !first)
            first = JG_ERR_CODE(r);
    }
    jg_imap_destroy(it);
    if (rc < 0)
        return rc;
    if (first)
        return first;
    return got == n ? 0 : -ECANCELED;
}

/* ---- wait for several ---------------------------------------------------- */

struct wnode {
    struct jg__waiter w;
    struct wrec *rec;
    struct jg_green *g;
    bool ran;                   /* its callback ran: unlinked */
};

/* One jg_wait_green call, on the heap. */
struct wrec {
    struct jg__clause *waiter;
    size_t done, need;
    struct wnode nodes[];
};

static void wait_done(struct jg__waiter *w, struct jg_green *g)
{
    struct wnode *n = JG_CONTAINER_OF(w, struct wnode, w);
    struct wrec *r = n->rec;

    (void)g;
    n->ran = true;
    if (++r->done >= r->need)
        (void)jg__clause_wake(r->waiter, 0);
}

static size_t count_done(struct jg_green *const *gs, size_t n)
{
    size_t c = 0;

    for (size_t i = 0; i < n; i++)
        c += gs[i]->state == JG_GREEN_DONE;
    return c;
}

int jg_wait_green(struct jg_green *const *gs, size_t n, size_t count,
                  int64_t timeout_ns)
{
    struct jg_hub *h = jg__hub_get();
    struct jg_green *self;
    struct wrec *r;
    size_t done;
    int rc;

    if (!h)
        return -ENOMEM;
    if ((n > 0 && !gs) || count > n || n > INT_MAX ||
        !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    self = h->current;
    for (size_t i = 0; i < n; i++) {
        if (!gs[i] || (gs[i]->flags & (JG__G_DETACHED | JG__G_HUB)))
            return -EINVAL;
        if (gs[i]->hub != h)
            return -EXDEV;
        if (gs[i] == self)
            return -EDEADLK;
    }
    if (count == 0)
        count = n;
    done = count_done(gs, n);
    if (done >= count)
        return (int)done;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    r = malloc(sizeof *r + n * sizeof r->nodes[0]);
    if (!r)
        return -ENOMEM;
    r->waiter = jg__clause_get(self);
    if (!r->waiter) {
        free(r);
        return -ENOMEM;
    }
    r->done = done;
    r->need = count;
    for (size_t i = 0; i < n; i++) {
        struct wnode *nd = &r->nodes[i];

        nd->rec = r;
        nd->g = gs[i];
        nd->w.fn = wait_done;
        nd->ran = gs[i]->state == JG_GREEN_DONE;
        if (!nd->ran)
            jg__waiter_add(gs[i], &nd->w);
    }
    rc = jg__clause_wait(NULL, r->waiter, jg__deadline_after(timeout_ns),
                         0);
    /* One cleanup path: forget every node that has not run. */
    for (size_t i = 0; i < n; i++)
        if (!r->nodes[i].ran)
            jg__waiter_remove(r->nodes[i].g, &r->nodes[i].w);
    jg__clause_put(r->waiter);
    free(r);
    done = count_done(gs, n);
    if (done >= count)
        return (int)done;
    return rc < 0 ? rc : -ETIMEDOUT;
}
