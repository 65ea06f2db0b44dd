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
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

/* dup2 onto a watched fd from a plain thread wakes the reader, as close
 * does. Before: the reader stayed parked (its registration was gone). */
struct dup_over {
    int target, src;
    _Atomic int parked;
};

static void *dup_thread(void *arg)
{
    struct dup_over *d = arg;

    while (!d->parked)
        usleep(1000);
    usleep(20000);
    T_EQ(dup2(d->src, d->target), d->target);
    return NULL;
}

static void *dup_reader(void *arg)
{
    struct remote *r = arg;
    char c;

    errno = 0;
    r->got = read(r->fd, &c, 1);
    r->err = errno;
    return NULL;
}

static void test_plain_thread_dup2_wakes_reader(void)
{
    struct remote r = { .got = 12345 };
    struct dup_over d = { 0 };
    struct jg_green *g;
    pthread_t t;
    int sv[2], other[2];

    if (T_TSAN)
        T_SKIP_CASE("a dup2 over an fd in use is a race by TSan's definition");
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, other), 0);
    r.fd = d.target = sv[0];
    d.src = other[0];
    T_OK(jg_spawn(&g, dup_reader, &r, NULL));
    T_OK(jg_yield());
    d.parked = 1;
    T_EQ(pthread_create(&t, NULL, dup_thread, &d), 0);
    T_OK(jg_join(g, NULL, JG_SEC(20)));
    T_EQ(pthread_join(t, NULL), 0);
    T_EQ(r.got, -1);
    T_EQ(r.err, EBADF);
    close(sv[0]);
    close(sv[1]);
    close(other[0]);
    close(other[1]);
}

/* close() inside a signal handler is libc's: no watcher is called inside
 * the handler (the interrupted code may be inside the loop). Before: the
 * runtime's close ran there and called the watchers. */
static volatile sig_atomic_t in_handler, cb_in_handler, cb_calls;
static int sig_fd;

static void sig_cb(struct jg_io *w, uint32_t revents)
{
    (void)w;
    cb_calls++;
    if ((revents & JG_CLOSED) && in_handler)
        cb_in_handler = 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    in_handler = 1;
    close(sig_fd);
    in_handler = 0;
}

static void test_close_in_signal_handler_is_libc(void)
{
    struct sigaction sa = { .sa_handler = on_usr1 }, old;
    struct jg_io w;
    int p[2];

    if (T_TSAN)
        T_SKIP_CASE("TSan runs handlers outside the patch's trampoline");
    T_EQ(pipe(p), 0);
    sig_fd = p[0];
    jg_io_init(&w, sig_cb, sig_fd, JG_READ);
    T_OK(jg_io_start(jg_loop_default(), &w));
    T_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    T_EQ(raise(SIGUSR1), 0);
    T_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    T_EQ(cb_in_handler, 0);
    T_EQ(fcntl(sig_fd, F_GETFD), -1);   /* closed all the same */
    T_EQ(errno, EBADF);
    (void)jg_io_stop(&w);
    close(p[1]);
}

T_MAIN(T_CASE(test_close_after_wakeup_gives_ebadf),
       T_CASE(test_plain_thread_close_wakes_reader),
       T_CASE(test_plain_thread_dup2_wakes_reader),
       T_CASE(test_close_in_signal_handler_is_libc))
