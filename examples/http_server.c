/* SPDX-License-Identifier: MIT */
/*
 * http_server.c - an HTTP/1.1 "Hello, World!" server: one green thread per
 * connection, written as plain sequential code (read a request, write the
 * answer). Keep-alive, pipelining (every complete request in a read is
 * answered, and the answers go out in one write), requests split across
 * reads, and "Connection: close" are handled.
 *
 *   http_server [port] [--hubs N] [--accept reuseport|handoff]
 *
 * port: default 8080, 0 picks a free port. One hub (one OS thread) unless
 * --hubs asks for more. With several, each hub runs on its own OS thread
 * (started by hand here, until the runtime of issue 11 starts them), and
 * connections reach them either through one SO_REUSEPORT listener per hub
 * (the kernel spreads them; the default) or through one acceptor that hands
 * each connection to the next hub over a pipe ("handoff").
 *
 * It prints "listening on port N" once ready and serves until killed. This
 * is the server of the HTTP benchmark (bench/compare/run-http.sh).
 */
#define _GNU_SOURCE         /* memmem */
#include <juggle.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY "Hello, World!"
#define HEAD "HTTP/1.1 200 OK\r\nServer: juggle\r\n" \
             "Content-Type: text/plain\r\nContent-Length: 13\r\n"
#define BUF_SIZE 8192       /* the largest request head we accept */

/* A response appended to out; false if out is full (the caller flushes). */
static bool respond(char *out, size_t *len, bool close_after)
{
    static const char keep[] = HEAD "\r\n" BODY;
    static const char last[] = HEAD "Connection: close\r\n\r\n" BODY;
    const char *r = close_after ? last : keep;
    size_t n = close_after ? sizeof(last) - 1 : sizeof(keep) - 1;

    if (*len + n > BUF_SIZE)
        return false;
    memcpy(out + *len, r, n);
    *len += n;
    return true;
}

/* Case-insensitive: does the header line [p, end) have this name? Then
 * *value points past the colon and the spaces after it. */
static bool header_is(const char *p, const char *end, const char *name,
                      const char **value)
{
    size_t n = strlen(name);

    if ((size_t)(end - p) <= n || p[n] != ':' || strncasecmp(p, name, n))
        return false;
    for (p += n + 1; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    *value = p;
    return true;
}

/*
 * Parse the request head in [p, p + n) (it ends with the blank line).
 * Returns 1 for a good request, with *keep (keep the connection open
 * afterwards) and *body (bytes of body to skip) set; 0 for a bad one.
 */
static int parse(const char *p, size_t n, bool *keep, size_t *body)
{
    const char *end = p + n, *eol = memchr(p, '\n', n);
    const char *v, *sp;

    /* Request line: METHOD SP target SP HTTP/1.x */
    if (!eol || eol - p < 13 || eol[-1] != '\r')
        return 0;
    sp = memchr(p, ' ', (size_t)(eol - p));
    if (!sp || memcmp(eol - 10, " HTTP/1.", 8))
        return 0;
    *keep = eol[-2] == '1';     /* 1.1: keep-alive unless told otherwise */
    *body = 0;
    /* Headers, one per line, until the blank line. */
    for (p = eol + 1; p < end && *p != '\r'; p = eol + 1) {
        if (!(eol = memchr(p, '\n', (size_t)(end - p))))
            return 0;
        if (header_is(p, eol, "Connection", &v))
            *keep = !strncasecmp(v, "keep-alive", 10) ||
                    (*keep && strncasecmp(v, "close", 5));
        else if (header_is(p, eol, "Content-Length", &v))
            *body = strtoul(v, NULL, 10);
        else if (header_is(p, eol, "Transfer-Encoding", &v))
            return 0;           /* chunked bodies: not in this example */
    }
    return 1;
}

/* One connection: read, answer every complete request, repeat. */
static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char in[BUF_SIZE], out[BUF_SIZE];
    size_t have = 0, skip = 0;
    bool open = true, drained = false;

    while (open) {
        /* After a short read the socket is empty: wait for it to become
         * readable first, which saves a read that would only fail with
         * EAGAIN. (jg_read alone would also work: it tries, then waits.) */
        if (drained && jg_wait_fd(fd, JG_READ, JG_FOREVER) < 0)
            break;
        ssize_t n = jg_read(fd, in + have, sizeof(in) - have, JG_FOREVER);
        if (n <= 0)
            break;              /* the client left, or an error */
        drained = (size_t)n < sizeof(in) - have;
        have += (size_t)n;

        /* Answer every complete request in the buffer (pipelining). */
        size_t pos = 0, olen = 0;
        while (open) {
            if (skip) {         /* the rest of a request body */
                size_t k = skip < have - pos ? skip : have - pos;
                pos += k;
                skip -= k;
                if (skip)
                    break;
            }
            const char *head = in + pos;
            const char *end = memmem(head, have - pos, "\r\n\r\n", 4);
            if (!end)
                break;          /* incomplete: wait for more bytes */
            size_t len = (size_t)(end - head) + 4;
            bool keep;
            if (!parse(head, len, &keep, &skip)) {
                static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n";
                jg_write(fd, out, olen, NULL, JG_SEC(5));
                jg_write(fd, bad, sizeof(bad) - 1, NULL, JG_SEC(5));
                olen = 0;
                open = false;
                break;
            }
            if (!respond(out, &olen, !keep)) {
                /* out is full: send it and start again. */
                if (jg_write(fd, out, olen, NULL, JG_SEC(5)) < 0) {
                    open = false;
                    break;
                }
                olen = 0;
                respond(out, &olen, !keep);
            }
            pos += len;
            open = keep;
        }
        /* One write for the whole batch of answers. */
        if (olen && jg_write(fd, out, olen, NULL, JG_SEC(5)) < 0)
            break;
        /* Keep the unfinished request at the front of the buffer. */
        memmove(in, in + pos, have - pos);
        have -= pos;
        if (open && have == sizeof(in)) {
            static const char big[] = "HTTP/1.1 431 Request Header Fields "
                "Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            jg_write(fd, big, sizeof(big) - 1, NULL, JG_SEC(5));
            break;
        }
    }
    jg_close(fd);
    return NULL;
}

