/* SPDX-License-Identifier: MIT */
/*
 * io.c - the data calls of the patch: read/write and their vector,
 * positioned and socket variants, accept and connect. From a green thread a
 * blocking socket gets MSG_DONTWAIT per call and the green thread parks on
 * EAGAIN; other blocking fds (pipes, ttys) are polled before each call; the
 * fd's own O_NONBLOCK is never changed, except around one accept4/connect
 * of a socket above fd 2 (restored at once, under preload.c's lock, which
 * no other thread of the process sees through). A fd the user made
 * non-blocking, and regular files, go straight to libc.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preload/preload.h"

PL_SYM(read);
PL_SYM(write);
PL_SYM(readv);
PL_SYM(writev);
PL_SYM(pread);
PL_SYM(pwrite);
PL_SYM(pread64);
PL_SYM(pwrite64);
PL_SYM(recv);
PL_SYM(recvfrom);
PL_SYM(recvmsg);
PL_SYM(recvmmsg);
PL_SYM(send);
PL_SYM(sendto);
PL_SYM(sendmsg);
PL_SYM(sendmmsg);
PL_SYM(accept4);
PL_SYM(connect);
PL_SYM(poll);
PL_SYM(getsockopt);

/* A libc call in the -errno convention. */
#define DIRECT(call) ({ long r_ = (long)(call); r_ < 0 ? -errno : r_; })

/* One readiness look, shared by the I/O and the child interposers. */
int jg__pl_ready_now(int fd, short ev)
{
    struct pollfd p = { .fd = fd, .events = ev };
    int r;

    do
        r = REAL(poll)(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    return r > 0;
}

/* The deadline of one call from the fd's SO_RCVTIMEO/SO_SNDTIMEO, taken
 * only when the call first has to wait. */
static int64_t call_deadline(int fd, bool snd)
{
    int64_t t = jg__pl_fd_timeout(fd, snd);
    return jg__pl_after(t > 0 ? t : -1);
}

/* The fd's kind once more, after ENOTSOCK showed the entry was stale. */
static int relearn(int fd)
{
    jg__pl_fd_fresh(fd, 0);
    return jg__pl_fd_kind(fd);
}

/* ---- sockets ------------------------------------------------------------- */

/*
 * Receive as a blocking socket would: into buf (recvfrom) or msg
 * (recvmsg). MSG_WAITALL on a buffer is looped here (with MSG_DONTWAIT the
 * kernel would stop short); a short read after an error or EOF reports
 * what arrived, as recv(2) does.
 */
static ssize_t sock_recv(int fd, int kind, void *buf, size_t n, int flags,
                         struct sockaddr *addr, socklen_t *alen,
                         struct msghdr *msg)
{
    bool all = !msg && (flags & MSG_WAITALL);
    socklen_t want = alen ? *alen : 0;
    int64_t deadline = 0;
    size_t got = 0;

    flags = (flags & ~MSG_WAITALL) | MSG_DONTWAIT;
    for (;;) {
        ssize_t r;
        if (alen)
            *alen = want;
        if (msg)
            r = REAL(recvmsg)(fd, msg, flags);
        else
            r = REAL(recvfrom)(fd, (char *)buf + got, n - got, flags,
                               addr, alen);
        if (r > 0 && all && (got += (size_t)r) < n)
            continue;
        if (r >= 0)
            return all ? (ssize_t)got : r;
        int e = errno;
        if ((e != EAGAIN && e != EWOULDBLOCK) || (kind & PL_K_NB))
            return got ? (ssize_t)got : -e;
        if (!deadline)
            deadline = call_deadline(fd, false);
        int w = jg__pl_wait(fd, JG_READ, deadline, EAGAIN);
        if (w == -EPERM) {
            /* Cannot park here: wait as libc would, in the kernel. */
            struct pollfd p = { .fd = fd, .events = POLLIN };
            (void)REAL(poll)(&p, 1, -1);
        } else if (w < 0) {
            return got ? (ssize_t)got : w;
        }
    }
}

/*
 * Send all of msg as a blocking socket would: a stream socket's partial
 * sends continue from where they stopped (the caller's iovec array is
 * never modified; a partly sent element goes alone), ancillary data goes
 * with the first byte only. After progress an error reports the count.
 */
static ssize_t sock_send(int fd, int kind, const struct msghdr *msg,
                         int flags)
{
    struct msghdr m = *msg;
    struct iovec part;
    size_t total = 0, off = 0, len = 0;
    int64_t deadline = 0;
    size_t i = 0, cnt = msg->msg_iovlen;

    for (size_t k = 0; k < cnt; k++)
        len += msg->msg_iov[k].iov_len;
    flags |= MSG_DONTWAIT;
    for (;;) {
        while (i < cnt && off >= msg->msg_iov[i].iov_len) {
            off -= msg->msg_iov[i].iov_len;
            i++;
        }
        if (off) {
            part.iov_base = (char *)msg->msg_iov[i].iov_base + off;
            part.iov_len = msg->msg_iov[i].iov_len - off;
            m.msg_iov = &part;
            m.msg_iovlen = 1;
        } else {
            m.msg_iov = msg->msg_iov + i;
            m.msg_iovlen = cnt - i;
        }
        ssize_t r = REAL(sendmsg)(fd, &m, flags);
        if (r >= 0) {
            total += (size_t)r;
            off += (size_t)r;
            m.msg_control = NULL;
            m.msg_controllen = 0;
            if (total >= len)
                return (ssize_t)total;
            continue;
        }
        int e = errno;
        if ((e != EAGAIN && e != EWOULDBLOCK) || (kind & PL_K_NB))
            return total ? (ssize_t)total : -e;
        if (!deadline)
            deadline = call_deadline(fd, true);
        int w = jg__pl_wait(fd, JG_WRITE, deadline, EAGAIN);
        if (w == -EPERM) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            (void)REAL(poll)(&p, 1, -1);
        } else if (w < 0) {
            return total ? (ssize_t)total : w;
        }
    }
}

