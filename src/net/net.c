/* SPDX-License-Identifier: MIT */
/*
 * net.c - TCP and Unix-socket constructors on top of io.c: every socket they
 * return is non-blocking and close-on-exec, and dialling goes through
 * jg_connect, so only the calling green thread waits.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hub.h"
#include "iofd.h"
#include "sys.h"

union addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
};

/*
 * Fill a from a numeric host (IPv4 or IPv6; NULL = INADDR_ANY) and port.
 * Returns the address length, or -EINVAL (not numeric: jg_tcp_dial then
 * resolves it as a name, off the hub).
 */
static int inet_addr_of(union addr *a, const char *host, int port)
{
    memset(a, 0, sizeof(*a));
    if (port < 0 || port > 65535)
        return -EINVAL;
    if (!host) {
        a->in4.sin_family = AF_INET;
        a->in4.sin_addr.s_addr = htonl(INADDR_ANY);
        a->in4.sin_port = htons((uint16_t)port);
        return sizeof(a->in4);
    }
    if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1) {
        a->in4.sin_family = AF_INET;
        a->in4.sin_port = htons((uint16_t)port);
        return sizeof(a->in4);
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons((uint16_t)port);
        return sizeof(a->in6);
    }
    return -EINVAL;
}

/* Fill a from a Unix socket path. The length, -EINVAL or -ENAMETOOLONG. */
static int unix_addr_of(union addr *a, const char *path)
{
    size_t n;

    memset(a, 0, sizeof(*a));
    if (!path || !(n = strlen(path)))
        return -EINVAL;
    if (n >= sizeof(a->un.sun_path))
        return -ENAMETOOLONG;
    a->un.sun_family = AF_UNIX;
    memcpy(a->un.sun_path, path, n + 1);
    return (int)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* socket + bind + listen; the fd or -errno. */
static int listen_on(const union addr *a, socklen_t len)
{
    int one = 1, fd, rc;

    fd = jg__sys_socket(a->sa.sa_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    jg__fd_fresh(fd);
    /* A restarted server must not wait out TIME_WAIT of its old sockets. */
    if (a->sa.sa_family != AF_UNIX &&
        jg__sys_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
                           sizeof(one)) < 0)
        goto err_close;
    if (bind(fd, &a->sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
        goto err_close;
    return fd;
err_close:
    rc = -errno;
    jg__sys_close(fd);
    return rc;
}

/* socket + jg_connect; the fd or -errno. */
static int dial(const union addr *a, socklen_t len, int64_t timeout_ns)
{
    int fd, rc, one = 1;

    fd = jg__sys_socket(a->sa.sa_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    jg__fd_fresh(fd);
    /* Dialled connections are mostly request/response: send small writes
     * now rather than wait for the peer's delayed ACK (Go does the same).
     * A failure here only costs latency. */
    if (a->sa.sa_family != AF_UNIX)
        (void)jg__sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                 sizeof(one));
    rc = jg_connect(fd, &a->sa, len, timeout_ns);
    if (rc < 0) {
        /* jg_close, not close: the loop may still hold a registration for
         * this fd number from the wait in jg_connect. */
        jg_close(fd);
        return rc;
    }
    return fd;
}

int jg_tcp_listen(const char *host, int port)
{
    union addr a;
    int len = inet_addr_of(&a, host, port);

    if (len < 0)
        return len;
    return listen_on(&a, (socklen_t)len);
}

/*
 * Dial a name: resolve it on the offload pool (only the calling green
 * thread waits) and try each address in the resolver's order until one
 * connects, all within one deadline. The last failure is reported.
 */
static int dial_name(const char *host, int port, int64_t timeout_ns)
{
    struct addrinfo hints, *res, *ai;
    int64_t deadline = jg__deadline_after(timeout_ns);
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = jg_getaddrinfo(host, NULL, &hints, &res, timeout_ns);
    if (rc < 0)
        return rc;
    rc = -EHOSTUNREACH;
    for (ai = res; ai; ai = ai->ai_next) {
        union addr a;

        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(a))
            continue;
        memset(&a, 0, sizeof(a));
        memcpy(&a, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            a.in4.sin_port = htons((uint16_t)port);
        else
            a.in6.sin6_port = htons((uint16_t)port);
        rc = dial(&a, ai->ai_addrlen, jg__deadline_left(deadline));
        /* Stop on success, and on errors no other address can cure. */
        if (rc >= 0 || rc == -ECANCELED || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

int jg_tcp_dial(const char *host, int port, int64_t timeout_ns)
{
    union addr a;
    int len;

    if (!jg__timeout_ok(timeout_ns) || !host || !*host || port <= 0 ||
        port > 65535)
        return -EINVAL;
    /* A numeric address is used as is; anything else is a name. */
    if ((len = inet_addr_of(&a, host, port)) < 0)
        return dial_name(host, port, timeout_ns);
    return dial(&a, (socklen_t)len, timeout_ns);
}

int jg_unix_listen(const char *path)
{
    union addr a;
    struct stat st;
    int len = unix_addr_of(&a, path);

    if (len < 0)
        return len;
    /* Replace a stale socket file (a previous run's); never anything else:
     * bind then reports EADDRINUSE for a regular file in the way. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        (void)unlink(path);
    return listen_on(&a, (socklen_t)len);
}

int jg_unix_dial(const char *path, int64_t timeout_ns)
{
    union addr a;
    int len;

    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if ((len = unix_addr_of(&a, path)) < 0)
        return len;
    return dial(&a, (socklen_t)len, timeout_ns);
}

int jg_sock_port(int fd)
{
    union addr a;
    socklen_t len = sizeof(a);

    if (fd < 0)
        return -EBADF;
    if (getsockname(fd, &a.sa, &len) < 0)
        return -errno;
    if (a.sa.sa_family == AF_INET)
        return ntohs(a.in4.sin_port);
    if (a.sa.sa_family == AF_INET6)
        return ntohs(a.in6.sin6_port);
    return -EAFNOSUPPORT;
}
