/* SPDX-License-Identifier: MIT */
/*
 * io.c - cooperative fd operations: try the system call first, and only on
 * EAGAIN park the calling green thread on the hub's loop until the fd is
 * ready. The hub itself never blocks: sockets get MSG_DONTWAIT per call,
 * other blocking fds are polled for readiness before each call.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hub.h"
#include "iofd.h"
#include "sys.h"

/*
 * What we know about an fd, learned on first use with one fstat (and one
 * fcntl for non-sockets) and kept in a per-thread table indexed by fd,
 * with the fd's generation (fdtab.c) when it was learned: a close juggle
 * sees on any thread (jg_close, the preload library's close) makes the
 * entry stale, so a number reused as, say, a blocking pipe is never taken
 * for the non-blocking one it was. jg_accept and jg_connect write theirs.
 * An fd closed with plain close() (no preload library) and reused keeps
 * its old entry until jg_close: a socket entry heals itself (ENOTSOCK makes
 * us look again), but a "non-blocking" or "file" entry on what is now a
 * blocking pipe would block the hub (docs/io.md).
 */
enum {
    K_KNOWN = 1u << 0,      /* the entry is valid */
    K_SOCK = 1u << 1,       /* a socket: MSG_DONTWAIT works per call */
    K_NB = 1u << 2,         /* O_NONBLOCK is set */
    K_NBCHK = 1u << 3,      /* K_NB was checked (sockets skip the fcntl) */
    K_PIPE = 1u << 4,       /* a FIFO: a write may raise SIGPIPE */
    K_FILE = 1u << 5,       /* regular file or block device: always ready */
};

struct kind_entry {
    uint32_t gen;               /* jg__fd_gen(fd) when learned */
    uint8_t kind;
};

static _Thread_local struct kind_entry *kinds;
static _Thread_local size_t nkinds;
static pthread_key_t kinds_key;
static pthread_once_t kinds_once = PTHREAD_ONCE_INIT;

static void kinds_free(void *p)
{
    free(p);
}

static void kinds_key_make(void)
{
    /* Without a key the table of an exiting thread leaks; nothing worse. */
    (void)pthread_key_create(&kinds_key, kinds_free);
}

/* Remember kind for fd; silently forgets nothing if memory is short. */
static void kind_set(int fd, int kind)
{
    if ((size_t)fd >= nkinds) {
        size_t n = nkinds ? nkinds : 256;
        while (n <= (size_t)fd)
            n *= 2;
        struct kind_entry *p = realloc(kinds, n * sizeof *p);
        if (!p)
            return;         /* uncached: we classify again next time */
        memset(p + nkinds, 0, (n - nkinds) * sizeof *p);
        if (!kinds) {
            pthread_once(&kinds_once, kinds_key_make);
            pthread_setspecific(kinds_key, p);
        } else if (p != kinds) {
            pthread_setspecific(kinds_key, p);
        }
        kinds = p;
        nkinds = n;
    }
    kinds[fd].gen = jg__fd_gen(fd);
    kinds[fd].kind = (uint8_t)kind;
}

static void kind_forget(int fd)
{
    if (fd >= 0 && (size_t)fd < nkinds)
        kinds[fd].kind = 0;
}

void jg__fd_fresh(int fd)
{
    kind_forget(fd);
    jg__loop_fd_fresh(jg__tls_hub ? &jg__tls_hub->loop : NULL, fd);
}

/* Classify fd with fstat (+ fcntl) and cache the answer. */
static JG_NOINLINE int kind_learn(int fd)
{
    struct stat st;
    int kind = K_KNOWN;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISSOCK(st.st_mode)) {
        kind |= K_SOCK;
    } else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ||
               S_ISDIR(st.st_mode)) {
        /* epoll refuses these (EPERM) and they never report "not ready". */
        kind |= K_FILE | K_NBCHK;
    } else {
        int fl = jg__sys_fcntl(fd, F_GETFL, 0);
        if (fl < 0)
            return -errno;
        kind |= K_NBCHK;
        if (fl & O_NONBLOCK)
            kind |= K_NB;
        if (S_ISFIFO(st.st_mode))
            kind |= K_PIPE;
    }
    kind_set(fd, kind);
    return kind;
}

/* The kind of fd (> 0), or -errno (-EBADF for a closed fd). */
static inline int kind_of(int fd)
{
    if (unlikely(fd < 0))
        return -EBADF;
    if (likely((size_t)fd < nkinds && kinds[fd].kind &&
               kinds[fd].gen == jg__fd_gen(fd)))
        return kinds[fd].kind;
    return kind_learn(fd);
}

