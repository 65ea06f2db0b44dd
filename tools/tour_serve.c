/* SPDX-License-Identifier: MIT */
/*
 * tour_serve.c - parts 3 and 4 of the tour: a keep-alive "hello" server
 * holding many connections (green threads on sliced or dedicated stacks,
 * the callback loop, or an OS thread per connection), the load generator
 * that runs in its own process, and the weather-forecast server whose
 * periodic job (a blocking download plus CPU work) runs on the hub, on a
 * thread pool or on a process pool.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <unistd.h>

#include <juggle.h>

#include "tour.h"

static const char REPLY[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
#define REPLY_LEN (sizeof(REPLY) - 1)
static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
#define REQ_LEN (sizeof(REQ) - 1)

/* Server counters; atomics only for the thread-per-connection server. */
static _Atomic long alive, ready, served;
static int target;

/* Count the complete requests in buf[0..*have) and keep the rest. */
static int take_requests(char *buf, size_t *have)
{
    char *p = buf, *e;
    int n = 0;

    while ((e = memmem(p, *have - (size_t)(p - buf), "\r\n\r\n", 4))) {
        n++;
        p = e + 4;
    }
    *have -= (size_t)(p - buf);
    memmove(buf, p, *have);
    return n;
}

static void count_served(int n, bool *first)
{
    if (n <= 0)
        return;
    atomic_fetch_add_explicit(&served, n, memory_order_relaxed);
    if (*first) {
        *first = false;
        atomic_fetch_add_explicit(&ready, 1, memory_order_relaxed);
    }
}

/* ---- green-thread server ------------------------------------------------- */

static void *green_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    size_t have = 0;
    bool first = true;

    atomic_fetch_add_explicit(&alive, 1, memory_order_relaxed);
    for (;;) {
        ssize_t n = jg_read(fd, buf + have, sizeof(buf) - have, JG_FOREVER);
        if (n <= 0)
            break;
        have += (size_t)n;
        int k = take_requests(buf, &have);
        if (have == sizeof(buf))
            break;              /* a head larger than we serve */
        for (int i = 0; i < k; i++)
            if (jg_write(fd, REPLY, REPLY_LEN, NULL, JG_SEC(10)) < 0)
                goto out;
        count_served(k, &first);
    }
out:
    atomic_fetch_sub_explicit(&alive, 1, memory_order_relaxed);
    jg_close(fd);
    return NULL;
}

struct acceptor {
    int lfd;
    int model;
};

static void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    struct jg_spawn_opts so = { .stack_model = a->model };

    for (;;) {
        int fd = jg_accept(a->lfd, NULL, NULL, JG_FOREVER);
        if (fd == -ECANCELED)
            return NULL;
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (jg_spawn(NULL, green_conn, (void *)(intptr_t)fd, &so) < 0)
            jg_close(fd);
    }
}

/* ---- callback-loop server ----------------------------------------------- */

struct lconn {
    struct jg_io w;             /* first: callbacks get &c->w */
    bool first;
    size_t have, out;
    char buf[256];
    char pend[512];             /* replies the socket did not take yet */
};

static void lconn_close(struct lconn *c)
{
    jg_io_stop(&c->w);
    jg_close(c->w.fd);
    atomic_fetch_sub_explicit(&alive, 1, memory_order_relaxed);
    free(c);
}

/* Send what is pending; false if the connection failed. */
static bool lconn_flush(struct lconn *c)
{
    while (c->out) {
        ssize_t n = send(c->w.fd, c->pend, c->out, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN;
        memmove(c->pend, c->pend + n, c->out - (size_t)n);
        c->out -= (size_t)n;
    }
    return true;
}

static void lconn_cb(struct jg_io *w, uint32_t revents)
{
    struct lconn *c = (struct lconn *)w;

    if ((revents & JG_WRITE) && !lconn_flush(c))
        goto fail;
    if (revents & (JG_READ | JG_HUP | JG_ERROR)) {
        ssize_t n = recv(w->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            goto fail;
        if (n > 0) {
            c->have += (size_t)n;
            int k = take_requests(c->buf, &c->have);
            if (c->have == sizeof(c->buf))
                goto fail;
            for (int i = 0; i < k; i++) {
                if (c->out + REPLY_LEN > sizeof(c->pend))
                    goto fail;  /* a client that never reads */
                memcpy(c->pend + c->out, REPLY, REPLY_LEN);
                c->out += REPLY_LEN;
            }
            if (!lconn_flush(c))
                goto fail;
            count_served(k, &c->first);
        }
    }
    jg_io_set(w, c->out ? JG_READ | JG_WRITE : JG_READ);
    return;
fail:
    lconn_close(c);
}

static void laccept_cb(struct jg_io *w, uint32_t revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct lconn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->first = true;
        atomic_fetch_add_explicit(&alive, 1, memory_order_relaxed);
        jg_io_init(&c->w, lconn_cb, fd, JG_READ);
        if (jg_io_start(jg_loop_default(), &c->w) < 0)
            lconn_close(c);
    }
}

/* ---- thread-per-connection server ---------------------------------------- */

static void *thread_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    size_t have = 0;
    bool first = true;

    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        int k = take_requests(buf, &have);
        if (have == sizeof(buf))
            break;
        for (int i = 0; i < k; i++)
            if (send(fd, REPLY, REPLY_LEN, MSG_NOSIGNAL) != (ssize_t)REPLY_LEN)
                goto out;
        count_served(k, &first);
    }
