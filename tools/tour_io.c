/* SPDX-License-Identifier: MIT */
/*
 * tour_io.c - part 1 of the tour, the seeds' downloader: N downloads from
 * the delay server done sequentially, by OS threads, a thread pool, a
 * process pool, green threads (jg_ I/O, and plain blocking code under the
 * preload library) and the callback loop. Every download's body length is
 * checked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <juggle.h>

#include "tour.h"

/* At most this many downloads in flight for the concurrent approaches. */
#define MAX_INFLIGHT 1000

static int port, nreq;
static long long *got;          /* body bytes (or -errno) per request */
static _Atomic int next_idx;

/* ---- plain blocking workers ------------------------------------------------ */

static void *thread_worker(void *arg)
{
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&next_idx, 1);
        if (i >= nreq)
            return NULL;
        tour_inflight_enter();
        got[i] = http_get_blocking(port, i);
        tour_inflight_leave();
    }
}

static void *pool_call(void *arg)
{
    int i = (int)(intptr_t)arg;
    tour_inflight_enter();
    got[i] = http_get_blocking(port, i);
    tour_inflight_leave();
    return NULL;
}

/* The process pool's task: input {port, idx}, output the body length. */
static int get_task(const void *in, size_t n, struct jg_task_out *out)
{
    int32_t a[2];
    if (n != sizeof(a))
        return -EINVAL;
    memcpy(a, in, sizeof(a));
    long long r = http_get_blocking(a[0], a[1]);
    return jg_task_out_write(out, &r, sizeof(r));
}
JG_TASK("tour.get", get_task)

/* ---- green threads ----------------------------------------------------------- */

static long long get_green(int idx)
{
    char buf[4096];
    struct http_resp r;
    long long rc;
    int fd = jg_tcp_dial("127.0.0.1", port, JG_SEC(30));

    if (fd < 0)
        return fd;
    size_t len = http_request(buf, sizeof(buf), idx, false);
    rc = jg_write(fd, buf, len, NULL, JG_SEC(30));
    if (rc < 0)
        goto out;
    http_resp_init(&r);
    for (;;) {
        ssize_t n = jg_read(fd, buf, sizeof(buf), JG_SEC(30));
        if (n <= 0) {
            rc = n < 0 ? n : -EPIPE;
            goto out;
        }
        int d = http_resp_feed(&r, buf, (size_t)n);
        if (d < 0) {
            rc = d;
            goto out;
        }
        if (d)
            break;
    }
    rc = r.status == 200 ? r.body : -EPROTO;
out:
    jg_close(fd);
    return rc;
}

/* One green worker: take the next index until none is left. No atomics: all
 * green threads of a hub run on one OS thread. */
static void *green_worker(void *arg)
{
    bool plain = arg != NULL;
    for (;;) {
        int i = atomic_load_explicit(&next_idx, memory_order_relaxed);
        if (i >= nreq)
            return NULL;
        atomic_store_explicit(&next_idx, i + 1, memory_order_relaxed);
        tour_inflight_enter();
        got[i] = plain ? http_get_blocking(port, i) : get_green(i);
        tour_inflight_leave();
    }
}

static int run_green(bool plain)
{
    int n = nreq < MAX_INFLIGHT ? nreq : MAX_INFLIGHT;
    struct jg_green **g = calloc((size_t)n, sizeof(*g));

    if (!g)
        return -ENOMEM;
    for (int k = 0; k < n; k++) {
        int rc = jg_spawn(&g[k], green_worker, plain ? (void *)1 : NULL, NULL);
        if (rc < 0)
            tour_fail("jg_spawn", rc);
    }
    for (int k = 0; k < n; k++)
        jg_join(g[k], NULL, JG_FOREVER);
    free(g);
    return 0;
}

/* ---- the callback loop --------------------------------------------------------- */

enum { CONNECTING, SENDING, RECEIVING };

