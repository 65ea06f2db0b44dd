/* SPDX-License-Identifier: MIT */
/*
 * fd.c - the calls that keep the patch's per-fd table (and the hub's loop)
 * true: close wakes green threads waiting on the fd with EBADF; dup2/dup3
 * onto a watched fd do the same; fcntl(F_SETFL) and ioctl(FIONBIO) record
 * the user's own non-blocking flag; setsockopt records SO_RCVTIMEO and
 * SO_SNDTIMEO; every fd-creating call overwrites what we knew of its
 * number. All of them also run from plain threads, so their extra work is
 * a few loads and stores, never a system call, lock or atomic RMW.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "preload/preload.h"

PL_SYM(close);
PL_SYM(close_range);
PL_SYM(closefrom);
PL_SYM(dup);
PL_SYM(dup2);
PL_SYM(dup3);
PL_SYM(fcntl);
PL_SYM(fcntl64);
PL_SYM(ioctl);
PL_SYM(setsockopt);
PL_SYM(socket);
PL_SYM(socketpair);
PL_SYM(pipe);
PL_SYM(pipe2);
PL_SYM(open);
PL_SYM(open64);
PL_SYM(openat);
PL_SYM(openat64);
PL_SYM(creat);
PL_SYM(creat64);
PL_SYM(eventfd);
PL_SYM(epoll_create);
PL_SYM(epoll_create1);
PL_SYM(timerfd_create);
PL_SYM(signalfd);
PL_SYM(inotify_init);
PL_SYM(inotify_init1);
PL_SYM(memfd_create);

/* A new fd: what we know of it, and the loop drops its old belief. */
static int created(int fd, uint32_t bits)
{
    if (fd >= 0) {
        jg__pl_fd_fresh(fd, bits);
        const struct jg__patch_rt *rt = jg__pl_on_rt();
        if (rt)
            rt->fd_fresh(fd);
    }
    return fd;
}

PL_EXPORT int close(int fd)
{
    jg__pl_fd_fresh(fd, 0);
    /* Any thread, with a hub or not: green threads parked on fd in any
     * hub must learn of the close (jg_close tells them). */
    const struct jg__patch_rt *rt = jg__pl_on_rt();
    if (!rt)
        return REAL(close)(fd);
    /* jg_close: green threads parked on fd wake with EBADF and the
     * runtime forgets the fd, before the number can be reused. */
    if (jg__pl_green())
        jg__pl_note(PL_close);
    /* jg_close's own close(2) is a raw system call (src/base/sys.h): it does
     * not come back here. */
    return (int)jg__pl_ret(rt->close(fd));
}

/* close_range/closefrom: forget the numbers (no wake-ups: see the doc). */
PL_EXPORT int close_range(unsigned int lo, unsigned int hi, int flags)
{
    int r = REAL(close_range)(lo, hi, flags);
    if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
        jg__pl_fd_forget_range(lo, hi);
    return r;
}

PL_EXPORT void closefrom(int lo)
{
    REAL(closefrom)(lo);
    if (lo >= 0)
        jg__pl_fd_forget_range((unsigned)lo, ~0u);
}

/* dup2/dup3 onto an open fd close it first: its waiters, on any hub, must
 * wake. Returns true if the number was marked closing: then replaced()
 * must follow, whatever the call returned. */
static bool replacing(int oldfd, int newfd)
{
    const struct jg__patch_rt *rt = jg__pl_on_rt();

    if (rt && oldfd != newfd && REAL(fcntl)(oldfd, F_GETFD) >= 0 &&
        REAL(fcntl)(newfd, F_GETFD) >= 0) {
        rt->fd_closing(newfd);
        return true;
    }
    return false;
}

/* The number names a file again (the duplicate, or the old one if the
 * call failed): a new generation that may be watched. */
static void replaced(bool marked, int newfd)
{
    const struct jg__patch_rt *rt = jg__pl_on_rt();

    if (marked && rt)
        rt->fd_fresh(newfd);
}

