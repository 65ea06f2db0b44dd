/* SPDX-License-Identifier: MIT */
/*
 * pool_process/dispatch.c - the manager's traffic over the rings: requests
 * out to the least loaded workers, as many in flight as the tasks' run
 * time asks for, and replies in, each completing the oldest task in flight
 * on its worker. A worker whose replies break the protocol is killed.
 */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "forkserver.h"
#include "future.h"
#include "pool_process.h"
#include "sys.h"

int jg__pp_write_request(struct pool *p, struct worker *w, int kind,
                         uint64_t id, const char *name, uint32_t namelen,
                         const void *in, size_t n)
{
    uint16_t flags = n > INLINE_MAX ? REC_SPILL : 0;
    uint64_t size = sizeof(struct rec) + jg__pp_pad8(namelen) +
                    (flags ? 0 : jg__pp_pad8(n));
    uint64_t head = w->req_head;
    (void)p;

    struct rec *r = jg__pp_ring_reserve(&w->pg->req, jg__pp_req_buf(w->pg),
                                        &head, size);
    if (!r)
        return -EAGAIN;
    if (flags) {
        /* The fd goes first: when the worker sees the record, its fd is
         * already queued on the socket. */
        int fd = jg__pp_spill(in, n);
        if (fd < 0)
            return fd;
        int rc = jg__pp_send_fd(w->sock, fd);
        jg__sys_close(fd);
        if (rc < 0)
            return rc;
    }
    r->kind = (uint16_t)kind;
    r->flags = flags;
    r->id = id;
    r->namelen = namelen;
    r->code = 0;
    r->len = n;
    r->ns = 0;
    memcpy(r + 1, name, namelen);
    if (!flags && n)
        memcpy((char *)(r + 1) + jg__pp_pad8(namelen), in, n);
    r->size = (uint32_t)size;
    w->req_head = head + size;
    return 0;
}

/* How many tasks to keep in flight per worker: enough to cover about
 * 200 us of work (a wake-up's latency), so short tasks stream; one at a
 * time for long tasks (and before the first reply), so they balance. */
static unsigned depth(const struct pool *p)
{
    int64_t avg = p->avg_ns;
    if (avg <= 0)
        return 1;
    int64_t d = 1 + JG_US(200) / (avg + 500);
    return d > MAX_DEPTH ? MAX_DEPTH : (unsigned)d;
}

static struct worker *pick(struct pool *p, unsigned dmax)
{
    struct worker *best = NULL;

    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (!w->alive || w->flight.n >= dmax ||
            (p->max_tasks && w->sent >= p->max_tasks))
            continue;
        if (!best || w->flight.n < best->flight.n)
            best = w;
    }
    return best;
}

bool jg__pp_dispatch(struct pool *p)
{
    bool progress = false;
    unsigned dmax = depth(p);
    int64_t now = 0;

    struct ptask *t;

    while ((t = jg__pp_tq_first(&p->pending))) {
        if (p->broken) {
            jg__pp_tq_pop(&p->pending);
            jg__pp_task_fail(p, t, p->broken, p->broken_msg);
            progress = true;
            continue;
        }
        struct worker *w = pick(p, dmax);
        if (!w)
            break;
        /* RUNNING from here: a cancel after this point is -EBUSY. */
        if (!t->running) {
            if (jg_future_set_running(t->f) < 0) {
                jg__pp_tq_pop(&p->pending);
                jg__pp_task_free(p, t); /* cancelled while queued */
                progress = true;
                continue;
            }
            t->running = true;
        }
        uint64_t id = ++p->next_id;
        int rc = jg__pp_write_request(p, w, REC_TASK, id, t->data,
                                      t->namelen,
                                      t->data + jg__pp_pad8(t->namelen),
                                      t->n);
        if (rc == -EAGAIN) {
            /* This worker's ring is full: take it out of this round. */
            dmax = (unsigned)w->flight.n;
            if (dmax == 0)
                break;
            continue;
        }
        jg__pp_tq_pop(&p->pending);
        progress = true;
        if (rc < 0) {
            jg__pp_task_fail(p, t, rc,
                             "the payload could not be sent to a worker");
            continue;
        }
        if (!now && p->timeout_ns)
            now = jg_now();
        t->id = id;
        t->sent_ns = now;
        jg__pp_tq_push(&w->flight, t);
        w->sent++;
        w->wake = true;
    }
    /* Publish each ring once per round, then wake its worker if it sleeps
     * (seq_cst store then seq_cst exchange: the sleeper's Dekker pair). */
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (!w->wake)
            continue;
        w->wake = false;
        jg__pp_ring_publish(&w->pg->req, w->req_head);
        if (atomic_load_explicit(&w->pg->w_sleep, memory_order_seq_cst) &&
            atomic_exchange_explicit(&w->pg->w_sleep, 0,
                                     memory_order_seq_cst))
            jg__futex_wake_shared(&w->pg->w_sleep, 1);
    }
    return progress;
}

