/* SPDX-License-Identifier: MIT */
/*
 * io_close_reuse.c - an fd's waiters are tied to its generation (DESIGN.md,
 * "Seams"): a reader woken by data but not yet run, whose fd another green
 * thread closes and a new socket reuses, gets -EBADF, never the new
 * socket's bytes; a jg_close on another OS thread wakes a waiter parked on
 * this hub with -EBADF. Every case runs its waiters on both stack models.
 */
#include <juggle.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

static int stack_model;

static struct jg_spawn_opts opts(void)
{
    struct jg_spawn_opts o = { .stack_model = stack_model };
    return o;
}

/* ---- a close between the wake-up and the run ----------------------------- */

struct reuse {
    int sv[2];          /* the connection both green threads watch */
    int nsv[2];         /* the socket pair that reuses sv[0]'s number */
    ssize_t got;        /* what the reader's jg_read returned */
    char buf[16];
};

/* Waits first, so it is woken first: closes the connection and makes a new
 * one on the same number, with other bytes in it, before the reader runs. */
static void *reaper(void *arg)
{
    struct reuse *r = arg;
    int fd = r->sv[0];

    T_ASSERT(jg_wait_fd(fd, JG_READ, JG_SEC(10)) & JG_READ);
    T_OK(jg_close(fd));
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->nsv), 0);
    T_EQ(r->nsv[0], fd);        /* the lowest free number: reused */
    T_EQ(write(r->nsv[1], "NEW", 3), 3);
    return NULL;
}

static void *reader(void *arg)
{
    struct reuse *r = arg;

    r->got = jg_read(r->sv[0], r->buf, sizeof r->buf, JG_SEC(10));
    return NULL;
}

static void *writer(void *arg)
{
    struct reuse *r = arg;
    size_t done;

    T_EQ(jg_write(r->sv[1], "OLD", 3, &done, JG_SEC(1)), 3);
    return NULL;
}

static void run_reuse(void)
{
    struct jg_spawn_opts o = opts();
    struct jg_green *a, *b, *w;
    struct reuse r = { .got = 12345 };

    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r.sv), 0);
    T_OK(jg_spawn(&a, reaper, &r, &o));
    T_OK(jg_spawn(&b, reader, &r, &o));
    T_OK(jg_yield());           /* both park on sv[0], reaper first */
    T_OK(jg_spawn(&w, writer, &r, &o));
    T_OK(jg_join(w, NULL, JG_FOREVER));
    T_OK(jg_join(a, NULL, JG_FOREVER));
    T_OK(jg_join(b, NULL, JG_FOREVER));
    /* Before: 3, and buf held "NEW" - another connection's bytes. */
    T_ERR(r.got, -EBADF);
    T_OK(jg_close(r.sv[1]));
    T_OK(jg_close(r.nsv[0]));
    T_OK(jg_close(r.nsv[1]));
}

static void test_close_after_wakeup_gives_ebadf(void)
{
    for (stack_model = 0; stack_model <= JG_STACK_SLICED; stack_model++)
        run_reuse();
}

/* ---- jg_close from another OS thread ------------------------------------- */

struct remote {
    int fd;
    _Atomic int parked;
    ssize_t got;
};

static void *remote_reader(void *arg)
{
    struct remote *r = arg;
    char c;

    r->parked = 1;
    r->got = jg_read(r->fd, &c, 1, JG_SEC(30));
    return NULL;
}

static void *closer_thread(void *arg)
{
    struct remote *r = arg;

    while (!r->parked)
        usleep(1000);
    usleep(20000);              /* let the reader park in the hub's poll */
    T_OK(jg_close(r->fd));
    return NULL;
}

static void test_close_from_other_thread_wakes_waiter(void)
{
    for (stack_model = 0; stack_model <= JG_STACK_SLICED; stack_model++) {
        struct jg_spawn_opts o = opts();
        struct remote r = { .got = 12345 };
        struct jg_green *g;
        pthread_t t;
        int sv[2];
        int64_t t0 = t_now_ns();

        T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        r.fd = sv[0];
        T_OK(jg_spawn(&g, remote_reader, &r, &o));
        T_EQ(pthread_create(&t, NULL, closer_thread, &r), 0);
        T_OK(jg_join(g, NULL, JG_FOREVER));
        T_EQ(pthread_join(t, NULL), 0);
        /* Before: parked until its 30 s timeout (-ETIMEDOUT). */
        T_ERR(r.got, -EBADF);
        T_ASSERT(t_now_ns() - t0 < JG_SEC(30));
        T_OK(jg_close(sv[1]));
    }
}

/* A number closed on another thread and reused there: a green thread that
 * starts waiting on the new file is not woken by the old file's close. */
static void *late_reader(void *arg)
{
    struct remote *r = arg;
    char c;

    r->got = jg_read(r->fd, &c, 1, JG_SEC(10));
    return NULL;
}

