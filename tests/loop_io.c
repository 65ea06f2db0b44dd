/* SPDX-License-Identifier: MIT */
/*
 * loop_io.c - fd watchers of the callback API: readiness on pipes, several
 * watchers on one fd, level triggering, registration kept across stop/start
 * within an iteration, jg_close notification, run modes, ref/unref and the
 * error codes.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "t.h"
#include "loop.h"

struct rec {
    int calls;
    uint32_t revents;
    int order[8];
    int norder;
};

static struct rec rec;

static void rec_cb(struct jg_io *w, uint32_t revents)
{
    rec.calls++;
    rec.revents |= revents;
    if (rec.norder < 8)
        rec.order[rec.norder++] = (int)(intptr_t)w->base.data;
}

static void rec_reset(void)
{
    memset(&rec, 0, sizeof rec);
}

static void make_pipe(int p[2])
{
    T_OK(pipe2(p, O_NONBLOCK | O_CLOEXEC));
}

static struct jg_loop *new_loop(void)
{
    struct jg_loop *l = NULL;
    T_OK(jg_loop_create(&l, NULL));
    T_ASSERT(l != NULL);
    return l;
}

static void test_read_write_readiness(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io r, w;
    int p[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&r, rec_cb, p[0], JG_READ);
    r.base.data = (void *)1;
    jg_io_init(&w, rec_cb, p[1], JG_WRITE);
    w.base.data = (void *)2;
    T_OK(jg_io_start(l, &r));
    T_ASSERT(jg_watcher_active(&r.base));

    /* Nothing to read yet: a non-blocking iteration calls nobody. */
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(rec.calls, 0);

    /* An empty pipe is writable at once. */
    T_OK(jg_io_start(l, &w));
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.order[0], 2);
    T_EQ(rec.revents, JG_WRITE);
    T_OK(jg_io_stop(&w));

    rec_reset();
    T_EQ(write(p[1], "x", 1), 1);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.order[0], 1);
    T_EQ(rec.revents, JG_READ);

    /* Level triggered: still unread, so called again. */
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(rec.calls, 2);

    T_OK(jg_io_stop(&r));
    T_ASSERT(!jg_watcher_active(&r.base));
    T_OK(jg_io_stop(&r));       /* idempotent */
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);
    T_EQ(rec.calls, 2);
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

static void test_two_watchers_same_fd(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io a, b, c;
    int p[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&a, rec_cb, p[0], JG_READ);
    a.base.data = (void *)1;
    jg_io_init(&b, rec_cb, p[0], JG_READ);
    b.base.data = (void *)2;
    /* A third watcher on the same fd for another direction. */
    jg_io_init(&c, rec_cb, p[0], JG_WRITE);
    c.base.data = (void *)3;
    T_OK(jg_io_start(l, &a));
    T_OK(jg_io_start(l, &b));
    T_EQ(write(p[1], "x", 1), 1);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 2);
    T_EQ(rec.order[0], 1);      /* start order */
    T_EQ(rec.order[1], 2);

    /* Stopping one leaves the other. */
    rec_reset();
    T_OK(jg_io_stop(&a));
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.order[0], 2);

    /* A read end never becomes writable: c is not called. */
    rec_reset();
    T_OK(jg_io_start(l, &c));
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.order[0], 2);
    T_OK(jg_io_stop(&b));
    T_OK(jg_io_stop(&c));
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

/* A callback that stops the other watcher of the same fd: it is not
 * called in this iteration even though it was due. */
static struct jg_io *victim;

static void stop_other_cb(struct jg_io *w, uint32_t revents)
{
    rec_cb(w, revents);
    T_OK(jg_io_stop(victim));
}

static void test_stop_due_watcher_in_callback(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io a, b;
    int p[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&a, stop_other_cb, p[0], JG_READ);
    a.base.data = (void *)1;
    jg_io_init(&b, rec_cb, p[0], JG_READ);
    b.base.data = (void *)2;
    victim = &b;
    T_OK(jg_io_start(l, &a));
    T_OK(jg_io_start(l, &b));
    T_EQ(write(p[1], "x", 1), 1);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.order[0], 1);
    T_OK(jg_io_stop(&a));
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