/* ---- pipes, ttys and other pollable fds ---------------------------------- */

enum { RD_PLAIN, RD_VEC, RD_POS, RD_POS64 };

struct rd {
    void *buf;
    size_t n;
    const struct iovec *iov;
    int cnt;
    off64_t off;
    int how;
};

static ssize_t rd_call(int fd, const struct rd *a)
{
    switch (a->how) {
    case RD_VEC:
        return DIRECT(REAL(readv)(fd, a->iov, a->cnt));
    case RD_POS:
        return DIRECT(REAL(pread)(fd, a->buf, a->n, (off_t)a->off));
    case RD_POS64:
        return DIRECT(REAL(pread64)(fd, a->buf, a->n, a->off));
    default:
        return DIRECT(REAL(read)(fd, a->buf, a->n));
    }
}

/* A blocking non-socket read: wait until poll says a read would not
 * block (there is data, EOF or an error), then read once. */
static ssize_t other_read(int fd, const struct rd *a)
{
    for (;;) {
        int ok = jg__pl_ready_now(fd, POLLIN);
        if (ok < 0)
            return ok;
        if (ok)
            return rd_call(fd, a);
        int w = jg__pl_wait(fd, JG_READ, INT64_MAX, EAGAIN);
        if (w == -EPERM)
            return rd_call(fd, a);
        if (w < 0)
            return w;
    }
}

/* Every read-like call from a green thread, in the -errno convention. */
static ssize_t coop_read(enum jg__pl_name name, int fd, const struct rd *a)
{
    int kind = jg__pl_fd_kind(fd);

    if (kind < 0 || (kind & (PL_K_NB | PL_K_FILE)))
        return rd_call(fd, a);
    jg__pl_note(name);
    if ((kind & PL_K_SOCK) && a->how <= RD_VEC) {
        ssize_t r;
        if (a->how == RD_VEC) {
            struct msghdr m = {
                .msg_iov = (struct iovec *)a->iov,
                .msg_iovlen = (size_t)(a->cnt > 0 ? a->cnt : 0),
            };
            if (a->cnt < 0 || a->cnt > IOV_MAX)
                return rd_call(fd, a);
            r = sock_recv(fd, kind, NULL, 0, 0, NULL, NULL, &m);
        } else {
            r = sock_recv(fd, kind, a->buf, a->n, 0, NULL, NULL, NULL);
        }
        if (r != -ENOTSOCK)
            return r;
        kind = relearn(fd);
        if (kind < 0 || (kind & (PL_K_NB | PL_K_FILE)))
            return rd_call(fd, a);
    }
    if (kind & PL_K_SOCK)
        return rd_call(fd, a);      /* pread on a socket: ESPIPE */
    return other_read(fd, a);
}

