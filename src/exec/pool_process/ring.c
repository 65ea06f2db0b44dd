/* SPDX-License-Identifier: MIT */
/*
 * pool_process/ring.c - the rings of a worker's shared region (single
 * producer, single consumer, positions that only grow) and the fds that
 * travel beside them on its socket. A record never wraps (a WRAP marker
 * skips the end of the buffer), and a record read from the other process
 * is never trusted: every size is checked before it is used.
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "pool_process.h"
#include "sys.h"

/*
 * Reserve size bytes (a multiple of 8, <= RING_CAP / 2) at the producer's
 * position *head; a record never wraps: the rest of the buffer is skipped
 * with a WRAP marker. Returns where to write, or NULL when the ring is full.
 */
struct rec *jg__pp_ring_reserve(struct ring *r, char *buf, uint64_t *head,
                                uint64_t size)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t off = *head & (RING_CAP - 1);
    uint64_t to_end = RING_CAP - off;
    uint64_t need = to_end < size ? to_end + size : size;

    if (RING_CAP - (*head - tail) < need)
        return NULL;
    if (to_end < size) {
        struct rec *w = (struct rec *)(void *)(buf + off);
        w->size = (uint32_t)to_end; /* >= 8: room for size and kind */
        w->kind = REC_WRAP;
        *head += to_end;
        off = 0;
    }
    return (struct rec *)(void *)(buf + off);
}

/*
 * The record at the consumer's position *tail (skipping WRAP markers), or
 * NULL if none. A record from the other process is not trusted: sizes are
 * checked, and a bad one gives *bad = true.
 */
struct rec *jg__pp_ring_peek(struct ring *r, char *buf, uint64_t *tail,
                             bool *bad)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);

    while (*tail != head) {
        uint64_t off = *tail & (RING_CAP - 1);
        struct rec *h = (struct rec *)(void *)(buf + off);
        uint32_t size = h->size;
        if (size < 8 || size % 8 || size > head - *tail ||
            size > RING_CAP - off) {
            *bad = true;
            return NULL;
        }
        if (h->kind == REC_WRAP) {
            *tail += size;
            continue;
        }
        if (size < sizeof(struct rec) ||
            (!(h->flags & REC_SPILL) && h->len > size - sizeof(struct rec))) {
            *bad = true;
            return NULL;
        }
        return h;
    }
    return NULL;
}

int jg__pp_send_fd(int sock, int fd)
{
    char byte = 0;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = c.buf,
                         .msg_controllen = sizeof(c.buf) };

    memset(&c, 0, sizeof(c));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    for (;;) {
        if (jg__sys_sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* Receive one fd; nonblock for the manager (it was sent before the
 * record that announced it, so it is there unless the sender died). */
int jg__pp_recv_fd(int sock, bool nonblock)
{
    char byte;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = c.buf,
                         .msg_controllen = sizeof(c.buf) };
    ssize_t n;

    do
        n = jg__sys_recvmsg(sock, &mh, MSG_CMSG_CLOEXEC |
                    (nonblock ? MSG_DONTWAIT : 0));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (n != 1 || !cm || cm->cmsg_type != SCM_RIGHTS)
        return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    return fd;
}

/* A memfd holding p[0..n): large payloads and results travel this way. */
int jg__pp_spill(const void *p, size_t n)
{
    int fd = jg__sys_memfd_create("jg-spill", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < n) {
        ssize_t w = jg__sys_write(fd, (const char *)p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? -errno : -EIO;
            jg__sys_close(fd);
            return e;
        }
        done += (size_t)w;
    }
    return fd;
}