/* The EAGAIN cycle: stopped in its callback and restarted before the next
 * poll, a watcher keeps its kernel registration (no epoll_ctl). */
static void restart_cb(struct jg_io *w, uint32_t revents)
{
    char c;

    rec_cb(w, revents);
    T_OK(jg_io_stop(w));
    T_EQ(read(w->fd, &c, 1), 1);
    T_ASSERT(read(w->fd, &c, 1) < 0 && errno == EAGAIN);
    T_OK(jg_io_start(w->base.loop, w));
}

static void test_registration_kept_across_restart(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io r;
    int p[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&r, restart_cb, p[0], JG_READ);
    T_OK(jg_io_start(l, &r));
    for (int i = 0; i < 5; i++) {
        T_EQ(write(p[1], "x", 1), 1);
        T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
        T_EQ(rec.calls, i + 1);
        T_EQ(l->fds[p[0]].registered, JG_READ);
    }
    /* Stopped for good: dropped before the next poll. */
    T_OK(jg_io_stop(&r));
    T_EQ(l->fds[p[0]].registered, JG_READ);
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);
    T_EQ(l->fds[p[0]].registered, 0);
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

/* Stop, close, and a new pipe under the same number: the new fd is
 * watched for real. */
static void test_fd_number_reused(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io r;
    int p[2], q[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&r, rec_cb, p[0], JG_READ);
    T_OK(jg_io_start(l, &r));
    T_EQ(write(p[1], "x", 1), 1);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_OK(jg_io_stop(&r));
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);
    close(p[0]);
    close(p[1]);
    make_pipe(q);
    T_EQ(q[0], p[0]);
    jg_io_init(&r, rec_cb, q[0], JG_READ);
    T_OK(jg_io_start(l, &r));
    T_EQ(write(q[1], "y", 1), 1);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 2);
    T_OK(jg_io_stop(&r));
    T_OK(jg_loop_destroy(l));
    close(q[0]);
    close(q[1]);
}

/* Interest narrowed lazily: READ|WRITE -> READ is dropped when the
 * unwanted WRITE readiness shows up, and the watcher is not called. */
static void test_narrowed_interest(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io w;
    int s[2];

    T_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s));
    rec_reset();
    jg_io_init(&w, rec_cb, s[0], JG_READ | JG_WRITE);
    T_OK(jg_io_start(l, &w));
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.revents, JG_WRITE);
    T_OK(jg_io_set(&w, JG_READ));
    T_EQ(w.events, JG_READ);
    rec_reset();
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(rec.calls, 0);
    T_EQ(l->fds[s[0]].registered, JG_READ);
    T_EQ(write(s[1], "x", 1), 1);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_EQ(rec.revents, JG_READ);
    T_OK(jg_io_stop(&w));
    T_OK(jg_loop_destroy(l));
    close(s[0]);
    close(s[1]);
}

static void test_hangup(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io r;
    int p[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&r, rec_cb, p[0], JG_READ);
    T_OK(jg_io_start(l, &r));
    close(p[1]);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_ASSERT(rec.revents & JG_HUP);
    T_OK(jg_io_stop(&r));
    T_OK(jg_loop_destroy(l));
    close(p[0]);
}

static void test_fd_closed_notifies(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io a, b;
    int p[2];

    make_pipe(p);
    rec_reset();
    jg_io_init(&a, rec_cb, p[0], JG_READ);
    a.base.data = (void *)1;
    jg_io_init(&b, rec_cb, p[0], JG_READ);
    b.base.data = (void *)2;
    T_OK(jg_io_start(l, &a));
    T_OK(jg_io_start(l, &b));
    jg__loop_fd_closing(l, p[0]);
    T_EQ(rec.calls, 2);
    T_EQ(rec.revents, JG_CLOSED);
    T_EQ(rec.order[0], 1);
    T_EQ(rec.order[1], 2);
    T_ASSERT(!jg_watcher_active(&a.base));
    T_ASSERT(!jg_watcher_active(&b.base));
    T_EQ(l->fds[p[0]].registered, 0);
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);
    T_OK(jg_loop_destroy(l));
    /* What jg_close does after the notification: close, and the number
     * may be watched again. */
    close(p[0]);
    jg__fd_close_end(p[0]);
    close(p[1]);
}

