/* SPDX-License-Identifier: MIT */
/*
 * epoll.c - the epoll backend: one epoll instance per loop, an eventfd for
 * wake-ups and, on kernels without epoll_pwait2 (< 5.11), a timerfd for
 * sub-millisecond timeouts. Everything here is static but the ops table;
 * the internal fds are told apart from user fds by a tag in epoll's data.
 */
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "backend/backend.h"
#include "sys.h"

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441    /* the same number on every architecture */
#endif

/* Tags in the upper half of epoll_data.u64; user fds have none. */
#define TAG_WAKE  (1ull << 32)
#define TAG_TIMER (2ull << 32)
#define MAX_EVENTS 256

struct ep {
    int epfd;
    int evfd;           /* wake-up eventfd, registered for EPOLLIN */
    int tfd;            /* timerfd of the fallback, -1 until needed */
    struct epoll_event evs[MAX_EVENTS];
};

/* epoll_pwait2 support, probed once per process: 0 unknown, 1 yes, -1 no. */
static _Atomic int have_pwait2;

static uint32_t to_epoll(uint32_t ev)
{
    /* A peer's shutdown already reports EPOLLIN (read returns 0), so
     * EPOLLRDHUP adds nothing; EPOLLERR and EPOLLHUP are always on. */
    return (ev & JG_READ ? EPOLLIN : 0u) | (ev & JG_WRITE ? EPOLLOUT : 0u);
}

static uint32_t from_epoll(uint32_t e)
{
    return (e & EPOLLIN ? JG_READ : 0u) | (e & EPOLLOUT ? JG_WRITE : 0u)
           | (e & EPOLLERR ? JG_ERROR : 0u) | (e & EPOLLHUP ? JG_HUP : 0u);
}

static int open_fds(struct ep *p)
{
    struct epoll_event e;
    int rc;

    p->tfd = -1;
    p->epfd = jg__sys_epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -errno;
    p->evfd = jg__sys_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->evfd < 0) {
        rc = -errno;
        goto err_close_ep;
    }
    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    e.data.u64 = TAG_WAKE;
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &e) < 0) {
        rc = -errno;
        goto err_close_ev;
    }
    return 0;

err_close_ev:
    jg__sys_close(p->evfd);
err_close_ep:
    jg__sys_close(p->epfd);
    return rc;
}

static void close_fds(struct ep *p)
{
    /* Plain close: the child's copy goes away, the parent's epoll instance
     * and its registrations are untouched. */
    jg__sys_close(p->epfd);
    jg__sys_close(p->evfd);
    if (p->tfd >= 0)
        jg__sys_close(p->tfd);
}

static int ep_init(void **st)
{
    struct ep *p = malloc(sizeof *p);
    int rc;

    if (!p)
        return -ENOMEM;
    rc = open_fds(p);
    if (rc < 0) {
        free(p);
        return rc;
    }
    *st = p;
    return 0;
}

static void ep_fini(void *st)
{
    close_fds(st);
    free(st);
}

static int ep_fd_arm(void *st, int fd, uint32_t old, uint32_t events)
{
    struct ep *p = st;
    struct epoll_event e;
    int op = old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

    memset(&e, 0, sizeof e);
    e.events = to_epoll(events);
    e.data.u64 = (uint32_t)fd;
    if (epoll_ctl(p->epfd, op, fd, &e) == 0)
        return 0;
    /* The loop's belief was stale: the fd was closed behind its back and
     * the number reused (ENOENT), or it is registered already (EEXIST,
     * e.g. after a failed delete). Retry with the other operation once. */
    if (errno == ENOENT && op == EPOLL_CTL_MOD)
        op = EPOLL_CTL_ADD;
    else if (errno == EEXIST && op == EPOLL_CTL_ADD)
        op = EPOLL_CTL_MOD;
    else
        return -errno;
    if (epoll_ctl(p->epfd, op, fd, &e) == 0)
        return 0;
    return -errno;
}

static void ep_fd_disarm(void *st, int fd)
{
    struct ep *p = st;
    struct epoll_event e;

    /* Pre-2.6.9 kernels wanted a non-NULL event even for DEL. */
    memset(&e, 0, sizeof e);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &e);
}

