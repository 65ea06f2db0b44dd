/* SPDX-License-Identifier: MIT */
/*
 * pool_process.c - the process pool: worker processes started through the
 * fork server (or re-exec), fed by one manager thread over per-worker
 * shared-memory rings (one SPSC request ring and one reply ring each), each
 * worker watched by its own pidfd. Invariant: a task is in exactly one
 * place - the submission inbox, the manager's pending list, or one worker's
 * in-flight list - so a worker's death fails only the task it was running
 * (cur_id in its shared page) and sends the rest back to pending.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "executor.h"
#include "forkserver.h"
#include "future.h"
#include "sys.h"

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

static inline char *req_buf(struct wpage *pg)
{
    return (char *)pg + PAGE_HDR;
}

static inline char *rep_buf(struct wpage *pg)
{
    return (char *)pg + PAGE_HDR + RING_CAP;
}

static inline uint64_t pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/*
 * Reserve size bytes (a multiple of 8, <= RING_CAP / 2) at the producer's
 * position *head; a record never wraps: the rest of the buffer is skipped
 * with a WRAP marker. Returns where to write, or NULL when the ring is full.
 */
static struct rec *ring_reserve(struct ring *r, char *buf, uint64_t *head,
                                uint64_t size)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t off = *head & (RING_CAP - 1);
    uint64_t to_end = RING_CAP - off;
    uint64_t need = to_end < size ? to_end + size : size;

    if (RING_CAP - (*head - tail) < need)
        return NULL;
    if (to_end < size) {
        struct rec *w = (struct rec *)(void *)(buf + off);
        w->size = (uint32_t)to_end; /* >= 8: room for size and kind */
        w->kind = REC_WRAP;
        *head += to_end;
        off = 0;
    }
    return (struct rec *)(void *)(buf + off);
}

/* Publish everything up to head; seq_cst pairs with the sleeper's flag. */
static inline void ring_publish(struct ring *r, uint64_t head)
{
    atomic_store_explicit(&r->head, head, memory_order_seq_cst);
}

/*
 * The record at the consumer's position *tail (skipping WRAP markers), or
 * NULL if none. A record from the other process is not trusted: sizes are
 * checked, and a bad one gives *bad = true.
 */
static struct rec *ring_peek(struct ring *r, char *buf, uint64_t *tail,
                             bool *bad)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);

    while (*tail != head) {
        uint64_t off = *tail & (RING_CAP - 1);
        struct rec *h = (struct rec *)(void *)(buf + off);
        uint32_t size = h->size;
        if (size < 8 || size % 8 || size > head - *tail ||
            size > RING_CAP - off) {
            *bad = true;
            return NULL;
        }
        if (h->kind == REC_WRAP) {
            *tail += size;
            continue;
        }
        if (size < sizeof(struct rec) ||
            (!(h->flags & REC_SPILL) && h->len > size - sizeof(struct rec))) {
            *bad = true;
            return NULL;
        }
        return h;
    }
    return NULL;
}

