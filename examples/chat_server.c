/* SPDX-License-Identifier: MIT */
/*
 * chat_server.c - a line-based chat room: each client sends its name as its
 * first line, then every line it sends goes to every other client as
 * "name: line". Green threads talk through jg_queues, never through each
 * other's sockets:
 *
 *   reader (one per client) --> room queue --> broadcaster --> outbox
 *   queue (one per client) --> writer (one per client) --> socket
 *
 * so a slow client only fills its own outbox; the room keeps going.
 *
 *   chat_server [port]     (default 7070; 0 picks a free port)
 */
#define _GNU_SOURCE             /* memmem */
#include <juggle.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client {
    struct client *next;
    int fd;
    char name[32];
    struct jg_queue *outbox;    /* lines waiting to be written (char *) */
};

/* A line for the room: who sent it (NULL: the server) and the text. */
struct msg {
    struct client *from;
    char *text;
};

static struct client *clients;  /* only green threads of this hub touch it */
static struct jg_queue *room;   /* struct msg * */

/* Send a copy of m to every client but its sender, then free m. */
static void *broadcaster(void *arg)
{
    struct msg *m;

    (void)arg;
    while (jg_queue_get(room, (void **)&m, JG_FOREVER) == 0) {
        for (struct client *c = clients; c; c = c->next) {
            char *copy;
            if (c == m->from || !(copy = strdup(m->text)))
                continue;
            /* An outbox is unbounded: a put never waits. */
            if (jg_queue_put(c->outbox, copy, 0) < 0)
                free(copy);
        }
        free(m->text);
        free(m);
    }
    return NULL;
}

static void say(struct client *from, const char *fmt, const char *a,
                const char *b)
{
    struct msg *m = malloc(sizeof(*m));
    int n = snprintf(NULL, 0, fmt, a, b);

    if (!m || n < 0 || !(m->text = malloc((size_t)n + 1))) {
        free(m);
        return;
    }
    snprintf(m->text, (size_t)n + 1, fmt, a, b);
    m->from = from;
    if (jg_queue_put(room, m, 0) < 0) {
        free(m->text);
        free(m);
    }
}

/* Drain the client's outbox into its socket until the outbox is closed. */
static void *writer(void *arg)
{
    struct client *c = arg;
    char *line;

    while (jg_queue_get(c->outbox, (void **)&line, JG_FOREVER) == 0) {
        int rc = jg_write(c->fd, line, strlen(line), NULL, JG_SEC(10));
        free(line);
        if (rc < 0)
            break;              /* gone or too slow: the reader sees it */
    }
    /* Whatever is left is dropped with its client. */
    while (jg_queue_get(c->outbox, (void **)&line, 0) == 0)
        free(line);
    return NULL;
}

/* Read lines from the socket and hand them to the room. */
static void *session(void *arg)
{
    struct client *c = calloc(1, sizeof(*c));
    struct jg_green *w = NULL;
    char buf[1024];
    size_t have = 0;
    bool named = false;
    ssize_t n;

    if (!c || jg_queue_create(&c->outbox, 0, JG_QUEUE_FIFO) < 0) {
        jg_close((int)(intptr_t)arg);
        free(c);
        return NULL;
    }
    c->fd = (int)(intptr_t)arg;
    if (jg_spawn(&w, writer, c, NULL) < 0)
        goto out;
    while ((n = jg_read(c->fd, buf + have, sizeof(buf) - 1 - have,
                        JG_FOREVER)) > 0) {
        char *line = buf, *nl;
        have += (size_t)n;
        /* Every complete line; a partial one waits for the next read. */
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            if (!named) {
                /* Names are cut to 31 bytes (c is zeroed). */
                size_t len = strlen(line);
                memcpy(c->name, line, len < sizeof(c->name) - 1
                                          ? len : sizeof(c->name) - 1);
                named = true;
                c->next = clients;      /* join the room */
                clients = c;
                say(c, "* %s joined%s\n", c->name, "");
            } else {
                say(c, "%s: %s\n", c->name, line);
            }
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof(buf) - 1)
            break;              /* a line too long: drop the client */
    }
    if (named) {                /* leave the room */
        for (struct client **p = &clients; *p; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
        say(NULL, "* %s left%s\n", c->name, "");
    }
out:
    /* Closing the outbox ends the writer once it is drained. */
    jg_queue_close(c->outbox);
    if (w)
        jg_join(w, NULL, JG_FOREVER);
    jg_close(c->fd);
    jg_queue_destroy(c->outbox);
    free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 7070;
    int lfd = jg_tcp_listen(NULL, port);

    if (lfd < 0) {
        fprintf(stderr, "listen on port %d: %s\n", port, jg_strerror(lfd));
        return 1;
    }
    if (jg_queue_create(&room, 0, JG_QUEUE_FIFO) < 0 ||
        jg_spawn(NULL, broadcaster, NULL, NULL) < 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    printf("listening on port %d\n", jg_sock_port(lfd));
    fflush(stdout);
    for (;;) {
        int fd = jg_accept(lfd, NULL, NULL, JG_FOREVER);
        if (fd >= 0 && jg_spawn(NULL, session, (void *)(intptr_t)fd, NULL) < 0)
            jg_close(fd);
    }
}