/* The timeout of one call and its absolute deadline, computed only when
 * the call first has to park so the fast path reads no clock; retries
 * reuse it, so they never extend the wait. */
struct wait {
    int64_t timeout;
    int64_t deadline;       /* 0 until computed */
};

/* Park until fd is ready for ev. 0 means "try again", < 0 is the result. */
static int park(struct wait *w, int fd, uint32_t ev)
{
    if (w->timeout == 0)
        return -EAGAIN;
    if (!w->deadline)
        w->deadline = jg__deadline_after(w->timeout);
    int r = jg__wait_fd_until(fd, ev, w->deadline);
    return r > 0 ? 0 : r;
}

/* Common argument checks; 0 or -errno. */
static inline int check(int64_t timeout_ns)
{
    if (unlikely(!jg__timeout_ok(timeout_ns)))
        return -EINVAL;
    /* Sticky cancellation: a killed green thread's blocking calls fail at
     * once, even when the fd happens to be ready. */
    if (timeout_ns != 0 && unlikely(jg__self_killed()))
        return -ECANCELED;
    return 0;
}

/*
 * For a blocking non-socket fd: 1 if a read (POLLIN) or write (POLLOUT)
 * would not block now, 0 if not, -errno. Error and hang-up count as ready:
 * the call itself then reports them.
 */
static int ready_now(int fd, short ev)
{
    struct pollfd p = { .fd = fd, .events = ev };
    int r;

    do
        r = jg__sys_poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    return r > 0;
}

/* ---- reads ------------------------------------------------------------ */

/* One read attempt of buf[n] or iov[cnt]; count or -errno. */
static ssize_t read_once(int fd, int kind, void *buf, size_t n,
                         const struct iovec *iov, int cnt)
{
    ssize_t r;

    if (kind & K_SOCK) {
        if (iov) {
            struct msghdr m = {
                .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt,
            };
            r = jg__sys_recvmsg(fd, &m, MSG_DONTWAIT);
        } else {
            r = jg__sys_recv(fd, buf, n, MSG_DONTWAIT);
        }
        return r < 0 ? -errno : r;
    }
    if (!(kind & (K_NB | K_FILE))) {
        /* No per-call flag exists for pipes and ttys: ask first. A pipe
         * with data never blocks a read, so the read that follows is safe
         * (other processes sharing the pipe aside). */
        int ready = ready_now(fd, POLLIN);
        if (ready <= 0)
            return ready < 0 ? ready : -EAGAIN;
    }
    r = iov ? jg__sys_readv(fd, iov, cnt) : jg__sys_read(fd, buf, n);
    return r < 0 ? -errno : r;
}

static ssize_t read_loop(int fd, void *buf, size_t n, const struct iovec *iov,
                         int cnt, int64_t timeout_ns)
{
    struct wait w = { timeout_ns, 0 };
    bool relearned = false;
    int kind = kind_of(fd);

    if (kind < 0)
        return kind;
    for (;;) {
        ssize_t r = read_once(fd, kind, buf, n, iov, cnt);
        if (r >= 0)
            return r;
        if (r == -EINTR)
            continue;
        if (r == -ENOTSOCK && !relearned) {
            /* A stale entry: the fd number was reused (see the table). */
            relearned = true;
            kind_forget(fd);
            if ((kind = kind_of(fd)) < 0)
                return kind;
            continue;
        }
        if (r != -EAGAIN && r != -EWOULDBLOCK)
            return r;
        int p = park(&w, fd, JG_READ);
        if (p < 0)
            return p;
    }
}

ssize_t jg_read(int fd, void *buf, size_t n, int64_t timeout_ns)
{
    int rc = check(timeout_ns);

    if (rc < 0)
        return rc;
    if (!buf && n)
        return -EINVAL;
    return read_loop(fd, buf, n, NULL, 0, timeout_ns);
}

/* As readv(2)/writev(2): a count within IOV_MAX, a total within
 * SSIZE_MAX (the count returned must fit). */
static int iov_check(const struct iovec *iov, int cnt)
{
    size_t total = 0;

    if (cnt < 0 || cnt > IOV_MAX || (!iov && cnt))
        return -EINVAL;
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len > SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    return 0;
}