static void test_reused_number_waiter_not_disturbed(void)
{
    struct remote r = { .got = 12345 };
    struct jg_green *g;
    pthread_t t;
    int sv[2], nsv[2];

    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* Watch sv[0] once, so this hub is recorded as its watcher. */
    T_ERR(jg_wait_fd(sv[0], JG_READ, JG_MS(1)), -ETIMEDOUT);
    r.fd = sv[0];
    r.parked = 1;
    T_EQ(pthread_create(&t, NULL, closer_thread, &r), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, nsv), 0);
    T_EQ(nsv[0], sv[0]);
    r.fd = nsv[0];
    T_OK(jg_spawn(&g, late_reader, &r, NULL));
    T_OK(jg_sleep(JG_MS(20)));  /* the old close's notice arrives here */
    T_EQ(write(nsv[1], "y", 1), 1);
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(r.got, 1);
    T_OK(jg_close(sv[1]));
    T_OK(jg_close(nsv[0]));
    T_OK(jg_close(nsv[1]));
}

/* ---- a file that outlives a close on another thread ---------------------- */

/*
 * A reader on thread A waits on a pipe; thread B dups the read end and
 * jg_closes the original: the file lives on, so the kernel keeps A's
 * registration unless it is removed while the number still names the
 * file. Before: A could no longer remove it, and its loop spun on the
 * old file's readiness (counted here as loop iterations while idle).
 */
static int sp_pipe[2];
static _Atomic int sp_phase;
static long sp_iters;

static void sp_count(struct jg_hook *w)
{
    (void)w;
    sp_iters++;
}

static void *spin_thread(void *arg)
{
    struct jg_hook hook;
    char c;

    (void)arg;
    jg_hook_init(&hook, JG_HOOK_PREPARE, sp_count);
    jg_watcher_unref(&hook.base);
    T_OK(jg_hook_start(jg_loop_default(), &hook));
    sp_phase = 1;
    T_ERR(jg_read(sp_pipe[0], &c, 1, JG_SEC(10)), -EBADF);
    while (sp_phase != 2)
        T_OK(jg_sleep(JG_MS(1)));
    sp_iters = 0;
    T_OK(jg_sleep(JG_MS(200)));   /* idle: a few iterations at most */
    T_OK(jg_hook_stop(&hook));
    return NULL;
}

static void test_close_of_duped_fd_elsewhere_does_not_spin(void)
{
    pthread_t t;

    T_EQ(pipe(sp_pipe), 0);
    T_EQ(pthread_create(&t, NULL, spin_thread, NULL), 0);
    while (sp_phase != 1)
        usleep(1000);
    usleep(20000);              /* the reader parks in its hub's poll */
    int keep = dup(sp_pipe[0]);
    T_ASSERT(keep >= 0);
    T_OK(jg_close(sp_pipe[0]));
    T_EQ(write(sp_pipe[1], "x", 1), 1); /* the old file turns readable */
    sp_phase = 2;
    T_EQ(pthread_join(t, NULL), 0);
    printf("loop iterations in 200 ms idle: %ld\n", sp_iters);
    T_ASSERT(sp_iters < 20);
    close(keep);
    close(sp_pipe[1]);
}

/* ---- io.c's cache of fd kinds follows closes on other threads ------------ */

/*
 * Thread A reads a non-blocking pipe (cached as such); thread B closes it
 * with jg_close and a blocking pipe reuses the number. A's timed read must
 * park and time out. Before: A's stale "non-blocking" entry made it call
 * read(2) on the blocking pipe, and the hub blocked until data came.
 */
static int kc_fd = -1;
static _Atomic int kc_phase;
static ssize_t kc_got;

static void *kc_reader(void *arg)
{
    char c;

    (void)arg;
    T_ERR(jg_read(kc_fd, &c, 1, 0), -EAGAIN);   /* learns "non-blocking" */
    kc_phase = 1;
    while (kc_phase != 2)
        usleep(1000);
    kc_got = jg_read(kc_fd, &c, 1, JG_MS(100));
    kc_phase = 3;
    return NULL;
}

static void test_kind_cache_follows_close_on_other_thread(void)
{
    int a[2], b[2];
    pthread_t t;

    T_EQ(pipe2(a, O_NONBLOCK), 0);
    kc_fd = a[0];
    T_EQ(pthread_create(&t, NULL, kc_reader, NULL), 0);
    while (kc_phase != 1)
        usleep(1000);
    T_OK(jg_close(a[0]));
    T_EQ(pipe(b), 0);           /* blocking, and b[0] reuses the number */
    T_EQ(b[0], kc_fd);
    kc_phase = 2;
    /* Data only much later: a read that blocked would return 1 then. */
    for (int i = 0; i < 2000 && kc_phase != 3; i++)
        usleep(1000);
    T_EQ(write(b[1], "y", 1), 1);
    T_EQ(pthread_join(t, NULL), 0);
    T_ERR(kc_got, -ETIMEDOUT);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

T_MAIN(T_CASE(test_close_after_wakeup_gives_ebadf),
       T_CASE(test_close_from_other_thread_wakes_waiter),
       T_CASE(test_reused_number_waiter_not_disturbed),
       T_CASE(test_close_of_duped_fd_elsewhere_does_not_spin),
       T_CASE(test_kind_cache_follows_close_on_other_thread))
