/* SPDX-License-Identifier: MIT */
/*
 * io_basic.c - cooperative I/O between green threads: data over socketpairs,
 * pipes and eventfds (blocking and not), timeouts, kill and close while
 * blocked, several waiters on one fd, no SIGPIPE, TCP and Unix sockets.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "juggle.h"
#include "t.h"
#include "t_late.h"

static struct jg_green *go(jg_green_fn fn, void *arg)
{
    struct jg_green *g;

    T_OK(jg_spawn(&g, fn, arg, NULL));
    return g;
}

static void *join(struct jg_green *g)
{
    void *res = NULL;

    T_OK(jg_join(g, &res, JG_SEC(30)));
    return res;
}

/* Never early. (Not late either: see T_TIMES_OUT.) */
static void elapsed_at_least(int64_t t0, int64_t ns)
{
    int64_t dt = t_now_ns() - t0;

    T_ASSERT(dt >= ns);
}

/* call fails with -ETIMEDOUT at its timeout of ns: not before, and before
 * a sentinel timer of twice that (t_late.h: an order, not a wall time). */
#define T_TIMES_OUT(call, ns) do { \
        int64_t t0_ = t_now_ns(); \
        struct jg_green *late_ = t_late_start(2 * (ns), NULL, 0); \
        T_ERR(call, -ETIMEDOUT); \
        t_late_check(late_); \
        elapsed_at_least(t0_, ns); \
    } while (0)

/* No SIGPIPE may be left pending by our calls either. */
static void no_sigpipe_pending(void)
{
    sigset_t p;

    T_OK(sigpending(&p));
    T_ASSERT(!sigismember(&p, SIGPIPE));
}

/* ---- data between two green threads ----------------------------------- */

enum { MSGS = 50 };

struct pair {
    int rfd, wfd;
    long sum;
};

/* Writes MSGS numbered messages with a yield between, so the reader has to
 * park (and must not block the hub) most of the time. */
static void *writer(void *arg)
{
    struct pair *p = arg;

    for (int i = 0; i < MSGS; i++) {
        char m[8];
        memcpy(m, &i, sizeof(i));
        memcpy(m + 4, "msg", 4);
        T_EQ(jg_write(p->wfd, m, sizeof(m), NULL, JG_SEC(5)), sizeof(m));
        if (i % 7 == 0)
            T_OK(jg_sleep(JG_MS(1)));
        else
            T_OK(jg_yield());
    }
    return NULL;
}

static void *reader(void *arg)
{
    struct pair *p = arg;
    char m[8];
    size_t have = 0;
    int next = 0;

    while (next < MSGS) {
        ssize_t n = jg_read(p->rfd, m + have, sizeof(m) - have, JG_SEC(5));
        T_ASSERT(n > 0);
        have += (size_t)n;
        if (have < sizeof(m))
            continue;
        int i;
        memcpy(&i, m, sizeof(i));
        T_EQ(i, next);
        T_STREQ(m + 4, "msg");
        p->sum += i;
        next++;
        have = 0;
    }
    return NULL;
}

static void run_pair(int rfd, int wfd)
{
    struct pair p = { rfd, wfd, 0 };
    struct jg_green *r = go(reader, &p), *w = go(writer, &p);

    join(w);
    join(r);
    T_EQ(p.sum, MSGS * (MSGS - 1) / 2);
}

/* Blocking socketpair: MSG_DONTWAIT per call keeps the hub running. */
static void test_socketpair_rw(void)
{
    int sv[2];

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    run_pair(sv[0], sv[1]);
    run_pair(sv[1], sv[0]);
    T_OK(jg_close(sv[0]));
    T_OK(jg_close(sv[1]));
}

/* Blocking and non-blocking pipes: readiness first, then the call. */
static void test_pipe_rw(void)
{
    int pf[2];

    T_OK(pipe(pf));
    run_pair(pf[0], pf[1]);
    T_OK(jg_close(pf[0]));
    T_OK(jg_close(pf[1]));
    T_OK(pipe2(pf, O_NONBLOCK));
    run_pair(pf[0], pf[1]);
    T_OK(jg_close(pf[0]));
    T_OK(jg_close(pf[1]));
}