static int send_fd(int sock, int fd)
{
    char byte = 0;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = c.buf,
                         .msg_controllen = sizeof(c.buf) };

    memset(&c, 0, sizeof(c));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    for (;;) {
        if (jg__sys_sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* Receive one fd; nonblock for the manager (it was sent before the
 * record that announced it, so it is there unless the sender died). */
static int recv_fd(int sock, bool nonblock)
{
    char byte;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = c.buf,
                         .msg_controllen = sizeof(c.buf) };
    ssize_t n;

    do
        n = jg__sys_recvmsg(sock, &mh, MSG_CMSG_CLOEXEC |
                    (nonblock ? MSG_DONTWAIT : 0));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (n != 1 || !cm || cm->cmsg_type != SCM_RIGHTS)
        return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    return fd;
}

/* A memfd holding p[0..n): large payloads and results travel this way. */
static int spill(const void *p, size_t n)
{
    int fd = jg__sys_memfd_create("jg-spill", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < n) {
        ssize_t w = jg__sys_write(fd, (const char *)p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? -errno : -EIO;
            jg__sys_close(fd);
            return e;
        }
        done += (size_t)w;
    }
    return fd;
}

/* ====================================================================== */
/* The worker process                                                     */
/* ====================================================================== */

struct wstate {
    struct wpage *pg;
    int sock, efd;
    uint64_t req_tail, rep_head;
    pid_t parent;
    /* A one-entry cache of the last task name looked up. */
    char last_name[64];
    jg_task_fn last_fn;
    struct jg_task_out out;
};

/* Tell the manager a reply is there, if it sleeps. */
static void kick_manager(struct wstate *ws)
{
    if (atomic_load_explicit(&ws->pg->m_sleep, memory_order_seq_cst) &&
        atomic_exchange_explicit(&ws->pg->m_sleep, 0, memory_order_seq_cst)) {
        uint64_t one = 1;
        ssize_t n = jg__sys_write(ws->efd, &one, sizeof(one));
        (void)n;
    }
}

static jg_task_fn lookup(struct wstate *ws, const char *name)
{
    if (ws->last_fn && strcmp(ws->last_name, name) == 0)
        return ws->last_fn;
    jg_task_fn fn = jg_task_find(name);
    if (fn && strlen(name) < sizeof(ws->last_name)) {
        strcpy(ws->last_name, name);
        ws->last_fn = fn;
    }
    return fn;
}

/* Write a reply record; waits (nudging the manager) while the ring is full. */
static void put_reply(struct wstate *ws, uint64_t id, int code,
                      const void *p, size_t n, int64_t ns)
{
    uint16_t flags = 0;

    if (n > INLINE_MAX) {
        int fd = spill(p, n);
        if (fd >= 0 && send_fd(ws->sock, fd) == 0) {
            flags = REC_SPILL;
        } else {
            code = fd < 0 ? fd : -EIO;
            p = "result could not be sent to the parent";
            n = strlen(p);
        }
        if (fd >= 0)
            jg__sys_close(fd);
    }
    uint64_t size = sizeof(struct rec) + (flags ? 0 : pad8(n));
    struct rec *r;
    while (!(r = ring_reserve(&ws->pg->rep, rep_buf(ws->pg), &ws->rep_head,
                              size))) {
        /* The manager drains replies promptly; wake it and let it run. */
        uint64_t one = 1;
        ssize_t k = jg__sys_write(ws->efd, &one, sizeof(one));
        (void)k;
        struct timespec ts = { 0, 20000 };
        jg__sys_nanosleep(&ts, NULL);
    }
    r->kind = REC_REPLY;
    r->flags = flags;
    r->id = id;
    r->namelen = 0;
    r->code = code;
    r->len = n;
    r->ns = ns;
    if (!flags && n)
        memcpy(r + 1, p, n);
    r->size = (uint32_t)size;
    ws->rep_head += size;
    ring_publish(&ws->pg->rep, ws->rep_head);
    kick_manager(ws);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Run one request; returns false if the worker must exit (init failed). */
static bool run_request(struct wstate *ws, struct rec *r)
{
    const char *name = (const char *)(r + 1);
    const char *in = (const char *)(r + 1) + pad8(r->namelen);
    void *map = NULL;
    size_t len = r->len;
    int code;

    if (r->namelen == 0 || r->namelen > 4096 ||
        name[r->namelen - 1] != '\0') {
        put_reply(ws, r->id, -EPROTO, "bad request", 11, 0);
        return true;
    }
    if (r->flags & REC_SPILL) {
        int fd = recv_fd(ws->sock, false);
        if (fd < 0) {
            put_reply(ws, r->id, fd, "payload lost", 12, 0);
            return r->kind != REC_INIT;
        }
        if (len) {
            map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                int e = -errno;
                jg__sys_close(fd);
                put_reply(ws, r->id, e, "payload could not be mapped", 27,
                          0);
                return r->kind != REC_INIT;
            }
        }
        jg__sys_close(fd);
        in = map;
    }

    jg_task_fn fn = lookup(ws, name);
    int64_t t0 = mono_ns();
    /* Publish the start for the manager's timeout and death accounting:
     * the time first, then the id (release), which it reads first. */
    atomic_store_explicit(&ws->pg->cur_start, t0, memory_order_relaxed);
    atomic_store_explicit(&ws->pg->cur_id, r->id, memory_order_release);
    ws->out.len = 0;
    if (fn) {
        code = fn(in, len, &ws->out);
    } else {
        code = -ENOENT;
        free(ws->out.msg);
        ws->out.msg = NULL;
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown task '%s'", name);
        ws->out.msg = strdup(msg);
    }
    int64_t ns = mono_ns() - t0;
    if (map)
        munmap(map, len);
    if (code < 0) {
        const char *m = ws->out.msg ? ws->out.msg : "";
        size_t ml = strlen(m);
        put_reply(ws, r->id, code, m, ml < MSG_MAX ? ml : MSG_MAX, ns);
    } else if (r->kind == REC_INIT) {
        /* An initializer's bytes go nowhere: sending them would only
         * cost a spill. */
        put_reply(ws, r->id, 0, NULL, 0, ns);
    } else {
        put_reply(ws, r->id, 0, ws->out.p, ws->out.len, ns);
    }
    free(ws->out.msg);
    ws->out.msg = NULL;
    atomic_store_explicit(&ws->pg->cur_id, 0, memory_order_release);
    return !(r->kind == REC_INIT && code < 0);
}

void jg__pool_worker_main(const int *fds, int nfds)
{
    struct wstate ws;
    struct stat st;
    unsigned done = 0, spins = 0;

    memset(&ws, 0, sizeof(ws));
    if (nfds != 3 || fstat(fds[0], &st) < 0 || st.st_size != REGION_SIZE)
        _exit(126);
    ws.pg = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                 fds[0], 0);
    if (ws.pg == MAP_FAILED)
        _exit(126);
    jg__sys_close(fds[0]);
    ws.sock = fds[1];
    ws.efd = fds[2];
    ws.parent = getppid();
    jg__task_out_init(&ws.out);

    for (;;) {
        bool bad = false;
        struct rec *r = ring_peek(&ws.pg->req, req_buf(ws.pg), &ws.req_tail,
                                  &bad);
        if (bad)
            _exit(125);
        if (r) {
            bool is_task = r->kind == REC_TASK;
            bool ok = run_request(&ws, r);
            ws.req_tail += r->size;
            atomic_store_explicit(&ws.pg->req.tail, ws.req_tail,
                                  memory_order_release);
            if (!ok)
                _exit(0);
            if (is_task && ws.pg->max_tasks && ++done >= ws.pg->max_tasks)
                _exit(0);       /* retired; the manager starts another */
            spins = 0;
            continue;
        }
        if (atomic_load_explicit(&ws.pg->stop, memory_order_acquire))
            _exit(0);
        /* Spin briefly: at high rates the next request is microseconds
         * away and a futex round trip costs more. */
        if (++spins < 200) {
            jg__cpu_relax();
            continue;
        }
        if (spins < 220) {
            sched_yield();
            continue;
        }
        /* Sleep: announce it, re-check (seq_cst pairs with the manager's
         * publish then load), then wait; a 1 s timeout checks the parent. */
        atomic_store_explicit(&ws.pg->w_sleep, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&ws.pg->req.head, memory_order_seq_cst) !=
                ws.req_tail ||
            atomic_load_explicit(&ws.pg->stop, memory_order_seq_cst)) {
            atomic_store_explicit(&ws.pg->w_sleep, 0, memory_order_relaxed);
            continue;
        }
        int rc = jg__futex_wait_shared(&ws.pg->w_sleep, 1, JG_SEC(1));
        if (rc == -ETIMEDOUT && getppid() != ws.parent)
            _exit(0);
        spins = 0;
    }
}

