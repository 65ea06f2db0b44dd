/* SPDX-License-Identifier: MIT */
/*
 * juggle/monitor.h - blocking detection: a watchdog thread that names the
 * green thread holding its hub (running without coming back to the hub loop)
 * for longer than a threshold, with its backtrace, once per episode.
 */
#ifndef JUGGLE_MONITOR_H
#define JUGGLE_MONITOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most frames a report carries. */
#define JG_MONITOR_FRAMES 64

/*
 * A report, delivered on the watchdog thread: the blocking green thread's
 * name (as jg_name gives it; "?" if its thread did not answer the sampling
 * signal within max(threshold, 1 s)), how long it has run without coming
 * back to the hub loop (ns, at the moment of the backtrace; measured from
 * when the watchdog first saw the hub leave its loop, so up to one sampling
 * period of threshold / 8 short), and the return addresses of its stack,
 * innermost first, as backtrace(3) gives them (nframes may be 0). The
 * pointers are valid only during the call. The callback may do anything a
 * plain thread may do except call jg_monitor_stop().
 */
typedef void (*jg_monitor_fn)(const char *name, int64_t elapsed_ns,
                              void *const *frames, int nframes, void *arg);

/*
 * Start the watchdog thread, or change its threshold if it runs. Every hub
 * (of every OS thread) that stays out of its loop, and not idle in its poll,
 * for longer than threshold_ns is reported once per episode: the episode ends
 * when the hub comes back to its loop. The backtrace is taken on the hub's
 * own thread by a signal (SIGURG; a SIGURG handler installed before this
 * call still receives the other SIGURGs; the sample can make a poll,
 * select, epoll_wait or nanosleep of the blocked thread fail with EINTR:
 * the kernel never restarts those). Setting JG_MONITOR=<ms> in the
 * environment does the same at the process's first hub creation.
 * threshold_ns: 1 ms to 1 hour. Returns 0, -EINVAL (threshold out of range),
 * -EAGAIN/-ENOMEM (no thread could be made). Thread-safe.
 */
JG_API int jg_monitor_start(int64_t threshold_ns);

/*
 * Stop the watchdog and join its thread (a report being delivered finishes
 * first). Returns 0, -ESRCH (not running), -EDEADLK (called from the
 * monitor's callback). Thread-safe.
 */
JG_API int jg_monitor_stop(void);

/* The running watchdog's threshold in ns, or 0 if none runs. Thread-safe. */
JG_API int64_t jg_monitor_threshold(void);

/*
 * Deliver reports to fn(..., arg) on the watchdog thread instead of writing
 * them to stderr; fn == NULL restores the stderr report (name, elapsed time,
 * OS thread id, then backtrace_symbols_fd(3) lines). Takes effect for the
 * next report. Thread-safe.
 */
JG_API void jg_monitor_set_callback(jg_monitor_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
