/* SPDX-License-Identifier: MIT */
/*
 * preload_close_reuse.c - io_close_reuse's promises with plain libc calls
 * under the preload library: a green thread's read() woken by data, whose
 * fd another green thread close()s and a new socket reuses before it runs,
 * fails with EBADF instead of returning the new socket's bytes; a close()
 * on a plain thread wakes a green thread parked in read() with EBADF.
 * Run with libjuggle_preload.so in LD_PRELOAD.
 */
#include <juggle.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

struct reuse {
    int sv[2], nsv[2];
    ssize_t got;
    int err;
    char buf[16];
};

static void *reaper(void *arg)
{
    struct reuse *r = arg;
    int fd = r->sv[0];

    T_ASSERT(jg_wait_fd(fd, JG_READ, JG_SEC(10)) & JG_READ);
    T_EQ(close(fd), 0);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->nsv), 0);
    T_EQ(r->nsv[0], fd);
    T_EQ(write(r->nsv[1], "NEW", 3), 3);
    return NULL;
}

static void *reader(void *arg)
{
    struct reuse *r = arg;

    errno = 0;
    r->got = read(r->sv[0], r->buf, sizeof r->buf);
    r->err = errno;
    return NULL;
}

static void test_close_after_wakeup_gives_ebadf(void)
{
    struct reuse r = { .got = 12345 };
    struct jg_green *a, *b;

    T_ASSERT(jg_patch_enabled());
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r.sv), 0);
    T_OK(jg_spawn(&a, reaper, &r, NULL));
    T_OK(jg_spawn(&b, reader, &r, NULL));
    T_OK(jg_yield());
    T_EQ(write(r.sv[1], "OLD", 3), 3);
    T_OK(jg_join(a, NULL, JG_FOREVER));
    T_OK(jg_join(b, NULL, JG_FOREVER));
    /* Before: 3 bytes, "NEW", from the socket that reused the number. */
    T_EQ(r.got, -1);
    T_EQ(r.err, EBADF);
    close(r.sv[1]);
    close(r.nsv[0]);
    close(r.nsv[1]);
}

struct remote {
    int fd;
    _Atomic int parked;
    ssize_t got;
    int err;
};

static void *remote_reader(void *arg)
{
    struct remote *r = arg;
    char c;

    r->parked = 1;
    errno = 0;
    r->got = read(r->fd, &c, 1);
    r->err = errno;
    return NULL;
}

/* A plain thread, with no hub of its own: close() is still the runtime's. */
static void *closer_thread(void *arg)
{
    struct remote *r = arg;

    while (!r->parked)
        usleep(1000);
    usleep(20000);
    T_EQ(close(r->fd), 0);
    return NULL;
}

static void test_plain_thread_close_wakes_reader(void)
{
    struct remote r = { .got = 12345 };
    struct jg_green *g;
    pthread_t t;
    int sv[2];

    /* TSan calls any close of an fd that another thread is using a race,
     * whatever orders them; here that is the very point. The plain and
     * ASan suites run it, and io_close_reuse's jg_close case runs
     * everywhere. */
    if (T_TSAN)
        T_SKIP_CASE("a close racing a use is a race by TSan's definition");
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    r.fd = sv[0];
    T_OK(jg_spawn(&g, remote_reader, &r, NULL));
    T_EQ(pthread_create(&t, NULL, closer_thread, &r), 0);
    /* Before: the reader stayed parked for good (the join hung). */
    T_OK(jg_join(g, NULL, JG_SEC(20)));
    T_EQ(pthread_join(t, NULL), 0);
    T_EQ(r.got, -1);
    T_EQ(r.err, EBADF);
    close(sv[1]);
}

T_MAIN(T_CASE(test_close_after_wakeup_gives_ebadf),
       T_CASE(test_plain_thread_close_wakes_reader))