static void *efd_writer(void *arg)
{
    int fd = *(int *)arg;
    uint64_t v = 42;

    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(jg_write(fd, &v, sizeof(v), NULL, JG_SEC(1)), sizeof(v));
    return NULL;
}

/* A blocking eventfd (neither socket nor pipe) read parks the caller. */
static void test_eventfd_blocking(void)
{
    int fd = eventfd(0, 0);
    uint64_t v = 0;

    T_OK(fd);
    struct jg_green *g = go(efd_writer, &fd);
    T_EQ(jg_read(fd, &v, sizeof(v), JG_SEC(5)), sizeof(v));
    T_EQ(v, 42);
    join(g);
    T_OK(jg_close(fd));
}

/* Regular files are always ready (epoll refuses them): just read/write. */
static void test_regular_file(void)
{
    char path[] = "/tmp/jg_io_basic_XXXXXX", buf[16] = { 0 };
    int fd = mkstemp(path);

    T_OK(fd);
    unlink(path);
    T_EQ(jg_write(fd, "file data", 9, NULL, 0), 9);
    T_OK(lseek(fd, 0, SEEK_SET));
    T_EQ(jg_read(fd, buf, sizeof(buf), JG_FOREVER), 9);
    T_STREQ(buf, "file data");
    T_EQ(jg_read(fd, buf, sizeof(buf), 0), 0);      /* end of file */
    T_OK(jg_close(fd));
}

/* ---- timeouts and bad arguments ---------------------------------------- */

static void test_read_timeout(void)
{
    int sv[2], pf[2];
    char c;

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T_OK(pipe(pf));
    T_TIMES_OUT(jg_read(sv[0], &c, 1, JG_MS(50)), JG_MS(50));
    T_TIMES_OUT(jg_read(pf[0], &c, 1, JG_MS(30)), JG_MS(30));
    T_TIMES_OUT(jg_wait_fd(sv[0], JG_READ, JG_MS(30)), JG_MS(30));
    /* Timeout 0 tries once. */
    T_ERR(jg_read(sv[0], &c, 1, 0), -EAGAIN);
    T_ERR(jg_read(pf[0], &c, 1, 0), -EAGAIN);
    T_ERR(jg_recv(sv[0], &c, 1, 0, 0), -EAGAIN);
    T_ERR(jg_wait_fd(sv[0], JG_READ, 0), -EAGAIN);
    T_EQ(jg_wait_fd(sv[0], JG_WRITE, 0), JG_WRITE);
    T_EQ(jg_write(sv[1], "x", 1, NULL, 0), 1);
    T_EQ(jg_wait_fd(sv[0], JG_READ, 0), JG_READ);
    T_EQ(jg_read(sv[0], &c, 1, 0), 1);
    T_EQ(c, 'x');
    for (int i = 0; i < 2; i++) {
        T_OK(jg_close(sv[i]));
        T_OK(jg_close(pf[i]));
    }
}

