/* SPDX-License-Identifier: MIT */
/*
 * wait.c - the waiting calls of the patch: poll, ppoll, select, pselect,
 * epoll_wait on the user's own epoll fd, and the sleep family. Each first
 * asks libc with a zero timeout; only when nothing is ready does the green
 * thread park (poll and select: once, one watcher per fd on the hub's own
 * loop, or on a temporary epoll set for entries the loop cannot watch;
 * epoll_wait: on the user's epoll fd), and then asks libc again with a
 * zero timeout, so results, revents and errors are libc's own.
 */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "preload/preload.h"

PL_SYM(poll);
PL_SYM(ppoll);
PL_SYM(select);
PL_SYM(pselect);
PL_SYM(epoll_wait);
PL_SYM(epoll_pwait);
PL_SYM(epoll_pwait2);
PL_SYM(epoll_create1);
PL_SYM(epoll_ctl);
PL_SYM(close);
PL_SYM(sleep);
PL_SYM(usleep);
PL_SYM(nanosleep);
PL_SYM(clock_nanosleep);
PL_SYM(clock_gettime);

/* A private errno value meaning "the call's own timeout passed". */
#define OWN_TIMEOUT ETIME

#define DIRECT(call) ({ long r_ = (long)(call); r_ < 0 ? -errno : r_; })

static const struct timespec zero_ts;