/*
 * A blocking non-socket write of everything: wait until poll says the fd
 * takes data, then write at most PIPE_BUF bytes of the current element,
 * which a writable pipe accepts without blocking.
 */
static ssize_t other_write(int fd, const struct iovec *iov, int cnt,
                           off64_t pos, bool positioned)
{
    size_t total = 0, off = 0;
    int i = 0;

    for (;;) {
        while (i < cnt && off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            i++;
        }
        if (i == cnt && total)
            return (ssize_t)total;
        int ok = jg__pl_ready_now(fd, POLLOUT);
        if (ok < 0)
            return total ? (ssize_t)total : ok;
        if (!ok) {
            int w = jg__pl_wait(fd, JG_WRITE, INT64_MAX, EAGAIN);
            if (w < 0 && w != -EPERM)
                return total ? (ssize_t)total : w;
            if (w == 0)
                continue;
        }
        const char *p = i < cnt ? (const char *)iov[i].iov_base + off : "";
        size_t n = i < cnt ? iov[i].iov_len - off : 0;
        if (n > PIPE_BUF && ok)
            n = PIPE_BUF;
        ssize_t r = positioned
            ? REAL(pwrite64)(fd, p, n, pos + (off64_t)total)
            : REAL(write)(fd, p, n);
        if (r < 0)
            return total ? (ssize_t)total : -errno;
        total += (size_t)r;
        off += (size_t)r;
        if (i == cnt)
            return (ssize_t)total;
    }
}

struct wr {
    const void *buf;
    size_t n;
    const struct iovec *iov;
    int cnt;
    off64_t off;
    int how;
};

static ssize_t wr_call(int fd, const struct wr *a)
{
    switch (a->how) {
    case RD_VEC:
        return DIRECT(REAL(writev)(fd, a->iov, a->cnt));
    case RD_POS:
        return DIRECT(REAL(pwrite)(fd, a->buf, a->n, (off_t)a->off));
    case RD_POS64:
        return DIRECT(REAL(pwrite64)(fd, a->buf, a->n, a->off));
    default:
        return DIRECT(REAL(write)(fd, a->buf, a->n));
    }
}

/* write, writev and pwrite from a green thread (-errno convention). */
static ssize_t coop_write(enum jg__pl_name name, int fd, const struct wr *a)
{
    struct iovec one = { (void *)a->buf, a->n };
    const struct iovec *iov = a->how == RD_VEC ? a->iov : &one;
    int cnt = a->how == RD_VEC ? a->cnt : 1;
    int kind = jg__pl_fd_kind(fd);

    if (kind < 0 || (kind & (PL_K_NB | PL_K_FILE)) || cnt < 0 ||
        cnt > IOV_MAX || (cnt && !iov))
        return wr_call(fd, a);
    jg__pl_note(name);
    if ((kind & PL_K_SOCK) && a->how <= RD_VEC) {
        struct msghdr m = {
            .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt,
        };
        ssize_t r = sock_send(fd, kind, &m, 0);
        if (r != -ENOTSOCK)
            return r;
        kind = relearn(fd);
        if (kind < 0 || (kind & (PL_K_NB | PL_K_FILE)))
            return wr_call(fd, a);
    }
    if (kind & PL_K_SOCK)
        return wr_call(fd, a);      /* pwrite on a socket: ESPIPE */
    return other_write(fd, iov, cnt, a->off, a->how >= RD_POS);
}

/* ---- read family ---------------------------------------------------------- */

