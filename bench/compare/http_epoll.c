/* SPDX-License-Identifier: MIT */
/*
 * http_epoll.c - the raw-epoll anchor of the HTTP benchmark: the same
 * "Hello, World!" HTTP/1.1 server as examples/http_server.c, written the
 * way a C programmer would without a runtime: one thread, level-triggered
 * epoll, a state struct per connection. Keep-alive, pipelining (one write
 * per read's worth of answers), split requests and "Connection: close".
 *
 *   http_epoll [port]      prints "listening on port N", serves until killed
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY "Hello, World!"
#define HEAD "HTTP/1.1 200 OK\r\nServer: epoll\r\n" \
             "Content-Type: text/plain\r\nContent-Length: 13\r\n"
#define BUF_SIZE 8192

static const char keep_resp[] = HEAD "\r\n" BODY;
static const char close_resp[] = HEAD "Connection: close\r\n\r\n" BODY;

struct conn {
    int fd;
    size_t have, skip;      /* bytes in in[]; body bytes still to skip */
    size_t olen, ooff;      /* unsent answers in out[ooff, olen) */
    bool closing;           /* close once out[] is sent */
    char in[BUF_SIZE], out[BUF_SIZE];
};

static int ep;

/* Does the header line [p, end) have this name? *v: past ':' and spaces. */
static bool hdr(const char *p, const char *end, const char *name,
                const char **v)
{
    size_t n = strlen(name);

    if ((size_t)(end - p) <= n || p[n] != ':' || strncasecmp(p, name, n))
        return false;
    for (p += n + 1; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    *v = p;
    return true;
}

/* 1 and *keep, *body for a good request head [p, p+n); 0 for a bad one. */
static int parse(const char *p, size_t n, bool *keep, size_t *body)
{
    const char *end = p + n, *eol = memchr(p, '\n', n), *v;

    if (!eol || eol - p < 13 || eol[-1] != '\r' ||
        !memchr(p, ' ', (size_t)(eol - p)) || memcmp(eol - 10, " HTTP/1.", 8))
        return 0;
    *keep = eol[-2] == '1';
    *body = 0;
    for (p = eol + 1; p < end && *p != '\r'; p = eol + 1) {
        if (!(eol = memchr(p, '\n', (size_t)(end - p))))
            return 0;
        if (hdr(p, eol, "Connection", &v))
            *keep = !strncasecmp(v, "keep-alive", 10) ||
                    (*keep && strncasecmp(v, "close", 5));
        else if (hdr(p, eol, "Content-Length", &v))
            *body = strtoul(v, NULL, 10);
        else if (hdr(p, eol, "Transfer-Encoding", &v))
            return 0;
    }
    return 1;
}

static void conn_close(struct conn *c)
{
    close(c->fd);           /* also removes it from the epoll set */
    free(c);
}

/* Send out[ooff, olen); false if the connection is finished or broken. */
static bool flush_out(struct conn *c)
{
    while (c->ooff < c->olen) {
        ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return false;
            /* Socket full: wait for EPOLLOUT, stop reading meanwhile. */
            struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            return true;
        }
        c->ooff += (size_t)n;
    }
    c->ooff = c->olen = 0;
    return !c->closing;
}

/* Queue one answer; false when out[] is full (flush first). */
static bool queue_resp(struct conn *c, bool keep)
{
    const char *r = keep ? keep_resp : close_resp;
    size_t n = keep ? sizeof(keep_resp) - 1 : sizeof(close_resp) - 1;

    if (c->olen + n > BUF_SIZE)
        return false;
    memcpy(c->out + c->olen, r, n);
    c->olen += n;
    return true;
}

/* Readable: read once, answer every complete request. false: close it. */
static bool on_read(struct conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->have, BUF_SIZE - c->have, 0);
    size_t pos = 0;

    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return false;
    c->have += (size_t)n;
    while (!c->closing) {
        if (c->skip) {
            size_t k = c->skip < c->have - pos ? c->skip : c->have - pos;
            pos += k;
            c->skip -= k;
            if (c->skip)
                break;
        }
        char *end = memmem(c->in + pos, c->have - pos, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t len = (size_t)(end - (c->in + pos)) + 4;
        bool keep;
        if (!parse(c->in + pos, len, &keep, &c->skip))
            return false;
        if (!queue_resp(c, keep)) {
            /* Full: push it out synchronously-ish; a slow client that
             * fills its socket here is simply dropped (benchmark code). */
            if (!flush_out(c) || c->olen)
                return false;
            queue_resp(c, keep);
        }
        pos += len;
        c->closing = !keep;
    }
    memmove(c->in, c->in + pos, c->have - pos);
    c->have -= pos;
    if (c->have == BUF_SIZE)
        return false;       /* a head larger than the buffer */
    return c->olen ? flush_out(c) : !c->closing;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8080, one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port) };
    socklen_t alen = sizeof(a);
    struct epoll_event ev[256];
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    signal(SIGPIPE, SIG_IGN);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(lfd, SOMAXCONN) < 0) {
        perror("bind/listen");
        return 1;
    }
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    printf("listening on port %d\n", ntohs(a.sin_port));
    fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
    for (;;) {
        int n = epoll_wait(ep, ev, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (!c) {           /* the listener: accept all that wait */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                               sizeof(one));
                    c = calloc(1, sizeof(*c));
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event e = { .events = EPOLLIN,
                                             .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            bool ok;
            if (ev[i].events & EPOLLOUT) {
                ok = flush_out(c);
                if (ok && !c->olen) {
                    struct epoll_event e = { .events = EPOLLIN,
                                             .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
            } else {
                ok = on_read(c);
            }
            if (!ok)
                conn_close(c);
        }
    }
}