ssize_t jg_readv(int fd, const struct iovec *iov, int iovcnt,
                 int64_t timeout_ns)
{
    int rc = check(timeout_ns);

    if (rc < 0 || (rc = iov_check(iov, iovcnt)) < 0)
        return rc;
    return read_loop(fd, NULL, 0, iov, iovcnt, timeout_ns);
}

ssize_t jg_recv(int fd, void *buf, size_t n, int flags, int64_t timeout_ns)
{
    struct wait w = { timeout_ns, 0 };
    size_t got = 0;
    int rc = check(timeout_ns);
    /* MSG_WAITALL would block the hub: we loop for it ourselves. */
    bool all = flags & MSG_WAITALL;

    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EBADF;
    if (!buf && n)
        return -EINVAL;
    flags = (flags & ~MSG_WAITALL) | MSG_DONTWAIT;
    for (;;) {
        ssize_t r = jg__sys_recv(fd, (char *)buf + got, n - got, flags);
        if (r < 0)
            r = -errno;
        if (r > 0 && all && (got += (size_t)r) < n)
            continue;
        if (r >= 0)
            return all ? (ssize_t)got : r;
        if (r == -EINTR)
            continue;
        /* A short MSG_WAITALL read reports what arrived, as recv(2). */
        if (r != -EAGAIN && r != -EWOULDBLOCK)
            return got ? (ssize_t)got : r;
        int p = park(&w, fd, JG_READ);
        if (p < 0)
            return got ? (ssize_t)got : p;
    }
}

/* ---- writes ----------------------------------------------------------- */

/*
 * write(2) to a FIFO with SIGPIPE blocked in this thread, so a reader that
 * is gone gives -EPIPE rather than killing the process. The SIGPIPE the
 * kernel then queues to this thread is consumed before the mask is restored,
 * unless one was already pending (then it is not ours to take). The one
 * SIGPIPE-safe write of libjuggle (iofd.h).
 */