static int duped(int oldfd, int newfd)
{
    if (newfd >= 0) {
        jg__pl_fd_copy(oldfd, newfd);
        const struct jg__patch_rt *rt = jg__pl_on_rt();
        if (rt)
            rt->fd_fresh(newfd);
    }
    return newfd;
}

PL_EXPORT int dup(int fd)
{
    return duped(fd, REAL(dup)(fd));
}

PL_EXPORT int dup2(int oldfd, int newfd)
{
    bool marked = replacing(oldfd, newfd);
    int r = REAL(dup2)(oldfd, newfd);
    if (r < 0)
        replaced(marked, newfd);
    return oldfd == newfd ? r : duped(oldfd, r);
}

PL_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    bool marked = replacing(oldfd, newfd);
    int r = REAL(dup3)(oldfd, newfd, flags);
    if (r < 0)
        replaced(marked, newfd);
    return duped(oldfd, r);
}

/* After a successful fcntl: the table follows F_SETFL and F_DUPFD*. */
static int fcntl_done(int fd, int cmd, void *arg, int r)
{
    if (r < 0)
        return r;
    if (cmd == F_SETFL)
        jg__pl_fd_nonblock(fd, (int)(intptr_t)arg & O_NONBLOCK);
    else if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        duped(fd, r);
    return r;
}

/*
 * The file status flags as the user set them: reading and setting them
 * waits for a green thread's accept/connect window on another OS thread
 * (jg__pl_nb_call) to close, once any was opened; otherwise libc's call.
 */
static int fcntl_call(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    if (cmd == F_GETFL)
        return jg__pl_getfl(fd);
    if (cmd != F_SETFL ||
        !atomic_load_explicit(&jg__pl_nb_used, memory_order_acquire))
        return real(fd, cmd, arg);
    jg__pl_nb_lock();
    int r = real(fd, cmd, arg), e = errno;
    jg__pl_nb_unlock();
    errno = e;
    return r;
}

/* The argument is read as a pointer, as glibc's own fcntl does: every
 * command's int or pointer fits in that register or slot. */
PL_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_done(fd, cmd, arg, fcntl_call(REAL(fcntl), fd, cmd, arg));
}

PL_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_done(fd, cmd, arg,
                      fcntl_call(REAL(fcntl64), fd, cmd, arg));
}

PL_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r;
    if (req == FIONBIO &&
        atomic_load_explicit(&jg__pl_nb_used, memory_order_acquire)) {
        /* Sets O_NONBLOCK: never inside another thread's window. */
        jg__pl_nb_lock();
        r = REAL(ioctl)(fd, req, arg);
        int e = errno;
        jg__pl_nb_unlock();
        errno = e;
    } else {
        r = REAL(ioctl)(fd, req, arg);
    }
    if (r == 0 && req == FIONBIO && arg)
        jg__pl_fd_nonblock(fd, *(const int *)arg != 0);
    return r;
}

PL_EXPORT int setsockopt(int fd, int level, int opt, const void *val,
                         socklen_t len)
{
    int r = REAL(setsockopt)(fd, level, opt, val, len);

    if (r == 0 && level == SOL_SOCKET && val &&
        (opt == SO_RCVTIMEO || opt == SO_SNDTIMEO) &&
        len >= sizeof(struct timeval)) {
        /* The 64-bit layout (SO_*TIMEO_NEW has the same on LP64). */
        const struct timeval *tv = val;
        int64_t ns = (int64_t)tv->tv_sec * 1000000000LL +
                     (int64_t)tv->tv_usec * 1000LL;
        jg__pl_fd_set_timeout(fd, opt == SO_SNDTIMEO, ns > 0 ? ns : 0);
    }
    return r;
}

/* ---- fd-creating calls -------------------------------------------------------- */

PL_EXPORT int socket(int domain, int type, int proto)
{
    return created(REAL(socket)(domain, type, proto),
                   PL_K_KNOWN | PL_K_SOCK |
                   (type & SOCK_NONBLOCK ? PL_K_NB : 0));
}