static void test_bad_args(void)
{
    int sv[2];
    char c;
    size_t done = 99;
    struct sockaddr_in sin = { .sin_family = AF_INET };

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T_ERR(jg_read(sv[0], &c, 1, -2), -EINVAL);
    T_ERR(jg_read(sv[0], NULL, 1, 0), -EINVAL);
    T_ERR(jg_write(sv[0], &c, 1, &done, JG_SEC(-5)), -EINVAL);
    T_EQ(done, 0);
    T_ERR(jg_write(sv[0], NULL, 1, NULL, 0), -EINVAL);
    T_ERR(jg_readv(sv[0], NULL, 1, 0), -EINVAL);
    T_ERR(jg_readv(sv[0], NULL, -1, 0), -EINVAL);
    T_ERR(jg_writev(sv[0], NULL, 1, NULL, 0), -EINVAL);
    T_ERR(jg_recv(sv[0], &c, 1, 0, -3), -EINVAL);
    T_ERR(jg_send(sv[0], &c, 1, 0, -3), -EINVAL);
    T_ERR(jg_accept(sv[0], NULL, NULL, -3), -EINVAL);
    T_ERR(jg_connect(sv[0], (struct sockaddr *)&sin, sizeof(sin), -3),
          -EINVAL);
    T_ERR(jg_connect(sv[0], NULL, 0, 0), -EINVAL);
    T_ERR(jg_wait_fd(sv[0], JG_READ, -3), -EINVAL);
    T_ERR(jg_wait_fd(sv[0], 0, 0), -EINVAL);
    T_ERR(jg_wait_fd(sv[0], 0x100, 0), -EINVAL);
    T_ERR(jg_tcp_dial("127.0.0.1", 80, -3), -EINVAL);
    T_ERR(jg_unix_dial("/tmp/x", -3), -EINVAL);
    T_ERR(jg_tcp_dial("127.0.0.1", 70000, 0), -EINVAL);
    T_ERR(jg_tcp_listen("127.0.0.1", -1), -EINVAL);
    T_ERR(jg_unix_listen(NULL), -EINVAL);
    T_ERR(jg_unix_listen(""), -EINVAL);
    T_ERR(jg_read(-1, &c, 1, 0), -EBADF);
    T_ERR(jg_write(-1, &c, 1, NULL, 0), -EBADF);
    T_ERR(jg_wait_fd(-1, JG_READ, 0), -EBADF);
    T_ERR(jg_close(-1), -EBADF);
    T_ERR(jg_sock_port(-1), -EBADF);
    T_OK(jg_close(sv[0]));
    T_OK(jg_close(sv[1]));
    /* A closed fd number. */
    T_ERR(jg_read(sv[0], &c, 1, 0), -EBADF);
    T_ERR(jg_close(sv[0]), -EBADF);
}

/* ---- kill and close while blocked --------------------------------------- */

struct blocked {
    int fd;
    int rc;
    int again;          /* a second call after the first failed */
};

static void *blocked_reader(void *arg)
{
    struct blocked *b = arg;
    char c;

    b->rc = (int)jg_read(b->fd, &c, 1, JG_FOREVER);
    /* Cancellation is sticky: even with data ready, the next call fails. */
    b->again = (int)jg_read(b->fd, &c, 1, JG_MS(10));
    return NULL;
}

static void test_kill_in_read(void)
{
    int sv[2];
    struct blocked b = { 0 };
    struct jg_green *g;

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    b.fd = sv[0];
    T_OK(jg_spawn(&g, blocked_reader, &b, NULL));
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(jg_state(g), JG_GREEN_PARKED);
    T_EQ(jg_write(sv[1], "y", 1, NULL, 0), 1);
    T_OK(jg_kill(g));
    T_ERR(jg_join(g, NULL, JG_SEC(5)), -ECANCELED);
    T_ERR(b.rc, -ECANCELED);
    T_ERR(b.again, -ECANCELED);
    /* The byte is still there: the killed reader never took it. */
    char c;
    T_EQ(jg_read(sv[0], &c, 1, 0), 1);
    T_OK(jg_close(sv[0]));
    T_OK(jg_close(sv[1]));
}

static void *closing_reader(void *arg)
{
    struct blocked *b = arg;
    char c;

    b->rc = (int)jg_read(b->fd, &c, 1, JG_FOREVER);
    return NULL;
}

/* One green thread blocked in jg_read, another closes the fd. */
static void test_close_while_waiting(void)
{
    int pf[2], sv[2];
    struct blocked b[2] = { { 0 }, { 0 } };

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T_OK(pipe(pf));
    b[0].fd = sv[0];
    b[1].fd = pf[0];
    struct jg_green *g0 = go(closing_reader, &b[0]);
    struct jg_green *g1 = go(closing_reader, &b[1]);
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(jg_state(g0), JG_GREEN_PARKED);
    T_EQ(jg_state(g1), JG_GREEN_PARKED);
    T_OK(jg_close(sv[0]));
    T_OK(jg_close(pf[0]));
    join(g0);
    join(g1);
    T_ERR(b[0].rc, -EBADF);
    T_ERR(b[1].rc, -EBADF);
    T_OK(jg_close(sv[1]));
    T_OK(jg_close(pf[1]));
}

