/* SPDX-License-Identifier: MIT */
/*
 * preload_curl.c - libcurl's blocking easy interface, unmodified, run from
 * many green threads under the preload library: every fetch overlaps the
 * others (the server counts how many requests it holds at once), bodies
 * come back intact, and curl's threaded resolver still works.
 */
#include <juggle.h>
#include <curl/curl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

/* ---- the server: one epoll thread, answers each request after a delay ---- */

#define SRV_MAXFD 4096

struct conn {
    int fd;
    size_t len;
    int64_t due;                /* 0 until the request is complete */
    char req[512];
};

struct server {
    int lfd, epfd, stopfd;
    int port;
    int64_t delay;
    pthread_t thr;
    struct conn *conns[SRV_MAXFD];
    /* Read by the test after pthread_join (or under mu). */
    pthread_mutex_t mu;
    int pending, peak, served;
    /* No answer goes out until `gate` requests are held at once (then the
     * gate stays open), or 10 s after the first one: the overlap the test
     * counts cannot be hidden by fetches that finish before the last ones
     * connect, as on a loaded machine. 0: open. Under mu. */
    int gate;
    int64_t gate_until;
};

static struct server srv;

static void conn_close(struct server *s, struct conn *c)
{
    close(c->fd);
    s->conns[c->fd] = NULL;
    free(c);
}

/* Answer c: the body is the request's path, so clients can check it. */
static void conn_answer(struct server *s, struct conn *c)
{
    char path[256] = "?", out[512];
    int n;

    if (sscanf(c->req, "GET %255s ", path) != 1)
        strcpy(path, "?");
    n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu"
                 "\r\nConnection: close\r\n\r\n%s", strlen(path), path);
    /* Counted before the write: once the client has its answer, the test
     * may read the count at once (it raced the write under load). */
    pthread_mutex_lock(&s->mu);
    s->pending--;
    s->served++;
    pthread_mutex_unlock(&s->mu);
    /* A few hundred bytes always fit in a fresh socket's send buffer. */
    if (write(c->fd, out, (size_t)n) != n)
        fprintf(stderr, "server: short write\n");
    conn_close(s, c);
}

static void conn_read(struct server *s, struct conn *c)
{
    ssize_t n = read(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len);

    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        conn_close(s, c);       /* never answered: not yet counted */
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (!c->due && strstr(c->req, "\r\n\r\n")) {
        c->due = t_now_ns() + s->delay;
        pthread_mutex_lock(&s->mu);
        if (++s->pending > s->peak)
            s->peak = s->pending;
        if (s->gate && !s->gate_until)
            s->gate_until = c->due + JG_SEC(10);
        pthread_mutex_unlock(&s->mu);
        (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    }
}

/* May answers go out? Opens the gate for good once it is reached. */
static bool gate_open(struct server *s, int64_t now, int64_t *until)
{
    bool open;

    pthread_mutex_lock(&s->mu);
    if (s->gate && (s->pending >= s->gate ||
                    (s->gate_until && now >= s->gate_until)))
        s->gate = 0;
    open = s->gate == 0;
    *until = s->gate_until ? s->gate_until : INT64_MAX;
    pthread_mutex_unlock(&s->mu);
    return open;
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    struct epoll_event evs[64];

    for (;;) {
        /* Sleep until the earliest answer is due (1 ms resolution), or
         * while the gate is shut until a request or its time-out. */
        int64_t now = t_now_ns(), next = INT64_MAX, until;
        bool open = gate_open(s, now, &until);
        for (int fd = 0; open && fd < SRV_MAXFD; fd++) {
            struct conn *c = s->conns[fd];
            if (c && c->due) {
                if (c->due <= now)
                    conn_answer(s, c);
                else if (c->due < next)
                    next = c->due;
            }
        }
        if (!open)
            next = until;
        int timeout = next == INT64_MAX ? -1
            : (int)((next - now + 999999) / 1000000);
        int n = epoll_wait(s->epfd, evs, 64, timeout);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == s->stopfd)
                return NULL;
            if (fd != s->lfd) {
                if (s->conns[fd])
                    conn_read(s, s->conns[fd]);
                continue;
            }
            int cfd;
            while ((cfd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                struct conn *c = calloc(1, sizeof(*c));
                struct epoll_event ev = { .events = EPOLLIN };
                if (!c || cfd >= SRV_MAXFD) {
                    free(c);
                    close(cfd);
                    continue;
                }
                c->fd = cfd;
                s->conns[cfd] = c;
                ev.data.fd = cfd;
                (void)epoll_ctl(s->epfd, EPOLL_CTL_ADD, cfd, &ev);
            }
        }
    }
}

