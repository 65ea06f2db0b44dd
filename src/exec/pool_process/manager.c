/* SPDX-License-Identifier: MIT */
/*
 * pool_process/manager.c - the manager thread: it starts the workers (and
 * replaces those that died, retired or could not start), moves submissions
 * from the inbox to pending, watches every worker's pidfd for its death,
 * kills those whose task timed out, and sleeps on its epoll when there is
 * nothing to do.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "cpu.h"
#include "forkserver.h"
#include "pool_process.h"
#include "sys.h"

/* Here, beside the one start of workers: a static link that makes process
 * pools keeps this object (and with it worker.c), so the workers have the
 * entry. They die with the program and never flush its stdio. */
JG__CHILD_KIND(JG__CHILD_WORKER, jg__pp_worker_main,
               JG__CHILD_DIE_WITH_PARENT)

static int worker_start(struct pool *p, struct worker *w)
{
    int sv[2], rc;
    int mfd = jg__sys_memfd_create("jg-worker",
                                   MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (mfd < 0)
        return -errno;
    /* fallocate, so that exhaustion is an error now and not SIGBUS later;
     * sealed at that size, so that no worker (a task may reopen the file
     * through /proc/self/map_files) can shrink it under our mapping. */
    rc = fallocate(mfd, 0, 0, REGION_SIZE);
    if (rc < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        rc = ftruncate(mfd, REGION_SIZE);
    if (rc == 0)
        rc = jg__sys_fcntl(mfd, F_ADD_SEALS,
                           F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    if (rc < 0) {
        rc = -errno;
        jg__sys_close(mfd);
        return rc;
    }
    w->pg = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd,
                 0);
    if (w->pg == MAP_FAILED) {
        rc = -errno;
        jg__sys_close(mfd);
        return rc;
    }
    w->pg->max_tasks = p->max_tasks;
    w->req_head = w->rep_tail = 0;
    w->sent = 0;
    w->killed_for = 0;
    w->wake = false;
    w->inited = !p->init_task;
    if (jg__sys_socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        goto err_unmap;
    }
    w->sock = sv[0];
    /* The initializer is the first request the worker reads. */
    if (p->init_task) {
        rc = jg__pp_write_request(p, w, REC_INIT, 0, p->init_task,
                                  (uint32_t)strlen(p->init_task) + 1,
                                  p->init_arg, p->init_len);
        if (rc < 0)
            goto err_sock;
        jg__pp_ring_publish(&w->pg->req, w->req_head);
    }
    int fds[3] = { mfd, sv[1], p->efd };
    rc = jg__child_start(JG__CHILD_WORKER, fds, 3, &w->pid, &w->pidfd);
    if (rc < 0)
        goto err_sock;
    jg__sys_close(sv[1]);
    jg__sys_close(mfd);
    struct epoll_event ev = { .events = EPOLLIN,
                              .data.u64 = (uint64_t)w->idx + 1 };
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, w->pidfd, &ev);
    w->alive = true;
    return 0;

err_sock:
    jg__sys_close(sv[0]);
    jg__sys_close(sv[1]);
err_unmap:
    munmap(w->pg, REGION_SIZE);
    w->pg = NULL;
    jg__sys_close(mfd);
    return rc;
}

static void worker_close(struct pool *p, struct worker *w)
{
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
    jg__sys_close(w->pidfd);
    jg__sys_close(w->sock);
    munmap(w->pg, REGION_SIZE);
    w->pg = NULL;
    w->alive = false;
}

/* ---- deaths and timeouts ---- */

static void worker_died(struct pool *p, struct worker *w)
{
    siginfo_t si;
    char msg[160];

    if (!w->alive)
        return;
    /* Replies it published before dying are good results. */
    jg__pp_drain(p, w);
    int rc = jg__child_reap(w->pidfd, true, &si);
    if (rc < 0)
        memset(&si, 0, sizeof(si));
    if (!w->inited) {
        /* Died inside its initializer: every replacement would too. */
        jg__describe_exit(msg, sizeof(msg), "", &si);
        jg__pp_set_broken(p, -ECHILD, msg, strlen(msg));
    }
    struct ptask *t = jg__pp_tq_first(&w->flight);
    uint64_t cur = atomic_load_explicit(&w->pg->cur_id, memory_order_acquire);
    if (t && t->id == cur) {
        /* The one task it held fails; the rest go back to pending. */
        jg__pp_tq_pop(&w->flight);
        if (w->killed_for == t->id) {
            snprintf(msg, sizeof(msg), "task timed out after %lld ms; "
                     "worker %d killed",
                     (long long)(p->timeout_ns / 1000000), (int)w->pid);
            jg__pp_task_fail(p, t, -ETIMEDOUT, msg);
        } else {
            jg__describe_exit(msg, sizeof(msg), "worker ", &si);
            jg__pp_task_fail(p, t, -ECHILD, msg);
        }
    }
    /* Newest first to the front: pending gets them in their order. */
    while ((t = jg__pp_tq_last(&w->flight))) {
        jg__pp_tq_remove(&w->flight, t);
        jg__pp_tq_push_front(&p->pending, t);
    }
    worker_close(p, w);
    w->retry_at = 0;
}

/* Kill workers whose current task ran past the timeout; returns the next
 * time to look (INT64_MAX: none). */
static int64_t check_timeouts(struct pool *p)
{
    int64_t next = INT64_MAX, now = jg_now();

    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        struct ptask *t = jg__pp_tq_first(&w->flight);
        if (!w->alive || !t || w->killed_for)
            continue;
        /* id, start, id again: a consistent pair, or the task moved on. */
        uint64_t id1 = atomic_load_explicit(&w->pg->cur_id,
                                            memory_order_acquire);
        int64_t start = atomic_load_explicit(&w->pg->cur_start,
                                             memory_order_acquire);
        uint64_t id2 = atomic_load_explicit(&w->pg->cur_id,
                                            memory_order_acquire);
        int64_t due;
        if (id1 == t->id && id2 == id1)
            due = start + p->timeout_ns;
        else
            due = t->sent_ns + p->timeout_ns; /* it starts no earlier */
        if (due <= now && id1 == t->id && id2 == id1) {
            w->killed_for = t->id;
            jg__pp_kill_worker(w);
            continue;
        }
        if (due <= now)
            due = now + JG_MS(1);
        if (due < next)
            next = due;
    }
    return next;
}