/* Serve connection fd on this hub, in a detached green thread. */
static void start_conn(int fd)
{
    int one = 1;

    /* Answers are written whole: no need to wait for more data. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = jg_spawn(NULL, serve, (void *)(intptr_t)fd, NULL);
    if (rc < 0) {
        fprintf(stderr, "spawn: %s\n", jg_strerror(rc));
        jg_close(fd);
    }
}

/* Accept on lfd forever, serving each connection on this hub. The calling
 * context parks in jg_accept while no client waits, so the hub runs the
 * connections meanwhile. */
static void accept_loop(int lfd)
{
    for (;;) {
        int fd = jg_accept(lfd, NULL, NULL, JG_FOREVER);
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", jg_strerror(fd));
            continue;           /* -EMFILE: jg_accept already backed off */
        }
        start_conn(fd);
    }
}

/* A listener on port that other sockets may share (SO_REUSEPORT). */
static int listen_shared(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port) };
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

struct hub_arg {
    int fd;                     /* its listener, or its handoff pipe */
    bool handoff;
};

/* A handed-off hub: connections arrive as fd numbers on its pipe. */
static void handoff_loop(int pfd)
{
    int fd;

    while (jg_read(pfd, &fd, sizeof(fd), JG_FOREVER) == (ssize_t)sizeof(fd))
        start_conn(fd);
}

/* One more hub: an OS thread whose hub serves what reaches it. */
static void *hub_thread(void *p)
{
    struct hub_arg *a = p;

    if (a->handoff)
        handoff_loop(a->fd);
    else
        accept_loop(a->fd);
    return NULL;
}

/* The acceptor of handoff mode: connection k goes to hub k mod n (hub 0
 * is this one). A pipe write of an int is atomic (PIPE_BUF). */
static void handoff_accept(int lfd, const int *pipes, int n)
{
    unsigned k = 0;

    for (;;) {
        int fd = jg_accept(lfd, NULL, NULL, JG_FOREVER);
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", jg_strerror(fd));
            continue;
        }
        int i = (int)(k++ % (unsigned)n);
        if (i == 0) {
            start_conn(fd);
        } else if (jg_write(pipes[i], &fd, sizeof(fd), NULL, JG_SEC(5)) !=
                   (ssize_t)sizeof(fd)) {
            jg_close(fd);
        }
    }
}

/* Start hubs 1..n-1 on their own threads; 0 or -1 with a message. */
static int start_hubs(int n, bool handoff, int port, int *pipes)
{
    for (int i = 1; i < n; i++) {
        struct hub_arg *a = malloc(sizeof(*a));
        pthread_t t;
        int pf[2];

        if (!a)
            return -1;
        a->handoff = handoff;
        if (handoff) {
            if (pipe2(pf, O_NONBLOCK | O_CLOEXEC) < 0)
                return -1;
            a->fd = pf[0];
            pipes[i] = pf[1];
        } else if ((a->fd = listen_shared(port)) < 0) {
            fprintf(stderr, "listen on port %d: %s\n", port,
                    jg_strerror(a->fd));
            return -1;
        }
        if (pthread_create(&t, NULL, hub_thread, a) != 0)
            return -1;
        pthread_detach(t);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = 8080, hubs = 1, lfd;
    bool handoff = false;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hubs") && i + 1 < argc) {
            hubs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--accept") && i + 1 < argc) {
            handoff = !strcmp(argv[++i], "handoff");
        } else {
            port = atoi(argv[i]);
        }
    }
    if (hubs < 1 || hubs > 256) {
        fprintf(stderr, "--hubs: 1 to 256\n");
        return 2;
    }
    lfd = hubs > 1 && !handoff ? listen_shared(port)
                               : jg_tcp_listen(NULL, port);
    if (lfd < 0) {
        fprintf(stderr, "listen on port %d: %s\n", port, jg_strerror(lfd));
        return 1;
    }
    port = jg_sock_port(lfd);
    int *pipes = calloc((size_t)hubs, sizeof(int));
    if (!pipes || start_hubs(hubs, handoff, port, pipes) < 0) {
        fprintf(stderr, "starting %d hubs failed\n", hubs);
        return 1;
    }
    printf("listening on port %d\n", port);
    fflush(stdout);
    if (handoff && hubs > 1)
        handoff_accept(lfd, pipes, hubs);
    else
        accept_loop(lfd);
}
