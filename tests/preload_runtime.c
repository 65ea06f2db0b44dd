/* SPDX-License-Identifier: MIT */
/*
 * preload_runtime.c - libjuggle's own system calls never reach the preload
 * library's interposers (DESIGN.md, "Seams"): the default loop run from
 * main with only an fd watcher polls the kernel itself rather than the
 * cooperative epoll_wait. Run with libjuggle_preload.so in LD_PRELOAD.
 */
#include <juggle.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

static int fired;

static void on_readable(struct jg_io *w, uint32_t revents)
{
    char c;

    T_ASSERT(revents & JG_READ);
    T_EQ(read(w->fd, &c, 1), 1);
    T_EQ(c, 'x');
    fired++;
    T_OK(jg_io_stop(w));
}

/* A plain thread writes later: no timer of juggle's is involved, so the
 * loop's poll has no timeout. */
static void *writer(void *arg)
{
    int fd = *(int *)arg;

    usleep(20000);
    T_EQ(write(fd, "x", 1), 1);
    return NULL;
}

/* Before: "epoll backend poll failed: Invalid argument" and an abort, as
 * the backend's epoll_wait bound to the interposer. */
static void test_default_loop_fd_watcher_from_main(void)
{
    struct jg_io w;
    pthread_t t;
    int sv[2];

    T_ASSERT(jg_patch_enabled());
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    jg_io_init(&w, on_readable, sv[0], JG_READ);
    T_OK(jg_io_start(jg_loop_default(), &w));
    T_EQ(pthread_create(&t, NULL, writer, &sv[1]), 0);
    T_OK(jg_loop_run(jg_loop_default(), JG_RUN_DEFAULT));
    T_EQ(fired, 1);
    T_EQ(pthread_join(t, NULL), 0);
    close(sv[0]);
    close(sv[1]);
}

/* Without any green thread: the watcher alone keeps the loop alive and
 * the data is already there. */
static void test_default_loop_ready_fd(void)
{
    struct jg_io w;
    int sv[2];

    fired = 0;
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    T_EQ(write(sv[1], "x", 1), 1);
    jg_io_init(&w, on_readable, sv[0], JG_READ);
    T_OK(jg_io_start(jg_loop_default(), &w));
    T_OK(jg_loop_run(jg_loop_default(), JG_RUN_DEFAULT));
    T_EQ(fired, 1);
    close(sv[0]);
    close(sv[1]);
}

T_MAIN(T_CASE(test_default_loop_fd_watcher_from_main),
       T_CASE(test_default_loop_ready_fd))