/* The cooperative halves live out of line, so that the pass-through half
 * of the hottest calls needs no stack frame: a few loads and a tail call. */
static JG_NOINLINE ssize_t green_read(int fd, void *buf, size_t n)
{
    struct rd a = { .buf = buf, .n = n, .how = RD_PLAIN };
    return jg__pl_ret(coop_read(PL_read, fd, &a));
}

PL_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (!jg__pl_green())
        return REAL(read)(fd, buf, n);
    return green_read(fd, buf, n);
}

PL_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    if (!jg__pl_green())
        return REAL(readv)(fd, iov, cnt);
    struct rd a = { .iov = iov, .cnt = cnt, .how = RD_VEC };
    return jg__pl_ret(coop_read(PL_readv, fd, &a));
}

PL_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (!jg__pl_green())
        return REAL(pread)(fd, buf, n, off);
    struct rd a = { .buf = buf, .n = n, .off = off, .how = RD_POS };
    return jg__pl_ret(coop_read(PL_pread, fd, &a));
}

PL_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    if (!jg__pl_green())
        return REAL(pread64)(fd, buf, n, off);
    struct rd a = { .buf = buf, .n = n, .off = off, .how = RD_POS64 };
    return jg__pl_ret(coop_read(PL_pread64, fd, &a));
}

/* The fortified entry points (_FORTIFY_SOURCE): check as glibc does, then
 * take the same path. __chk_fail reports the overflow and aborts. */
extern void __chk_fail(void) __attribute__((noreturn));
PL_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
PL_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off,
                              size_t buflen);
PL_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off,
                                size_t buflen);
PL_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
                             int flags);
PL_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                                 int flags, struct sockaddr *addr,
                                 socklen_t *alen);

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    if (!jg__pl_green())
        return REAL(read)(fd, buf, n);
    struct rd a = { .buf = buf, .n = n, .how = RD_PLAIN };
    return jg__pl_ret(coop_read(PL___read_chk, fd, &a));
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    if (!jg__pl_green())
        return REAL(pread)(fd, buf, n, off);
    struct rd a = { .buf = buf, .n = n, .off = off, .how = RD_POS };
    return jg__pl_ret(coop_read(PL___pread_chk, fd, &a));
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off,
                      size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    if (!jg__pl_green())
        return REAL(pread64)(fd, buf, n, off);
    struct rd a = { .buf = buf, .n = n, .off = off, .how = RD_POS64 };
    return jg__pl_ret(coop_read(PL___pread64_chk, fd, &a));
}

/* ---- write family --------------------------------------------------------- */

static JG_NOINLINE ssize_t green_write(int fd, const void *buf, size_t n)
{
    struct wr a = { .buf = buf, .n = n, .how = RD_PLAIN };
    return jg__pl_ret(coop_write(PL_write, fd, &a));
}

PL_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (!jg__pl_green())
        return REAL(write)(fd, buf, n);
    return green_write(fd, buf, n);
}

PL_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (!jg__pl_green())
        return REAL(writev)(fd, iov, cnt);
    struct wr a = { .iov = iov, .cnt = cnt, .how = RD_VEC };
    return jg__pl_ret(coop_write(PL_writev, fd, &a));
}

PL_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!jg__pl_green())
        return REAL(pwrite)(fd, buf, n, off);
    struct wr a = { .buf = buf, .n = n, .off = off, .how = RD_POS };
    return jg__pl_ret(coop_write(PL_pwrite, fd, &a));
}

PL_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    if (!jg__pl_green())
        return REAL(pwrite64)(fd, buf, n, off);
    struct wr a = { .buf = buf, .n = n, .off = off, .how = RD_POS64 };
    return jg__pl_ret(coop_write(PL_pwrite64, fd, &a));
}

/* ---- socket calls ----------------------------------------------------------- */

/* The kind of a socket that needs the cooperative path, or 0 to call libc:
 * not a socket (libc reports ENOTSOCK), made non-blocking by the user, or
 * MSG_DONTWAIT asked for this call. */
