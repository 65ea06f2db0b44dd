/* SPDX-License-Identifier: MIT */
/*
 * pool_process.h - what the files of the process pool share. Worker
 * processes are started through the fork server (or re-exec), fed by one
 * manager thread over per-worker shared-memory rings (one SPSC request ring
 * and one reply ring each), each worker watched by its own pidfd.
 * Invariant: a task is in exactly one place - the submission inbox, the
 * manager's pending list, or one worker's in-flight list - so a worker's
 * death fails only the task it was running (cur_id in its shared page) and
 * sends the rest back to pending.
 *   ring.c      the rings' records, and the fds that travel beside them
 *   worker.c    the worker process
 *   dispatch.c  the manager's traffic: requests out, replies in
 *   manager.c   the manager thread: workers started, watched, replaced
 *   pool.c      the executor: create, submit, shut down, destroy
 */
#ifndef JG_POOL_PROCESS_H
#define JG_POOL_PROCESS_H

#include <pthread.h>
#include <sys/types.h>

#include "executor.h"

/* Bytes per ring (a power of two); records above INLINE_MAX spill. */
#define RING_CAP    (256u << 10)
#define INLINE_MAX  (RING_CAP / 8)
#define PAGE_HDR    4096u
#define REGION_SIZE (PAGE_HDR + 2u * RING_CAP)
#define MAX_DEPTH   256         /* tasks in flight per worker, at most */
#define MSG_MAX     1024        /* error messages are cut here */

enum { REC_TASK = 1, REC_INIT = 2, REC_REPLY = 3, REC_WRAP = 0x7777 };
enum { REC_SPILL = 1 };         /* payload travels as a memfd on the socket */

/*
 * One record in a ring: header, then (requests) the task name padded to 8,
 * then the payload padded to 8. size covers it all and is a multiple of 8.
 */
struct rec {
    uint32_t size;
    uint16_t kind;
    uint16_t flags;
    uint64_t id;                /* the manager's task id; 0 for INIT */
    uint32_t namelen;           /* requests: name bytes with the NUL */
    int32_t code;               /* replies: 0 or -errno */
    uint64_t len;               /* payload bytes */
    int64_t ns;                 /* replies: how long the task ran */
};

struct ring {
    _Atomic uint64_t head;      /* producer's position (bytes, ever-growing) */
    char pad1[56];
    _Atomic uint64_t tail;      /* consumer's position */
    char pad2[56];
};

/* The header page of a worker's shared region; the rings follow it. */
struct wpage {
    struct ring req, rep;
    /* Futex words are in MAP_SHARED memory: never FUTEX_PRIVATE. */
    _Atomic uint32_t w_sleep;   /* 1: the worker sleeps on it */
    _Atomic uint32_t m_sleep;   /* 1: the manager sleeps; kick its eventfd */
    _Atomic uint32_t stop;      /* the manager asks the worker to exit */
    uint32_t max_tasks;         /* exit after this many tasks (0: never) */
    _Atomic uint64_t cur_id;    /* the task running now, 0 between tasks */
    _Atomic int64_t cur_start;  /* when it started (CLOCK_MONOTONIC ns) */
};
_Static_assert(sizeof(struct wpage) <= PAGE_HDR, "wpage fits its page");

static inline char *jg__pp_req_buf(struct wpage *pg)
{
    return (char *)pg + PAGE_HDR;
}

static inline char *jg__pp_rep_buf(struct wpage *pg)
{
    return (char *)pg + PAGE_HDR + RING_CAP;
}

static inline uint64_t jg__pp_pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* Publish everything up to head; seq_cst pairs with the sleeper's flag. */
static inline void jg__pp_ring_publish(struct ring *r, uint64_t head)
{
    atomic_store_explicit(&r->head, head, memory_order_seq_cst);
}

/* ---- ring.c ---- */

JG_HIDDEN struct rec *jg__pp_ring_reserve(struct ring *r, char *buf,
                                          uint64_t *head, uint64_t size);
JG_HIDDEN struct rec *jg__pp_ring_peek(struct ring *r, char *buf,
                                       uint64_t *tail, bool *bad);
JG_HIDDEN int jg__pp_send_fd(int sock, int fd);
JG_HIDDEN int jg__pp_recv_fd(int sock, bool nonblock);
JG_HIDDEN int jg__pp_spill(const void *p, size_t n);

/* ---- worker.c ---- */

/* The worker process's entry (fds: its region's memfd, its socket, the
 * manager's eventfd); it never returns. */
JG_HIDDEN _Noreturn void jg__pp_worker_main(const int *fds, int nfds);

