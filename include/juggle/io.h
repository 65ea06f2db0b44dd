/* SPDX-License-Identifier: MIT */
/*
 * juggle/io.h - cooperative fd operations and TCP/Unix sockets for green
 * threads. Each call tries the operation first and parks only the calling
 * green thread while the fd is not ready. Every call takes timeout_ns: 0 tries
 * once without parking (-EAGAIN if not ready), JG_FOREVER waits without limit,
 * another negative value is -EINVAL. An enclosing deadline scope bounds the
 * wait too (-ETIMEDOUT). A killed green thread gets -ECANCELED. No call
 * returns -EINTR, and no SIGPIPE ever kills the process: sockets are written
 * with MSG_NOSIGNAL and a closed pipe gives -EPIPE.
 *
 * Buffers are the caller's own memory and are touched only while the caller
 * runs (never while it is parked), so they may live on any stack model.
 * fds are used as given: these calls work on blocking and non-blocking fds
 * alike (a blocking fd is read with a non-blocking flag per call where the
 * kernel allows it, or made non-blocking by jg_socket-style constructors).
 */
#ifndef JUGGLE_IO_H
#define JUGGLE_IO_H

#include <sys/socket.h>
#include <sys/uio.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Wait until fd is ready for events (JG_READ and/or JG_WRITE from loop.h).
 * Returns the ready events (> 0), -ETIMEDOUT, -EBADF (fd closed with
 * jg_close while waiting), -ECANCELED, -EINVAL, -EPERM (from a callback, or
 * an fd the loop cannot watch: a regular file). May switch green threads.
 */
JG_API int jg_wait_fd(int fd, uint32_t events, int64_t timeout_ns);

/*
 * Read up to n bytes. Returns the count (0 at end of file), or -errno:
 * -EAGAIN (timeout 0, nothing ready), -ETIMEDOUT, -ECANCELED, -EBADF, ...
 * May switch green threads.
 */
JG_API ssize_t jg_read(int fd, void *buf, size_t n, int64_t timeout_ns);
/*
 * Write all n bytes (Go's Write, gevent's sendall). Returns n once
 * everything is written, or -errno with *done (if non-NULL) set to the
 * bytes written before the error: -EPIPE when the reader is gone, -EAGAIN
 * (timeout 0, the fd would block), -ETIMEDOUT, -ECANCELED, -EBADF, -EINVAL
 * (n > SSIZE_MAX). May switch green threads.
 */
JG_API ssize_t jg_write(int fd, const void *buf, size_t n, size_t *done,
                        int64_t timeout_ns);
/* Scatter read: as jg_read. */
JG_API ssize_t jg_readv(int fd, const struct iovec *iov, int iovcnt,
                        int64_t timeout_ns);
/* Gather write of everything: as jg_write (the count is the iov total). */
JG_API ssize_t jg_writev(int fd, const struct iovec *iov, int iovcnt,
                         size_t *done, int64_t timeout_ns);
/* recv(2) with flags: as jg_read. */
JG_API ssize_t jg_recv(int fd, void *buf, size_t n, int flags,
                       int64_t timeout_ns);
/*
 * send(2) of up to n bytes with flags (MSG_NOSIGNAL is always added):
 * returns the count sent (> 0) or -errno. May switch green threads.
 */
JG_API ssize_t jg_send(int fd, const void *buf, size_t n, int flags,
                       int64_t timeout_ns);
/*
 * Accept a connection; the new fd is non-blocking and close-on-exec.
 * addr/len may be NULL. Under -EMFILE/-ENFILE the call backs off (the hub
 * keeps serving; it does not spin) until the timeout, then returns the
 * error. May switch green threads.
 */
JG_API int jg_accept(int fd, struct sockaddr *addr, socklen_t *len,
                     int64_t timeout_ns);
/*
 * Connect fd (made non-blocking) to addr. Returns 0, -ETIMEDOUT,
 * -ECONNREFUSED, ... May switch green threads.
 */
JG_API int jg_connect(int fd, const struct sockaddr *addr, socklen_t len,
                      int64_t timeout_ns);
/*
 * Close fd: green threads waiting on it wake with -EBADF, callback watchers
 * on it get JG_CLOSED, then the fd is closed. Returns 0 or -errno of
 * close(2). Does not switch.
 */
JG_API int jg_close(int fd);

/*
 * Listen on TCP host:port (numeric host, NULL = all IPv4 addresses; port 0
 * picks one, read it back with jg_sock_port). SO_REUSEADDR, backlog
 * SOMAXCONN, non-blocking, close-on-exec. Returns the fd or -errno
 * (-EINVAL for a bad address).
 */
JG_API int jg_tcp_listen(const char *host, int port);
/*
 * Connect to TCP host:port. A numeric IPv4 or IPv6 host is used as is; a
 * name is resolved with jg_getaddrinfo (on the offload pool: only the
 * calling green thread waits) and each address is tried in turn within
 * the timeout. Returns the non-blocking fd or -errno (-ENOENT for an
 * unknown name, -EAGAIN when the resolver cannot answer now). May switch
 * green threads.
 */
JG_API int jg_tcp_dial(const char *host, int port, int64_t timeout_ns);
/* Listen on a Unix socket path (an existing socket file is replaced). */
JG_API int jg_unix_listen(const char *path);
/* Connect to a Unix socket path. May switch green threads. */
JG_API int jg_unix_dial(const char *path, int64_t timeout_ns);
/* The local port of a bound socket, or -errno. */
JG_API int jg_sock_port(int fd);

#ifdef __cplusplus
}
#endif
#endif