static void *fd_waiter(void *arg)
{
    struct blocked *b = arg;

    b->rc = jg_wait_fd(b->fd, JG_READ, JG_SEC(5));
    return NULL;
}

/* Two waiters on one fd for the same direction are both woken; a new
 * waiter after the data was drained waits for new data. */
static void test_two_waiters(void)
{
    int sv[2];
    struct blocked b[3] = { { 0 }, { 0 }, { 0 } };

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    b[0].fd = b[1].fd = sv[0];
    struct jg_green *g0 = go(fd_waiter, &b[0]);
    struct jg_green *g1 = go(fd_waiter, &b[1]);
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_state(g0), JG_GREEN_PARKED);
    T_EQ(jg_state(g1), JG_GREEN_PARKED);
    T_EQ(jg_write(sv[1], "a", 1, NULL, 0), 1);
    join(g0);
    join(g1);
    T_ASSERT(b[0].rc > 0 && (b[0].rc & JG_READ));
    T_ASSERT(b[1].rc > 0 && (b[1].rc & JG_READ));

    /* Readiness is level-triggered per wait: drained, then ready again. */
    char c;
    T_EQ(jg_read(sv[0], &c, 1, 0), 1);
    T_EQ(c, 'a');
    b[2].fd = sv[0];
    g0 = go(fd_waiter, &b[2]);
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_state(g0), JG_GREEN_PARKED);
    T_EQ(jg_write(sv[1], "b", 1, NULL, 0), 1);
    join(g0);
    T_ASSERT(b[2].rc > 0 && (b[2].rc & JG_READ));
    T_OK(jg_close(sv[0]));
    T_OK(jg_close(sv[1]));
}

struct racer {
    int fd;
    int got;
    int order;
};
static int racers_done;

static void *racer(void *arg)
{
    struct racer *r = arg;
    char c;

    r->got = (int)jg_read(r->fd, &c, 1, JG_SEC(5));
    if (r->got == 1)
        r->got = c;
    r->order = ++racers_done;
    return NULL;
}

/* Both readers woken by one byte: the loser parks again, no hub block. */
static void test_two_readers_one_byte(void)
{
    int pf[2];
    struct racer r[2] = { { 0, 0, 0 }, { 0, 0, 0 } };

    T_OK(pipe(pf));     /* blocking: the loser must not read(2) blindly */
    r[0].fd = r[1].fd = pf[0];
    racers_done = 0;
    struct jg_green *g0 = go(racer, &r[0]), *g1 = go(racer, &r[1]);
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(jg_write(pf[1], "1", 1, NULL, 0), 1);
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(racers_done, 1);
    T_EQ(jg_write(pf[1], "2", 1, NULL, 0), 1);
    join(g0);
    join(g1);
    T_EQ(racers_done, 2);
    struct racer *first = r[0].order == 1 ? &r[0] : &r[1];
    struct racer *second = first == &r[0] ? &r[1] : &r[0];
    T_EQ(first->got, '1');
    T_EQ(second->got, '2');
    T_OK(jg_close(pf[0]));
    T_OK(jg_close(pf[1]));
}

/* ---- no SIGPIPE ------------------------------------------------------- */

static void *late_closer(void *arg)
{
    T_OK(jg_sleep(JG_MS(20)));
    T_OK(jg_close(*(int *)arg));
    return NULL;
}

