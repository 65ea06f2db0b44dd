/* SPDX-License-Identifier: MIT */
/*
 * pool_process/pool.c - the process pool as an executor:
 * jg_process_pool_create and the ops (submit, shutdown, destroy).
 * Submitters push onto the manager's lock-free inbox; the count of
 * outstanding tasks, raised here and lowered as each task is freed, tells
 * the manager when a shut-down pool is done.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "forkserver.h"
#include "pool_process.h"
#include "sys.h"

static void wake_manager(struct pool *p)
{
    uint64_t one = 1;
    ssize_t n = jg__sys_write(p->efd, &one, sizeof(one));
    (void)n;
}

void jg__pp_task_free(struct pool *p, struct ptask *t)
{
    jg_future_unref(t->f);
    free(t);
    /* seq_cst: pairs with submit's increment-then-check of shut. */
    atomic_fetch_sub_explicit(&p->outstanding, 1, memory_order_seq_cst);
}

void jg__pp_task_fail(struct pool *p, struct ptask *t, int code,
                      const char *msg)
{
    jg_future_set_error(t->f, code, msg);
    jg__pp_task_free(p, t);
}

static int psubmit(struct jg_executor *ex, const char *name, const void *in,
                   size_t n, struct jg_future *f)
{
    struct pool *p = (struct pool *)ex;
    size_t nl = strlen(name) + 1;

    if (nl > 4096 || (n && !in))
        return -EINVAL;
    if (!jg_task_find(name))
        return -ENOENT;
    struct ptask *t = malloc(sizeof(*t) + jg__pp_pad8(nl) + n);
    if (!t)
        return -ENOMEM;
    t->f = f;
    t->id = 0;
    t->running = false;
    t->n = n;
    t->namelen = (uint32_t)nl;
    memcpy(t->data, name, nl);
    if (n)
        memcpy(t->data + jg__pp_pad8(nl), in, n);
    /* Count first, then check shut (both seq_cst): the manager exits only
     * once it sees shut and a zero count, so it cannot miss this task. */
    atomic_fetch_add_explicit(&p->outstanding, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->shut, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&p->outstanding, 1, memory_order_seq_cst);
        free(t);
        return -ESHUTDOWN;
    }
    jg_future_ref(f);
    struct ptask *old = atomic_load_explicit(&p->inbox,
                                             memory_order_relaxed);
    do
        t->next = old;
    while (!atomic_compare_exchange_weak_explicit(&p->inbox, &old, t,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed));
    if (atomic_load_explicit(&p->mgr_sleep, memory_order_seq_cst) &&
        atomic_exchange_explicit(&p->mgr_sleep, 0, memory_order_seq_cst))
        wake_manager(p);
    return 0;
}

static int pshutdown(struct jg_executor *ex, unsigned flags)
{
    struct pool *p = (struct pool *)ex;

    if (flags & JG_SHUTDOWN_CANCEL_PENDING)
        atomic_store_explicit(&p->cancel_req, true, memory_order_seq_cst);
    atomic_store_explicit(&p->shut, true, memory_order_seq_cst);
    wake_manager(p);
    if (!(flags & JG_SHUTDOWN_WAIT))
        return 0;
    int rc = jg_future_result(p->drained, NULL, JG_FOREVER);
    return rc < 0 ? rc : 0;
}

static void pdestroy(struct jg_executor *ex)
{
    struct pool *p = (struct pool *)ex;

    (void)pshutdown(ex, 0);
    pthread_join(p->mgr, NULL);
    jg__sys_close(p->efd);
    jg__sys_close(p->epfd);
    jg_future_unref(p->drained);
    free(p->w);
    free(p->init_task);
    free(p->init_arg);
    free(p);
}

static const struct jg__executor_ops process_ops = {
    .name = "process",
    .submit = psubmit,
    .call = NULL,
    .shutdown = pshutdown,
    .destroy = pdestroy,
};

int jg_process_pool_create(struct jg_executor **out,
                           const struct jg_process_pool_opts *o)
{
    struct jg_process_pool_opts d;
    int rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    memset(&d, 0, sizeof(d));
    if (o)
        d = *o;
    if (d.workers < 0 || d.workers > 1024 || d.task_timeout_ns < 0 ||
        (d.init_len && !d.init_arg) ||
        (d.init_task && !jg_task_find(d.init_task)))
        return -EINVAL;
    /* The fork server first, while the caller may still be alone. */
    rc = jg__child_ready();
    if (rc < 0)
        return rc;
    if (d.workers == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        d.workers = c > 0 ? (int)c : 1;
    }

    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->ex.ops = &process_ops;
    jg__pp_tq_init(&p->pending);
    p->nworkers = d.workers;
    p->max_tasks = d.max_tasks_per_child;
    p->timeout_ns = d.task_timeout_ns;
    p->init_len = d.init_len;
    p->efd = p->epfd = -1;
    rc = -ENOMEM;
    p->w = calloc((size_t)d.workers, sizeof(*p->w));
    if (!p->w)
        goto err;
    for (int i = 0; i < d.workers; i++) {
        p->w[i].idx = i;
        p->w[i].pidfd = p->w[i].sock = -1;
        jg__pp_tq_init(&p->w[i].flight);
    }
    if (d.init_task && !(p->init_task = strdup(d.init_task)))
        goto err;
    if (d.init_len) {
        if (!(p->init_arg = malloc(d.init_len)))
            goto err;
        memcpy(p->init_arg, d.init_arg, d.init_len);
    }
    rc = jg_future_create(&p->drained);
    if (rc < 0)
        goto err;
    p->efd = jg__sys_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->epfd = jg__sys_epoll_create1(EPOLL_CLOEXEC);
    if (p->efd < 0 || p->epfd < 0) {
        rc = -errno;
        goto err;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->efd, &ev) < 0) {
        rc = -errno;
        goto err;
    }
    /* Workers are started by the manager: in spawn mode their parent
     * thread is the manager, which lives as long as the pool. It starts
     * with every signal blocked, so none is ever delivered to it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&p->mgr, NULL, jg__pp_manager, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        goto err;
    *out = &p->ex;
    return 0;

err:
    if (p->drained)
        jg_future_unref(p->drained);
    if (p->efd >= 0)
        jg__sys_close(p->efd);
    if (p->epfd >= 0)
        jg__sys_close(p->epfd);
    free(p->init_task);
    free(p->init_arg);
    free(p->w);
    free(p);
    return rc == -EAGAIN ? -EAGAIN : rc;
}
