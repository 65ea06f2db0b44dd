/* SPDX-License-Identifier: MIT */
/*
 * downloader.c - the seeds' concurrent downloader: N green threads each
 * fetch one page over HTTP and report its size. So that it runs anywhere
 * (no network), the program first starts its own little web server on
 * 127.0.0.1 - green threads too, on the same hub - that answers page i
 * after a 50 ms delay with i * 1000 bytes.
 *
 *   downloader [pages]     (default 10)
 *
 * The downloads overlap: 10 pages take about 50 ms, not 500 ms.
 */
#define _GNU_SOURCE             /* memmem */
#include <juggle.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELAY JG_MS(50)

/* ---- the local web server ---------------------------------------------- */

static void *serve_page(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[512], head[128], *body = NULL;
    size_t have = 0;
    unsigned page = 0;
    ssize_t n;

    /* Read the request head: "GET /page/<i> HTTP/1.0" ... blank line. */
    while (have < sizeof(req) - 1 && !memmem(req, have, "\r\n\r\n", 4)) {
        n = jg_read(fd, req + have, sizeof(req) - 1 - have, JG_SEC(5));
        if (n <= 0)
            goto out;
        have += (size_t)n;
    }
    req[have] = '\0';
    if (sscanf(req, "GET /page/%u ", &page) != 1 || page > 1000)
        goto out;
    jg_sleep(DELAY);            /* a slow backend; parks only this one */
    size_t len = page * 1000u;
    if (!(body = malloc(len + 1)))
        goto out;
    memset(body, 'x', len);
    int hl = snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\n"
                      "Content-Length: %zu\r\n\r\n", len);
    struct iovec iov[2] = { { head, (size_t)hl }, { body, len } };
    jg_writev(fd, iov, 2, NULL, JG_SEC(5));
out:
    free(body);
    jg_close(fd);
    return NULL;
}

static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd;

    while ((fd = jg_accept(lfd, NULL, NULL, JG_FOREVER)) >= 0)
        if (jg_spawn(NULL, serve_page, (void *)(intptr_t)fd, NULL) < 0)
            jg_close(fd);
    return NULL;
}

/* ---- the downloader ------------------------------------------------------ */

struct download {
    int port;
    unsigned page;
    long size;                  /* body bytes received, or -errno */
};

/* Fetch one page; written exactly like blocking code. */
static void *fetch(void *arg)
{
    struct download *d = arg;
    char buf[16384], req[64], head[256];
    size_t hl = 0;
    long total = 0;
    ssize_t n;

    int fd = jg_tcp_dial("127.0.0.1", d->port, JG_SEC(5));
    if (fd < 0) {
        d->size = fd;
        return NULL;
    }
    int len = snprintf(req, sizeof(req), "GET /page/%u HTTP/1.0\r\n\r\n",
                       d->page);
    if (jg_write(fd, req, (size_t)len, NULL, JG_SEC(5)) < 0) {
        d->size = -EIO;
        goto out;
    }
    /* HTTP/1.0: the body ends when the server closes. Keep the start of
     * the reply to find where the head ends, count everything. */
    while ((n = jg_read(fd, buf, sizeof(buf), JG_SEC(5))) > 0) {
        size_t k = (size_t)n < sizeof(head) - hl ? (size_t)n
                                                 : sizeof(head) - hl;
        memcpy(head + hl, buf, k);
        hl += k;
        total += n;
    }
    char *end = memmem(head, hl, "\r\n\r\n", 4);
    if (n == 0 && !end)
        n = -EPROTO;            /* no complete head */
    else if (n == 0)
        total -= end + 4 - head;
    d->size = n < 0 ? n : total;
out:
    jg_close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned pages = argc > 1 ? (unsigned)atoi(argv[1]) : 10;
    int lfd = jg_tcp_listen("127.0.0.1", 0);
    long bytes = 0;

    if (lfd < 0 || pages < 1 || pages > 1000) {
        fprintf(stderr, "usage: downloader [pages 1..1000]\n");
        return 1;
    }
    jg_spawn(NULL, server, (void *)(intptr_t)lfd, NULL);

    struct download *d = calloc(pages, sizeof(*d));
    struct jg_green **g = calloc(pages, sizeof(*g));
    if (!d || !g)
        return 1;
    int64_t t0 = jg_now();
    /* One green thread per page, all started before any is joined. */
    for (unsigned i = 0; i < pages; i++) {
        d[i] = (struct download){ jg_sock_port(lfd), i + 1, 0 };
        if (jg_spawn(&g[i], fetch, &d[i], NULL) < 0)
            return 1;
    }
    for (unsigned i = 0; i < pages; i++) {
        jg_join(g[i], NULL, JG_FOREVER);
        if (d[i].size < 0) {
            printf("page %u: %s\n", d[i].page, jg_strerror((int)d[i].size));
            return 1;
        }
        printf("page %u: %ld bytes\n", d[i].page, d[i].size);
        bytes += d[i].size;
    }
    printf("downloaded %u pages, %ld bytes in %.3f s\n", pages, bytes,
           (double)(jg_now() - t0) / 1e9);
    free(d);
    free(g);
    return 0;
}
