/* SPDX-License-Identifier: MIT */
/*
 * juggle/monitor.h - blocking detection: a watchdog thread that names each
 * green thread holding its hub (running without the hub loop or another
 * green thread getting the CPU) for longer than a threshold, with its
 * backtrace and the hold's duration.
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
 * signal within max(threshold, 1 s), or the hold ended before it could),
 * how long it held the hub (ns: from when it got the CPU to when the hub
 * loop or another green thread got it back, each moment timed by the
 * watchdog to within threshold / 16), and the return addresses of its
 * stack as the threshold passed, innermost first, as backtrace(3) gives
 * them (nframes may be 0). A hold is reported when it ends; one still going
 * on after max(1 s, 2 x threshold) is also reported then and at every
 * doubling of its age, with the time so far (the same name, a growing
 * elapsed_ns). The pointers are valid only during the call. The callback
 * may do anything a plain thread may do except call jg_monitor_stop().
 */
typedef void (*jg_monitor_fn)(void *ctx, const char *name,
                              int64_t elapsed_ns, void *const *frames,
                              int nframes);

/*
 * Start the watchdog thread, or change its threshold if it runs. Every green
 * thread (of every hub of every OS thread) that holds its hub for longer
 * than threshold_ns is reported, once per hold: the hold ends when the hub
 * loop or another green thread of that hub gets the CPU, so each of several
 * green threads blocking back to back gets its own report. Idle in the
 * hub's poll is not holding. The backtrace is taken on the hub's
 * own thread by a signal (SIGURG; a SIGURG handler installed before this
 * call still receives the other SIGURGs; the sample can make a blocking
 * wait of the blocked thread that the kernel never restarts, such as
 * poll, select or nanosleep, fail with EINTR). Setting JG_MONITOR=<ms> in the
 * environment does the same at the process's first hub creation.
 * threshold_ns: 1 ms to 1 hour. Returns 0, -EINVAL (threshold out of range),
 * -EAGAIN/-ENOMEM (no thread could be made). Thread-safe.
 */
JG_API int jg_monitor_start(int64_t threshold_ns);

/*
 * Stop the watchdog and join its thread. Holds past the threshold not yet
 * reported are reported before it returns (as they stand, if they go on);
 * a report being delivered finishes first. Returns 0, -ESRCH (not running),
 * -EDEADLK (called from the monitor's callback). Thread-safe.
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

/*
 * Not an API: a program that includes this header links the watchdog into
 * a static build, so that JG_MONITOR works there too.
 */
JG_API extern const int jg_monitor_hook;
#ifndef JG_BUILDING
static const int *const jg_monitor_hook_ref_
    __attribute__((used, unused)) = &jg_monitor_hook;
#endif

#ifdef __cplusplus
}
#endif

#endif