static int64_t ts_ns(const struct timespec *ts)
{
    if (ts->tv_sec > INT64_MAX / 1000000000LL - 1)
        return INT64_MAX;
    return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static bool ts_ok(const struct timespec *ts)
{
    return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

static struct timespec ns_ts(int64_t ns)
{
    if (ns < 0)
        ns = 0;
    return (struct timespec){ ns / 1000000000LL, ns % 1000000000LL };
}

/* Milliseconds left until deadline for a blocking fallback (-1: none). */
static int ms_left(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return -1;
    int64_t left = deadline - jg__pl_now();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* poll events -> epoll events (errors and hang-ups are always reported). */
static uint32_t ep_events(short ev)
{
    return (ev & POLLIN ? EPOLLIN : 0) | (ev & POLLOUT ? EPOLLOUT : 0) |
           (ev & POLLPRI ? EPOLLPRI : 0) | (ev & POLLRDHUP ? EPOLLRDHUP : 0);
}

static int wait_epoll(const struct pollfd *fds, nfds_t n, int64_t deadline);

/* The loop's events for one poll entry, or 0 when they cannot say what
 * the entry asks: POLLPRI or POLLRDHUP without POLLIN (select's except
 * set, sysfs files), or no events at all (errors and hang-ups only). */
static uint32_t jg_events(short ev)
{
    uint32_t e = (ev & (POLLIN | POLLRDNORM) ? JG_READ : 0) |
                 (ev & (POLLOUT | POLLWRNORM) ? JG_WRITE : 0);

    if ((ev & (POLLPRI | POLLRDHUP | POLLRDBAND)) && !(e & JG_READ))
        return 0;
    if ((ev & POLLWRBAND) && !(e & JG_WRITE))
        return 0;
    return e;
}

/* Small sets go through this buffer; it is read before the park only, so
 * the green threads of one OS thread can share it. */
#define SMALL_SET 64
static _Thread_local struct jg__pollfd small_set[SMALL_SET];

/*
 * Park once on the hub's loop, one watcher per fd (the runtime's
 * poll_wait). 0: something may be ready now; -OWN_TIMEOUT at the
 * deadline; -EPERM, -ETIMEDOUT, -ECANCELED as wait_set; 1: the set has
 * an entry the loop cannot watch (the caller takes the epoll way).
 */
static int wait_loop(const struct pollfd *fds, nfds_t n, int64_t deadline)
{
    struct jg__pollfd *set = small_set;
    int m = 0, rc;

    if (n > (nfds_t)SMALL_SET && !(set = malloc(sizeof(*set) * n)))
        return -ENOMEM;
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd < 0)
            continue;
        uint32_t e = jg_events(fds[i].events);
        if (!e) {
            rc = 1;
            goto out;
        }
        set[m++] = (struct jg__pollfd){ fds[i].fd, e };
    }
    if (!m) {
        rc = jg__pl_sleep_until(deadline);
        rc = rc == 0 ? -OWN_TIMEOUT : rc;
        goto out;
    }
    rc = jg__pl_rt->poll_wait(set, m, deadline);
    if (rc > 0)
        rc = 0;
    else if (rc == -ETIMEDOUT)
        rc = deadline != INT64_MAX && jg__pl_now() >= deadline
            ? -OWN_TIMEOUT : -ETIMEDOUT;
out:
    if (set != small_set)
        free(set);
    return rc;
}

/*
 * Park until one fd of the set is ready: on the hub's loop when it can
 * watch every entry, else through a temporary epoll set that the hub
 * watches like any fd. 0: something may be ready now (check again);
 * -OWN_TIMEOUT at the deadline; -EPERM: cannot park here (the caller makes
 * the blocking libc call); or -ETIMEDOUT/-ECANCELED/-errno.
 */
static int wait_set(const struct pollfd *fds, nfds_t n, int64_t deadline)
{
    int w = wait_loop(fds, n, deadline);

    if (w != 1)
        return w;
    return wait_epoll(fds, n, deadline);
}

/* The epoll way, for sets the loop cannot watch. */
static int wait_epoll(const struct pollfd *fds, nfds_t n, int64_t deadline)
{
    int ep = REAL(epoll_create1)(EPOLL_CLOEXEC), rc = 0;

    if (ep < 0)
        return -errno;
    for (nfds_t i = 0; i < n && rc == 0; i++) {
        if (fds[i].fd < 0)
            continue;
        struct epoll_event e = { .events = ep_events(fds[i].events) };
        e.data.fd = fds[i].fd;
        if (REAL(epoll_ctl)(ep, EPOLL_CTL_ADD, fds[i].fd, &e) == 0)
            continue;
        if (errno == EEXIST) {
            /* The same fd twice: watch the union of what they ask. */
            for (nfds_t j = 0; j < n; j++)
                if (fds[j].fd == fds[i].fd)
                    e.events |= ep_events(fds[j].events);
            if (REAL(epoll_ctl)(ep, EPOLL_CTL_MOD, fds[i].fd, &e) == 0)
                continue;
        }
        /* A regular file (EPERM) is always ready, and a bad fd reports
         * POLLNVAL: the zero-timeout call that follows says so. */
        rc = 1;
    }
    if (rc == 0)
        rc = jg__pl_wait(ep, JG_READ, deadline, OWN_TIMEOUT);
    else
        rc = 0;
    REAL(close)(ep);
    return rc;
}

/* ---- poll and ppoll -------------------------------------------------------- */

/* The cooperative poll/ppoll (mask != NULL or ppoll asks ppoll). */
static int coop_poll(enum jg__pl_name name, struct pollfd *fds, nfds_t n,
                     int64_t timeout_ns, bool is_ppoll,
                     const sigset_t *mask)
{
    int r = is_ppoll ? REAL(ppoll)(fds, n, &zero_ts, mask)
                     : REAL(poll)(fds, n, 0);

    if (r != 0 || timeout_ns == 0)
        return r < 0 ? -errno : r;
    jg__pl_note(name);
    int64_t deadline = jg__pl_after(timeout_ns);
    for (;;) {
        int w = n ? wait_set(fds, n, deadline) : jg__pl_sleep_until(deadline);
        if (w == -OWN_TIMEOUT || (!n && w == 0))
            return 0;
        if (w == -EPERM) {
            int ms = ms_left(deadline);
            return (int)DIRECT(REAL(poll)(fds, n, ms));
        }
        if (w < 0)
            return w;
        r = is_ppoll ? REAL(ppoll)(fds, n, &zero_ts, mask)
                     : REAL(poll)(fds, n, 0);
        if (r != 0)
            return r < 0 ? -errno : r;
    }
}

PL_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (!jg__pl_green())
        return REAL(poll)(fds, n, timeout);
    return (int)jg__pl_ret(coop_poll(PL_poll, fds, n,
                                     timeout < 0 ? -1 : timeout * 1000000LL,
                                     false, NULL));
}

