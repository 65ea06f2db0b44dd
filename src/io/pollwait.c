/* SPDX-License-Identifier: MIT */
/*
 * pollwait.c - a wait on several fds at once for the preload library's
 * poll and select and for the layers above (jg__poll_any, which blocks a
 * thread without a hub in ppoll instead): one jg_io watcher per fd on the
 * hub's own loop, one park, the first readiness wakes the green thread. The watchers live on
 * the heap, never on the caller's stack, which may be sliced and copied
 * out while it is parked; the caller's array is read before the park only,
 * and the caller learns which fds are ready by asking the kernel again.
 */
#include <poll.h>
#include <stdlib.h>

#include "hub.h"
#include "iofd.h"
#include "sys.h"

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

    if ((rc = jg__park_check(g)) < 0)
        return rc;
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

/* A thread without a hub: ppoll(2) until ready or the deadline. */
static int poll_thread(const struct jg__pollfd *fds, int n, int64_t deadline)
{
    struct pollfd p[JG__POLL_MAX];

    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){
            .fd = fds[i].fd,
            .events = (short)((fds[i].events & JG_READ ? POLLIN : 0) |
                              (fds[i].events & JG_WRITE ? POLLOUT : 0)),
        };
    for (;;) {
        struct timespec ts, *tp = NULL;
        int r;

        if (deadline != INT64_MAX) {
            int64_t left = deadline - jg_now();
            if (left <= 0)
                return -ETIMEDOUT;
            ts.tv_sec = left / JG_SEC(1);
            ts.tv_nsec = left % JG_SEC(1);
            tp = &ts;
        }
        r = jg__sys_ppoll(p, (nfds_t)n, tp, NULL);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

int jg__poll_any(const struct jg__pollfd *fds, int n, int64_t deadline)
{
    int rc;

    if (n <= 0 || n > JG__POLL_MAX || !fds)
        return -EINVAL;
    if (jg__wait_kind() == 0)
        return poll_thread(fds, n, deadline);
    if (n > 1)
        return jg__poll_wait_until(fds, n, deadline);
    rc = jg__wait_fd_until(fds[0].fd, fds[0].events, deadline);
    return rc > 0 ? 1 : rc;
}
