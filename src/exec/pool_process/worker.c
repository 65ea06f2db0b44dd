/* SPDX-License-Identifier: MIT */
/*
 * pool_process/worker.c - the worker process: it reads requests from its
 * request ring, runs each task and writes the reply to its reply ring,
 * spinning briefly and then sleeping on a shared futex while the ring is
 * empty. It exits (_exit) when asked, when retired after max_tasks, when
 * its initializer fails, or when its parent is gone.
 */
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "forkserver.h"
#include "pool_process.h"
#include "sys.h"

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
        int fd = jg__pp_spill(p, n);
        if (fd >= 0 && jg__pp_send_fd(ws->sock, fd) == 0) {
            flags = REC_SPILL;
        } else {
            code = fd < 0 ? fd : -EIO;
            p = "result could not be sent to the parent";
            n = strlen(p);
        }
        if (fd >= 0)
            jg__sys_close(fd);
    }
    uint64_t size = sizeof(struct rec) + (flags ? 0 : jg__pp_pad8(n));
    struct rec *r;
    while (!(r = jg__pp_ring_reserve(&ws->pg->rep, jg__pp_rep_buf(ws->pg),
                                     &ws->rep_head, size))) {
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
    jg__pp_ring_publish(&ws->pg->rep, ws->rep_head);
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
    const char *in = (const char *)(r + 1) + jg__pp_pad8(r->namelen);
    void *map = NULL;
    size_t len = r->len;
    int code;

    if (r->namelen == 0 || r->namelen > 4096 ||
        name[r->namelen - 1] != '\0') {
        put_reply(ws, r->id, -EPROTO, "bad request", 11, 0);
        return true;
    }
    if (r->flags & REC_SPILL) {
        int fd = jg__pp_recv_fd(ws->sock, false);
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

void jg__pp_worker_main(const int *fds, int nfds)
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
        struct rec *r = jg__pp_ring_peek(&ws.pg->req, jg__pp_req_buf(ws.pg),
                                         &ws.req_tail, &bad);
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