static int coop_sock(int fd, int flags)
{
    if (flags & MSG_DONTWAIT)
        return 0;
    int kind = jg__pl_fd_kind(fd);
    if (kind < 0 || !(kind & PL_K_SOCK) || (kind & PL_K_NB))
        return 0;
    return kind;
}

static ssize_t recv_common(enum jg__pl_name name, int fd, void *buf,
                           size_t n, int flags, struct sockaddr *addr,
                           socklen_t *alen)
{
    int kind = coop_sock(fd, flags);

    if (!kind)
        return DIRECT(REAL(recvfrom)(fd, buf, n, flags, addr, alen));
    jg__pl_note(name);
    return sock_recv(fd, kind, buf, n, flags, addr, alen, NULL);
}

PL_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (!jg__pl_green())
        return REAL(recv)(fd, buf, n, flags);
    return jg__pl_ret(recv_common(PL_recv, fd, buf, n, flags, NULL, NULL));
}

PL_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                           struct sockaddr *addr, socklen_t *alen)
{
    if (!jg__pl_green())
        return REAL(recvfrom)(fd, buf, n, flags, addr, alen);
    return jg__pl_ret(recv_common(PL_recvfrom, fd, buf, n, flags, addr,
                                  alen));
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        __chk_fail();
    if (!jg__pl_green())
        return REAL(recv)(fd, buf, n, flags);
    return jg__pl_ret(recv_common(PL___recv_chk, fd, buf, n, flags, NULL,
                                  NULL));
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                       int flags, struct sockaddr *addr, socklen_t *alen)
{
    if (n > buflen)
        __chk_fail();
    if (!jg__pl_green())
        return REAL(recvfrom)(fd, buf, n, flags, addr, alen);
    return jg__pl_ret(recv_common(PL___recvfrom_chk, fd, buf, n, flags,
                                  addr, alen));
}

PL_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!jg__pl_green())
        return REAL(recvmsg)(fd, msg, flags);
    int kind = coop_sock(fd, flags);
    if (!kind || !msg)
        return REAL(recvmsg)(fd, msg, flags);
    jg__pl_note(PL_recvmsg);
    return jg__pl_ret(sock_recv(fd, kind, NULL, 0, flags, NULL, NULL, msg));
}

/*
 * recvmmsg: wait until the first message, then take what is queued; a
 * blocking call without MSG_WAITFORONE goes on until vlen messages or its
 * timeout (absolute from the call's start, as the kernel's).
 */
PL_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
                       int flags, struct timespec *timeout)
{
    if (!jg__pl_green())
        return REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
    int kind = coop_sock(fd, flags);
    if (!kind || !vec || !vlen ||
        (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
                     timeout->tv_nsec >= 1000000000L)))
        return REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
    jg__pl_note(PL_recvmmsg);
    int64_t own = timeout ? jg__pl_after(timeout->tv_sec * 1000000000LL +
                                         timeout->tv_nsec)
                          : INT64_MAX;
    int64_t so = call_deadline(fd, false);
    unsigned got = 0;
    for (;;) {
        int r = REAL(recvmmsg)(fd, vec + got, vlen - got,
                               (flags & ~MSG_WAITFORONE) | MSG_DONTWAIT,
                               NULL);
        if (r > 0) {
            got += (unsigned)r;
            if (got == vlen || (flags & MSG_WAITFORONE))
                return (int)got;
            continue;
        }
        int e = r < 0 ? errno : EAGAIN;
        if (e != EAGAIN && e != EWOULDBLOCK)
            return got ? (int)got : (int)jg__pl_ret(-e);
        if (got && own != INT64_MAX && jg__pl_now() >= own)
            return (int)got;
        int w = jg__pl_wait(fd, JG_READ, own < so ? own : so, EAGAIN);
        if (w == -EAGAIN && got)
            return (int)got;
        if (w < 0 && w != -EPERM)
            return got ? (int)got : (int)jg__pl_ret(w);
        if (w == -EPERM)
            return REAL(recvmmsg)(fd, vec + got, vlen - got, flags, NULL);
    }
}