/* Start missing workers (at creation, after deaths, after retirement). */
static void replace_workers(struct pool *p, int64_t *next)
{
    if (p->broken)
        return;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (w->alive)
            continue;
        int64_t now = jg_now();
        if (w->retry_at > now) {
            if (w->retry_at < *next)
                *next = w->retry_at;
            continue;
        }
        int rc = worker_start(p, w);
        if (rc == 0) {
            p->start_failures = 0;
            continue;
        }
        /* fork failed (EAGAIN, ENOMEM...): retry in 100 ms; after 50 tries
         * with no worker at all, fail the work instead of hanging. */
        w->retry_at = now + JG_MS(100);
        if (w->retry_at < *next)
            *next = w->retry_at;
        if (++p->start_failures >= 50) {
            bool any = false;
            for (int k = 0; k < p->nworkers; k++)
                any |= p->w[k].alive;
            if (!any) {
                p->broken = rc;
                snprintf(p->broken_msg, sizeof(p->broken_msg),
                         "no worker process could be started: %s",
                         strerror(-rc));
            }
        }
    }
}

/* ---- the manager thread ---- */

static bool take_inbox(struct pool *p)
{
    if (!atomic_load_explicit(&p->inbox, memory_order_relaxed))
        return false;
    struct ptask *s = atomic_exchange_explicit(&p->inbox, NULL,
                                               memory_order_seq_cst);
    /* The inbox is a stack: reverse the batch into submission order. */
    struct ptask *rev = NULL;
    while (s) {
        struct ptask *nx = s->next;
        s->next = rev;
        rev = s;
        s = nx;
    }
    while (rev) {
        struct ptask *nx = rev->next;
        jg__pp_tq_push(&p->pending, rev);
        rev = nx;
    }
    return true;
}

static void cancel_pending(struct pool *p)
{
    struct jg__list *e, *next;

    for (e = p->pending.l.next; e != &p->pending.l; e = next) {
        struct ptask *t = jg__pp_tq_at(e);

        next = e->next;
        /* Re-queued tasks of a dead worker are RUNNING: they still run. */
        if (!t->running && jg_future_cancel(t->f) == 0) {
            jg__pp_tq_remove(&p->pending, t);
            jg__pp_task_free(p, t);
        }
    }
}

