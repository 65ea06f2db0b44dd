/* SPDX-License-Identifier: MIT */
/*
 * tour_util.c - the tour's small shared pieces: the child's report channel,
 * clocks and memory figures, the latency histogram, the HTTP client helpers
 * and the delay server that parts 1 and 4 download from.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <signal.h>

#include <juggle.h>

#include "tour.h"

/* ---- the report channel -------------------------------------------------- */

void tour_put(const char *key, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n = snprintf(line, sizeof(line), "%s ", key);

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    /* One line, one write: the parent reads whole lines. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\n';
    if (write(TOUR_FD, line, (size_t)n) < 0)
        _exit(3);
}

double tour_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_Noreturn void tour_fail(const char *what, int code)
{
    tour_put("ok", "0");
    if (code < 0)
        tour_put("note", "%s: %s", what, jg_strerror(code));
    else
        tour_put("note", "%s", what);
    fflush(NULL);
    _exit(1);
}

long tour_maxrss_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

long tour_maxrss_children(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_maxrss;
}

long tour_rss_now(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int tour_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* The seeds' "sum of squares", written so no compiler folds it into a
 * closed form and nothing overflows into undefined behaviour. */
__attribute__((noinline)) uint64_t tour_sumsq(uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s = s * 31 + i * i;
    return s;
}

/* ---- histogram ------------------------------------------------------------ */

/* Values below HIST_SUB microseconds are exact; above, each power of two is
 * split into HIST_SUB buckets (about 3% resolution). */
static unsigned hist_index(uint64_t us)
{
    if (us < HIST_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us);   /* >= 5 */
    unsigned sub = (unsigned)((us >> (e - 5)) & (HIST_SUB - 1));
    unsigned i = (e - 4) * HIST_SUB + sub;
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static double hist_upper_us(unsigned i)
{
    if (i < HIST_SUB)
        return (double)i + 1;
    unsigned e = i / HIST_SUB + 4, sub = i % HIST_SUB;
    return (double)((uint64_t)(HIST_SUB + sub + 1) << (e - 5));
}

void hist_add(struct hist *h, int64_t ns)
{
    h->b[hist_index(ns < 0 ? 0 : (uint64_t)ns / 1000)]++;
    h->count++;
}

double hist_quantile_ms(const struct hist *h, double q)
{
    uint64_t want, seen = 0;

    if (!h->count)
        return 0;
    want = (uint64_t)(q * (double)h->count + 0.5);
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want)
            return hist_upper_us(i) / 1000.0;
    }
    return hist_upper_us(HIST_BUCKETS - 1) / 1000.0;
}

void hist_merge(struct hist *to, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        to->b[i] += from->b[i];
    to->count += from->count;
}

/* ---- HTTP client pieces --------------------------------------------------- */

void http_resp_init(struct http_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->clen = -1;
}

/* Parse the status line and Content-Length once the head is complete. */
static int parse_head(struct http_resp *r)
{
    const char *p;

    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -EPROTO;
    p = strcasestr(r->head, "\r\ncontent-length:");
    if (p)
        r->clen = strtoll(p + 17, NULL, 10);
    return 0;
}

int http_resp_feed(struct http_resp *r, const char *p, size_t n)
{
    while (n && !r->in_body) {
        if (r->hlen + 1 >= sizeof(r->head))
            return -EPROTO;
        r->head[r->hlen++] = *p++;
        n--;
        r->head[r->hlen] = 0;
        if (r->hlen >= 4 && memcmp(r->head + r->hlen - 4, "\r\n\r\n", 4) == 0) {
            r->in_body = true;
            if (parse_head(r) < 0)
                return -EPROTO;
        }
    }
    r->body += (long long)n;
    return r->in_body && r->clen >= 0 && r->body >= r->clen;
}

size_t http_request(char *buf, size_t size, int idx, bool keepalive)
{
    int n = snprintf(buf, size,
                     "GET /forecast/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                     idx, keepalive ? "" : "Connection: close\r\n");
    return (size_t)n;
}

/* The code a user writes without thinking of concurrency: socket, connect,
 * send, recv. Under libjuggle_preload.so in a green thread, each of these
 * calls parks only that green thread. */
long long http_get_blocking(int port, int idx)
{
    struct sockaddr_in a;
    struct http_resp r;
    char buf[4096];
    long long rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        rc = -errno;
        goto out;
    }
    size_t len = http_request(buf, sizeof(buf), idx, false);
    if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
        rc = -EIO;
        goto out;
    }
    http_resp_init(&r);
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0) {
            rc = -EPIPE;            /* closed before the whole body */
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
    close(fd);
    return rc;
}

/* ---- the delay server ------------------------------------------------------ */

/* Handlers take the default stack size: only that size is pooled, so a
 * connection costs no mmap/munmap of a stack of its own. */
#define SERVER_STACK 0

static char *body;
static int body_len, delay_ms;

/* One connection: read requests, wait the delay, answer; keep-alive unless
 * the client asks to close. */
static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[2048];
    size_t have = 0;

    for (;;) {
        char *end;
        while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
            if (have == sizeof(req))
                goto out;
            ssize_t n = jg_read(fd, req + have, sizeof(req) - have,
                                JG_FOREVER);
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        size_t used = (size_t)(end + 4 - req);
        bool close_it = memmem(req, used, "Connection: close", 17) != NULL;
        jg_sleep(JG_MS(delay_ms));
        char head[160];
        int hl = snprintf(head, sizeof(head),
                          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          "Content-Length: %d\r\n%s\r\n", body_len,
                          close_it ? "Connection: close\r\n" : "");
        struct iovec iov[2] = { { head, (size_t)hl },
                                { body, (size_t)body_len } };
        if (jg_writev(fd, iov, 2, NULL, JG_SEC(10)) < 0 || close_it)
            goto out;
        memmove(req, req + used, have - used);
        have -= used;
    }
out:
    jg_close(fd);
    return NULL;
}

int tour_http_server(const struct tour_opts *o)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    body_len = o->body_bytes;
    delay_ms = o->delay_ms;
    body = malloc((size_t)body_len + 1);
    if (!body)
        return 1;
    for (int i = 0; i < body_len; i++)
        body[i] = (char)('a' + i % 26);
    int lfd = jg_tcp_listen("127.0.0.1", 0);
    if (lfd < 0)
        tour_fail("listen", lfd);
    tour_put("port", "%d", jg_sock_port(lfd));
    close(TOUR_FD);
    for (;;) {
        int fd = jg_accept(lfd, NULL, NULL, JG_FOREVER);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct jg_spawn_opts so = { .stack_size = SERVER_STACK };
        if (jg_spawn(NULL, serve_conn, (void *)(intptr_t)fd, &so) < 0)
            jg_close(fd);
    }
}

/* ---- tasks in flight ------------------------------------------------------ */

static _Atomic int inflight, inflight_peak;

void tour_inflight_enter(void)
{
    int n = atomic_fetch_add(&inflight, 1) + 1;
    int p = atomic_load(&inflight_peak);

    while (n > p && !atomic_compare_exchange_weak(&inflight_peak, &p, n))
        ;
}

void tour_inflight_leave(void)
{
    atomic_fetch_sub(&inflight, 1);
}

int tour_inflight_peak(void)
{
    return atomic_load(&inflight_peak);
}