struct dl {
    struct jg_io w;             /* first: the callback gets &dl->w */
    int idx, state;
    size_t sent, len;
    char req[128];
    struct http_resp r;
};

static void dl_cb(struct jg_io *w, uint32_t revents);

/* Start download idx on d: a non-blocking connect, then wait writable. */
static int dl_start(struct dl *d, int idx)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
        errno != EINPROGRESS) {
        int e = -errno;
        close(fd);
        return e;
    }
    d->idx = idx;
    d->state = CONNECTING;
    tour_inflight_enter();
    d->sent = 0;
    d->len = http_request(d->req, sizeof(d->req), idx, false);
    http_resp_init(&d->r);
    jg_io_init(&d->w, dl_cb, fd, JG_WRITE);
    return jg_io_start(jg_loop_default(), &d->w);
}

/* Record the outcome, close, and go on with the next index if any. */
static void dl_finish(struct dl *d, long long result)
{
    got[d->idx] = result;
    jg_io_stop(&d->w);
    jg_close(d->w.fd);
    tour_inflight_leave();
    int i = atomic_load_explicit(&next_idx, memory_order_relaxed);
    if (i >= nreq)
        return;
    atomic_store_explicit(&next_idx, i + 1, memory_order_relaxed);
    int rc = dl_start(d, i);
    if (rc < 0)
        got[i] = rc;
}

static void dl_cb(struct jg_io *w, uint32_t revents)
{
    struct dl *d = (struct dl *)w;
    char buf[4096];

    (void)revents;
    if (d->state == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            dl_finish(d, -err);
            return;
        }
        d->state = SENDING;
    }
    if (d->state == SENDING) {
        ssize_t n = send(w->fd, d->req + d->sent, d->len - d->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN)
                dl_finish(d, -errno);
            return;
        }
        d->sent += (size_t)n;
        if (d->sent < d->len)
            return;
        d->state = RECEIVING;
        jg_io_set(w, JG_READ);
        return;
    }
    for (;;) {
        ssize_t n = recv(w->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            dl_finish(d, n < 0 ? -errno : -EPIPE);
            return;
        }
        int done = http_resp_feed(&d->r, buf, (size_t)n);
        if (done < 0 || (done && d->r.status != 200)) {
            dl_finish(d, -EPROTO);
            return;
        }
        if (done) {
            dl_finish(d, d->r.body);
            return;
        }
    }
}

static int run_loop(void)
{
    int n = nreq < MAX_INFLIGHT ? nreq : MAX_INFLIGHT;
    struct dl *d = calloc((size_t)n, sizeof(*d));

    if (!d)
        return -ENOMEM;
    atomic_store(&next_idx, n);
    for (int k = 0; k < n; k++) {
        int rc = dl_start(&d[k], k);
        if (rc < 0)
            got[k] = rc;
    }
    /* Returns once every watcher has stopped: all downloads are done. */
    int rc = jg_loop_run(jg_loop_default(), JG_RUN_DEFAULT);
    free(d);
    return rc < 0 ? rc : 0;
}

/* ---- the approaches ------------------------------------------------------------- */

