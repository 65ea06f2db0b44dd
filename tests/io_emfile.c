/* SPDX-License-Identifier: MIT */
/*
 * io_emfile.c - jg_accept with the fd table full: it backs off (the hub
 * keeps serving other green threads and does not spin), returns -EMFILE at
 * its timeout, and accepts as soon as an fd is free again.
 */
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "juggle.h"
#include "t.h"

static int64_t cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static int ticks;

/* Proves the hub keeps running green threads while accept backs off. */
static void *ticker(void *arg)
{
    (void)arg;
    while (jg_sleep(JG_MS(10)) == 0)
        ticks++;
    return NULL;
}

static int fillers[64], nfill;

static void *freer(void *arg)
{
    (void)arg;
    T_OK(jg_sleep(JG_MS(150)));
    T_OK(jg_close(fillers[--nfill]));
    return NULL;
}

static void test_accept_emfile(void)
{
    struct rlimit old, rl;
    struct jg_green *tick, *fr;
    int l, c, s;

    T_OK(getrlimit(RLIMIT_NOFILE, &old));
    l = jg_tcp_listen("127.0.0.1", 0);
    T_OK(l);
    /* The client connects before the table fills: the kernel completes
     * the handshake, so a connection waits in the accept queue. */
    c = jg_tcp_dial("127.0.0.1", jg_sock_port(l), JG_SEC(5));
    T_OK(c);
    T_OK(jg_spawn(&tick, ticker, NULL, NULL));
    T_OK(jg_yield());   /* the hub and its loop exist, with their fds */

    /* Allow a few more fds than the highest in use, then take them all. */
    int top = eventfd(0, EFD_CLOEXEC);
    T_OK(top);
    close(top);
    rl = old;
    rl.rlim_cur = (rlim_t)top + 8;
    T_OK(setrlimit(RLIMIT_NOFILE, &rl));
    for (;;) {
        int fd = eventfd(0, EFD_CLOEXEC);
        if (fd < 0) {
            T_EQ(errno, EMFILE);
            break;
        }
        T_ASSERT(nfill < (int)(sizeof(fillers) / sizeof(fillers[0])));
        fillers[nfill++] = fd;
    }
    T_ASSERT(nfill > 0);

    int t0 = ticks;
    int64_t w0 = t_now_ns(), c0 = cpu_ns();
    T_ERR(jg_accept(l, NULL, NULL, JG_MS(300)), -EMFILE);
    int64_t wall = t_now_ns() - w0, cpu = cpu_ns() - c0;
    fprintf(stderr, "EMFILE for %lld ms cost %lld us of CPU, %d ticks\n",
            (long long)(wall / 1000000), (long long)(cpu / 1000),
            ticks - t0);
    T_ASSERT(wall >= JG_MS(300));
    T_ASSERT(ticks - t0 >= 5);      /* 30 expected: the hub kept going */
    /* And it returned at its timeout: each tick sleeps 10 ms and timers
     * fire in expiry order, so up to the timeout there are at most 31
     * ticks, and one more before this green thread runs again, however
     * late a loaded machine runs them all. */
    T_ASSERT(ticks - t0 <= 33);
    T_ERR(jg_accept(l, NULL, NULL, 0), -EMFILE);
    /* CPU time, not wall time: load does not add to it. */
    if (t_plain())
        T_ASSERT(cpu < JG_MS(100));     /* backed off, did not spin */

    /* An fd freed while accept backs off: the connection is taken. */
    T_OK(jg_spawn(&fr, freer, NULL, NULL));
    w0 = t_now_ns();
    s = jg_accept(l, NULL, NULL, JG_SEC(5));
    T_OK(s);
    T_ASSERT(t_now_ns() - w0 >= JG_MS(150));
    T_OK(jg_join(fr, NULL, JG_SEC(5)));
    T_EQ(jg_write(c, "ok", 2, NULL, JG_SEC(1)), 2);
    char buf[2];
    T_EQ(jg_read(s, buf, 2, JG_SEC(1)), 2);
    T_ASSERT(memcmp(buf, "ok", 2) == 0);

    while (nfill > 0)
        T_OK(jg_close(fillers[--nfill]));
    T_OK(setrlimit(RLIMIT_NOFILE, &old));
    T_OK(jg_kill(tick));
    T_ERR(jg_join(tick, NULL, JG_SEC(5)), -ECANCELED);
    T_OK(jg_close(s));
    T_OK(jg_close(c));
    T_OK(jg_close(l));
}

T_MAIN(T_CASE(test_accept_emfile))
