/* SPDX-License-Identifier: MIT */
/*
 * preload_accept.c - a blocking listener shared by OS threads, each with
 * its own hub and green threads accepting on it, plus a plain thread
 * accepting the libc way: every client is served, no thread ever sees
 * O_NONBLOCK on the listener or EAGAIN from its blocking accept, and the
 * listener is left blocking (DESIGN.md, Seams: shared file descriptions
 * are never left with flags juggle changed). Run under LD_PRELOAD.
 */
#include <juggle.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "t.h"

#define HUBS 2
#define GREENS 8

static int lfd;
static struct sockaddr_in laddr;
static _Atomic long served, accept_errors, plain_eagain, nb_seen;
static _Atomic int checking;

/* The kernel's own answer, past every interposer. */
static int kernel_getfl(int fd)
{
    return (int)syscall(SYS_fcntl, fd, F_GETFL);
}

/* Serve one connection: 1 served, 0 told to stop. */
static int serve(int c)
{
    char b;

    if (read(c, &b, 1) != 1) {
        atomic_fetch_add(&accept_errors, 1);
        close(c);
        return 1;
    }
    if (b == 'q') {
        close(c);
        return 0;
    }
    if (write(c, "y", 1) != 1)
        atomic_fetch_add(&accept_errors, 1);
    close(c);
    atomic_fetch_add(&served, 1);
    return 1;
}

static void *green_acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) {
            atomic_fetch_add(&accept_errors, 1);
            continue;
        }
        if (!serve(c))
            return NULL;
    }
}

/* An OS thread with its own hub: GREENS green threads accept on lfd. */
static void *hub_thread(void *arg)
{
    struct jg_green *g[GREENS];

    (void)arg;
    for (int i = 0; i < GREENS; i++)
        T_OK(jg_spawn(&g[i], green_acceptor, NULL, NULL));
    for (int i = 0; i < GREENS; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    return NULL;
}

/* A plain thread's blocking accept, the libc way. */
static void *plain_acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                atomic_fetch_add(&plain_eagain, 1);
            else
                atomic_fetch_add(&accept_errors, 1);
            continue;
        }
        if (!serve(c))
            return NULL;
    }
}

/* Another plain thread asks for the listener's flags all along. */
static void *flag_checker(void *arg)
{
    (void)arg;
    while (atomic_load(&checking)) {
        int fl = fcntl(lfd, F_GETFL);
        if (fl < 0 || (fl & O_NONBLOCK))
            atomic_fetch_add(&nb_seen, 1);
    }
    return NULL;
}

static int dial(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);

    T_ASSERT(s >= 0);
    T_EQ(connect(s, (struct sockaddr *)&laddr, sizeof(laddr)), 0);
    return s;
}

static long nclients;

static void *client(void *arg)
{
    (void)arg;
    for (long i = 0; i < nclients; i++) {
        int s = dial();
        char b = 0;
        T_EQ(write(s, "x", 1), 1);
        T_EQ(read(s, &b, 1), 1);
        T_EQ(b, 'y');
        close(s);
    }
    return NULL;
}

static void test_shared_listener_stays_blocking(void)
{
    pthread_t hubs[HUBS], plain, checker, clients[2];
    socklen_t len = sizeof(laddr);

    T_ASSERT(jg_patch_enabled());
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    T_ASSERT(lfd > 2);
    laddr.sin_family = AF_INET;
    laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_EQ(bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)), 0);
    T_EQ(getsockname(lfd, (struct sockaddr *)&laddr, &len), 0);
    T_EQ(listen(lfd, 512), 0);
    T_EQ(kernel_getfl(lfd) & O_NONBLOCK, 0);

    int64_t before = jg_patch_calls("accept");
    nclients = t_scale(2000);
    atomic_store(&checking, 1);
    T_EQ(pthread_create(&checker, NULL, flag_checker, NULL), 0);
    for (int i = 0; i < HUBS; i++)
        T_EQ(pthread_create(&hubs[i], NULL, hub_thread, NULL), 0);
    T_EQ(pthread_create(&plain, NULL, plain_acceptor, NULL), 0);
    for (int i = 0; i < 2; i++)
        T_EQ(pthread_create(&clients[i], NULL, client, NULL), 0);
    for (int i = 0; i < 2; i++)
        T_EQ(pthread_join(clients[i], NULL), 0);
    /* One "stop" per acceptor: each leaves after its first. */
    int stops[HUBS * GREENS + 1];
    for (int i = 0; i < HUBS * GREENS + 1; i++) {
        stops[i] = dial();
        T_EQ(write(stops[i], "q", 1), 1);
    }
    for (int i = 0; i < HUBS; i++)
        T_EQ(pthread_join(hubs[i], NULL), 0);
    T_EQ(pthread_join(plain, NULL), 0);
    atomic_store(&checking, 0);
    T_EQ(pthread_join(checker, NULL), 0);
    for (int i = 0; i < HUBS * GREENS + 1; i++)
        close(stops[i]);

    fprintf(stderr, "   %ld served, %lld cooperative accepts, %ld EAGAIN "
            "in the plain thread, %ld O_NONBLOCK sightings\n",
            atomic_load(&served),
            (long long)(jg_patch_calls("accept") - before),
            atomic_load(&plain_eagain), atomic_load(&nb_seen));
    /* Left blocking (before: O_NONBLOCK for good, most runs). */
    T_EQ(kernel_getfl(lfd) & O_NONBLOCK, 0);
    T_EQ(atomic_load(&served), 2 * nclients);
    T_EQ(atomic_load(&accept_errors), 0);
    T_EQ(atomic_load(&plain_eagain), 0);
    T_EQ(atomic_load(&nb_seen), 0);
    /* The green threads took the cooperative path. */
    T_ASSERT(jg_patch_calls("accept") - before >= HUBS * GREENS);
    T_EQ(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0);
    close(lfd);
}

T_MAIN(T_CASE(test_shared_listener_stays_blocking))