static void test_regular_file_eperm(void)
{
    struct jg_loop *l = new_loop();
    char path[] = "/tmp/jg_loop_io_XXXXXX";
    struct jg_io w;
    int fd = mkstemp(path);

    T_ASSERT(fd >= 0);
    unlink(path);
    jg_io_init(&w, rec_cb, fd, JG_READ);
    T_ERR(jg_io_start(l, &w), -EPERM);
    T_ASSERT(!jg_watcher_active(&w.base));
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);
    close(fd);

    /* An fd that is not open. */
    jg_io_init(&w, rec_cb, 1000, JG_READ);
    T_ERR(jg_io_start(l, &w), -EBADF);
    T_OK(jg_loop_destroy(l));
}

static void test_bad_args(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io w;
    int p[2];

    make_pipe(p);
    jg_io_init(&w, rec_cb, p[0], JG_READ);
    T_ERR(jg_io_start(NULL, &w), -EINVAL);
    T_ERR(jg_io_start(l, NULL), -EINVAL);
    jg_io_init(&w, rec_cb, -1, JG_READ);
    T_ERR(jg_io_start(l, &w), -EINVAL);
    jg_io_init(&w, rec_cb, p[0], 0);
    T_ERR(jg_io_start(l, &w), -EINVAL);
    jg_io_init(&w, rec_cb, p[0], JG_READ | JG_HUP);
    T_ERR(jg_io_start(l, &w), -EINVAL);
    jg_io_init(&w, rec_cb, p[0], JG_READ);
    T_ERR(jg_io_set(&w, 0x100), -EINVAL);
    T_ERR(jg_io_set(NULL, JG_READ), -EINVAL);
    T_ERR(jg_io_stop(NULL), -EINVAL);
    T_OK(jg_io_stop(&w));       /* never started */
    T_ERR(jg_loop_run(NULL, JG_RUN_NOWAIT), -EINVAL);
    T_ERR(jg_loop_run(l, (enum jg_run_mode)7), -EINVAL);
    T_ERR(jg_loop_destroy(NULL), -EINVAL);
    T_ERR(jg_loop_create(NULL, NULL), -EINVAL);
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

static void test_destroy_busy(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io w;
    int p[2];

    make_pipe(p);
    jg_io_init(&w, rec_cb, p[0], JG_READ);
    T_OK(jg_io_start(l, &w));
    T_ERR(jg_loop_destroy(l), -EBUSY);
    /* Unref'd still counts: the loop cannot forget a linked watcher. */
    jg_watcher_unref(&w.base);
    T_ERR(jg_loop_destroy(l), -EBUSY);
    T_OK(jg_io_stop(&w));
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

/* Run modes and liveness: an unref'd watcher does not keep DEFAULT
 * running; jg_loop_stop ends a DEFAULT run after the iteration. */
static int stop_calls;

static void stop_cb(struct jg_io *w, uint32_t revents)
{
    (void)revents;
    stop_calls++;
    jg_loop_stop(w->base.loop);
}

static void test_run_modes_and_unref(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io w;
    int p[2];

    make_pipe(p);
    /* Nothing active: every mode returns 0 at once. */
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 0);
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 0);
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);

    jg_io_init(&w, stop_cb, p[1], JG_WRITE);
    jg_watcher_unref(&w.base);
    jg_watcher_unref(&w.base);  /* idempotent */
    T_OK(jg_io_start(l, &w));
    stop_calls = 0;
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 0);
    jg_watcher_ref(&w.base);
    jg_watcher_ref(&w.base);
    /* Referenced and always ready: DEFAULT would spin forever, but the
     * callback stops it after one iteration. */
    stop_calls = 0;
    T_EQ(jg_loop_run(l, JG_RUN_DEFAULT), 1);
    T_EQ(stop_calls, 1);
    /* The stop was consumed by that run. */
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 1);
    T_EQ(stop_calls, 2);
    T_OK(jg_io_stop(&w));
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

/* jg_loop_run from a callback of the same loop: -EPERM. */
static int nested_rc;

static void nested_cb(struct jg_io *w, uint32_t revents)
{
    (void)revents;
    nested_rc = jg_loop_run(w->base.loop, JG_RUN_NOWAIT);
    jg_io_stop(w);
}