void jg__pp_kill_worker(struct worker *w)
{
    syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

/* Take and close the fd a spilled reply announced, if it is there. */
static void drop_spilled(struct worker *w)
{
    int fd = jg__pp_recv_fd(w->sock, true);
    if (fd >= 0)
        jg__sys_close(fd);
}

/*
 * Read the spilled result of r from its memfd into a malloc'd buffer (with
 * a NUL after it, as jg_future_set_bytes keeps). The worker wrote r->len
 * and chose the fd: both are checked against the file itself, and it is
 * read, not mapped, so a file shorter than said (or shrunk meanwhile)
 * gives an error here and never a SIGBUS. 0, or -errno with *why set.
 */
static int read_spilled(struct worker *w, const struct rec *r, char **out,
                        const char **why)
{
    struct stat st;
    int fd = jg__pp_recv_fd(w->sock, true);

    if (fd < 0) {
        *why = "the worker's result was lost";
        return -EIO;
    }
    int rc = -EPROTO;
    char *buf = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != r->len || r->len >= SIZE_MAX) {
        *why = "the worker's reply is malformed: its result file does not "
               "match the length it gave";
        goto out;
    }
    size_t len = (size_t)r->len, got = 0;
    if (!(buf = malloc(len + 1))) {
        rc = -ENOMEM;
        *why = "no memory for the worker's result";
        goto out;
    }
    while (got < len) {
        ssize_t k = jg__sys_pread(fd, buf + got, len - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -EIO : -EPROTO;
            *why = k < 0 ? "the worker's result could not be read"
                         : "the worker's reply is malformed: its result "
                           "file shrank";
            goto out;
        }
        got += (size_t)k;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    jg__sys_close(fd);
    return rc;
}

/*
 * Complete t from its reply r. jg__pp_ring_peek checked that r's inline
 * bytes lie inside the record; a spilled result is checked by
 * read_spilled. A reply that breaks the protocol fails this task only
 * (-EPROTO): the ring itself is intact, so the worker goes on with the
 * next one.
 */
static void complete(struct pool *p, struct worker *w, struct ptask *t,
                     const struct rec *r)
{
    const char *payload = (const char *)(r + 1);

    if (r->code < 0) {
        if (r->flags & REC_SPILL) {
            /* Messages always travel inline. */
            drop_spilled(w);
            jg__pp_task_fail(p, t, -EPROTO, "the worker's reply is "
                             "malformed: a spilled error");
            return;
        }
        char msg[MSG_MAX + 1];
        size_t n = r->len < MSG_MAX ? r->len : MSG_MAX;
        memcpy(msg, payload, n);
        msg[n] = '\0';
        jg__pp_task_fail(p, t, r->code, msg);
        return;
    }
    if (!(r->flags & REC_SPILL)) {
        jg_future_set_bytes(t->f, payload, r->len);
        jg__pp_task_free(p, t);
        return;
    }
    char *buf;
    const char *why;
    int rc = read_spilled(w, r, &buf, &why);
    if (rc < 0) {
        jg__pp_task_fail(p, t, rc, why);
        return;
    }
    jg__future_set_owned(t->f, buf, (size_t)r->len);
    jg__pp_task_free(p, t);
}

void jg__pp_set_broken(struct pool *p, int code, const char *msg, size_t n)
{
    if (p->broken)
        return;
    p->broken = code < 0 ? code : -ECHILD;
    int k = snprintf(p->broken_msg, sizeof(p->broken_msg),
                     "worker initializer '%s' failed: ", p->init_task);
    if (k < 0)
        k = 0;
    size_t room = sizeof(p->broken_msg) - (size_t)k - 1;
    if (n > room)
        n = room;
    memcpy(p->broken_msg + k, msg, n);
    p->broken_msg[(size_t)k + n] = '\0';
}

bool jg__pp_drain(struct pool *p, struct worker *w)
{
    bool progress = false, bad = false;
    uint64_t tail = w->rep_tail;
    struct rec *r;

    while ((r = jg__pp_ring_peek(&w->pg->rep, jg__pp_rep_buf(w->pg), &tail,
                                 &bad))) {
        if (r->kind != REC_REPLY) {
            bad = true;
            break;
        }
        if (r->id == 0) {
            /* The initializer's reply; its bytes, if any, are dropped. */
            bool spilled = r->flags & REC_SPILL;
            if (spilled)
                drop_spilled(w);
            if (r->code < 0)
                jg__pp_set_broken(p, r->code, (const char *)(r + 1),
                                  spilled ? 0
                                          : r->len < MSG_MAX ? r->len
                                                             : MSG_MAX);
            else
                w->inited = true;
        } else {
            struct ptask *t = jg__pp_tq_first(&w->flight);
            if (!t || t->id != r->id) {
                bad = true;
                break;
            }
            jg__pp_tq_pop(&w->flight);
            /* The run time steers how deep each worker's queue is. */
            int64_t ns = r->ns > 0 ? r->ns : 0;
            p->avg_ns = p->avg_ns ? (p->avg_ns * 7 + ns) / 8 : ns + 1;
            complete(p, w, t, r);
        }
        tail += r->size;
        progress = true;
    }
    if (progress) {
        w->rep_tail = tail;
        atomic_store_explicit(&w->pg->rep.tail, tail, memory_order_release);
    }
    if (bad)
        jg__pp_kill_worker(w);         /* it wrote garbage: replace it */
    return progress;
}