/* ---- the parent's state (dispatch.c, manager.c, pool.c) ---- */

struct ptask {
    struct ptask *next;         /* the inbox (a lock-free stack) */
    struct jg__list link;       /* then on pending or one flight list */
    struct jg_future *f;
    uint64_t id;
    bool running;               /* set_running done (re-queued after death) */
    int64_t sent_ns;            /* when it went to a worker */
    size_t n;                   /* payload bytes */
    uint32_t namelen;
    char data[];                /* name, padded to 8, then payload */
};

/* A FIFO of ptasks (manager only): the library's list, with a count. */
struct tq {
    struct jg__list l;
    size_t n;
};

static inline void jg__pp_tq_init(struct tq *q)
{
    jg__list_init(&q->l);
    q->n = 0;
}

static inline struct ptask *jg__pp_tq_at(struct jg__list *e)
{
    return JG_CONTAINER_OF(e, struct ptask, link);
}

/* The oldest / newest task of q, or NULL. */
static inline struct ptask *jg__pp_tq_first(struct tq *q)
{
    return jg__list_empty(&q->l) ? NULL : jg__pp_tq_at(q->l.next);
}

static inline struct ptask *jg__pp_tq_last(struct tq *q)
{
    return jg__list_empty(&q->l) ? NULL : jg__pp_tq_at(q->l.prev);
}

static inline void jg__pp_tq_push(struct tq *q, struct ptask *t)
{
    jg__list_push_back(&q->l, &t->link);
    q->n++;
}

static inline void jg__pp_tq_push_front(struct tq *q, struct ptask *t)
{
    jg__list_push_front(&q->l, &t->link);
    q->n++;
}

static inline void jg__pp_tq_remove(struct tq *q, struct ptask *t)
{
    jg__list_remove(&t->link);
    q->n--;
}

static inline struct ptask *jg__pp_tq_pop(struct tq *q)
{
    struct ptask *t = jg__pp_tq_first(q);

    if (t)
        jg__pp_tq_remove(q, t);
    return t;
}

struct worker {
    int idx;
    bool alive;
    pid_t pid;
    int pidfd, sock;
    struct wpage *pg;
    uint64_t req_head, rep_tail;
    struct tq flight;           /* sent to it, in order */
    unsigned sent;              /* tasks sent in its life (max_tasks) */
    uint64_t killed_for;        /* the task id we timed it out for */
    int64_t retry_at;           /* start failed: try again then */
    bool inited;                /* its initializer succeeded (or none) */
    bool wake;                  /* records published, worker maybe asleep */
};

struct pool {
    struct jg_executor ex;      /* first: the executor head */
    int nworkers;
    char *init_task;
    void *init_arg;
    size_t init_len;
    unsigned max_tasks;
    int64_t timeout_ns;
    struct worker *w;
    pthread_t mgr;
    int efd, epfd;
    /* Shared with submitters; every access is atomic. */
    _Atomic(struct ptask *) inbox;
    _Atomic uint32_t mgr_sleep;
    _Atomic long outstanding;   /* submitted and not yet completed */
    _Atomic bool shut;
    _Atomic bool cancel_req;
    struct jg_future *drained;  /* completed when shut and all are done */
    /* Manager only. */
    struct tq pending;
    uint64_t next_id;
    int64_t avg_ns;             /* EWMA of task run time */
    int broken;                 /* initializer failed: every task fails */
    char broken_msg[MSG_MAX];
    int start_failures;
};

/* ---- pool.c: the count of outstanding tasks ---- */

JG_HIDDEN void jg__pp_task_free(struct pool *p, struct ptask *t);
JG_HIDDEN void jg__pp_task_fail(struct pool *p, struct ptask *t, int code,
                                const char *msg);

/* ---- dispatch.c ---- */

JG_HIDDEN int jg__pp_write_request(struct pool *p, struct worker *w,
                                   int kind, uint64_t id, const char *name,
                                   uint32_t namelen, const void *in,
                                   size_t n);
JG_HIDDEN bool jg__pp_dispatch(struct pool *p);
JG_HIDDEN void jg__pp_kill_worker(struct worker *w);
JG_HIDDEN void jg__pp_set_broken(struct pool *p, int code, const char *msg,
                                 size_t n);
JG_HIDDEN bool jg__pp_drain(struct pool *p, struct worker *w);

/* ---- manager.c ---- */

/* The manager thread (arg: the pool); it returns once the pool is shut
 * down and every task is done. */
JG_HIDDEN void *jg__pp_manager(void *arg);

#endif