static int run_threads(int nthreads)
{
    pthread_t *t = calloc((size_t)nthreads, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (int k = 0; k < nthreads; k++)
        if (pthread_create(&t[k], NULL, thread_worker, NULL) != 0)
            tour_fail("pthread_create", -EAGAIN);
    for (int k = 0; k < nthreads; k++)
        pthread_join(t[k], NULL);
    free(t);
    return 0;
}

static int run_pool(int workers)
{
    struct jg_thread_pool_opts po = { .workers = workers };
    struct jg_executor *ex;
    struct jg_future **f = calloc((size_t)nreq, sizeof(*f));
    int rc = jg_thread_pool_create(&ex, &po);

    if (rc < 0 || !f)
        tour_fail("jg_thread_pool_create", rc < 0 ? rc : -ENOMEM);
    for (int i = 0; i < nreq; i++) {
        rc = jg_executor_call(ex, &f[i], pool_call, (void *)(intptr_t)i);
        if (rc < 0)
            tour_fail("jg_executor_call", rc);
    }
    for (int i = 0; i < nreq; i++) {
        rc = jg_future_result(f[i], NULL, JG_FOREVER);
        if (rc < 0)
            got[i] = rc;
        jg_future_unref(f[i]);
    }
    jg_executor_destroy(ex);
    free(f);
    return 0;
}

static int run_procpool(int workers)
{
    struct jg_process_pool_opts po = { .workers = workers };
    struct jg_executor *ex;
    struct jg_future **f = calloc((size_t)nreq, sizeof(*f));
    int rc = jg_process_pool_create(&ex, &po);

    if (rc < 0 || !f)
        tour_fail("jg_process_pool_create", rc < 0 ? rc : -ENOMEM);
    for (int i = 0; i < nreq; i++) {
        int32_t a[2] = { port, i };
        rc = jg_executor_submit(ex, &f[i], "tour.get", a, sizeof(a));
        if (rc < 0)
            tour_fail("jg_executor_submit", rc);
    }
    for (int i = 0; i < nreq; i++) {
        const void *p;
        size_t n;
        rc = jg_future_bytes(f[i], &p, &n, JG_FOREVER);
        if (rc < 0)
            got[i] = rc;
        else if (n == sizeof(long long))
            memcpy(&got[i], p, n);
        jg_future_unref(f[i]);
    }
    jg_executor_destroy(ex);
    free(f);
    /* Every worker's peak counts: this process plus workers x the largest
     * (getrusage reports only the largest reaped child). */
    tour_put("mem_kb", "%ld", tour_maxrss_self() +
             (long)workers * tour_maxrss_children());
    return 0;
}

int tour_io_child(const struct tour_opts *o, const char *approach)
{
    int rc, workers = o->workers ? o->workers : tour_ncpu();

    port = o->port;
    nreq = o->requests;
    got = calloc((size_t)nreq, sizeof(*got));
    if (!got)
        tour_fail("calloc", -ENOMEM);
    for (int i = 0; i < nreq; i++)
        got[i] = -EINPROGRESS;
    if (strcmp(approach, "green-preload") == 0) {
        const char *lp = getenv("LD_PRELOAD");
        if (!lp || !strstr(lp, "juggle_preload"))
            tour_fail("the preload library is not in LD_PRELOAD", 0);
    }

    double t0 = tour_now();
    if (strcmp(approach, "sequential") == 0)
        rc = (thread_worker(NULL), 0);
    else if (strcmp(approach, "threads") == 0)
        rc = run_threads(5);
    else if (strcmp(approach, "pool") == 0)
        rc = run_pool(32);
    else if (strcmp(approach, "procpool") == 0)
        rc = run_procpool(workers);
    else if (strcmp(approach, "green") == 0)
        rc = run_green(false);
    else if (strcmp(approach, "green-preload") == 0)
        rc = run_green(true);
    else if (strcmp(approach, "loop") == 0)
        rc = run_loop();
    else
        tour_fail("unknown approach", 0);
    double wall = tour_now() - t0;
    if (rc < 0)
        tour_fail(approach, rc);

    for (int i = 0; i < nreq; i++)
        if (got[i] != o->body_bytes) {
            char what[96];
            snprintf(what, sizeof(what), "download %d got %lld bytes", i,
                     got[i]);
            tour_fail(what, got[i] < 0 ? (int)got[i] : 0);
        }
    /* How many downloads were in flight at once: the concurrency, by
     * count (the process pool's run in its workers: not counted). */
    if (tour_inflight_peak() > 0)
        tour_put("peak", "%d", tour_inflight_peak());
    tour_put("wall_s", "%.6f", wall);
    tour_put("ok", "1");
    return 0;
}