static struct jg_loop *foreign_loop;
static int foreign_rc[4];

static void *foreign_thread(void *arg)
{
    struct jg_io *w = arg;

    foreign_rc[0] = jg_loop_run(foreign_loop, JG_RUN_NOWAIT);
    foreign_rc[1] = jg_io_start(foreign_loop, w);
    foreign_rc[2] = jg_loop_destroy(foreign_loop);
    return NULL;
}

static void test_run_eperm_exdev(void)
{
    struct jg_loop *l = new_loop();
    struct jg_io w, w2;
    pthread_t t;
    int p[2];

    make_pipe(p);
    jg_io_init(&w, nested_cb, p[1], JG_WRITE);
    T_OK(jg_io_start(l, &w));
    nested_rc = 0;
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 0);
    T_ERR(nested_rc, -EPERM);

    foreign_loop = l;
    jg_io_init(&w2, rec_cb, p[1], JG_WRITE);
    T_EQ(pthread_create(&t, NULL, foreign_thread, &w2), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_ERR(foreign_rc[0], -EXDEV);
    T_ERR(foreign_rc[1], -EXDEV);
    T_ERR(foreign_rc[2], -EXDEV);
    T_ASSERT(!jg_watcher_active(&w2.base));
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

/* Hooks: prepare and check run around every poll; idle runs only when
 * nothing else did, and keeps the poll from blocking. */
static int hook_log[32], hook_n;

static void hook_cb(struct jg_hook *h)
{
    if (hook_n < 32)
        hook_log[hook_n++] = (int)(intptr_t)h->base.data;
}

static void test_hooks(void)
{
    struct jg_loop *l = new_loop();
    struct jg_hook prep, check, idle, bad;
    struct jg_io w;
    int p[2];

    make_pipe(p);
    jg_hook_init(&prep, JG_HOOK_PREPARE, hook_cb);
    prep.base.data = (void *)1;
    jg_hook_init(&check, JG_HOOK_CHECK, hook_cb);
    check.base.data = (void *)2;
    jg_hook_init(&idle, JG_HOOK_IDLE, hook_cb);
    idle.base.data = (void *)3;
    jg_hook_init(&bad, (enum jg_hook_kind)9, hook_cb);
    T_ERR(jg_hook_start(l, &bad), -EINVAL);
    T_OK(jg_hook_start(l, &prep));
    T_OK(jg_hook_start(l, &check));
    T_OK(jg_hook_start(l, &idle));

    /* Nothing else ready: prepare, check, idle; ONCE must not block. */
    hook_n = 0;
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(hook_n, 3);
    T_EQ(hook_log[0], 1);
    T_EQ(hook_log[1], 2);
    T_EQ(hook_log[2], 3);

    /* An fd callback ran: no idle. */
    rec_reset();
    jg_io_init(&w, rec_cb, p[1], JG_WRITE);
    T_OK(jg_io_start(l, &w));
    hook_n = 0;
    T_EQ(jg_loop_run(l, JG_RUN_ONCE), 1);
    T_EQ(rec.calls, 1);
    T_EQ(hook_n, 2);
    T_OK(jg_io_stop(&w));

    T_OK(jg_hook_stop(&prep));
    T_OK(jg_hook_stop(&check));
    T_OK(jg_hook_stop(&idle));
    T_OK(jg_hook_stop(&idle));
    hook_n = 0;
    T_EQ(jg_loop_run(l, JG_RUN_NOWAIT), 0);
    T_EQ(hook_n, 0);
    T_OK(jg_loop_destroy(l));
    close(p[0]);
    close(p[1]);
}

T_MAIN(T_CASE(test_read_write_readiness), T_CASE(test_two_watchers_same_fd),
       T_CASE(test_stop_due_watcher_in_callback),
       T_CASE(test_registration_kept_across_restart),
       T_CASE(test_fd_number_reused), T_CASE(test_narrowed_interest),
       T_CASE(test_hangup), T_CASE(test_fd_closed_notifies),
       T_CASE(test_regular_file_eperm), T_CASE(test_bad_args),
       T_CASE(test_destroy_busy), T_CASE(test_run_modes_and_unref),
       T_CASE(test_run_eperm_exdev), T_CASE(test_hooks))
