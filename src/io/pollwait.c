/* SPDX-License-Identifier: MIT */
/*
 * pollwait.c - a wait on several fds at once for the preload library's
 * poll and select: one jg_io watcher per fd on the hub's own loop, one
 * park, the first readiness wakes the green thread. The watchers live on
 * the heap, never on the caller's stack, which may be sliced and copied
 * out while it is parked; the caller's array is read before the park only,
 * and the caller learns which fds are ready by asking the kernel again.
 */
#include <stdlib.h>

#include "hub.h"
#include "iofd.h"

struct node {
    struct jg_io io;
    struct jg_green *g;
};

static void ready_cb(struct jg_io *w, uint32_t revents)
{
    struct node *n = JG_CONTAINER_OF(w, struct node, io);

    (void)revents;
    /* The first one wins; the others find the green thread woken. */
    jg__wake(n->g, 1);
}

int jg__poll_wait_until(const struct jg__pollfd *fds, int n,
                        int64_t deadline)
{
    struct jg_green *g = jg__park_prepare();
    struct node *nodes;
    int started = 0, rc = 0;

    if (!g)
        return -ENOMEM;
    if (g == g->hub->hub_g || jg__cb_depth > 0)
        return -EPERM;
    if (g->flags & JG__G_CANCELLED)
        return -ECANCELED;
    if (n <= 0 || !fds)
        return -EINVAL;
    nodes = malloc(sizeof(*nodes) * (size_t)n);
    if (!nodes)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        nodes[i].g = g;
        jg_io_init(&nodes[i].io, ready_cb, fds[i].fd, fds[i].events);
        if ((rc = jg_io_start(&g->hub->loop, &nodes[i].io)) < 0)
            break;
        started++;
    }
    if (rc == 0)
        rc = jg__park(deadline);
    else if (rc == -EPERM || rc == -EBADF)
        /* A regular file is always ready and a bad fd is POLLNVAL: the
         * caller's next look reports either without a wait. */
        rc = 1;
    for (int i = 0; i < started; i++)
        jg_io_stop(&nodes[i].io);
    free(nodes);
    return rc;
}