/* Start the server thread on 127.0.0.1, port 0. */
static void server_start(int64_t delay)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    struct epoll_event ev = { .events = EPOLLIN };

    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    srv.delay = delay;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    T_ASSERT(srv.lfd >= 0);
    T_OK(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0);
    T_OK(listen(srv.lfd, 1024) < 0 ? -errno : 0);
    T_OK(getsockname(srv.lfd, (struct sockaddr *)&a, &len) < 0 ? -errno : 0);
    srv.port = ntohs(a.sin_port);
    srv.epfd = epoll_create1(0);
    srv.stopfd = eventfd(0, 0);
    T_ASSERT(srv.epfd >= 0 && srv.stopfd >= 0);
    ev.data.fd = srv.lfd;
    T_OK(epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.lfd, &ev));
    ev.data.fd = srv.stopfd;
    T_OK(epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.stopfd, &ev));
    T_EQ(pthread_create(&srv.thr, NULL, server_main, &srv), 0);
}

static void server_stop(void)
{
    uint64_t one = 1;

    T_EQ(write(srv.stopfd, &one, sizeof(one)), sizeof(one));
    T_EQ(pthread_join(srv.thr, NULL), 0);
    for (int fd = 0; fd < SRV_MAXFD; fd++)
        if (srv.conns[fd])
            conn_close(&srv, srv.conns[fd]);
    close(srv.lfd);
    close(srv.epfd);
    close(srv.stopfd);
    pthread_mutex_destroy(&srv.mu);
}

/* ---- the clients: plain blocking libcurl in green threads ---------------- */

struct fetch {
    char url[128];
    char want[64];              /* the body the server must send back */
    char body[64];
    size_t len;
    long ipresolve;
    CURLcode rc;
    long status;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct fetch *f = ud;
    size_t k = size * n;

    if (f->len + k >= sizeof(f->body))
        return 0;               /* too long: curl reports a write error */
    memcpy(f->body + f->len, p, k);
    f->len += k;
    f->body[f->len] = '\0';
    return k;
}

/* What a user writes without knowing about green threads. */
static void *fetch_one(void *arg)
{
    struct fetch *f = arg;
    CURL *c = curl_easy_init();

    if (!c)
        return JG_ERR(-ENOMEM);
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    /* Threaded programs turn curl's SIGALRM timeouts off. */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_IPRESOLVE, f->ipresolve);
    f->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(c);
    return NULL;
}

/*
 * n green threads fetch http://host:port/<tag>/<i> at once; asserts every
 * body and the server's peak concurrency; returns the wall time.
 */
static int64_t fetch_all(const char *host, const char *tag, long n,
                         long ipresolve)
{
    struct fetch *f = calloc((size_t)n, sizeof(*f));
    struct jg_green **g = calloc((size_t)n, sizeof(*g));
    int64_t t0, el;

    T_ASSERT(f && g);
    pthread_mutex_lock(&srv.mu);
    srv.peak = srv.served = 0;
    srv.gate = (int)n;
    srv.gate_until = 0;
    pthread_mutex_unlock(&srv.mu);
    t0 = t_now_ns();
    for (long i = 0; i < n; i++) {
        snprintf(f[i].want, sizeof(f[i].want), "/%s/%ld", tag, i);
        snprintf(f[i].url, sizeof(f[i].url), "http://%s:%d%s", host,
                 srv.port, f[i].want);
        f[i].ipresolve = ipresolve;
        f[i].rc = CURLE_FAILED_INIT;
        T_OK(jg_spawn(&g[i], fetch_one, &f[i], NULL));
    }
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    el = t_now_ns() - t0;
    for (long i = 0; i < n; i++) {
        if (f[i].rc != CURLE_OK)
            fprintf(stderr, "fetch %ld: %s\n", i, curl_easy_strerror(f[i].rc));
        T_EQ(f[i].rc, CURLE_OK);
        T_EQ(f[i].status, 200);
        T_STREQ(f[i].body, f[i].want);
    }
    pthread_mutex_lock(&srv.mu);
    int peak = srv.peak, served = srv.served;
    pthread_mutex_unlock(&srv.mu);
    fprintf(stderr, "   %ld fetches of %s: %.3f s, server peak %d\n", n, host,
            (double)el / 1e9, peak);
    T_EQ(served, n);
    /* Overlap, counted where it happens: without the patch each blocking
     * fetch would hold the hub and the server would see one at a time. */
    T_ASSERT(peak >= n - n / 20);
    free(f);
    free(g);
    return el;
}