static void test_pipe_epipe(void)
{
    int pf[2];
    size_t done = 99;
    char big[70000];

    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill the test */
    memset(big, 'p', sizeof(big));
    T_OK(pipe(pf));
    T_OK(jg_close(pf[0]));
    T_ERR(jg_write(pf[1], "x", 1, &done, JG_SEC(1)), -EPIPE);
    T_EQ(done, 0);
    no_sigpipe_pending();
    T_OK(jg_close(pf[1]));
    /* The reader goes away while a big write waits for room. */
    for (int flags = 0; flags <= O_NONBLOCK; flags += O_NONBLOCK) {
        T_OK(pipe2(pf, flags));
        T_ERR(jg_read(pf[0], big, 10, 0), -EAGAIN);
        struct jg_green *g = go(late_closer, &pf[0]);
        T_ERR(jg_write(pf[1], big, sizeof(big), &done, JG_SEC(5)), -EPIPE);
        T_EQ(done, 65536);      /* the default pipe capacity */
        join(g);
        no_sigpipe_pending();
        T_OK(jg_close(pf[1]));
    }
    /* With SIGPIPE blocked by the caller, the mask is left as it was. */
    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    T_OK(pthread_sigmask(SIG_BLOCK, &set, NULL));
    T_OK(pipe(pf));
    T_OK(jg_close(pf[0]));
    T_ERR(jg_write(pf[1], "x", 1, NULL, JG_SEC(1)), -EPIPE);
    no_sigpipe_pending();
    T_OK(pthread_sigmask(SIG_UNBLOCK, &set, &cur));
    T_ASSERT(sigismember(&cur, SIGPIPE));
    T_OK(jg_close(pf[1]));
}

static void test_send_epipe(void)
{
    int sv[2];
    size_t done = 99;
    char c = 'z';

    signal(SIGPIPE, SIG_DFL);
    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T_OK(jg_close(sv[1]));
    T_ERR(jg_send(sv[0], &c, 1, 0, JG_SEC(1)), -EPIPE);
    T_ERR(jg_write(sv[0], &c, 1, &done, JG_SEC(1)), -EPIPE);
    T_EQ(done, 0);
    struct iovec v = { &c, 1 };
    T_ERR(jg_writev(sv[0], &v, 1, NULL, JG_SEC(1)), -EPIPE);
    no_sigpipe_pending();
    T_OK(jg_close(sv[0]));
}

/* ---- bulk ------------------------------------------------------------- */

struct bulk {
    int fd;
    size_t size;
    uint64_t sum;
    size_t got;
};

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 2654435761u >> 13);
}

static void *slow_reader(void *arg)
{
    struct bulk *b = arg;
    static _Thread_local uint8_t buf[65536];
    int rounds = 0;

    for (;;) {
        ssize_t n = jg_read(b->fd, buf, sizeof(buf), JG_SEC(10));
        T_ASSERT(n >= 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            T_EQ(buf[i], pattern(b->got + (size_t)i));
            b->sum += buf[i];
        }
        b->got += (size_t)n;
        if (++rounds % 16 == 0)
            T_OK(jg_sleep(JG_MS(1)));   /* slow: the writer must park */
    }
    return NULL;
}

static void bulk_through(int rfd, int wfd, size_t size)
{
    struct bulk b = { rfd, size, 0, 0 };
    uint8_t *data = malloc(size);
    uint64_t sum = 0;
    size_t done = 0;

    T_ASSERT(data);
    for (size_t i = 0; i < size; i++) {
        data[i] = pattern(i);
        sum += data[i];
    }
    struct jg_green *g = go(slow_reader, &b);
    T_EQ(jg_write(wfd, data, size, &done, JG_SEC(30)), size);
    T_EQ(done, size);
    T_OK(jg_close(wfd));
    join(g);
    T_EQ(b.got, size);
    T_EQ(b.sum, sum);
    T_OK(jg_close(rfd));
    free(data);
}

static void test_big_write(void)
{
    int sv[2], pf[2];

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    bulk_through(sv[1], sv[0], (size_t)8 << 20);
    /* A blocking pipe: written in PIPE_BUF pieces, never blocking. */
    T_OK(pipe(pf));
    bulk_through(pf[0], pf[1], (size_t)1 << 20);
}