ssize_t jg__fifo_write(int fd, const void *buf, size_t n,
                       const struct iovec *iov, int cnt)
{
    static const struct timespec zero;
    sigset_t set, old, pend;
    bool was_pending = false;
    ssize_t r;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    /* Only a blocked SIGPIPE can already be pending for this thread. */
    if (sigismember(&old, SIGPIPE) && sigpending(&pend) == 0)
        was_pending = sigismember(&pend, SIGPIPE);
    r = iov ? jg__sys_writev(fd, iov, cnt) : jg__sys_write(fd, buf, n);
    if (r < 0)
        r = -errno;
    if (r == -EPIPE && !was_pending) {
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

/* One write attempt of buf[n] or iov[cnt]; count or -errno. */
static ssize_t write_once(int fd, int kind, const void *buf, size_t n,
                          const struct iovec *iov, int cnt)
{
    ssize_t r;

    if (kind & K_SOCK) {
        if (iov) {
            struct msghdr m = {
                .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt,
            };
            r = jg__sys_sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            r = jg__sys_send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        return r < 0 ? -errno : r;
    }
    if (!(kind & (K_NB | K_FILE))) {
        /*
         * A blocking pipe reports writable while one page is free, and a
         * write of at most PIPE_BUF bytes then completes without waiting;
         * a larger one would wait for the reader with the hub inside.
         */
        int ready = ready_now(fd, POLLOUT);
        if (ready <= 0)
            return ready < 0 ? ready : -EAGAIN;
        if (iov) {
            buf = iov->iov_base;
            n = iov->iov_len;
            iov = NULL;
        }
        if (n > PIPE_BUF)
            n = PIPE_BUF;
    }
    if (kind & K_PIPE)
        return jg__fifo_write(fd, buf, n, iov, cnt);
    r = iov ? jg__sys_writev(fd, iov, cnt) : jg__sys_write(fd, buf, n);
    return r < 0 ? -errno : r;
}

/*
 * Write all of iov[cnt]. A partial write leaves the position as (i, off);
 * a partly written element is finished with a plain write of its rest, so
 * the caller's iovec array is never copied or modified.
 */
static ssize_t write_all(int fd, const struct iovec *iov, int cnt,
                         size_t *done, int64_t timeout_ns)
{
    struct wait w = { timeout_ns, 0 };
    bool relearned = false;
    size_t total = 0, off = 0;
    int i = 0, kind = kind_of(fd), rc = 0;

    if (kind < 0) {
        rc = kind;
        goto out;
    }
    for (;;) {
        /* Skip what is written and the empty elements. */
        while (i < cnt && off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            i++;
        }
        if (i == cnt)
            break;
        ssize_t r;
        if (off || cnt - i == 1)
            r = write_once(fd, kind, (const char *)iov[i].iov_base + off,
                           iov[i].iov_len - off, NULL, 0);
        else
            r = write_once(fd, kind, NULL, 0, iov + i, cnt - i);
        if (r >= 0) {
            total += (size_t)r;
            off += (size_t)r;
            continue;
        }
        if (r == -EINTR)
            continue;
        if (r == -ENOTSOCK && !relearned) {
            relearned = true;
            kind_forget(fd);
            if ((kind = kind_of(fd)) < 0) {
                rc = kind;
                break;
            }
            continue;
        }
        if (r != -EAGAIN && r != -EWOULDBLOCK) {
            rc = (int)r;
            break;
        }
        if ((rc = park(&w, fd, JG_WRITE)) < 0)
            break;
    }
out:
    if (done)
        *done = total;
    return rc < 0 ? rc : (ssize_t)total;
}

ssize_t jg_write(int fd, const void *buf, size_t n, size_t *done,
                 int64_t timeout_ns)
{
    struct iovec v = { (void *)buf, n };
    int rc = check(timeout_ns);

    if (rc == 0 && ((!buf && n) || n > SSIZE_MAX))
        rc = -EINVAL;
    if (rc < 0) {
        if (done)
            *done = 0;
        return rc;
    }
    return write_all(fd, &v, 1, done, timeout_ns);
}

ssize_t jg_writev(int fd, const struct iovec *iov, int iovcnt, size_t *done,
                  int64_t timeout_ns)
{
    int rc = check(timeout_ns);

    if (rc < 0 || (rc = iov_check(iov, iovcnt)) < 0) {
        if (done)
            *done = 0;
        return rc;
    }
    return write_all(fd, iov, iovcnt, done, timeout_ns);
}

ssize_t jg_send(int fd, const void *buf, size_t n, int flags,
                int64_t timeout_ns)
{
    struct wait w = { timeout_ns, 0 };
    int rc = check(timeout_ns);

    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EBADF;
    if (!buf && n)
        return -EINVAL;
    flags |= MSG_DONTWAIT | MSG_NOSIGNAL;
    for (;;) {
        ssize_t r = jg__sys_send(fd, buf, n, flags);
        if (r >= 0)
            return r;
        r = -errno;
        if (r == -EINTR)
            continue;
        if (r != -EAGAIN && r != -EWOULDBLOCK)
            return r;
        if ((rc = park(&w, fd, JG_WRITE)) < 0)
            return rc;
    }
}

/* ---- connections ------------------------------------------------------ */

/* Make a socket non-blocking (once) and cache that it is. 0 or -errno. */
static int sock_nonblock(int fd)
{
    int kind = fd >= 0 && (size_t)fd < nkinds &&
               kinds[fd].gen == jg__fd_gen(fd) ? kinds[fd].kind : 0;

    if (fd < 0)
        return -EBADF;
    if ((kind & (K_SOCK | K_NB)) == (K_SOCK | K_NB))
        return 0;
    int fl = jg__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && jg__sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Errors after which accept(2) wants a retry: the connection died in the
 * queue, or (Linux) a network error pending on it was reported. */
static bool accept_retry(int e)
{
    switch (e) {
    case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
    case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
    case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        return true;
    }
    return false;
}

/*
 * Sleep before trying again on a resource shortage (EMFILE, ...), in steps
 * growing from 1 ms to 100 ms and never past the deadline: the listen fd
 * stays readable, so waiting on it would spin. 0 or the error to return.
 */
static int back_off(struct wait *w, int64_t *step, int err)
{
    if (w->timeout == 0)
        return -err;
    if (!w->deadline)
        w->deadline = jg__deadline_after(w->timeout);
    int64_t left = w->deadline - jg_now();
    if (left <= 0)
        return -err;
    int rc = jg_sleep(*step < left ? *step : left);
    if (rc < 0)
        return rc;
    if (*step < JG_MS(100))
        *step = *step * 2 < JG_MS(100) ? *step * 2 : JG_MS(100);
    return 0;
}

int jg_accept(int fd, struct sockaddr *addr, socklen_t *len,
              int64_t timeout_ns)
{
    struct wait w = { timeout_ns, 0 };
    int64_t step = JG_MS(1);
    int rc = check(timeout_ns);

    if (rc < 0)
        return rc;
    if ((addr && !len) || (len && !addr))
        return -EINVAL;
    /* accept4 has no per-call MSG_DONTWAIT: the listening socket itself
     * must be non-blocking. */
    if ((rc = sock_nonblock(fd)) < 0)
        return rc;
    for (;;) {
        socklen_t want = len ? *len : 0;
        int c = jg__sys_accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            /* A socket both, the listener for sure now. */
            kind_set(fd, K_KNOWN | K_SOCK | K_NB | K_NBCHK);
            /* A new fd: forget what the loop believed of an old one with
             * this number, and trust it to be closed with jg_close. */
            jg__fd_fresh(c);
            kind_set(c, K_KNOWN | K_SOCK | K_NB | K_NBCHK);
            return c;
        }
        int e = errno;
        if (len)
            *len = want;
        if (accept_retry(e))
            continue;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            if ((rc = back_off(&w, &step, e)) < 0)
                return rc;
            continue;
        }
        if (e != EAGAIN && e != EWOULDBLOCK)
            return -e;
        if ((rc = park(&w, fd, JG_READ)) < 0)
            return rc;
    }
}

int jg_connect(int fd, const struct sockaddr *addr, socklen_t len,
               int64_t timeout_ns)
{
    struct wait w = { timeout_ns, 0 };
    int64_t step = JG_MS(1);
    int rc = check(timeout_ns), r;

    if (rc < 0)
        return rc;
    if (!addr)
        return -EINVAL;
    if ((rc = sock_nonblock(fd)) < 0)
        return rc;
    for (;;) {
        r = jg__sys_connect(fd, addr, len);
        if (r == 0)
            goto connected;
        int e = errno;
        /* A non-blocking connect interrupted goes on in the background. */
        if (e == EINPROGRESS || e == EALREADY || e == EINTR)
            break;
        /* A Unix listener's backlog is full: nothing to wait on. */
        if (e == EAGAIN) {
            if ((rc = back_off(&w, &step, e)) < 0)
                return rc == -EAGAIN && timeout_ns ? -ETIMEDOUT : rc;
            continue;
        }
        return -e;
    }
    if ((rc = park(&w, fd, JG_WRITE)) < 0)
        return rc;
    socklen_t sl = sizeof(r);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &r, &sl) < 0)
        return -errno;
    if (r)
        return -r;
connected:
    kind_set(fd, K_KNOWN | K_SOCK | K_NB | K_NBCHK);
    return 0;
}

