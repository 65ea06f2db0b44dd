/* SPDX-License-Identifier: MIT */
/*
 * tour.h - what the parts of juggle-tour share: the options, the child
 * protocol (every approach runs in its own re-executed child process and
 * reports "key value" lines on fd TOUR_FD), the HTTP helpers and the
 * latency histogram.
 */
#ifndef JG_TOUR_H
#define JG_TOUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The fd a child writes its results to (and a server its port). */
#define TOUR_FD 3

enum {
    PART_IO = 1,
    PART_CPU = 2,
    PART_CONNS = 4,
    PART_BG = 8,
};

struct tour_opts {
    bool quick;
    unsigned only;              /* PART_* mask */
    const char *json, *svg;
    int requests;               /* part 1 */
    int delay_ms;
    int body_bytes;
    int cpu_inputs;             /* part 2 */
    double cpu_seconds;         /* target of the sequential run */
    long long cpu_n;            /* 0: calibrate */
    int conns;                  /* part 3 */
    double conns_seconds;
    double bg_seconds;          /* part 4 */
    int bg_period_ms;
    int bg_cpu_ms;
    int workers;                /* pools for CPU work: 0 = the CPUs */
    int port;                   /* children: the helper server's port */
};

/* ---- in a child ---------------------------------------------------------- */

/* Report one "key value" line to the parent. */
void tour_put(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Monotonic seconds. */
double tour_now(void);
/* Report a failure ("ok 0", "note ...") and exit the child with status 1. */
_Noreturn void tour_fail(const char *what, int code);
/* Peak RSS of this process and of its reaped children, KiB. */
long tour_maxrss_self(void);
long tour_maxrss_children(void);
/* Resident KiB now (/proc/self/statm). */
long tour_rss_now(void);
int tour_ncpu(void);

/* The approaches, by part; each returns the child's exit status. */
int tour_io_child(const struct tour_opts *o, const char *approach);
int tour_cpu_child(const struct tour_opts *o, const char *approach);
int tour_conns_server(const struct tour_opts *o, const char *approach);
int tour_conns_client(const struct tour_opts *o);
int tour_bg_child(const struct tour_opts *o, const char *approach);
int tour_bg_client(const struct tour_opts *o);
/* The delay server of parts 1 and 4: writes its port to TOUR_FD. */
int tour_http_server(const struct tour_opts *o);

/* Tasks in flight: call enter as one starts and leave as it ends (any
 * thread); tour_inflight_peak() is the most at once since the start. */
void tour_inflight_enter(void);
void tour_inflight_leave(void);
int tour_inflight_peak(void);

/* The CPU work of part 2 and of the background job. */
uint64_t tour_sumsq(uint64_t n);

/* ---- HTTP ---------------------------------------------------------------- */

/* An incremental parser of one response ("HTTP/1.1 200", Content-Length). */
struct http_resp {
    char head[512];
    size_t hlen;
    bool in_body;
    int status;
    long long clen;             /* -1: none given */
    long long body;             /* body bytes seen */
};
void http_resp_init(struct http_resp *r);
/* Feed n bytes; returns 1 once the whole body (by Content-Length) is in,
 * 0 for more, -EPROTO for a malformed head. */
int http_resp_feed(struct http_resp *r, const char *p, size_t n);
/* Format GET request number idx; returns its length. */
size_t http_request(char *buf, size_t size, int idx, bool keepalive);
/* A plain blocking download from 127.0.0.1:port with libc calls only:
 * body bytes, or -errno. */
long long http_get_blocking(int port, int idx);

/* ---- latency histogram (log-linear, microseconds) ------------------------ */

#define HIST_SUB 32
#define HIST_BUCKETS (HIST_SUB * 40)
struct hist {
    uint64_t count;
    uint64_t b[HIST_BUCKETS];
};
void hist_add(struct hist *h, int64_t ns);
/* The q-quantile (0..1) in milliseconds (the bucket's upper bound). */
double hist_quantile_ms(const struct hist *h, double q);
void hist_merge(struct hist *to, const struct hist *from);

#endif