static void test_readv_writev(void)
{
    int sv[2], pf[2];
    char a[3], b[8];

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T_OK(pipe(pf));
    for (int k = 0; k < 2; k++) {
        int rfd = k ? pf[0] : sv[0], wfd = k ? pf[1] : sv[1];
        struct iovec out[4] = {
            { (void *)"ab", 2 }, { NULL, 0 }, { (void *)"cdef", 4 },
            { (void *)"gh", 2 },
        };
        size_t done = 0;
        T_EQ(jg_writev(wfd, out, 4, &done, JG_SEC(1)), 8);
        T_EQ(done, 8);
        struct iovec in[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
        memset(b, 0, sizeof(b));
        T_EQ(jg_readv(rfd, in, 2, JG_SEC(1)), 8);
        T_ASSERT(memcmp(a, "abc", 3) == 0);
        T_ASSERT(memcmp(b, "defgh", 5) == 0);
        T_ERR(jg_readv(rfd, in, 2, 0), -EAGAIN);
    }
    for (int i = 0; i < 2; i++) {
        T_OK(jg_close(sv[i]));
        T_OK(jg_close(pf[i]));
    }
}

/* An fd number reused behind our back (plain close) from socket to pipe. */
static void test_stale_kind(void)
{
    int sv[2], pf[2];
    char c;

    T_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T_ERR(jg_read(sv[0], &c, 1, 0), -EAGAIN);       /* cached: socket */
    T_ERR(jg_read(sv[1], &c, 1, 0), -EAGAIN);
    close(sv[0]);
    close(sv[1]);
    T_OK(pipe2(pf, O_NONBLOCK));
    T_ASSERT(pf[0] == sv[0] || pf[0] == sv[1]);
    T_EQ(jg_write(pf[1], "s", 1, NULL, JG_SEC(1)), 1);
    T_EQ(jg_read(pf[0], &c, 1, JG_SEC(1)), 1);
    T_EQ(c, 's');
    T_OK(jg_close(pf[0]));
    T_OK(jg_close(pf[1]));
}

/* ---- TCP and Unix sockets ---------------------------------------------- */

static void test_connect_refused(void)
{
    /* A bound socket that does not listen: connects get a RST. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET };

    T_OK(s);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_OK(bind(s, (struct sockaddr *)&sin, sizeof(sin)));
    int port = jg_sock_port(s);
    T_ASSERT(port > 0);
    T_ERR(jg_tcp_dial("127.0.0.1", port, JG_SEC(5)), -ECONNREFUSED);
    T_ERR(jg_tcp_dial("::ffff:127.0.0.1", port, JG_SEC(5)),
          -ECONNREFUSED);
    T_OK(jg_close(s));
    /* Names resolve on the offload pool (tests/offload.c); with no
     * network here an unknown one fails with the resolver's answer. */
    int r = jg_tcp_dial("no-such-host.invalid", 80, JG_SEC(5));
    T_ASSERT(r == -ENOENT || r == -EAGAIN);
    T_ERR(jg_tcp_dial(NULL, 80, JG_SEC(1)), -EINVAL);
    T_ERR(jg_tcp_listen("999.1.1.1", 0), -EINVAL);
}

/* A listener with a full accept queue drops SYNs: the dial times out. */
static void test_connect_timeout(void)
{
    int l = jg_tcp_listen("127.0.0.1", 0), fds[16], n = 0, rc = 0;

    T_OK(l);
    T_OK(listen(l, 0));
    int port = jg_sock_port(l);
    int64_t t0 = 0;
    while (n < 16) {
        t0 = t_now_ns();
        rc = jg_tcp_dial("127.0.0.1", port, JG_MS(100));
        if (rc < 0)
            break;
        fds[n++] = rc;
    }
    if (rc >= 0)
        fprintf(stderr, "note: the accept queue never filled\n");
    else {
        T_ERR(rc, -ETIMEDOUT);
        elapsed_at_least(t0, JG_MS(100));
    }
    while (n > 0)
        T_OK(jg_close(fds[--n]));
    T_OK(jg_close(l));
}

static void *unix_server(void *arg)
{
    int l = *(int *)arg, c;
    char buf[64];

    c = jg_accept(l, NULL, NULL, JG_SEC(5));
    T_OK(c);
    ssize_t n = jg_read(c, buf, sizeof(buf), JG_SEC(5));
    T_ASSERT(n > 0);
    T_EQ(jg_write(c, buf, (size_t)n, NULL, JG_SEC(5)), (size_t)n);
    T_OK(jg_close(c));
    return NULL;
}

static void test_unix_roundtrip(void)
{
    char path[64], buf[16] = { 0 }, longp[200];
    struct stat st;

    snprintf(path, sizeof(path), "/tmp/jg_io_basic_%d.sock", (int)getpid());
    int l = jg_unix_listen(path);
    T_OK(l);
    T_OK(stat(path, &st));
    T_ASSERT(S_ISSOCK(st.st_mode));
    T_ERR(jg_sock_port(l), -EAFNOSUPPORT);
    struct jg_green *g = go(unix_server, &l);
    int c = jg_unix_dial(path, JG_SEC(5));
    T_OK(c);
    T_EQ(jg_write(c, "unix!", 5, NULL, JG_SEC(5)), 5);
    T_EQ(jg_recv(c, buf, 5, MSG_WAITALL, JG_SEC(5)), 5);
    T_STREQ(buf, "unix!");
    T_EQ(jg_read(c, buf, sizeof(buf), JG_SEC(5)), 0);    /* server closed */
    join(g);
    T_OK(jg_close(c));
    T_OK(jg_close(l));
    /* The stale socket file is replaced, not an error. */
    l = jg_unix_listen(path);
    T_OK(l);
    T_OK(jg_close(l));
    unlink(path);
    T_ERR(jg_unix_dial(path, JG_SEC(1)), -ENOENT);
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = 0;
    T_ERR(jg_unix_listen(longp), -ENAMETOOLONG);
    T_ERR(jg_unix_dial(longp, JG_SEC(1)), -ENAMETOOLONG);
}

static void test_accept_timeout(void)
{
    int l = jg_tcp_listen("127.0.0.1", 0);

    T_OK(l);
    T_ASSERT(jg_sock_port(l) > 0);
    T_ERR(jg_accept(l, NULL, NULL, 0), -EAGAIN);
    T_TIMES_OUT(jg_accept(l, NULL, NULL, JG_MS(50)), JG_MS(50));
    /* A pending connection is accepted with its peer address. */
    int c = jg_tcp_dial("127.0.0.1", jg_sock_port(l), JG_SEC(5));
    T_OK(c);
    struct sockaddr_in peer;
    socklen_t len = sizeof(peer);
    int s = jg_accept(l, (struct sockaddr *)&peer, &len, JG_SEC(5));
    T_OK(s);
    T_EQ(len, sizeof(peer));
    T_EQ(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
    T_ASSERT(fcntl(s, F_GETFL) & O_NONBLOCK);
    T_ASSERT(fcntl(s, F_GETFD) & FD_CLOEXEC);
    T_OK(jg_close(s));
    T_OK(jg_close(c));
    T_OK(jg_close(l));
}

T_MAIN(T_CASE(test_socketpair_rw), T_CASE(test_pipe_rw),
       T_CASE(test_eventfd_blocking), T_CASE(test_regular_file),
       T_CASE(test_read_timeout), T_CASE(test_bad_args),
       T_CASE(test_kill_in_read), T_CASE(test_close_while_waiting),
       T_CASE(test_two_waiters), T_CASE(test_two_readers_one_byte),
       T_CASE(test_pipe_epipe), T_CASE(test_send_epipe),
       T_CASE(test_big_write), T_CASE(test_readv_writev),
       T_CASE(test_stale_kind), T_CASE(test_connect_refused),
       T_CASE(test_connect_timeout), T_CASE(test_unix_roundtrip),
       T_CASE(test_accept_timeout))
