/* SPDX-License-Identifier: MIT */
/*
 * preload_basic.c - the patch's promises with plain libc calls in green
 * threads: user non-blocking sockets keep EAGAIN, SO_RCVTIMEO gives EAGAIN
 * after its time, close wakes a reader with EBADF, a kill gives ECANCELED,
 * poll/select/epoll_wait and big pipe writes park only their caller, errno
 * survives switches, plain pthreads see libc, fork+exec children inherit
 * blocking stdin/stdout, and a blocking echo server with 200 concurrent
 * clients. Run with libjuggle_preload.so in LD_PRELOAD.
 */
#include <juggle.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"
#include "t_late.h"

/* A green thread that counts while others wait: proof that a wait parked
 * only its caller. */
static volatile int ticks, tick_stop;

static void *ticker(void *arg)
{
    (void)arg;
    while (!tick_stop) {
        ticks++;
        jg_sleep(JG_MS(5));
    }
    return NULL;
}

static struct jg_green *tick_start(void)
{
    struct jg_green *g;
    ticks = 0;
    tick_stop = 0;
    T_OK(jg_spawn(&g, ticker, NULL, NULL));
    return g;
}

static void tick_end(struct jg_green *g)
{
    tick_stop = 1;
    T_OK(jg_join(g, NULL, JG_FOREVER));
}