/* ====================================================================== */
/* The parent: pool, manager thread                                       */
/* ====================================================================== */

struct ptask {
    struct ptask *next;         /* the inbox (a stack), then pending/flight */
    struct ptask *prev;
    struct jg_future *f;
    uint64_t id;
    bool running;               /* set_running done (re-queued after death) */
    int64_t sent_ns;            /* when it went to a worker */
    size_t n;                   /* payload bytes */
    uint32_t namelen;
    char data[];                /* name, padded to 8, then payload */
};

/* A FIFO of ptasks (manager only). */
struct tq {
    struct ptask *head, *tail;
    size_t n;
};

static void tq_push(struct tq *q, struct ptask *t)
{
    t->next = NULL;
    t->prev = q->tail;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    q->n++;
}

static void tq_push_front(struct tq *q, struct ptask *t)
{
    t->prev = NULL;
    t->next = q->head;
    if (q->head)
        q->head->prev = t;
    else
        q->tail = t;
    q->head = t;
    q->n++;
}

static struct ptask *tq_pop(struct tq *q)
{
    struct ptask *t = q->head;
    if (!t)
        return NULL;
    q->head = t->next;
    if (q->head)
        q->head->prev = NULL;
    else
        q->tail = NULL;
    q->n--;
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

static void wake_manager(struct pool *p)
{
    uint64_t one = 1;
    ssize_t n = jg__sys_write(p->efd, &one, sizeof(one));
    (void)n;
}

/* ---- completing tasks (manager) ---- */

static void task_free(struct pool *p, struct ptask *t)
{
    jg_future_unref(t->f);
    free(t);
    /* seq_cst: pairs with submit's increment-then-check of shut. */
    atomic_fetch_sub_explicit(&p->outstanding, 1, memory_order_seq_cst);
}

static void task_fail(struct pool *p, struct ptask *t, int code,
                      const char *msg)
{
    jg_future_set_error(t->f, code, msg);
    task_free(p, t);
}

/* ---- starting and stopping workers (manager) ---- */

static int write_request(struct pool *p, struct worker *w, int kind,
                         uint64_t id, const char *name, uint32_t namelen,
                         const void *in, size_t n);

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
        rc = write_request(p, w, REC_INIT, 0, p->init_task,
                           (uint32_t)strlen(p->init_task) + 1, p->init_arg,
                           p->init_len);
        if (rc < 0)
            goto err_sock;
        ring_publish(&w->pg->req, w->req_head);
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

/* ---- dispatch (manager) ---- */

static int write_request(struct pool *p, struct worker *w, int kind,
                         uint64_t id, const char *name, uint32_t namelen,
                         const void *in, size_t n)
{
    uint16_t flags = n > INLINE_MAX ? REC_SPILL : 0;
    uint64_t size = sizeof(struct rec) + pad8(namelen) +
                    (flags ? 0 : pad8(n));
    uint64_t head = w->req_head;
    (void)p;

    struct rec *r = ring_reserve(&w->pg->req, req_buf(w->pg), &head, size);
    if (!r)
        return -EAGAIN;
    if (flags) {
        /* The fd goes first: when the worker sees the record, its fd is
         * already queued on the socket. */
        int fd = spill(in, n);
        if (fd < 0)
            return fd;
        int rc = send_fd(w->sock, fd);
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
        memcpy((char *)(r + 1) + pad8(namelen), in, n);
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

static bool dispatch(struct pool *p)
{
    bool progress = false;
    unsigned dmax = depth(p);
    int64_t now = 0;

    while (p->pending.head) {
        struct ptask *t = p->pending.head;
        if (p->broken) {
            tq_pop(&p->pending);
            task_fail(p, t, p->broken, p->broken_msg);
            progress = true;
            continue;
        }
        struct worker *w = pick(p, dmax);
        if (!w)
            break;
        /* RUNNING from here: a cancel after this point is -EBUSY. */
        if (!t->running) {
            if (jg_future_set_running(t->f) < 0) {
                tq_pop(&p->pending);
                task_free(p, t);        /* cancelled while queued */
                progress = true;
                continue;
            }
            t->running = true;
        }
        uint64_t id = ++p->next_id;
        int rc = write_request(p, w, REC_TASK, id, t->data, t->namelen,
                               t->data + pad8(t->namelen), t->n);
        if (rc == -EAGAIN) {
            /* This worker's ring is full: take it out of this round. */
            dmax = (unsigned)w->flight.n;
            if (dmax == 0)
                break;
            continue;
        }
        tq_pop(&p->pending);
        progress = true;
        if (rc < 0) {
            task_fail(p, t, rc, "the payload could not be sent to a worker");
            continue;
        }
        if (!now && p->timeout_ns)
            now = jg_now();
        t->id = id;
        t->sent_ns = now;
        tq_push(&w->flight, t);
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
        ring_publish(&w->pg->req, w->req_head);
        if (atomic_load_explicit(&w->pg->w_sleep, memory_order_seq_cst) &&
            atomic_exchange_explicit(&w->pg->w_sleep, 0,
                                     memory_order_seq_cst))
            jg__futex_wake_shared(&w->pg->w_sleep, 1);
    }
    return progress;
}

/* ---- replies (manager) ---- */

static void kill_worker(struct worker *w)
{
    syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

/* Take and close the fd a spilled reply announced, if it is there. */
static void drop_spilled(struct worker *w)
{
    int fd = recv_fd(w->sock, true);
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
    int fd = recv_fd(w->sock, true);

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
 * Complete t from its reply r. ring_peek checked that r's inline bytes lie
 * inside the record; a spilled result is checked by read_spilled. A reply
 * that breaks the protocol fails this task only (-EPROTO): the ring itself
 * is intact, so the worker goes on with the next one.
 */
static void complete(struct pool *p, struct worker *w, struct ptask *t,
                     const struct rec *r)
{
    const char *payload = (const char *)(r + 1);

    if (r->code < 0) {
        if (r->flags & REC_SPILL) {
            /* Messages always travel inline. */
            drop_spilled(w);
            task_fail(p, t, -EPROTO, "the worker's reply is malformed: a "
                      "spilled error");
            return;
        }
        char msg[MSG_MAX + 1];
        size_t n = r->len < MSG_MAX ? r->len : MSG_MAX;
        memcpy(msg, payload, n);
        msg[n] = '\0';
        task_fail(p, t, r->code, msg);
        return;
    }
    if (!(r->flags & REC_SPILL)) {
        jg_future_set_bytes(t->f, payload, r->len);
        task_free(p, t);
        return;
    }
    char *buf;
    const char *why;
    int rc = read_spilled(w, r, &buf, &why);
    if (rc < 0) {
        task_fail(p, t, rc, why);
        return;
    }
    jg__future_set_owned(t->f, buf, (size_t)r->len);
    task_free(p, t);
}

static void set_broken(struct pool *p, int code, const char *msg, size_t n)
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

static bool drain(struct pool *p, struct worker *w)
{
    bool progress = false, bad = false;
    uint64_t tail = w->rep_tail;
    struct rec *r;

    while ((r = ring_peek(&w->pg->rep, rep_buf(w->pg), &tail, &bad))) {
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
                set_broken(p, r->code, (const char *)(r + 1),
                           spilled ? 0 : r->len < MSG_MAX ? r->len : MSG_MAX);
            else
                w->inited = true;
        } else {
            struct ptask *t = w->flight.head;
            if (!t || t->id != r->id) {
                bad = true;
                break;
            }
            tq_pop(&w->flight);
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
        kill_worker(w);         /* it wrote garbage: replace it */
    return progress;
}

/* ---- deaths and timeouts (manager) ---- */

static void worker_died(struct pool *p, struct worker *w)
{
    siginfo_t si;
    char msg[160];

    if (!w->alive)
        return;
    /* Replies it published before dying are good results. */
    drain(p, w);
    int rc = jg__child_reap(w->pidfd, true, &si);
    if (rc < 0)
        memset(&si, 0, sizeof(si));
    if (!w->inited) {
        /* Died inside its initializer: every replacement would too. */
        jg__describe_exit(msg, sizeof(msg), "", &si);
        set_broken(p, -ECHILD, msg, strlen(msg));
    }
    struct ptask *t = w->flight.head;
    uint64_t cur = atomic_load_explicit(&w->pg->cur_id, memory_order_acquire);
    if (t && t->id == cur) {
        /* The one task it held fails; the rest go back to pending. */
        tq_pop(&w->flight);
        if (w->killed_for == t->id) {
            snprintf(msg, sizeof(msg), "task timed out after %lld ms; "
                     "worker %d killed",
                     (long long)(p->timeout_ns / 1000000), (int)w->pid);
            task_fail(p, t, -ETIMEDOUT, msg);
        } else {
            jg__describe_exit(msg, sizeof(msg), "worker ", &si);
            task_fail(p, t, -ECHILD, msg);
        }
    }
    while ((t = w->flight.tail)) {
        w->flight.tail = t->prev;
        if (t->prev)
            t->prev->next = NULL;
        else
            w->flight.head = NULL;
        w->flight.n--;
        tq_push_front(&p->pending, t);
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
        struct ptask *t = w->flight.head;
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
            kill_worker(w);
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
        tq_push(&p->pending, rev);
        rev = nx;
    }
    return true;
}

static void cancel_pending(struct pool *p)
{
    struct tq keep = { NULL, NULL, 0 };
    struct ptask *t;

    while ((t = tq_pop(&p->pending))) {
        /* Re-queued tasks of a dead worker are RUNNING: they still run. */
        if (!t->running && jg_future_cancel(t->f) == 0)
            task_free(p, t);
        else
            tq_push(&keep, t);
    }
    p->pending = keep;
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
            kill_worker(w);
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

static void *manager(void *arg)
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
                progress |= drain(p, &p->w[i]);
        if (atomic_load_explicit(&p->cancel_req, memory_order_acquire) &&
            p->pending.head)
            cancel_pending(p);
        progress |= dispatch(p);
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

/* ---- the executor ops ---- */

static int psubmit(struct jg_executor *ex, const char *name, const void *in,
                   size_t n, struct jg_future *f)
{
    struct pool *p = (struct pool *)ex;
    size_t nl = strlen(name) + 1;

    if (nl > 4096 || (n && !in))
        return -EINVAL;
    if (!jg_task_find(name))
        return -ENOENT;
    struct ptask *t = malloc(sizeof(*t) + pad8(nl) + n);
    if (!t)
        return -ENOMEM;
    t->f = f;
    t->id = 0;
    t->running = false;
    t->n = n;
    t->namelen = (uint32_t)nl;
    memcpy(t->data, name, nl);
    if (n)
        memcpy(t->data + pad8(nl), in, n);
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

static int pshutdown(struct jg_executor *ex, bool wait, bool cancel)
{
    struct pool *p = (struct pool *)ex;

    if (cancel)
        atomic_store_explicit(&p->cancel_req, true, memory_order_seq_cst);
    atomic_store_explicit(&p->shut, true, memory_order_seq_cst);
    wake_manager(p);
    if (!wait)
        return 0;
    int rc = jg_future_result(p->drained, NULL, JG_FOREVER);
    return rc < 0 ? rc : 0;
}

static void pdestroy(struct jg_executor *ex)
{
    struct pool *p = (struct pool *)ex;

    (void)pshutdown(ex, false, false);
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
    rc = -pthread_create(&p->mgr, NULL, manager, p);
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