static ssize_t send_common(enum jg__pl_name name, int fd, const void *buf,
                           size_t n, int flags, const struct sockaddr *addr,
                           socklen_t alen)
{
    int kind = coop_sock(fd, flags);

    if (!kind)
        return DIRECT(REAL(sendto)(fd, buf, n, flags, addr, alen));
    jg__pl_note(name);
    struct iovec v = { (void *)buf, n };
    struct msghdr m = {
        .msg_name = (void *)addr, .msg_namelen = addr ? alen : 0,
        .msg_iov = &v, .msg_iovlen = 1,
    };
    return sock_send(fd, kind, &m, flags);
}

PL_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (!jg__pl_green())
        return REAL(send)(fd, buf, n, flags);
    return jg__pl_ret(send_common(PL_send, fd, buf, n, flags, NULL, 0));
}

PL_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                         const struct sockaddr *addr, socklen_t alen)
{
    if (!jg__pl_green())
        return REAL(sendto)(fd, buf, n, flags, addr, alen);
    return jg__pl_ret(send_common(PL_sendto, fd, buf, n, flags, addr,
                                  alen));
}

PL_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!jg__pl_green())
        return REAL(sendmsg)(fd, msg, flags);
    int kind = coop_sock(fd, flags);
    if (!kind || !msg || (msg->msg_iovlen && !msg->msg_iov) ||
        msg->msg_iovlen > IOV_MAX)
        return REAL(sendmsg)(fd, msg, flags);
    jg__pl_note(PL_sendmsg);
    return jg__pl_ret(sock_send(fd, kind, msg, flags));
}

/* sendmmsg: every message sent, each as a blocking sendmsg would. */
PL_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
                       int flags)
{
    if (!jg__pl_green())
        return REAL(sendmmsg)(fd, vec, vlen, flags);
    int kind = coop_sock(fd, flags);
    if (!kind || !vec || !vlen)
        return REAL(sendmmsg)(fd, vec, vlen, flags);
    jg__pl_note(PL_sendmmsg);
    unsigned done = 0;
    for (; done < vlen; done++) {
        const struct msghdr *h = &vec[done].msg_hdr;
        if ((h->msg_iovlen && !h->msg_iov) || h->msg_iovlen > IOV_MAX) {
            if (done)
                break;
            return REAL(sendmmsg)(fd, vec, vlen, flags);
        }
        ssize_t r = sock_send(fd, kind, h, flags);
        if (r < 0) {
            if (done)
                break;
            return (int)jg__pl_ret(r);
        }
        vec[done].msg_len = (unsigned)r;
    }
    return (int)done;
}

/* ---- accept and connect ----------------------------------------------------- */

struct acc {
    struct sockaddr *addr;
    socklen_t *alen;
    int flags;
};

static int do_accept(int fd, void *p)
{
    struct acc *a = p;
    return REAL(accept4)(fd, a->addr, a->alen, a->flags);
}

static int coop_accept(enum jg__pl_name name, int fd, struct sockaddr *addr,
                       socklen_t *alen, int flags)
{
    int kind = coop_sock(fd, 0);
    struct acc a = { addr, alen, flags };
    socklen_t want = alen ? *alen : 0;
    int64_t deadline = 0;
    int c;

    if (!kind)
        return (int)DIRECT(REAL(accept4)(fd, addr, alen, flags));
    jg__pl_note(name);
    for (;;) {
        if (alen)
            *alen = want;
        if (fd > 2) {
            c = jg__pl_nb_call(fd, do_accept, &a);
        } else {
            /* fds 0-2 are never made non-blocking, even for a moment:
             * wait for a connection, then take it blocking. */
            int ok = jg__pl_ready_now(fd, POLLIN);
            c = ok < 0 ? ok : ok ? (int)DIRECT(do_accept(fd, &a)) : -EAGAIN;
        }
        if (c >= 0)
            break;
        if (c != -EAGAIN && c != -EWOULDBLOCK)
            return c;
        if (!deadline)
            deadline = call_deadline(fd, false);
        int w = jg__pl_wait(fd, JG_READ, deadline, EAGAIN);
        if (w == -EPERM)
            return (int)DIRECT(REAL(accept4)(fd, addr, alen, flags));
        if (w < 0)
            return w;
    }
    jg__pl_fd_fresh(c, PL_K_KNOWN | PL_K_SOCK |
                       (flags & SOCK_NONBLOCK ? PL_K_NB : 0));
    jg__pl_rt->fd_fresh(c);
    return c;
}

