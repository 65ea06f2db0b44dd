/* SPDX-License-Identifier: MIT */
/*
 * iofd.h - what the io layer offers the layers above it (net, exec, patch)
 * beside the public calls: a fresh fd's reset of what io.c and the loop
 * believed of its number, and a wait on several fds at once.
 */
#ifndef JG_IOFD_H
#define JG_IOFD_H

#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* A juggle call (or an interposed libc call) made fd: forget what io.c and
 * the loop believed of an older fd of that number (see jg__loop_fd_fresh).
 * Defined in io.c, which owns the fd-kind cache. Any thread. */
JG_HIDDEN void jg__fd_fresh(int fd);

/* One write(2) of buf[n], or writev(2) of iov[cnt] when iov is not NULL,
 * to a pipe whose reader may be gone: -EPIPE then, never a SIGPIPE that
 * kills the process. The count, or -errno (-EINTR included). */
struct iovec;
JG_HIDDEN ssize_t jg__fifo_write(int fd, const void *buf, size_t n,
                                 const struct iovec *iov, int cnt);

/* One fd of a poll set for jg__poll_wait_until: JG_READ and/or JG_WRITE. */
struct jg__pollfd {
    int fd;
    uint32_t events;
};

/* Wait on several fds at once, parking once (pollwait.c; the preload
 * library's poll and select): 1 when one is ready or cannot be watched,
 * -ETIMEDOUT, -ECANCELED, -EPERM, -ENOMEM. fds is read before the park
 * only (it may live on the caller's sliced stack). */
JG_HIDDEN int jg__poll_wait_until(const struct jg__pollfd *fds, int n,
                                  int64_t deadline);

/*
 * The one "park if there is a hub, else poll": wait until one of fds[n]
 * (n <= JG__POLL_MAX) is ready or the absolute deadline passes. A caller
 * on a thread with a hub parks (jg__poll_wait_until, or jg__wait_fd_until
 * for one fd); a thread without one blocks in ppoll(2) and makes no hub.
 * Returns 1, -ETIMEDOUT, -ECANCELED, -EPERM (a loop callback, the hub),
 * -EINVAL, -ENOMEM, or another -errno.
 */
#define JG__POLL_MAX 8
JG_HIDDEN int jg__poll_any(const struct jg__pollfd *fds, int n,
                           int64_t deadline);

#endif