/* Arm the fallback timerfd for a relative timeout; -errno on failure. */
static int arm_timerfd(struct ep *p, int64_t timeout_ns)
{
    struct itimerspec its;

    if (p->tfd < 0) {
        struct epoll_event e;
        int fd = jg__sys_timerfd_create(CLOCK_MONOTONIC,
                                        TFD_CLOEXEC | TFD_NONBLOCK);
        if (fd < 0)
            return -errno;
        memset(&e, 0, sizeof e);
        e.events = EPOLLIN;
        e.data.u64 = TAG_TIMER;
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            int rc = -errno;
            jg__sys_close(fd);
            return rc;
        }
        p->tfd = fd;
    }
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = timeout_ns / 1000000000LL;
    its.it_value.tv_nsec = timeout_ns % 1000000000LL;
    if (timerfd_settime(p->tfd, 0, &its, NULL) < 0)
        return -errno;
    return 0;
}

/* The raw wait with a nanosecond timeout; returns epoll's count or -1. */
static int wait_ns(struct ep *p, int64_t timeout_ns, int max)
{
    if (timeout_ns == 0)
        return jg__sys_epoll_wait(p->epfd, p->evs, max, 0);
    if (timeout_ns < 0)
        return jg__sys_epoll_wait(p->epfd, p->evs, max, -1);
    if (atomic_load_explicit(&have_pwait2, memory_order_relaxed) >= 0) {
        struct timespec ts = {
            .tv_sec = timeout_ns / 1000000000LL,
            .tv_nsec = timeout_ns % 1000000000LL,
        };
        long n = syscall(SYS_epoll_pwait2, p->epfd, p->evs, max, &ts,
                         NULL, (size_t)0);
        if (n >= 0 || errno != ENOSYS) {
            atomic_store_explicit(&have_pwait2, 1, memory_order_relaxed);
            return (int)n;
        }
        /* Kernel before 5.11 (or a filter that hides the call): use the
         * timerfd from now on. Relaxed: every thread probes the same. */
        atomic_store_explicit(&have_pwait2, -1, memory_order_relaxed);
    }
    if (arm_timerfd(p, timeout_ns) < 0) {
        /* Out of fds for the timerfd: round up to milliseconds rather
         * than wake early and spin. */
        int64_t ms = (timeout_ns + 999999) / 1000000;
        return jg__sys_epoll_wait(p->epfd, p->evs, max,
                                  ms > INT32_MAX ? INT32_MAX : (int)ms);
    }
    return jg__sys_epoll_wait(p->epfd, p->evs, max, -1);
}

static int ep_poll(void *st, int64_t timeout_ns, struct jg__backend_event *ev,
                   int max)
{
    struct ep *p = st;
    uint64_t drain;
    int n, out = 0;

    if (max > MAX_EVENTS)
        max = MAX_EVENTS;
    n = wait_ns(p, timeout_ns, max);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint64_t d = p->evs[i].data.u64;
        if (d == TAG_WAKE) {
            /* One read resets the counter: all coalesced wakes at once. */
            if (jg__sys_read(p->evfd, &drain, sizeof drain) < 0)
                (void)0;
            continue;
        }
        if (d == TAG_TIMER) {
            if (jg__sys_read(p->tfd, &drain, sizeof drain) < 0)
                (void)0;
            continue;
        }
        ev[out].fd = (int)(uint32_t)d;
        ev[out].events = from_epoll(p->evs[i].events);
        out++;
    }
    return out;
}

static void ep_wake(void *st)
{
    struct ep *p = st;
    uint64_t one = 1;

    /* EAGAIN means the counter is saturated, i.e. a wake is pending
     * anyway; nothing else can fail on a valid eventfd. */
    if (jg__sys_write(p->evfd, &one, sizeof one) < 0)
        (void)0;
}

static int ep_after_fork(void *st)
{
    struct ep *p = st;

    close_fds(p);
    return open_fds(p);
}

const struct jg__backend_ops jg__backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .fd_arm = ep_fd_arm,
    .fd_disarm = ep_fd_disarm,
    /* epoll_ctl is thread-safe: the same DEL serves any thread. */
    .fd_forget = ep_fd_disarm,
    .poll = ep_poll,
    .wake = ep_wake,
    .after_fork = ep_after_fork,
};