static void pair(int sv[2])
{
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void test_attached(void)
{
    T_ASSERT(jg_patch_enabled());
}

/* ---- user non-blocking fds ------------------------------------------------ */

static void *nb_reader(void *arg)
{
    int *sv = arg;
    char c;

    /* fcntl(O_NONBLOCK) */
    T_EQ(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
    errno = 0;
    T_EQ(read(sv[0], &c, 1), -1);
    T_EQ(errno, EAGAIN);
    T_EQ(recv(sv[0], &c, 1, 0), -1);
    T_EQ(errno, EAGAIN);
    /* Back to blocking with FIONBIO, then non-blocking again with it. */
    int on = 0;
    T_EQ(ioctl(sv[0], FIONBIO, &on), 0);
    on = 1;
    T_EQ(ioctl(sv[0], FIONBIO, &on), 0);
    T_EQ(read(sv[0], &c, 1), -1);
    T_EQ(errno, EAGAIN);
    /* A blocking recv with MSG_DONTWAIT is the user's choice too. */
    on = 0;
    T_EQ(ioctl(sv[0], FIONBIO, &on), 0);
    T_EQ(recv(sv[0], &c, 1, MSG_DONTWAIT), -1);
    T_EQ(errno, EAGAIN);
    /* accept on a non-blocking listener. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    T_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    T_EQ(listen(l, 4), 0);
    T_EQ(accept(l, NULL, NULL), -1);
    T_EQ(errno, EAGAIN);
    close(l);
    return NULL;
}

static void test_user_nonblocking(void)
{
    int sv[2];
    struct jg_green *g;

    pair(sv);
    int64_t before = jg_patch_calls("read");
    T_OK(jg_spawn(&g, nb_reader, sv, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    /* Non-blocking reads go straight to libc: never counted cooperative. */
    T_EQ(jg_patch_calls("read") - before, 0);
    /* The blocking end is untouched by the patch. */
    T_EQ(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
    close(sv[0]);
    close(sv[1]);
}

/* ---- SO_RCVTIMEO ------------------------------------------------------------ */

static void *timed_reader(void *arg)
{
    int fd = *(int *)arg;
    struct timeval tv = { 0, 100000 };
    char c;

    T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    int64_t t0 = t_now_ns();
    /* At its time, not later: before a 250 ms sentinel (t_late.h). */
    struct jg_green *late = t_late_start(JG_MS(250), NULL, 0);
    errno = 0;
    T_EQ(read(fd, &c, 1), -1);
    T_EQ(errno, EAGAIN);
    int64_t t = t_now_ns() - t0;
    T_ASSERT(t >= JG_MS(100));
    t_late_check(late);
    /* Cleared: a blocking read again (woken by data). */
    tv.tv_usec = 0;
    T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    T_EQ(recv(fd, &c, 1, 0), 1);
    T_EQ(c, 'x');
    return NULL;
}

static void test_rcvtimeo(void)
{
    int sv[2];
    struct jg_green *g, *tk = tick_start();

    pair(sv);
    T_OK(jg_spawn(&g, timed_reader, &sv[0], NULL));
    T_OK(jg_sleep(JG_MS(200)));
    T_EQ(write(sv[1], "x", 1), 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    tick_end(tk);
    T_ASSERT(ticks >= 10);      /* the hub ran others meanwhile */
    close(sv[0]);
    close(sv[1]);
}

/* ---- close, kill and errno --------------------------------------------------- */

static int closed_fd;

static void *blocked_reader(void *arg)
{
    char c;

    (void)arg;
    errno = 0;
    T_EQ(read(closed_fd, &c, 1), -1);
    return (void *)(intptr_t)errno;
}

static void test_close_wakes_reader(void)
{
    int sv[2];
    struct jg_green *g;
    void *res;

    pair(sv);
    closed_fd = sv[0];
    T_OK(jg_spawn(&g, blocked_reader, NULL, NULL));
    T_OK(jg_sleep(JG_MS(20)));
    T_EQ(close(sv[0]), 0);
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_EQ((intptr_t)res, EBADF);
    close(sv[1]);
}

static void test_kill_reader(void)
{
    int sv[2];
    struct jg_green *g;
    void *res;

    pair(sv);
    closed_fd = sv[0];
    T_OK(jg_spawn(&g, blocked_reader, NULL, NULL));
    T_OK(jg_sleep(JG_MS(20)));
    T_OK(jg_kill(g));
    jg_join(g, &res, JG_FOREVER);
    T_EQ((intptr_t)res, ECANCELED);
    close(sv[0]);
    close(sv[1]);
}

static void *errno_keeper(void *arg)
{
    int mine = (int)(intptr_t)arg;

    for (int i = 0; i < 5; i++) {
        errno = mine;
        T_EQ(usleep(2000), 0);
        T_EQ(errno, mine);      /* other green threads set theirs */
    }
    return NULL;
}

static void test_errno_across_switches(void)
{
    struct jg_green *a, *b;

    T_OK(jg_spawn(&a, errno_keeper, (void *)(intptr_t)EILSEQ, NULL));
    T_OK(jg_spawn(&b, errno_keeper, (void *)(intptr_t)ENOSPC, NULL));
    T_OK(jg_join(a, NULL, JG_FOREVER));
    T_OK(jg_join(b, NULL, JG_FOREVER));
    /* libc's own errors, from the cooperative path. */
    char c;
    errno = 0;
    T_EQ(read(-1, &c, 1), -1);
    T_EQ(errno, EBADF);
    T_EQ(nanosleep(&(struct timespec){ 0, 1000000000L }, NULL), -1);
    T_EQ(errno, EINVAL);
}

/* ---- poll, select, epoll, pipes ------------------------------------------------ */

static int pipefd[2];

static void *late_writer(void *arg)
{
    (void)arg;
    T_EQ(usleep(50000), 0);
    T_EQ(write(pipefd[1], "y", 1), 1);
    return NULL;
}

static void test_poll_select_epoll(void)
{
    struct jg_green *w, *tk;
    char c;

    T_EQ(pipe(pipefd), 0);
    /* poll: one ready fd, after the writer's sleep. */
    tk = tick_start();
    T_OK(jg_spawn(&w, late_writer, NULL, NULL));
    struct pollfd p[2] = { { pipefd[0], POLLIN, 0 }, { -1, POLLIN, 0 } };
    int64_t t0 = t_now_ns();
    T_EQ(poll(p, 2, 5000), 1);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(50));
    T_EQ(p[0].revents, POLLIN);
    T_EQ(read(pipefd[0], &c, 1), 1);
    T_OK(jg_join(w, NULL, JG_FOREVER));
    /* poll timing out, and select as a sleep. */
    T_EQ(poll(p, 1, 30), 0);
    struct timeval tv = { 0, 30000 };
    t0 = t_now_ns();
    T_EQ(select(0, NULL, NULL, NULL, &tv), 0);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    /* select with a read set. */
    T_OK(jg_spawn(&w, late_writer, NULL, NULL));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(pipefd[0], &rs);
    tv = (struct timeval){ 5, 0 };
    T_EQ(select(pipefd[0] + 1, &rs, NULL, NULL, &tv), 1);
    T_ASSERT(FD_ISSET(pipefd[0], &rs));
    T_ASSERT(tv.tv_sec < 5);    /* Linux leaves the time not slept */
    T_EQ(read(pipefd[0], &c, 1), 1);
    T_OK(jg_join(w, NULL, JG_FOREVER));
    /* epoll_wait on our own epoll fd. */
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = pipefd[0] };
    T_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev), 0);
    T_OK(jg_spawn(&w, late_writer, NULL, NULL));
    struct epoll_event out[4];
    T_EQ(epoll_wait(ep, out, 4, 5000), 1);
    T_EQ(out[0].data.fd, pipefd[0]);
    T_EQ(epoll_wait(ep, out, 4, 0), 1);
    T_EQ(read(pipefd[0], &c, 1), 1);
    T_EQ(epoll_wait(ep, out, 4, 20), 0);
    T_OK(jg_join(w, NULL, JG_FOREVER));
    tick_end(tk);
    T_ASSERT(ticks >= 20);
    T_ASSERT(jg_patch_calls("poll") >= 1);
    T_ASSERT(jg_patch_calls("select") >= 2);
    T_ASSERT(jg_patch_calls("epoll_wait") >= 2);
    close(ep);
    close(pipefd[0]);
    close(pipefd[1]);
}

