/* SPDX-License-Identifier: MIT */
/*
 * tls_server.c - the HTTPS server peer_curl_https talks to: OpenSSL, one
 * thread per connection, HTTP/1.1 keep-alive, and it counts how many
 * requests it holds at once. Started by the test without the preload
 * library; it prints "port N" on stdout once it listens on 127.0.0.1
 * (port 0), and dies with its parent or on SIGTERM.
 *
 *   GET /echo/TOKEN?delay=MS&gather=N   body TOKEN, answered MS ms after
 *       the request came (default 0) and not before N requests are held
 *       at once (default 0; gives up after 3 s: X-Gathered: 0)
 *   GET /stats                          body "peak P served S"
 *   GET /reset                          zeroes both
 *
 *   tls_server CERT.pem KEY.pem
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GATHER_MAX_NS (3 * 1000000000LL)

static SSL_CTX *ctx;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;      /* on CLOCK_MONOTONIC (main) */
static int held, peak, served;  /* under mu */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec abs_mono(int64_t ns)
{
    return (struct timespec){ ns / 1000000000LL, ns % 1000000000LL };
}

/* An integer query parameter of path, or 0. */
static long param(const char *path, const char *name)
{
    char key[32];
    const char *q = strchr(path, '?');

    snprintf(key, sizeof(key), "%s=", name);
    for (const char *p = q; p; p = strchr(p + 1, '&'))
        if (!strncmp(p + 1, key, strlen(key)))
            return atol(p + 1 + strlen(key));
    return 0;
}

/* Hold the request: count it, wait for the others and the delay. */
static int hold(int64_t arrived, long delay_ms, long gather)
{
    int gathered = 1;
    int64_t due = arrived + delay_ms * 1000000LL;

    pthread_mutex_lock(&mu);
    if (++held > peak)
        peak = held;
    pthread_cond_broadcast(&cv);
    if (gather > 0) {
        struct timespec until = abs_mono(arrived + GATHER_MAX_NS);
        /* Once the peak reached gather, every one held goes: a request
         * need not see the count itself before others leave. */
        while (peak < gather)
            if (pthread_cond_timedwait(&cv, &mu, &until) == ETIMEDOUT) {
                gathered = peak >= gather;
                break;
            }
    }
    pthread_mutex_unlock(&mu);
    int64_t left = due - now_ns();
    if (left > 0) {
        struct timespec ts = { left / 1000000000LL, left % 1000000000LL };
        nanosleep(&ts, NULL);
    }
    return gathered;
}

static void release(void)
{
    pthread_mutex_lock(&mu);
    held--;
    served++;
    pthread_mutex_unlock(&mu);
}

/* Write all of buf; 0 or -1. */
static int ssl_write_all(SSL *ssl, const char *buf, size_t n)
{
    while (n > 0) {
        int w = SSL_write(ssl, buf, (int)n);
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    SSL *ssl = SSL_new(ctx);
    char req[4096];
    size_t len = 0;

    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) <= 0)
        goto out;
    for (;;) {
        char *end;
        while (!(end = strstr(req, "\r\n\r\n"))) {
            if (len >= sizeof(req) - 1)
                goto out;
            int r = SSL_read(ssl, req + len, (int)(sizeof(req) - 1 - len));
            if (r <= 0)
                goto out;
            len += (size_t)r;
            req[len] = '\0';
        }
        int64_t arrived = now_ns();
        char path[1024] = "", body[256], out[512];
        int gathered = 1;
        if (sscanf(req, "GET %1023s ", path) != 1)
            goto out;
        bool close_after = strcasestr(req, "\r\nConnection: close") != NULL;
        if (!strncmp(path, "/echo/", 6)) {
            gathered = hold(arrived, param(path, "delay"),
                            param(path, "gather"));
            snprintf(body, sizeof(body), "%.*s", (int)strcspn(path + 6, "?"),
                     path + 6);
            release();
        } else if (!strcmp(path, "/stats")) {
            pthread_mutex_lock(&mu);
            snprintf(body, sizeof(body), "peak %d served %d", peak, served);
            pthread_mutex_unlock(&mu);
        } else if (!strcmp(path, "/reset")) {
            pthread_mutex_lock(&mu);
            peak = served = 0;
            pthread_mutex_unlock(&mu);
            snprintf(body, sizeof(body), "ok");
        } else {
            snprintf(body, sizeof(body), "?");
        }
        int n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\n"
                         "Content-Length: %zu\r\nX-Gathered: %d\r\n%s\r\n%s",
                         strlen(body), gathered,
                         close_after ? "Connection: close\r\n" : "", body);
        if (ssl_write_all(ssl, out, (size_t)n) < 0 || close_after)
            goto out;
        /* Keep what came after this request (pipelining). */
        end += 4;
        len -= (size_t)(end - req);
        memmove(req, end, len + 1);
    }
out:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    pthread_attr_t attr;

    if (argc != 3) {
        fprintf(stderr, "usage: tls_server CERT.pem KEY.pem\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        perror("tls_server: listen");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        pthread_t t;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            perror("tls_server: accept");
            return 1;
        }
        if (pthread_create(&t, &attr, conn_main, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}
