/* SPDX-License-Identifier: MIT */
/*
 * preload_poll.c - a parked poll, ppoll, select or pselect waits through
 * the hub's own loop: no epoll instance per call (counted in /proc/self/fd
 * while 100 green threads are parked), revents and counts as libc gives
 * them, timeouts, POLLNVAL, pollfd arrays on sliced stacks, and the sets
 * the loop cannot watch (select's except set) still served. Run under
 * LD_PRELOAD.
 */
#include <juggle.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "t.h"

/* Open epoll instances of this process. */
static int count_epolls(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    T_ASSERT(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], target[128];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = 0;
        n += strcmp(target, "anon_inode:[eventpoll]") == 0;
    }
    closedir(d);
    return n;
}

enum { W_POLL, W_PPOLL, W_SELECT, W_PSELECT, W_KINDS };
static const char *const kind_name[W_KINDS] = {
    "poll", "ppoll", "select", "pselect",
};

struct waiter {
    int kind;
    int fd;                     /* becomes readable later */
    int idle;                   /* never ready */
    int rc;
    short revents, idle_revents;
    int isset, idle_isset;
};

static int parked;

/* One blocking wait on {idle, fd} with a long timeout, the set on this
 * green thread's own (possibly sliced) stack. */
static void *waiter_fn(void *arg)
{
    struct waiter *w = arg;
    struct pollfd p[2] = {
        { .fd = w->idle, .events = POLLIN },
        { .fd = w->fd, .events = POLLIN },
    };
    struct timespec ts = { 10, 0 };
    struct timeval tv = { 10, 0 };
    fd_set rs;
    sigset_t none;

    sigemptyset(&none);
    FD_ZERO(&rs);
    FD_SET(w->idle, &rs);
    FD_SET(w->fd, &rs);
    int n = (w->fd > w->idle ? w->fd : w->idle) + 1;
    parked++;
    switch (w->kind) {
    case W_POLL:
        w->rc = poll(p, 2, 10000);
        break;
    case W_PPOLL:
        w->rc = ppoll(p, 2, &ts, &none);
        break;
    case W_SELECT:
        w->rc = select(n, &rs, NULL, NULL, &tv);
        break;
    default:
        w->rc = pselect(n, &rs, NULL, NULL, &ts, &none);
        break;
    }
    parked--;
    w->revents = p[1].revents;
    w->idle_revents = p[0].revents;
    w->isset = FD_ISSET(w->fd, &rs);
    w->idle_isset = FD_ISSET(w->idle, &rs);
    return NULL;
}

/* Before: 100 parked waits held 100 temporary epoll instances. */
static void run_parked(int sliced)
{
    enum { N = 100 };
    static struct waiter w[N];
    static int sv[N][2];
    struct jg_green *g[N];
    struct jg_spawn_opts o = { .stack_model = JG_STACK_SLICED };
    int idle[2];
    int64_t before[W_KINDS];

    for (int k = 0; k < W_KINDS; k++)
        before[k] = jg_patch_calls(kind_name[k]);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, idle), 0);
    /* The hub's own loop exists once it has run. */
    T_OK(jg_sleep(JG_MS(1)));
    int base = count_epolls();
    for (int i = 0; i < N; i++) {
        T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        w[i] = (struct waiter){ .kind = i % W_KINDS, .fd = sv[i][0],
                                .idle = idle[0] };
        T_OK(jg_spawn(&g[i], waiter_fn, &w[i], sliced ? &o : NULL));
    }
    /* Let every waiter park, then look while they are parked. */
    for (int i = 0; i < 5; i++)
        T_OK(jg_sleep(JG_MS(2)));
    T_EQ(parked, N);
    int during = count_epolls();
    fprintf(stderr, "   %d epoll instances before, %d with %d waits "
            "parked\n", base, during, N);
    T_EQ(during, base);
    for (int i = 0; i < N; i++)
        T_EQ(write(sv[i][1], "x", 1), 1);
    for (int i = 0; i < N; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    for (int i = 0; i < N; i++) {
        T_EQ(w[i].rc, 1);
        if (w[i].kind <= W_PPOLL) {
            T_EQ(w[i].revents, POLLIN);
            T_EQ(w[i].idle_revents, 0);
        } else {
            T_EQ(w[i].isset, 1);
            T_EQ(w[i].idle_isset, 0);
        }
        close(sv[i][0]);
        close(sv[i][1]);
    }
    for (int k = 0; k < W_KINDS; k++)
        T_EQ(jg_patch_calls(kind_name[k]) - before[k], N / W_KINDS);
    close(idle[0]);
    close(idle[1]);
}