out:
    atomic_fetch_sub_explicit(&alive, 1, memory_order_relaxed);
    close(fd);
    return NULL;
}

/* ---- the background job (part 4) ----------------------------------------- */

static int job_port;
static long long job_n;
static _Atomic uint64_t job_sink;

/* The forecast job as anyone would first write it: a blocking download,
 * then CPU work on what came back. */
static void *job_plain(void *arg)
{
    long long r = http_get_blocking(job_port, 0);
    uint64_t s = tour_sumsq((uint64_t)job_n + (uint64_t)(r > 0 ? 0 : 1));
    atomic_fetch_add_explicit(&job_sink, s, memory_order_relaxed);
    return arg;
}

static int job_task(const void *in, size_t n, struct jg_task_out *out)
{
    int64_t a[2];
    if (n != sizeof(a))
        return -EINVAL;
    memcpy(a, in, sizeof(a));
    job_port = (int)a[0];
    job_n = a[1];
    job_plain(NULL);
    uint64_t s = atomic_load(&job_sink);
    return jg_task_out_write(out, &s, sizeof(s));
}
JG_TASK("tour.job", job_task)

struct jobber {
    const char *mode;
    int64_t period;
    struct jg_executor *ex;
    int runs;
    double busy;
    bool stop;
};

static void *job_loop(void *arg)
{
    struct jobber *j = arg;

    while (!j->stop) {
        if (jg_sleep(j->period) < 0)
            return NULL;
        double t0 = tour_now();
        if (strcmp(j->mode, "hub") == 0) {
            job_plain(NULL);
        } else if (strcmp(j->mode, "threads") == 0) {
            struct jg_future *f;
            if (jg_executor_call(j->ex, &f, job_plain, NULL) == 0) {
                jg_future_result(f, NULL, JG_FOREVER);
                jg_future_unref(f);
            }
        } else {
            int64_t a[2] = { job_port, job_n };
            struct jg_future *f;
            if (jg_executor_submit(j->ex, &f, "tour.job", a, sizeof(a)) == 0) {
                jg_future_bytes(f, NULL, NULL, JG_FOREVER);
                jg_future_unref(f);
            }
        }
        j->busy += tour_now() - t0;
        j->runs++;
    }
    return NULL;
}

/* ---- the servers' main ------------------------------------------------------ */

/* Wait (green) until `target` connections were served once, measure, then
 * wait until they are all gone. Returns the RSS (KiB) at full count. */
static long green_wait_full(double limit_s)
{
    double t0 = tour_now();
    long rss = -1;

    for (;;) {
        jg_sleep(JG_MS(10));
        if (rss < 0 && atomic_load(&ready) >= target)
            rss = tour_rss_now();
        if (rss >= 0 && atomic_load(&alive) == 0)
            return rss;
        if (tour_now() - t0 > limit_s)
            tour_fail("the clients did not all connect and leave in time",
                      0);
    }
}

static int serve_threads(int lfd, long rss0)
{
    pthread_attr_t at;
    long rss = -1;
    double t0 = tour_now();

    pthread_attr_init(&at);
    /* The smallest stack that is still safe for this handler. */
    pthread_attr_setstacksize(&at, 64 * 1024);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (;;) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, 10) > 0) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                pthread_t t;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                atomic_fetch_add(&alive, 1);
                if (pthread_create(&t, &at, thread_conn,
                                   (void *)(intptr_t)fd) != 0) {
                    atomic_fetch_sub(&alive, 1);
                    close(fd);
                }
            }
        }
        if (rss < 0 && atomic_load(&ready) >= target)
            rss = tour_rss_now();
        if (rss >= 0 && atomic_load(&alive) == 0)
            break;
        if (tour_now() - t0 > 300)
            tour_fail("the clients did not all connect and leave in time", 0);
    }
    return (int)(rss - rss0);
}

struct lwait {
    struct jg_timer t;
    long rss;
    double t0;
};

