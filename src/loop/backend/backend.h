/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the contract between the loop and a kernel readiness backend
 * (epoll now, io_uring later). The loop tells the backend which events it
 * wants per fd and gets readiness back as an array of (fd, events) it
 * dispatches itself; no kernel type crosses this line, so a completion-based
 * backend (multishot poll requests re-armed inside the backend) fits as well.
 */
#ifndef JG_BACKEND_H
#define JG_BACKEND_H

#include <stdint.h>

/* One readiness report: fd and the JG_READ/WRITE/ERROR/HUP bits seen. */
struct jg__backend_event {
    int fd;
    uint32_t events;
};

/*
 * The ops table. `st` is the backend's own state, made by init. Every op
 * but wake runs on the loop's thread.
 */
struct jg__backend_ops {
    const char *name;
    /* Make the state (kernel objects included). 0, -ENOMEM, -EMFILE. */
    int (*init)(void **st);
    /* Close the kernel objects and free the state. */
    void (*fini)(void *st);
    /*
     * Make the kernel watch fd for `events` (JG_READ | JG_WRITE, never 0);
     * `old` is what the loop believes is registered now (0: nothing). The
     * backend copes with the belief being stale (fd closed and reused:
     * -ENOENT on modify, -EEXIST on add). 0, -EPERM (a file epoll cannot
     * watch), -EBADF, -ENOMEM.
     */
    int (*fd_arm)(void *st, int fd, uint32_t old, uint32_t events);
    /* Stop watching fd; errors (the fd is already gone) are ignored. */
    void (*fd_disarm)(void *st, int fd);
    /*
     * The same from ANY thread, while fd still names its file (another
     * thread is about to close it): the loop's own belief is corrected
     * later on its thread. NULL for a backend that cannot; the loop then
     * drops the registration when it learns of the close.
     */
    void (*fd_forget)(void *st, int fd);
    /*
     * Wait up to timeout_ns (0: do not block, < 0: no limit, otherwise with
     * nanosecond resolution: no rounding to milliseconds) for readiness or
     * a wake-up; fill at most max reports into ev. Returns the count (0 on a
     * timeout, a wake-up or a signal), or -errno for a broken backend.
     */
    int (*poll)(void *st, int64_t timeout_ns, struct jg__backend_event *ev,
                int max);
    /*
     * Make a poll in progress (or the next one) return. Any thread, and
     * async-signal-safe: the loop coalesces calls to one per sleep.
     */
    void (*wake)(void *st);
    /*
     * In a forked child: close the inherited kernel objects without
     * changing them (an epoll_ctl would edit the parent's registrations),
     * then make fresh ones with nothing registered. 0 or -errno.
     */
    int (*after_fork)(void *st);
};

/* The backends built in. */
extern const struct jg__backend_ops jg__backend_epoll;

/*
 * The backend new loops use: JG_BACKEND=epoll|uring selects one, an unknown
 * or unavailable name falls back to epoll.
 */
const struct jg__backend_ops *jg__backend_choose(void);

#endif