PL_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                    const sigset_t *mask)
{
    if (!jg__pl_green() || (ts && !ts_ok(ts)))
        return REAL(ppoll)(fds, n, ts, mask);
    return (int)jg__pl_ret(coop_poll(PL_ppoll, fds, n, ts ? ts_ns(ts) : -1,
                                     true, mask));
}

extern void __chk_fail(void) __attribute__((noreturn));
PL_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
                         size_t fdslen);
PL_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n,
                          const struct timespec *ts, const sigset_t *mask,
                          size_t fdslen);

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        __chk_fail();
    if (!jg__pl_green())
        return REAL(poll)(fds, n, timeout);
    return (int)jg__pl_ret(coop_poll(PL___poll_chk, fds, n,
                                     timeout < 0 ? -1 : timeout * 1000000LL,
                                     false, NULL));
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        __chk_fail();
    if (!jg__pl_green() || (ts && !ts_ok(ts)))
        return REAL(ppoll)(fds, n, ts, mask);
    return (int)jg__pl_ret(coop_poll(PL___ppoll_chk, fds, n,
                                     ts ? ts_ns(ts) : -1, true, mask));
}

/* ---- select and pselect ------------------------------------------------------ */

/* One zero-timeout select or pselect on copies of the caller's sets; on a
 * result (or error) the copies go back to the caller. */
static int select_once(int n, fd_set *rs, fd_set *ws, fd_set *es,
                       bool is_pselect, const sigset_t *mask)
{
    fd_set r, w, e;
    struct timeval tv = { 0, 0 };

    if (rs)
        r = *rs;
    if (ws)
        w = *ws;
    if (es)
        e = *es;
    int k = is_pselect
        ? REAL(pselect)(n, rs ? &r : NULL, ws ? &w : NULL, es ? &e : NULL,
                        &zero_ts, mask)
        : REAL(select)(n, rs ? &r : NULL, ws ? &w : NULL, es ? &e : NULL,
                       &tv);
    if (k < 0)
        return -errno;
    if (k > 0) {
        if (rs)
            *rs = r;
        if (ws)
            *ws = w;
        if (es)
            *es = e;
    }
    return k;
}

/* The cooperative select/pselect; *left gets the time left (select's
 * Linux behaviour) when non-NULL. */
static int coop_select(enum jg__pl_name name, int n, fd_set *rs, fd_set *ws,
                       fd_set *es, int64_t timeout_ns, bool is_pselect,
                       const sigset_t *mask, int64_t *left)
{
    int k = select_once(n, rs, ws, es, is_pselect, mask);

    if (k != 0 || timeout_ns == 0)
        goto out;
    jg__pl_note(name);
    int64_t deadline = jg__pl_after(timeout_ns);
    /* The set as a poll array: one entry per fd, its events united. */
    struct pollfd *p = malloc(sizeof(*p) * (size_t)(n > 0 ? n : 1));
    nfds_t m = 0;
    if (!p) {
        k = -ENOMEM;
        goto out;
    }
    for (int fd = 0; fd < n; fd++) {
        short ev = (short)((rs && FD_ISSET(fd, rs) ? POLLIN : 0) |
                           (ws && FD_ISSET(fd, ws) ? POLLOUT : 0) |
                           (es && FD_ISSET(fd, es) ? POLLPRI : 0));
        if (ev)
            p[m++] = (struct pollfd){ .fd = fd, .events = ev };
    }
    for (;;) {
        int w = m ? wait_set(p, m, deadline) : jg__pl_sleep_until(deadline);
        if (w == -OWN_TIMEOUT || (!m && w == 0)) {
            k = 0;
            break;
        }
        if (w == -EPERM) {
            /* Cannot park: block in libc for the time left. */
            struct timespec ts = ns_ts(deadline == INT64_MAX ? 0
                                       : deadline - jg__pl_now());
            k = (int)DIRECT(REAL(pselect)(n, rs, ws, es,
                deadline == INT64_MAX ? NULL : &ts, mask));
            free(p);
            goto out_nozero;
        }
        if (w < 0) {
            k = w;
            break;
        }
        if ((k = select_once(n, rs, ws, es, is_pselect, mask)) != 0)
            break;
    }
    free(p);
    if (k == 0 && left)
        *left = 0;
    else if (left)
        *left = deadline == INT64_MAX ? -1 : deadline - jg__pl_now();
out:
    /* A timeout leaves every set empty, as select does. */
    if (k == 0) {
        if (rs)
            FD_ZERO(rs);
        if (ws)
            FD_ZERO(ws);
        if (es)
            FD_ZERO(es);
    }
out_nozero:
    return k;
}