static void lwait_cb(struct jg_timer *t)
{
    struct lwait *w = (struct lwait *)t;
    if (w->rss < 0 && atomic_load(&ready) >= target)
        w->rss = tour_rss_now();
    if (w->rss >= 0 && atomic_load(&alive) == 0)
        jg_loop_stop(jg_loop_default());
    if (tour_now() - w->t0 > 300)
        tour_fail("the clients did not all connect and leave in time", 0);
}

static void *nop(void *arg)
{
    return arg;
}

int tour_conns_server(const struct tour_opts *o, const char *approach)
{
    long delta;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    target = o->conns;
    int lfd = jg_tcp_listen("127.0.0.1", 0);
    if (lfd < 0)
        tour_fail("listen", lfd);
    /* Warm up what exists before the first connection (hub, loop, the
     * shared stack), so the growth is the connections' own. */
    struct jg_spawn_opts so = { .stack_model = JG_STACK_SLICED };
    struct jg_green *g;
    if (jg_spawn(&g, nop, NULL, &so) == 0)
        jg_join(g, NULL, JG_FOREVER);
    long rss0 = tour_rss_now();
    tour_put("port", "%d", jg_sock_port(lfd));

    if (strcmp(approach, "green-sliced") == 0 ||
        strcmp(approach, "green-dedicated") == 0) {
        struct acceptor a = { lfd, approach[6] == 's' ? JG_STACK_SLICED
                                                      : JG_STACK_DEDICATED };
        struct jg_green *acc;
        int rc = jg_spawn(&acc, accept_loop, &a, NULL);
        if (rc < 0)
            tour_fail("jg_spawn", rc);
        delta = green_wait_full(300) - rss0;
        jg_kill(acc);
        jg_join(acc, NULL, JG_FOREVER);
    } else if (strcmp(approach, "loop") == 0) {
        struct jg_io lw;
        struct lwait w = { .rss = -1, .t0 = tour_now() };
        jg_io_init(&lw, laccept_cb, lfd, JG_READ);
        jg_io_start(jg_loop_default(), &lw);
        jg_timer_init(&w.t, lwait_cb);
        jg_timer_start(jg_loop_default(), &w.t, JG_MS(10), JG_MS(10));
        jg_loop_run(jg_loop_default(), JG_RUN_DEFAULT);
        jg_io_stop(&lw);
        jg_timer_stop(&w.t);
        delta = w.rss - rss0;
    } else if (strcmp(approach, "threads") == 0) {
        delta = serve_threads(lfd, rss0);
    } else {
        tour_fail("unknown approach", 0);
    }
    tour_put("bytes_per_conn", "%.0f", (double)delta * 1024.0 / target);
    tour_put("served", "%ld", atomic_load(&served));
    tour_put("ok", "1");
    return 0;
}

/* ---- the weather-forecast server (part 4) --------------------------------- */

int tour_bg_child(const struct tour_opts *o, const char *approach)
{
    struct jobber j = { .mode = approach, .period = JG_MS(o->bg_period_ms) };
    struct jg_green *acc, *jg = NULL;
    int rc = 0;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    target = 16;
    job_port = o->port;
    job_n = o->cpu_n;
    /* One worker is enough for one job, and leaves a CPU to the hub. */
    if (strcmp(approach, "threads") == 0) {
        struct jg_thread_pool_opts po = { .workers = 1 };
        rc = jg_thread_pool_create(&j.ex, &po);
    } else if (strcmp(approach, "procpool") == 0) {
        struct jg_process_pool_opts po = { .workers = 1 };
        rc = jg_process_pool_create(&j.ex, &po);
    } else if (strcmp(approach, "hub") != 0 && strcmp(approach, "none") != 0) {
        tour_fail("unknown approach", 0);
    }
    if (rc < 0)
        tour_fail("pool", rc);
    int lfd = jg_tcp_listen("127.0.0.1", 0);
    if (lfd < 0)
        tour_fail("listen", lfd);
    tour_put("port", "%d", jg_sock_port(lfd));
    struct acceptor a = { lfd, JG_STACK_DEDICATED };
    rc = jg_spawn(&acc, accept_loop, &a, NULL);
    if (rc < 0)
        tour_fail("jg_spawn", rc);
    if (strcmp(approach, "none") != 0) {
        rc = jg_spawn(&jg, job_loop, &j, NULL);
        if (rc < 0)
            tour_fail("jg_spawn", rc);
    }
    green_wait_full(300);
    j.stop = true;
    jg_kill(acc);
    jg_join(acc, NULL, JG_FOREVER);
    if (jg) {
        jg_kill(jg);
        jg_join(jg, NULL, JG_FOREVER);
    }
    if (j.ex)
        jg_executor_destroy(j.ex);
    if (strcmp(approach, "procpool") == 0)
        tour_put("mem_kb", "%ld", tour_maxrss_self() + tour_maxrss_children());
    tour_put("jobs", "%d", j.runs);
    tour_put("job_s", "%.4f", j.runs ? j.busy / j.runs : 0.0);
    tour_put("ok", "1");
    return 0;
}