/* The server's delay after the gate opens (see struct server). */
static int64_t delay(void)
{
    return JG_MS(100);
}

/* 200 fetches from a server that answers each after 100 ms. */
static void test_curl_overlap(void)
{
    long n = t_scale(200);

    server_start(delay());
    int64_t el = fetch_all("127.0.0.1", "item", n, CURL_IPRESOLVE_WHATEVER);
    server_stop();
    T_ASSERT(el >= delay());
}

/*
 * A host name curl does not special-case (not an address, not "localhost")
 * goes through curl's threaded resolver: a pthread per lookup calling
 * getaddrinfo (plain libc there), polled by the green thread.
 */
static void test_curl_threaded_resolver(void)
{
    struct addrinfo hints = { .ai_family = AF_INET }, *res = NULL;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    char host[256];
    int ok = 0;

    if (!(v->features & CURL_VERSION_ASYNCHDNS))
        T_SKIP_CASE("libcurl without an asynchronous resolver");
    if (gethostname(host, sizeof(host)) != 0 || !strcmp(host, "localhost"))
        T_SKIP_CASE("no usable host name");
    host[sizeof(host) - 1] = '\0';
    if (getaddrinfo(host, NULL, &hints, &res) == 0) {
        const struct sockaddr_in *a = (const void *)res->ai_addr;
        ok = a->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
        freeaddrinfo(res);
    }
    if (!ok)
        T_SKIP_CASE("the host name does not resolve to 127.0.0.1");

    long n = t_scale(50);
    server_start(delay());
    int64_t el = fetch_all(host, "named", n, CURL_IPRESOLVE_V4);
    server_stop();
    T_ASSERT(el >= delay());
}

/* A refused connection is reported as curl reports it without the patch. */
static void *fetch_refused(void *arg)
{
    struct fetch *f = arg;

    fetch_one(f);
    return NULL;
}

static void test_curl_refused(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    struct fetch f = { .rc = CURLE_OK, .ipresolve = CURL_IPRESOLVE_V4 };
    struct jg_green *g;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was just free: bound, read back, closed, not listening. */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(fd >= 0);
    T_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0);
    T_OK(getsockname(fd, (struct sockaddr *)&a, &len) < 0 ? -errno : 0);
    close(fd);
    snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    T_OK(jg_spawn(&g, fetch_refused, &f, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(f.rc, CURLE_COULDNT_CONNECT);
}

static void run_all(int argc, char **argv);

int main(int argc, char **argv)
{
    /* Before any thread: curl's global init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        T_SKIP("curl_global_init failed");
    run_all(argc, argv);
    curl_global_cleanup();
    return 0;
}

/* The patch serves this runtime (by LD_PRELOAD, or linked). */
static void test_curl_patch_attached(void)
{
    const char *p = getenv("LD_PRELOAD");

#ifdef PRELOAD_CURL_LINKED
    T_ASSERT(!p || !strstr(p, "juggle_preload"));
#else
    T_ASSERT(p && strstr(p, "juggle_preload"));
#endif
    T_ASSERT(jg_patch_enabled());
}

static void run_all(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_curl_patch_attached),
        T_CASE(test_curl_overlap),
        T_CASE(test_curl_threaded_resolver),
        T_CASE(test_curl_refused),
    };
    if (t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0])) != 0)
        exit(1);
}