/*
 * accept4 from a plain thread (or the hub). A blocking listener reports
 * EAGAIN only when a green thread's accept on another OS thread had
 * O_NONBLOCK set on the shared description at that instant: then the
 * call is made again, as the blocking call the caller made.
 */
static int plain_accept(int fd, struct sockaddr *addr, socklen_t *alen,
                        int flags)
{
    socklen_t want = alen ? *alen : 0;
    int c;

    for (;;) {
        c = REAL(accept4)(fd, addr, alen, flags);
        if (c >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ||
            !atomic_load_explicit(&jg__pl_nb_used, memory_order_acquire))
            break;
        int e = errno, fl = jg__pl_getfl(fd);
        if (fl < 0 || (fl & O_NONBLOCK)) {
            errno = e;
            break;
        }
        if (alen)
            *alen = want;
    }
    /* A fresh fd: correct what we knew of its number. */
    if (c >= 0) {
        jg__pl_fd_fresh(c, PL_K_KNOWN | PL_K_SOCK |
                           (flags & SOCK_NONBLOCK ? PL_K_NB : 0));
        const struct jg__patch_rt *rt = jg__pl_hub_rt();
        if (rt)
            rt->fd_fresh(c);
    }
    return c;
}

PL_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
    if (!jg__pl_green())
        return plain_accept(fd, addr, alen, 0);
    return (int)jg__pl_ret(coop_accept(PL_accept, fd, addr, alen, 0));
}

PL_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *alen,
                      int flags)
{
    if (!jg__pl_green())
        return plain_accept(fd, addr, alen, flags);
    return (int)jg__pl_ret(coop_accept(PL_accept4, fd, addr, alen, flags));
}

struct con {
    const struct sockaddr *addr;
    socklen_t len;
};

static int do_connect(int fd, void *p)
{
    struct con *c = p;
    return REAL(connect)(fd, c->addr, c->len);
}

static int coop_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int kind = coop_sock(fd, 0);
    struct con c = { addr, len };
    int64_t deadline = 0, step = 1000000;

    /* fds 0-2 stay blocking: their connect blocks as libc's would. */
    if (!kind || fd <= 2)
        return (int)DIRECT(REAL(connect)(fd, addr, len));
    jg__pl_note(PL_connect);
    for (;;) {
        int r = jg__pl_nb_call(fd, do_connect, &c);
        if (r >= 0)
            return 0;
        if (!deadline)
            deadline = call_deadline(fd, true);
        if (r == -EAGAIN) {
            /* A Unix listener's backlog is full: nothing to wait on but
             * time (1 ms growing to 100 ms, as jg_connect does). */
            int64_t left = deadline - jg__pl_now();
            if (left <= 0)
                return -EAGAIN;
            int w = jg__pl_sleep_until(jg__pl_now() +
                                       (step < left ? step : left));
            if (w < 0)
                return w;
            step = step * 2 < 100000000 ? step * 2 : 100000000;
            continue;
        }
        if (r != -EINPROGRESS)
            return r;
        break;
    }
    /* The connection goes on in the kernel; a blocking connect that timed
     * out (SO_SNDTIMEO) reports EINPROGRESS, and so do we. */
    int w = jg__pl_wait(fd, JG_WRITE, deadline, EINPROGRESS);
    if (w == -EPERM) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        (void)REAL(poll)(&p, 1, -1);
    } else if (w < 0) {
        return w;
    }
    int err = 0;
    socklen_t sl = sizeof err;
    if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        return -errno;
    return err ? -err : 0;
}

PL_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!jg__pl_green())
        return REAL(connect)(fd, addr, len);
    return (int)jg__pl_ret(coop_connect(fd, addr, len));
}