PL_EXPORT int select(int n, fd_set *rs, fd_set *ws, fd_set *es,
                     struct timeval *tv)
{
    if (!jg__pl_green() || n < 0 || n > FD_SETSIZE ||
        (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 ||
                tv->tv_usec >= 1000000)))
        return REAL(select)(n, rs, ws, es, tv);
    int64_t t = tv ? (tv->tv_sec > INT64_MAX / 1000000000LL - 1
                          ? INT64_MAX
                          : tv->tv_sec * 1000000000LL +
                            tv->tv_usec * 1000LL)
                   : -1;
    int64_t left = -1;
    int k = coop_select(PL_select, n, rs, ws, es, t, false, NULL, &left);
    /* Linux's select leaves the time not slept in *tv. */
    if (tv && k >= 0 && t != 0) {
        if (left < 0)
            left = 0;
        tv->tv_sec = left / 1000000000LL;
        tv->tv_usec = (left % 1000000000LL) / 1000;
    }
    return (int)jg__pl_ret(k);
}

PL_EXPORT int pselect(int n, fd_set *rs, fd_set *ws, fd_set *es,
                      const struct timespec *ts, const sigset_t *mask)
{
    if (!jg__pl_green() || n < 0 || n > FD_SETSIZE || (ts && !ts_ok(ts)))
        return REAL(pselect)(n, rs, ws, es, ts, mask);
    return (int)jg__pl_ret(coop_select(PL_pselect, n, rs, ws, es,
                                       ts ? ts_ns(ts) : -1, true, mask,
                                       NULL));
}

/* ---- epoll on the user's own epoll fd ---------------------------------------- */

enum { EP_WAIT, EP_PWAIT, EP_PWAIT2 };

static int ep_once(int how, int epfd, struct epoll_event *ev, int max,
                   const sigset_t *mask, int ms_blocking)
{
    struct timespec ts = ns_ts((int64_t)ms_blocking * 1000000LL);

    switch (how) {
    case EP_PWAIT:
        return REAL(epoll_pwait)(epfd, ev, max, ms_blocking, mask);
    case EP_PWAIT2:
        return REAL(epoll_pwait2)(epfd, ev, max,
                                  ms_blocking < 0 ? NULL : &ts, mask);
    default:
        return REAL(epoll_wait)(epfd, ev, max, ms_blocking);
    }
}

/* Wait for the epoll fd itself to become readable (it is, while events
 * are queued in it), then collect with a zero timeout. */
