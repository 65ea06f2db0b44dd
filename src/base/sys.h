/* SPDX-License-Identifier: MIT */
/*
 * sys.h - libjuggle's own system calls, made with syscall(2) so that they
 * never reach the preload library's interposers (DESIGN.md, "Seams"): with
 * libjuggle_preload.so loaded, a plain call to read() from inside the
 * runtime would bind to the cooperative read() and could park the hub, or
 * a green thread holding a runtime lock. Each wrapper keeps libc's
 * convention (-1 and errno), so a call site changes only its name.
 * scripts/check-interpose.sh fails the build's tests if libjuggle imports
 * any name the preload library exports.
 */
#ifndef JG_SYS_H
#define JG_SYS_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The kernel's sigset for the calls that take one with its size. */
#define JG__SYS_SIGSET_SIZE (_NSIG / 8)

static inline ssize_t jg__sys_read(int fd, void *buf, size_t n)
{
    return syscall(SYS_read, fd, buf, n);
}

static inline ssize_t jg__sys_write(int fd, const void *buf, size_t n)
{
    return syscall(SYS_write, fd, buf, n);
}

static inline ssize_t jg__sys_readv(int fd, const struct iovec *iov, int cnt)
{
    return syscall(SYS_readv, fd, iov, cnt);
}

static inline ssize_t jg__sys_writev(int fd, const struct iovec *iov, int cnt)
{
    return syscall(SYS_writev, fd, iov, cnt);
}

static inline ssize_t jg__sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return syscall(SYS_pread64, fd, buf, n, off);
}

static inline ssize_t jg__sys_recv(int fd, void *buf, size_t n, int flags)
{
    return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}

static inline ssize_t jg__sys_send(int fd, const void *buf, size_t n,
                                   int flags)
{
    return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
}

static inline ssize_t jg__sys_recvmsg(int fd, struct msghdr *m, int flags)
{
    return syscall(SYS_recvmsg, fd, m, flags);
}

static inline ssize_t jg__sys_sendmsg(int fd, const struct msghdr *m,
                                      int flags)
{
    return syscall(SYS_sendmsg, fd, m, flags);
}

static inline int jg__sys_accept4(int fd, struct sockaddr *a, socklen_t *len,
                                  int flags)
{
    return (int)syscall(SYS_accept4, fd, a, len, flags);
}

static inline int jg__sys_connect(int fd, const struct sockaddr *a,
                                  socklen_t len)
{
    return (int)syscall(SYS_connect, fd, a, len);
}

static inline int jg__sys_socket(int domain, int type, int proto)
{
    return (int)syscall(SYS_socket, domain, type, proto);
}

static inline int jg__sys_socketpair(int domain, int type, int proto,
                                     int sv[2])
{
    return (int)syscall(SYS_socketpair, domain, type, proto, sv);
}

static inline int jg__sys_setsockopt(int fd, int level, int name,
                                     const void *val, socklen_t len)
{
    return (int)syscall(SYS_setsockopt, fd, level, name, val, len);
}

static inline int jg__sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

/* Close every fd in [lo, hi] (Linux 5.9; ENOSYS before). */
static inline int jg__sys_close_range(unsigned lo, unsigned hi,
                                      unsigned flags)
{
    return (int)syscall(SYS_close_range, lo, hi, flags);
}

/* fcntl for the commands that take an int (or nothing). */
static inline int jg__sys_fcntl(int fd, int cmd, long arg)
{
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

static inline int jg__sys_dup3(int from, int to, int flags)
{
    return (int)syscall(SYS_dup3, from, to, flags);
}

/* dup2 through dup3 (which refuses from == to): as dup2, that case only
 * checks that the fd is open. */
static inline int jg__sys_dup2(int from, int to)
{
    if (from == to)
        return jg__sys_fcntl(from, F_GETFD, 0) < 0 ? -1 : to;
    return jg__sys_dup3(from, to, 0);
}

static inline int jg__sys_pipe2(int fds[2], int flags)
{
    return (int)syscall(SYS_pipe2, fds, flags);
}

static inline int jg__sys_open(const char *path, int flags, mode_t mode)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static inline int jg__sys_memfd_create(const char *name, unsigned flags)
{
    return (int)syscall(SYS_memfd_create, name, flags);
}

static inline int jg__sys_eventfd(unsigned initval, int flags)
{
    return (int)syscall(SYS_eventfd2, initval, flags);
}

static inline int jg__sys_timerfd_create(int clock, int flags)
{
    return (int)syscall(SYS_timerfd_create, clock, flags);
}

static inline int jg__sys_epoll_create1(int flags)
{
    return (int)syscall(SYS_epoll_create1, flags);
}

static inline int jg__sys_epoll_wait(int epfd, struct epoll_event *ev,
                                     int max, int timeout_ms)
{
    return (int)syscall(SYS_epoll_pwait, epfd, ev, max, timeout_ms, NULL,
                        JG__SYS_SIGSET_SIZE);
}

/* poll with a timeout in ms (< 0: none), through ppoll. */
static inline int jg__sys_poll(struct pollfd *p, nfds_t n, int timeout_ms)
{
    struct timespec ts, *tp = NULL;

    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    return (int)syscall(SYS_ppoll, p, n, tp, NULL, JG__SYS_SIGSET_SIZE);
}

static inline int jg__sys_ppoll(struct pollfd *p, nfds_t n,
                                const struct timespec *ts,
                                const sigset_t *mask)
{
    return (int)syscall(SYS_ppoll, p, n, ts, mask, JG__SYS_SIGSET_SIZE);
}

/* nanosleep's contract (-1/errno, remaining time in rem). */
static inline int jg__sys_nanosleep(const struct timespec *req,
                                    struct timespec *rem)
{
    return (int)syscall(SYS_nanosleep, req, rem);
}

static inline int jg__sys_waitid(idtype_t type, id_t id, siginfo_t *info,
                                 int options)
{
    return (int)syscall(SYS_waitid, type, id, info, options, NULL);
}

static inline pid_t jg__sys_waitpid(pid_t pid, int *status, int options)
{
    return (pid_t)syscall(SYS_wait4, pid, status, options, NULL);
}

/*
 * glibc's own sigaction under its other exported name (the raw system call
 * would need glibc's sa_restorer): the preload library wraps handlers
 * installed through sigaction/signal in a trampoline (one more frame in a
 * handler's backtrace, which the monitor counts), and the runtime's own
 * handlers need none.
 */
extern int __sigaction(int sig, const struct sigaction *act,
                       struct sigaction *old);
static inline int jg__sys_sigaction(int sig, const struct sigaction *act,
                                    struct sigaction *old)
{
    return __sigaction(sig, act, old);
}

/* signal(sig, SIG_IGN or SIG_DFL), as glibc's BSD signal() sets it. */
static inline void jg__sys_signal(int sig, void (*h)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = h;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    (void)__sigaction(sig, &sa, NULL);
}

#endif