/* ---- the load generator ------------------------------------------------------ */

static int cport, cn;
static int64_t think;
static struct jg_sem dial_sem;
static struct jg_event go;
static bool stop;
static long connected, failed, total;
static int first_err;
static struct hist lat;

static void *client(void *arg)
{
    char buf[256];
    int fd;

    (void)arg;
    jg_sem_acquire(&dial_sem, JG_FOREVER);
    fd = jg_tcp_dial("127.0.0.1", cport, JG_SEC(60));
    if (fd < 0)
        goto fail_dial;
    /* One request while dialing: the server has then seen this client.
     * With a think time, requests follow a fixed schedule and latency
     * counts from the planned send time: a stalled server delays every
     * request it should have received, not only the one in flight
     * (no "coordinated omission"). */
    int64_t plan = 0;
    for (bool warm = true; !stop; warm = false) {
        int64_t t0 = jg_now();
        if (think && plan) {
            if (plan > t0) {
                jg_sleep(plan - t0);
                if (stop)
                    break;
            }
            t0 = plan;
        }
        int rc = jg_write(fd, REQ, REQ_LEN, NULL, JG_SEC(60));
        if (rc < 0)
            goto fail;
        size_t got = 0;
        while (got < REPLY_LEN) {
            ssize_t n = jg_read(fd, buf, sizeof(buf), JG_SEC(60));
            if (n <= 0) {
                rc = n < 0 ? (int)n : -EPIPE;
                goto fail;
            }
            got += (size_t)n;
        }
        if (warm) {
            jg_sem_release(&dial_sem);
            connected++;
            jg_event_wait(&go, JG_FOREVER);
            plan = jg_now();
            continue;
        }
        hist_add(&lat, jg_now() - t0);
        total++;
        plan = t0 + think;
        continue;
fail:
        if (!first_err)
            first_err = rc;
        failed++;
        break;
    }
    jg_close(fd);
    return NULL;
fail_dial:
    if (!first_err)
        first_err = fd;
    failed++;
    jg_sem_release(&dial_sem);
    return NULL;
}

static int run_client(int n, double seconds, int64_t think_ns)
{
    struct jg_spawn_opts so = { .stack_model = JG_STACK_SLICED };
    struct jg_green **g = calloc((size_t)n, sizeof(*g));

    cn = n;
    think = think_ns;
    if (!g || jg_sem_init(&dial_sem, 128) < 0 || jg_event_init(&go) < 0)
        tour_fail("client setup", -ENOMEM);
    double t0 = tour_now();
    for (int i = 0; i < n; i++) {
        int rc = jg_spawn(&g[i], client, NULL, &so);
        if (rc < 0)
            tour_fail("jg_spawn (client)", rc);
    }
    while (connected + failed < n) {
        jg_sleep(JG_MS(20));
        tour_put("progress", "%ld/%d connected", connected, n);
    }
    double tc = tour_now() - t0;
    if (failed) {
        char what[96];
        snprintf(what, sizeof(what), "%ld of %d connections failed", failed,
                 n);
        stop = true;
        jg_event_set(&go);
        for (int i = 0; i < n; i++)
            jg_join(g[i], NULL, JG_FOREVER);
        tour_fail(what, first_err);
    }
    tour_put("progress", "%d connections held, measuring", n);
    double t1 = tour_now();
    jg_event_set(&go);
    jg_sleep((int64_t)(seconds * 1e9));
    long done = total;
    double win = tour_now() - t1;
    stop = true;
    for (int i = 0; i < n; i++)
        jg_join(g[i], NULL, JG_FOREVER);
    free(g);
    if (failed)
        tour_fail("connections failed during the run", first_err);
    tour_put("conns", "%d", n);
    tour_put("connect_s", "%.3f", tc);
    tour_put("wall_s", "%.6f", win);
    tour_put("req_s", "%.0f", (double)done / win);
    tour_put("p50_ms", "%.3f", hist_quantile_ms(&lat, 0.50));
    tour_put("p99_ms", "%.3f", hist_quantile_ms(&lat, 0.99));
    tour_put("max_ms", "%.3f", hist_quantile_ms(&lat, 1.0));
    tour_put("ok", "1");
    return 0;
}

int tour_conns_client(const struct tour_opts *o)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    cport = o->port;
    return run_client(o->conns, o->conns_seconds, 0);
}

int tour_bg_client(const struct tour_opts *o)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    cport = o->port;
    /* 16 users, each asking every 10 ms: a steady trickle whose latency
     * shows every stall of the server's hub. */
    return run_client(16, o->bg_seconds, JG_MS(10));
}