/* ---- waiting and closing ---------------------------------------------- */

int jg_wait_fd(int fd, uint32_t events, int64_t timeout_ns)
{
    int rc = check(timeout_ns);

    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EBADF;
    if (!events || (events & ~(uint32_t)(JG_READ | JG_WRITE)))
        return -EINVAL;
    if (timeout_ns == 0) {
        /* Try once: the loop is not involved. */
        struct pollfd p = { .fd = fd };
        uint32_t got = 0;
        p.events = (short)((events & JG_READ ? POLLIN : 0) |
                           (events & JG_WRITE ? POLLOUT : 0));
        do
            rc = jg__sys_poll(&p, 1, 0);
        while (rc < 0 && errno == EINTR);
        if (rc < 0)
            return -errno;
        if (p.revents & POLLNVAL)
            return -EBADF;
        if (p.revents & POLLIN)
            got |= JG_READ;
        if (p.revents & POLLOUT)
            got |= JG_WRITE;
        if (p.revents & POLLERR)
            got |= JG_ERROR | events;
        if (p.revents & POLLHUP)
            got |= JG_HUP | (events & JG_READ);
        return got ? (int)got : -EAGAIN;
    }
    return jg__wait_fd_until(fd, events, jg__deadline_after(timeout_ns));
}

int jg_close(int fd)
{
    int rc;

    if (fd < 0)
        return -EBADF;
    /* Waiters first, on every hub, while the number still names this
     * file: after close it may be reused by another thread at once. */
    jg__fd_closing(fd);
    kind_forget(fd);
    rc = jg__sys_close(fd) < 0 ? -errno : 0;
    /* The number is no longer being closed: it may be watched again (a
     * file that reuses it). */
    jg__fd_close_end(fd);
    /* On Linux the fd is released even when close reports EINTR. */
    return rc == -EINTR ? 0 : rc;
}
