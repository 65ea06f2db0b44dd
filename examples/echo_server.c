/* SPDX-License-Identifier: MIT */
/*
 * echo_server.c - the smallest green-thread server: every connection gets
 * its own green thread that reads and writes back until the client leaves.
 * The code reads like a blocking server with one thread per client, but
 * all clients share one OS thread and each waiting client costs a parked
 * green thread, not a kernel thread.
 *
 *   echo_server [port]     (default 7007; 0 picks a free port)
 *
 * Prints "listening on port N" once ready; serves until killed.
 */
#include <juggle.h>
#include <stdio.h>
#include <stdlib.h>

static void *echo(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];            /* on the green thread's own stack */
    ssize_t n;

    /* jg_read parks this green thread until data arrives; 0 is EOF. */
    while ((n = jg_read(fd, buf, sizeof(buf), JG_FOREVER)) > 0) {
        /* jg_write writes everything, parking while the socket is full. */
        if (jg_write(fd, buf, (size_t)n, NULL, JG_FOREVER) < 0)
            break;
    }
    jg_close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 7007;
    int lfd = jg_tcp_listen(NULL, port);

    if (lfd < 0) {
        fprintf(stderr, "listen on port %d: %s\n", port, jg_strerror(lfd));
        return 1;
    }
    printf("listening on port %d\n", jg_sock_port(lfd));
    fflush(stdout);
    for (;;) {
        /* Main is a green thread too: while it waits here, the hub runs
         * the connections' green threads. */
        int fd = jg_accept(lfd, NULL, NULL, JG_FOREVER);
        if (fd < 0)
            continue;
        /* Detached (out == NULL): nobody joins it; it frees itself. */
        if (jg_spawn(NULL, echo, (void *)(intptr_t)fd, NULL) < 0)
            jg_close(fd);
    }
}