PL_EXPORT int socketpair(int domain, int type, int proto, int sv[2])
{
    int r = REAL(socketpair)(domain, type, proto, sv);
    if (r == 0) {
        uint32_t bits = PL_K_KNOWN | PL_K_SOCK |
                        (type & SOCK_NONBLOCK ? PL_K_NB : 0);
        created(sv[0], bits);
        created(sv[1], bits);
    }
    return r;
}

PL_EXPORT int pipe(int fds[2])
{
    int r = REAL(pipe)(fds);
    if (r == 0) {
        created(fds[0], 0);
        created(fds[1], 0);
    }
    return r;
}

PL_EXPORT int pipe2(int fds[2], int flags)
{
    int r = REAL(pipe2)(fds, flags);
    if (r == 0) {
        created(fds[0], 0);
        created(fds[1], 0);
    }
    return r;
}

/* open's mode is there only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, last) ({ \
        mode_t m_ = 0; \
        if ((flags) & O_CREAT || ((flags) & O_TMPFILE) == O_TMPFILE) { \
            va_list ap_; \
            va_start(ap_, last); \
            m_ = (mode_t)va_arg(ap_, int); \
            va_end(ap_); \
        } \
        m_; })

PL_EXPORT int open(const char *path, int flags, ...)
{
    return created(REAL(open)(path, flags, OPEN_MODE(flags, flags)), 0);
}

PL_EXPORT int open64(const char *path, int flags, ...)
{
    return created(REAL(open64)(path, flags, OPEN_MODE(flags, flags)), 0);
}

PL_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    return created(REAL(openat)(dirfd, path, flags, OPEN_MODE(flags, flags)),
                   0);
}

PL_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    return created(REAL(openat64)(dirfd, path, flags,
                                  OPEN_MODE(flags, flags)), 0);
}

PL_EXPORT int creat(const char *path, mode_t mode)
{
    return created(REAL(creat)(path, mode), 0);
}

PL_EXPORT int creat64(const char *path, mode_t mode)
{
    return created(REAL(creat64)(path, mode), 0);
}

/* The fortified opens (_FORTIFY_SOURCE) that programs call instead. */
extern int __open_2(const char *path, int flags);
extern int __open64_2(const char *path, int flags);
extern int __openat_2(int dirfd, const char *path, int flags);
extern int __openat64_2(int dirfd, const char *path, int flags);
PL_SYM(__open_2);
PL_SYM(__open64_2);
PL_SYM(__openat_2);
PL_SYM(__openat64_2);

PL_EXPORT int __open_2(const char *path, int flags)
{
    return created(REAL(__open_2)(path, flags), 0);
}

PL_EXPORT int __open64_2(const char *path, int flags)
{
    return created(REAL(__open64_2)(path, flags), 0);
}

PL_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    return created(REAL(__openat_2)(dirfd, path, flags), 0);
}

PL_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return created(REAL(__openat64_2)(dirfd, path, flags), 0);
}

PL_EXPORT int eventfd(unsigned int v, int flags)
{
    return created(REAL(eventfd)(v, flags), 0);
}

PL_EXPORT int epoll_create(int size)
{
    return created(REAL(epoll_create)(size), 0);
}

PL_EXPORT int epoll_create1(int flags)
{
    return created(REAL(epoll_create1)(flags), 0);
}

PL_EXPORT int timerfd_create(int clk, int flags)
{
    return created(REAL(timerfd_create)(clk, flags), 0);
}

PL_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
    int r = REAL(signalfd)(fd, mask, flags);
    /* With fd != -1 it changes an existing signalfd's mask. */
    return fd == -1 ? created(r, 0) : r;
}

PL_EXPORT int inotify_init(void)
{
    return created(REAL(inotify_init)(), 0);
}

PL_EXPORT int inotify_init1(int flags)
{
    return created(REAL(inotify_init1)(flags), 0);
}

PL_EXPORT int memfd_create(const char *name, unsigned int flags)
{
    return created(REAL(memfd_create)(name, flags), 0);
}