static void stop_workers(struct pool *p)
{
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (!w->alive)
            continue;
        atomic_store_explicit(&w->pg->stop, 1, memory_order_seq_cst);
        atomic_store_explicit(&w->pg->w_sleep, 0, memory_order_seq_cst);
        jg__futex_wake_shared(&w->pg->w_sleep, 1);
    }
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        siginfo_t si;
        if (!w->alive)
            continue;
        /* Idle workers exit at once; one that does not within 2 s (a
         * stopped process) is killed, so no zombie is left behind. */
        struct epoll_event ev;
        int ep = jg__sys_epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event add = { .events = EPOLLIN };
        if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, w->pidfd, &add) == 0 &&
            jg__sys_epoll_wait(ep, &ev, 1, 2000) == 0)
            jg__pp_kill_worker(w);
        if (ep >= 0)
            jg__sys_close(ep);
        jg__child_reap(w->pidfd, true, &si);
        worker_close(p, w);
    }
}

static bool sleep_ok(struct pool *p)
{
    if (atomic_load_explicit(&p->inbox, memory_order_seq_cst))
        return false;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (w->alive &&
            atomic_load_explicit(&w->pg->rep.head, memory_order_seq_cst) !=
                w->rep_tail)
            return false;
    }
    if (atomic_load_explicit(&p->shut, memory_order_seq_cst) &&
        atomic_load_explicit(&p->outstanding, memory_order_seq_cst) == 0)
        return false;
    return true;
}

static void set_sleep_flags(struct pool *p, uint32_t v)
{
    atomic_store_explicit(&p->mgr_sleep, v, memory_order_seq_cst);
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive)
            atomic_store_explicit(&p->w[i].pg->m_sleep, v,
                                  memory_order_seq_cst);
}

static void handle_events(struct pool *p, int timeout_ms)
{
    struct epoll_event ev[16];
    int n = jg__sys_epoll_wait(p->epfd, ev, 16, timeout_ms);

    for (int i = 0; i < n; i++) {
        uint64_t k = ev[i].data.u64;
        if (k == 0) {
            uint64_t v;
            ssize_t r = jg__sys_read(p->efd, &v, sizeof(v));
            (void)r;
        } else if (k <= (uint64_t)p->nworkers) {
            worker_died(p, &p->w[k - 1]);
        }
    }
}

void *jg__pp_manager(void *arg)
{
    struct pool *p = arg;
    unsigned spins = 0, iter = 0;

    /* juggle's own threads block every signal: they go to user threads. */
    jg__block_all_signals();
    int64_t next = INT64_MAX;
    replace_workers(p, &next);
    for (;;) {
        bool progress = take_inbox(p);
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive)
                progress |= jg__pp_drain(p, &p->w[i]);
        if (atomic_load_explicit(&p->cancel_req, memory_order_acquire) &&
            p->pending.n)
            cancel_pending(p);
        progress |= jg__pp_dispatch(p);
        next = INT64_MAX;
        if (p->timeout_ns)
            next = check_timeouts(p);
        replace_workers(p, &next);
        if (atomic_load_explicit(&p->shut, memory_order_seq_cst) &&
            atomic_load_explicit(&p->outstanding, memory_order_seq_cst) == 0)
            break;
        /* Deaths are events: look now and then even while busy. */
        if (++iter % 64 == 0)
            handle_events(p, 0);
        if (progress) {
            spins = 0;
            continue;
        }
        if (++spins < 100) {
            jg__cpu_relax();
            continue;
        }
        if (spins < 110) {
            sched_yield();
            continue;
        }
        set_sleep_flags(p, 1);
        int timeout_ms = -1;
        if (next != INT64_MAX) {
            int64_t d = next - jg_now();
            timeout_ms = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
        }
        if (!sleep_ok(p))
            timeout_ms = 0;
        handle_events(p, timeout_ms);
        set_sleep_flags(p, 0);
        spins = 0;
    }
    stop_workers(p);
    jg_future_set_value(p->drained, NULL);
    return NULL;
}