static int coop_epoll(enum jg__pl_name name, int how, int epfd,
                      struct epoll_event *ev, int max, int64_t timeout_ns,
                      const sigset_t *mask)
{
    int r = ep_once(how, epfd, ev, max, mask, 0);

    if (r != 0 || timeout_ns == 0)
        return r < 0 ? -errno : r;
    jg__pl_note(name);
    int64_t deadline = jg__pl_after(timeout_ns);
    for (;;) {
        int w = jg__pl_wait(epfd, JG_READ, deadline, OWN_TIMEOUT);
        if (w == -OWN_TIMEOUT)
            return 0;
        if (w == -EPERM)
            return (int)DIRECT(ep_once(how, epfd, ev, max, mask,
                                       ms_left(deadline)));
        if (w < 0)
            return w;
        r = ep_once(how, epfd, ev, max, mask, 0);
        if (r != 0)
            return r < 0 ? -errno : r;
    }
}

PL_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max,
                         int timeout)
{
    if (!jg__pl_green())
        return REAL(epoll_wait)(epfd, ev, max, timeout);
    return (int)jg__pl_ret(coop_epoll(PL_epoll_wait, EP_WAIT, epfd, ev, max,
        timeout < 0 ? -1 : timeout * 1000000LL, NULL));
}

PL_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max,
                          int timeout, const sigset_t *mask)
{
    if (!jg__pl_green())
        return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
    return (int)jg__pl_ret(coop_epoll(PL_epoll_pwait, EP_PWAIT, epfd, ev,
        max, timeout < 0 ? -1 : timeout * 1000000LL, mask));
}

PL_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
                           const struct timespec *ts, const sigset_t *mask)
{
    if (!jg__pl_green() || (ts && !ts_ok(ts)))
        return REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
    return (int)jg__pl_ret(coop_epoll(PL_epoll_pwait2, EP_PWAIT2, epfd, ev,
        max, ts ? ts_ns(ts) : -1, mask));
}

/* ---- the sleep family ------------------------------------------------------ */

PL_EXPORT unsigned int sleep(unsigned int s)
{
    if (!jg__pl_green())
        return REAL(sleep)(s);
    jg__pl_note(PL_sleep);
    int64_t deadline = jg__pl_after((int64_t)s * 1000000000LL);
    int w = jg__pl_sleep_until(deadline);
    if (w == 0)
        return 0;
    /* Ended early (killed, a deadline scope): the seconds not slept. */
    errno = -w;
    int64_t left = deadline - jg__pl_now();
    return left <= 0 ? 0 : (unsigned)((left + 999999999) / 1000000000LL);
}

PL_EXPORT int usleep(useconds_t us)
{
    if (!jg__pl_green())
        return REAL(usleep)(us);
    jg__pl_note(PL_usleep);
    return (int)jg__pl_ret(jg__pl_sleep_until(
        jg__pl_after((int64_t)us * 1000)));
}

PL_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!jg__pl_green() || !req || !ts_ok(req))
        return REAL(nanosleep)(req, rem);
    jg__pl_note(PL_nanosleep);
    int64_t deadline = jg__pl_after(ts_ns(req));
    int w = jg__pl_sleep_until(deadline);
    if (w < 0 && rem)
        *rem = ns_ts(deadline - jg__pl_now());
    return (int)jg__pl_ret(w);
}

/* clock_nanosleep returns the error number itself, not -1 + errno. */
PL_EXPORT int clock_nanosleep(clockid_t clk, int flags,
                              const struct timespec *req,
                              struct timespec *rem)
{
    struct timespec now;

    if (!jg__pl_green() || !req || !ts_ok(req) ||
        (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC &&
         clk != CLOCK_BOOTTIME && clk != CLOCK_TAI))
        return REAL(clock_nanosleep)(clk, flags, req, rem);
    jg__pl_note(PL_clock_nanosleep);
    int64_t t = ts_ns(req);
    if (flags & TIMER_ABSTIME) {
        /* An absolute time on that clock, as time from now. */
        if (REAL(clock_gettime)(clk, &now) < 0)
            return errno;
        t -= ts_ns(&now);
        if (t <= 0)
            return 0;
    }
    int64_t deadline = jg__pl_after(t);
    int w = jg__pl_sleep_until(deadline);
    if (w < 0 && rem && !(flags & TIMER_ABSTIME))
        *rem = ns_ts(deadline - jg__pl_now());
    return -w;
}