static void test_parked_waits_make_no_epoll(void)
{
    T_ASSERT(jg_patch_enabled());
    run_parked(0);
}

static void test_parked_waits_on_sliced_stacks(void)
{
    run_parked(1);
}

/* ---- revents as libc gives them ----------------------------------------- */

struct multi {
    int a[2], b[2], c[2];
    struct pollfd got[4];
    int rc;
};

static void *multi_waiter(void *arg)
{
    struct multi *m = arg;
    struct pollfd p[4] = {
        { .fd = m->a[0], .events = POLLIN },
        { .fd = m->b[0], .events = POLLIN },
        { .fd = m->c[0], .events = POLLIN | POLLRDHUP },
        { .fd = m->c[0], .events = POLLIN },   /* the same fd twice */
    };

    m->rc = poll(p, 4, 10000);
    memcpy(m->got, p, sizeof(p));
    return NULL;
}

static void test_revents_as_libc(void)
{
    struct multi m;
    struct jg_green *g;

    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, m.a), 0);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, m.b), 0);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, m.c), 0);
    T_OK(jg_spawn(&g, multi_waiter, &m, NULL));
    T_OK(jg_sleep(JG_MS(10)));
    /* c's peer goes away: c reads EOF (POLLIN, POLLRDHUP, POLLHUP). */
    close(m.c[1]);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    /* libc's own answer for the same set, now. */
    struct pollfd want[4];
    memcpy(want, m.got, sizeof(want));
    for (int i = 0; i < 4; i++)
        want[i].revents = 0;
    struct timespec zero = { 0, 0 };
    /* ppoll: every architecture has it (aarch64 has no poll). */
    int rc = (int)syscall(SYS_ppoll, want, 4, &zero, NULL, (size_t)8);
    T_EQ(m.rc, rc);
    for (int i = 0; i < 4; i++)
        T_EQ(m.got[i].revents, want[i].revents);
    T_EQ(m.got[0].revents, 0);
    T_ASSERT(m.got[2].revents & POLLRDHUP);
    close(m.a[0]);
    close(m.a[1]);
    close(m.b[0]);
    close(m.b[1]);
    close(m.c[0]);
}

/* ---- timeouts, POLLNVAL, the except set ---------------------------------- */

static void *timeouts(void *arg)
{
    int *sv = arg;
    struct pollfd p = { .fd = sv[0], .events = POLLIN };
    fd_set rs, es;
    struct timeval tv = { 0, 20000 };

    int64_t t0 = t_now_ns();
    T_EQ(poll(&p, 1, 20), 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    T_EQ(p.revents, 0);
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    t0 = t_now_ns();
    T_EQ(select(sv[0] + 1, &rs, NULL, NULL, &tv), 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    T_EQ(FD_ISSET(sv[0], &rs), 0);
    /* Only the except set: the loop cannot watch it; served all the
     * same (a temporary epoll set), with select's own timeout. */
    FD_ZERO(&es);
    FD_SET(sv[0], &es);
    tv = (struct timeval){ 0, 20000 };
    t0 = t_now_ns();
    T_EQ(select(sv[0] + 1, NULL, NULL, &es, &tv), 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    /* A bad fd beside a good one: POLLNVAL at once, as libc. */
    struct pollfd q[2] = {
        { .fd = sv[0], .events = POLLIN },
        { .fd = 1000000, .events = POLLIN },
    };
    T_EQ(poll(q, 2, 10000), 1);
    T_EQ(q[0].revents, 0);
    T_EQ(q[1].revents, POLLNVAL);
    /* Only negative fds: a sleep, 0 at the timeout. */
    struct pollfd none = { .fd = -1, .events = POLLIN };
    t0 = t_now_ns();
    T_EQ(poll(&none, 1, 20), 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(20));
    return NULL;
}

static void test_timeouts_and_pollnval(void)
{
    int sv[2];
    struct jg_green *g;
    int64_t before = jg_patch_calls("poll");

    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    T_OK(jg_spawn(&g, timeouts, sv, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    /* Two parked polls (the POLLNVAL one returned at once). */
    T_EQ(jg_patch_calls("poll") - before, 2);
    close(sv[0]);
    close(sv[1]);
}

T_MAIN(T_CASE(test_parked_waits_make_no_epoll),
       T_CASE(test_parked_waits_on_sliced_stacks),
       T_CASE(test_revents_as_libc),
       T_CASE(test_timeouts_and_pollnval))