#define BIG (1 << 20)

static void *big_reader(void *arg)
{
    size_t got = 0;
    char *buf = malloc(65536);

    (void)arg;
    while (got < BIG) {
        ssize_t r = read(pipefd[0], buf, 65536);
        T_ASSERT(r > 0);
        for (ssize_t i = 0; i < r; i++)
            T_EQ((unsigned char)buf[i], (unsigned char)((got + i) * 7));
        got += (size_t)r;
    }
    free(buf);
    return NULL;
}

static void test_big_pipe_write(void)
{
    struct jg_green *r;
    char *buf = malloc(BIG);

    for (size_t i = 0; i < BIG; i++)
        buf[i] = (char)(i * 7);
    T_EQ(pipe(pipefd), 0);
    T_OK(jg_spawn(&r, big_reader, NULL, NULL));
    /* A blocking write of 1 MiB into a 64 KiB pipe: all of it, parked
     * while the reader (a green thread of the same hub) drains. */
    T_EQ(write(pipefd[1], buf, BIG), BIG);
    T_OK(jg_join(r, NULL, JG_FOREVER));
    T_EQ(fcntl(pipefd[1], F_GETFL) & O_NONBLOCK, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    free(buf);
}

/* ---- plain threads ----------------------------------------------------------- */

static void *plain_reader(void *arg)
{
    int fd = *(int *)arg;
    char c = 0;

    T_EQ(read(fd, &c, 1), 1);   /* libc's blocking read */
    T_EQ(c, 'p');
    errno = 0;
    T_EQ(read(-1, &c, 1), -1);
    T_EQ(errno, EBADF);
    return NULL;
}

static void test_plain_thread(void)
{
    int sv[2];
    pthread_t th;
    int64_t before = jg_patch_calls("read");

    pair(sv);
    T_EQ(pthread_create(&th, NULL, plain_reader, &sv[0]), 0);
    usleep(30000);              /* main context: cooperative */
    T_EQ(write(sv[1], "p", 1), 1);
    T_EQ(pthread_join(th, NULL), 0);
    T_EQ(jg_patch_calls("read") - before, 0);
    close(sv[0]);
    close(sv[1]);
}

/* ---- fork + exec: inherited stdin/stdout stay blocking -------------------------- */

static void *stdio_user(void *arg)
{
    char c;

    (void)arg;
    T_EQ(write(1, "o", 1), 1);  /* cooperative writes and reads on 0/1 */
    T_EQ(read(0, &c, 1), 1);
    T_EQ(c, 'i');
    return NULL;
}

static void test_fork_exec_blocking_stdio(void)
{
    int in[2], out[2], rep[2], save0 = dup(0), save1 = dup(1);
    struct jg_green *g;
    char c, buf[4096];

    T_EQ(pipe(in), 0);
    T_EQ(pipe(out), 0);
    T_EQ(pipe(rep), 0);
    T_EQ(dup2(in[0], 0), 0);
    T_EQ(dup2(out[1], 1), 1);
    T_OK(jg_spawn(&g, stdio_user, NULL, NULL));
    T_OK(jg_sleep(JG_MS(10)));
    T_EQ(write(in[1], "i", 1), 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(read(out[0], &c, 1), 1);
    T_EQ(c, 'o');
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(rep[1], 3);
        /* A TSan-built preload library needs the TSan runtime, which only
         * TSan-built programs carry: /bin/sh could not load it. */
        if (T_TSAN)
            unsetenv("LD_PRELOAD");
        execl("/bin/sh", "sh", "-c",
              "grep flags /proc/self/fdinfo/0 /proc/self/fdinfo/1 >&3",
              (char *)NULL);
        _exit(127);
    }
    T_ASSERT(pid > 0);
    close(rep[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(rep[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    int st;
    T_EQ(waitpid(pid, &st, 0), pid);
    T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Two lines "...fdinfo/N:flags:\t0NNNNNN": octal, O_NONBLOCK 04000. */
    int lines = 0;
    for (char *s = strstr(buf, "flags:"); s; s = strstr(s + 1, "flags:")) {
        unsigned long fl = strtoul(s + 6, NULL, 8);
        T_EQ(fl & O_NONBLOCK, 0);
        lines++;
    }
    T_EQ(lines, 2);
    T_EQ(fcntl(0, F_GETFL) & O_NONBLOCK, 0);
    T_EQ(fcntl(1, F_GETFL) & O_NONBLOCK, 0);
    dup2(save0, 0);
    dup2(save1, 1);
    close(save0);
    close(save1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    close(rep[0]);
}

/* ---- a blocking echo server and 200 clients ----------------------------------- */

static int srv_port, open_conns, peak_conns, served;

static void *echo_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[256];
    ssize_t r;

    if (++open_conns > peak_conns)
        peak_conns = open_conns;
    while ((r = read(c, buf, sizeof buf)) > 0)
        T_EQ(write(c, buf, (size_t)r), r);
    T_EQ(r, 0);
    open_conns--;
    served++;
    close(c);
    return NULL;
}

static void *echo_server(void *arg)
{
    int l = *(int *)arg, n = (int)t_scale(200);

    for (int i = 0; i < n; i++) {
        int c = accept(l, NULL, NULL);
        T_ASSERT(c >= 0);
        T_OK(jg_spawn(NULL, echo_conn, (void *)(intptr_t)c, NULL));
    }
    return NULL;
}

static void *echo_client(void *arg)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)srv_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), id = (int)(intptr_t)arg;
    char out[64], in[64];

    T_ASSERT(fd >= 0);
    T_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    int n = snprintf(out, sizeof out, "hello from client %d", id);
    T_EQ(send(fd, out, (size_t)n, 0), n);
    T_EQ(recv(fd, in, (size_t)n, MSG_WAITALL), n);
    T_ASSERT(memcmp(in, out, (size_t)n) == 0);
    /* Hold the connection a while: every client is connected at once. */
    T_EQ(usleep(100000), 0);
    T_EQ(close(fd), 0);
    return NULL;
}

static void test_echo_200(void)
{
    int n = (int)t_scale(200);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    struct jg_green *srv, **cl = calloc((size_t)n, sizeof *cl);
    int64_t before = jg_patch_calls("accept");

    T_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    T_EQ(listen(l, 512), 0);
    T_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    srv_port = ntohs(a.sin_port);
    open_conns = peak_conns = served = 0;
    T_OK(jg_spawn(&srv, echo_server, &l, NULL));
    for (int i = 0; i < n; i++)
        T_OK(jg_spawn(&cl[i], echo_client, (void *)(intptr_t)i, NULL));
    for (int i = 0; i < n; i++)
        T_OK(jg_join(cl[i], NULL, JG_FOREVER));
    T_OK(jg_join(srv, NULL, JG_FOREVER));
    while (served < n)
        T_OK(jg_sleep(JG_MS(1)));
    T_ASSERT(peak_conns >= n * 95 / 100);
    T_ASSERT(jg_patch_calls("accept") - before >= 1);
    /* The listener's own flags are what the user set: blocking. */
    T_EQ(fcntl(l, F_GETFL) & O_NONBLOCK, 0);
    close(l);
    free(cl);
}

/* connect to a port nobody listens on: libc's error. */
static void test_connect_refused(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;

    T_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    T_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    close(l);                   /* bound, never listening: refused */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    T_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), -1);
    T_EQ(errno, ECONNREFUSED);
    close(fd);
}

T_MAIN(T_CASE(test_attached), T_CASE(test_user_nonblocking),
       T_CASE(test_rcvtimeo), T_CASE(test_close_wakes_reader),
       T_CASE(test_kill_reader), T_CASE(test_errno_across_switches),
       T_CASE(test_poll_select_epoll), T_CASE(test_big_pipe_write),
       T_CASE(test_plain_thread), T_CASE(test_fork_exec_blocking_stdio),
       T_CASE(test_echo_200), T_CASE(test_connect_refused))
