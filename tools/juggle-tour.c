/* SPDX-License-Identifier: MIT */
/*
 * juggle-tour.c - "which model for my task?" answered by measurement on this
 * machine: I/O-bound downloads, CPU-bound work, many connections and a
 * background job, each done with processes, threads, green threads and
 * callbacks. The parent stays single-threaded and runs every approach in a
 * re-executed child of its own (so each child's rusage, CPU time and peak
 * memory are that approach's alone), then prints a table, a recommendation
 * drawn from the numbers just measured, and optionally JSON and SVG.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <juggle.h>

#include "tour.h"

#ifndef JG_TOUR_PRELOAD_BUILD
#define JG_TOUR_PRELOAD_BUILD ""
#endif
#ifndef JG_TOUR_PRELOAD_INSTALLED
#define JG_TOUR_PRELOAD_INSTALLED ""
#endif
#ifndef JG_TOUR_PRELOAD_PREFIX
#define JG_TOUR_PRELOAD_PREFIX ""
#endif

#define MAX_ROWS 32

struct row {
    int part;
    char approach[32];
    char label[64];
    double wall_s, cpu_s, speedup;
    long maxrss_kb, mem_kb;
    bool ok, skipped, done;
    char note[200];
    char check[24];
    int workers, conns, jobs;
    int peak;                   /* most tasks in flight at once, 0: unknown */
    double req_s, p50_ms, p99_ms, max_ms, bytes_per_conn, job_s, connect_s;
};

static struct row rows[MAX_ROWS];
static int nrows;
static bool tty;
static char recs[4][400];       /* the recommendation of each part */
static double ns_per_iter;      /* calibrated cost of one sumsq step */
static char conns_note[160];

/* ---- options --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: juggle-tour [options]\n"
"Measures, on this machine, which concurrency model suits which task.\n"
"  --quick              a short run (seconds), for CI\n"
"  --only PARTS         io, cpu, conns, bg (comma-separated)\n"
"  --json FILE          write the results as JSON\n"
"  --svg FILE           write a bar chart as SVG\n"
"  --requests N         I/O: downloads (160)\n"
"  --delay-ms N         I/O: server delay per request (50)\n"
"  --body-bytes N       I/O: response body size (10000)\n"
"  --cpu-inputs N       CPU: inputs (20)\n"
"  --cpu-seconds X      CPU: target of the sequential run (2.0)\n"
"  --cpu-n N            CPU: first input (default: calibrated)\n"
"  --conns N            connections held (10000; capped by ulimit -n)\n"
"  --conns-seconds X    connections: measuring time (3)\n"
"  --bg-seconds X       background job: measuring time (4)\n"
"  --bg-period-ms N     background job: period (1000)\n"
"  --bg-cpu-ms N        background job: CPU time per run (100)\n"
"  --workers N          pool size for CPU work (default: the CPUs)\n");
}

static _Noreturn void bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "juggle-tour: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(try juggle-tour --help)\n");
    exit(2);
}

static long long num(const char *opt, const char *v, long long lo,
                     long long hi)
{
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi)
        bad("%s needs a whole number from %lld to %lld, not '%s'", opt, lo,
            hi, v ? v : "");
    return x;
}

static double real(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || !(x >= lo && x <= hi))
        bad("%s needs a number from %g to %g, not '%s'", opt, lo, hi,
            v ? v : "");
    return x;
}

static unsigned parse_only(const char *v)
{
    unsigned m = 0;
    char buf[64];

    if (!v || strlen(v) >= sizeof(buf))
        bad("--only needs io, cpu, conns or bg");
    strcpy(buf, v);
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
        if (strcmp(s, "io") == 0)
            m |= PART_IO;
        else if (strcmp(s, "cpu") == 0)
            m |= PART_CPU;
        else if (strcmp(s, "conns") == 0)
            m |= PART_CONNS;
        else if (strcmp(s, "bg") == 0)
            m |= PART_BG;
        else
            bad("--only: unknown part '%s' (io, cpu, conns, bg)", s);
    }
    if (!m)
        bad("--only needs io, cpu, conns or bg");
    return m;
}

static void defaults(struct tour_opts *o, bool quick)
{
    memset(o, 0, sizeof(*o));
    o->quick = quick;
    o->only = PART_IO | PART_CPU | PART_CONNS | PART_BG;
    o->requests = quick ? 40 : 160;
    o->delay_ms = quick ? 20 : 50;
    o->body_bytes = 10000;
    o->cpu_inputs = 20;
    o->cpu_seconds = quick ? 0.2 : 2.0;
    o->conns = quick ? 500 : 10000;
    o->conns_seconds = quick ? 0.5 : 3.0;
    o->bg_seconds = quick ? 1.5 : 4.0;
    o->bg_period_ms = quick ? 300 : 1000;
    o->bg_cpu_ms = quick ? 60 : 100;
}

/* Parse argv from index i; a child passes every knob back explicitly. */
static void parse(struct tour_opts *o, int argc, char **argv, int i)
{
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            continue;           /* handled first */
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        i++;                    /* every other option takes a value */
        if (strcmp(a, "--only") == 0)
            o->only = parse_only(v);
        else if (strcmp(a, "--json") == 0 && v)
            o->json = v;
        else if (strcmp(a, "--svg") == 0 && v)
            o->svg = v;
        else if (strcmp(a, "--requests") == 0)
            o->requests = (int)num(a, v, 1, 100000);
        else if (strcmp(a, "--delay-ms") == 0)
            o->delay_ms = (int)num(a, v, 0, 10000);
        else if (strcmp(a, "--body-bytes") == 0)
            o->body_bytes = (int)num(a, v, 1, 64 << 20);
        else if (strcmp(a, "--cpu-inputs") == 0)
            o->cpu_inputs = (int)num(a, v, 1, 10000);
        else if (strcmp(a, "--cpu-seconds") == 0)
            o->cpu_seconds = real(a, v, 0.001, 3600);
        else if (strcmp(a, "--cpu-n") == 0)
            o->cpu_n = num(a, v, 1, 1LL << 50);
        else if (strcmp(a, "--conns") == 0)
            o->conns = (int)num(a, v, 1, 1000000);
        else if (strcmp(a, "--conns-seconds") == 0)
            o->conns_seconds = real(a, v, 0.05, 3600);
        else if (strcmp(a, "--bg-seconds") == 0)
            o->bg_seconds = real(a, v, 0.1, 3600);
        else if (strcmp(a, "--bg-period-ms") == 0)
            o->bg_period_ms = (int)num(a, v, 1, 3600000);
        else if (strcmp(a, "--bg-cpu-ms") == 0)
            o->bg_cpu_ms = (int)num(a, v, 0, 3600000);
        else if (strcmp(a, "--workers") == 0)
            o->workers = (int)num(a, v, 0, 1024);
        else if (strcmp(a, "--port") == 0)
            o->port = (int)num(a, v, 1, 65535);
        else if (!v && (strcmp(a, "--json") == 0 || strcmp(a, "--svg") == 0))
            bad("%s needs a file name", a);
        else
            bad("unknown option '%s'", a);
    }
}

/* ---- children ------------------------------------------------------------------ */

struct child {
    pid_t pid;
    int fd;
    int port;
    size_t have;
    char buf[4096];
    char progress[96];
    struct row *r;
};

static const char *preload_path(void)
{
    static const char *paths[] = { JG_TOUR_PRELOAD_BUILD,
                                   JG_TOUR_PRELOAD_INSTALLED };
    const char *env = getenv("JG_TOUR_PRELOAD");

    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (paths[i][0] && access(paths[i], R_OK) == 0)
            return paths[i];
    return NULL;
}

/* Start `juggle-tour --child ROLE APPROACH <every knob>` on fd TOUR_FD. */
static int child_start(struct child *c, struct row *r, const char *role,
                       const char *approach, const struct tour_opts *o,
                       const char *preload)
{
    int p[2], k = 0;
    const char *argv[48];

    memset(c, 0, sizeof(*c));
    c->r = r;
    argv[k++] = "juggle-tour";
    argv[k++] = "--child";
    argv[k++] = role;
    argv[k++] = approach;
    static char sv[16][32];
    int s = 0;
#define KNOB(name, fmt, val) do { \
        snprintf(sv[s], sizeof(sv[s]), fmt, val); \
        argv[k++] = name; \
        argv[k++] = sv[s++]; \
    } while (0)
    KNOB("--requests", "%d", o->requests);
    KNOB("--delay-ms", "%d", o->delay_ms);
    KNOB("--body-bytes", "%d", o->body_bytes);
    KNOB("--cpu-inputs", "%d", o->cpu_inputs);
    KNOB("--cpu-n", "%lld", o->cpu_n ? o->cpu_n : 1);
    KNOB("--conns", "%d", o->conns);
    KNOB("--conns-seconds", "%.3f", o->conns_seconds);
    KNOB("--bg-seconds", "%.3f", o->bg_seconds);
    KNOB("--bg-period-ms", "%d", o->bg_period_ms);
    KNOB("--workers", "%d", o->workers);
    if (o->port)
        KNOB("--port", "%d", o->port);
#undef KNOB
    argv[k] = NULL;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (pid == 0) {
        if (dup2(p[1], TOUR_FD) < 0)
            _exit(126);
        if (preload) {
            char lp[PATH_MAX + 256];
            snprintf(lp, sizeof(lp), "%s%s", JG_TOUR_PRELOAD_PREFIX, preload);
            setenv("LD_PRELOAD", lp, 1);
        }
        execv("/proc/self/exe", (char **)argv);
        _exit(127);
    }
    close(p[1]);
    c->pid = pid;
    c->fd = p[0];
    return 0;
}

static void row_set(struct row *r, const char *k, const char *v)
{
    if (strcmp(k, "ok") == 0)
        r->ok = atoi(v) == 1;
    else if (strcmp(k, "note") == 0)
        snprintf(r->note, sizeof(r->note), "%s", v);
    else if (strcmp(k, "wall_s") == 0)
        r->wall_s = atof(v);
    else if (strcmp(k, "mem_kb") == 0)
        r->mem_kb = atol(v);
    else if (strcmp(k, "check") == 0)
        snprintf(r->check, sizeof(r->check), "%s", v);
    else if (strcmp(k, "workers") == 0)
        r->workers = atoi(v);
    else if (strcmp(k, "peak") == 0)
        r->peak = atoi(v);
    else if (strcmp(k, "conns") == 0)
        r->conns = atoi(v);
    else if (strcmp(k, "jobs") == 0)
        r->jobs = atoi(v);
    else if (strcmp(k, "req_s") == 0)
        r->req_s = atof(v);
    else if (strcmp(k, "p50_ms") == 0)
        r->p50_ms = atof(v);
    else if (strcmp(k, "p99_ms") == 0)
        r->p99_ms = atof(v);
    else if (strcmp(k, "max_ms") == 0)
        r->max_ms = atof(v);
    else if (strcmp(k, "bytes_per_conn") == 0)
        r->bytes_per_conn = atof(v);
    else if (strcmp(k, "job_s") == 0)
        r->job_s = atof(v);
    else if (strcmp(k, "connect_s") == 0)
        r->connect_s = atof(v);
}

/* Read what the child wrote; returns false at end of file. */
static bool child_read(struct child *c, int timeout_ms)
{
    struct pollfd p = { .fd = c->fd, .events = POLLIN };

    if (poll(&p, 1, timeout_ms) <= 0)
        return true;
    ssize_t n = read(c->fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have);
    if (n <= 0)
        return false;
    c->have += (size_t)n;
    c->buf[c->have] = 0;
    char *line = c->buf, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        char *sp = strchr(line, ' ');
        const char *val = sp ? sp + 1 : "";
        if (sp)
            *sp = 0;
        if (strcmp(line, "progress") == 0)
            snprintf(c->progress, sizeof(c->progress), "%s", val);
        else if (strcmp(line, "port") == 0)
            c->port = atoi(val);
        else if (c->r)
            row_set(c->r, line, val);
        line = nl + 1;
    }
    c->have -= (size_t)(line - c->buf);
    memmove(c->buf, line, c->have);
    if (c->have == sizeof(c->buf) - 1)
        c->have = 0;            /* a line too long to be ours */
    return true;
}

static void show(const char *label, double t, const char *extra)
{
    if (!tty)
        return;
    printf("\r\033[K  %-40s %6.1f s  %s", label, t, extra ? extra : "");
    fflush(stdout);
}

static void show_done(void)
{
    if (tty) {
        printf("\r\033[K");
        fflush(stdout);
    }
}

/* Wait until the child wrote its port; false if it ended first. */
static bool child_port(struct child *c, const char *label)
{
    double t0 = tour_now();
    while (!c->port) {
        if (!child_read(c, 100))
            return false;
        show(label, tour_now() - t0, "starting");
        if (tour_now() - t0 > 30)
            return false;
    }
    return true;
}

/* Read to the end (killing the child after limit_s), reap it, and record
 * its CPU time and peak memory. */
static void child_finish(struct child *c, const char *label, double limit_s)
{
    double t0 = tour_now();
    struct rusage ru;
    int status = 0;

    while (child_read(c, 100)) {
        show(label, tour_now() - t0, c->progress);
        if (tour_now() - t0 > limit_s) {
            kill(c->pid, SIGKILL);
            if (c->r && !c->r->note[0])
                snprintf(c->r->note, sizeof(c->r->note),
                         "killed after %.0f s", limit_s);
            if (c->r)
                c->r->ok = false;
            break;
        }
    }
    close(c->fd);
    while (wait4(c->pid, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    show_done();
    if (!c->r)
        return;
    c->r->cpu_s += (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    long m = c->r->mem_kb ? c->r->mem_kb : ru.ru_maxrss;
    if (m > c->r->maxrss_kb)
        c->r->maxrss_kb = m;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        c->r->ok = false;
        if (!c->r->note[0]) {
            if (WIFSIGNALED(status))
                snprintf(c->r->note, sizeof(c->r->note),
                         "killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
            else
                snprintf(c->r->note, sizeof(c->r->note),
                         "exited with status %d", WEXITSTATUS(status));
        }
    }
}

static void child_kill(struct child *c)
{
    kill(c->pid, SIGKILL);
    close(c->fd);
    waitpid(c->pid, NULL, 0);
}

static struct row *row_new(int part, const char *approach, const char *label)
{
    struct row *r = &rows[nrows++];
    memset(r, 0, sizeof(*r));
    r->part = part;
    r->speedup = NAN;
    snprintf(r->approach, sizeof(r->approach), "%s", approach);
    snprintf(r->label, sizeof(r->label), "%s", label);
    return r;
}

static void announce(const char *label)
{
    if (!tty)
        printf("  running: %s\n", label);
}

/* One approach in one child. */
static struct row *run_one(int part, const char *role, const char *approach,
                           const char *label, const struct tour_opts *o,
                           const char *preload)
{
    struct row *r = row_new(part, approach, label);
    struct child c;

    announce(label);
    int rc = child_start(&c, r, role, approach, o, preload);
    if (rc < 0) {
        snprintf(r->note, sizeof(r->note), "fork: %s", jg_strerror(rc));
        return r;
    }
    child_finish(&c, label, 600);
    r->done = true;
    return r;
}

/* A server child plus a client child; the row gets both reports. */
static struct row *run_pair(int part, const char *srole, const char *crole,
                            const char *approach, const char *label,
                            const struct tour_opts *o)
{
    struct row *r = row_new(part, approach, label);
    struct row cr;
    struct child s, c;
    struct tour_opts co = *o;

    announce(label);
    if (child_start(&s, r, srole, approach, o, NULL) < 0) {
        snprintf(r->note, sizeof(r->note), "cannot start the server");
        return r;
    }
    if (!child_port(&s, label)) {
        child_finish(&s, label, 5);
        if (!r->note[0])
            snprintf(r->note, sizeof(r->note), "the server did not start");
        r->ok = false;
        return r;
    }
    co.port = s.port;
    memset(&cr, 0, sizeof(cr));
    if (child_start(&c, &cr, crole, approach, &co, NULL) < 0) {
        child_kill(&s);
        snprintf(r->note, sizeof(r->note), "cannot start the clients");
        return r;
    }
    child_finish(&c, label, 600);
    /* The server ends once the clients have left. */
    child_finish(&s, label, 30);
    bool sok = r->ok;
    r->ok = sok && cr.ok;
    if (!cr.ok)
        snprintf(r->note, sizeof(r->note), "clients: %.180s",
                 cr.note[0] ? cr.note : "failed");
    r->wall_s = cr.wall_s;
    r->req_s = cr.req_s;
    r->p50_ms = cr.p50_ms;
    r->p99_ms = cr.p99_ms;
    r->max_ms = cr.max_ms;
    r->conns = cr.conns;
    r->connect_s = cr.connect_s;
    r->done = true;
    return r;
}

/* ---- tables ---------------------------------------------------------------------- */

static const char *fmt_s(char *b, double s)
{
    if (s < 0.001)
        snprintf(b, 16, "%.2f ms", s * 1000);
    else if (s < 1)
        snprintf(b, 16, "%.3f s", s);
    else
        snprintf(b, 16, "%.2f s", s);
    return b;
}

static const char *fmt_mem(char *b, double kb)
{
    if (kb >= 1024)
        snprintf(b, 16, "%.1f MiB", kb / 1024);
    else
        snprintf(b, 16, "%.0f KiB", kb);
    return b;
}

static void print_time_table(int part)
{
    char a[16], b[16], c[16];

    printf("  %-40s %10s %10s %10s %9s\n", "approach", "wall", "CPU",
           "peak mem", "speed-up");
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->part != part)
            continue;
        if (r->skipped || !r->ok) {
            printf("  %-40s %s\n", r->label,
                   r->skipped ? r->note : "FAILED");
            if (!r->skipped && r->note[0])
                printf("  %-40s   %s\n", "", r->note);
            continue;
        }
        printf("  %-40s %10s %10s %10s %8.1fx\n", r->label,
               fmt_s(a, r->wall_s), fmt_s(b, r->cpu_s),
               fmt_mem(c, (double)r->maxrss_kb), r->speedup);
    }
}

static struct row *find(int part, const char *approach)
{
    for (int i = 0; i < nrows; i++)
        if (rows[i].part == part && strcmp(rows[i].approach, approach) == 0)
            return &rows[i];
    return NULL;
}

static bool good(const struct row *r)
{
    return r && r->ok && !r->skipped;
}

static void speedups(int part)
{
    struct row *seq = find(part, "sequential");
    for (int i = 0; i < nrows; i++)
        if (rows[i].part == part && good(&rows[i]) && good(seq) &&
            rows[i].wall_s > 0)
            rows[i].speedup = seq->wall_s / rows[i].wall_s;
}

/* The model family an approach belongs to, for the advice. */
static const char *family(const char *approach)
{
    if (strncmp(approach, "green", 5) == 0)
        return "green threads";
    if (strcmp(approach, "loop") == 0)
        return "the callback loop";
    if (strcmp(approach, "procpool") == 0)
        return "a process pool";
    if (strcmp(approach, "pool") == 0 || strcmp(approach, "threads") == 0)
        return "OS threads";
    return "sequential code";
}

/* ---- part 1 --------------------------------------------------------------------- */

static void part_io(struct tour_opts *o, int port)
{
    static const char *ap[] = { "sequential", "threads", "pool", "procpool",
                                "green", "green-preload", "loop" };
    char procl[64];
    int workers = o->workers ? o->workers : tour_ncpu();

    snprintf(procl, sizeof(procl), "process pool, %d workers", workers);
    const char *lab[] = { "sequential", "5 OS threads",
                          "thread pool, 32 threads", procl,
                          "green threads, jg_ I/O",
                          "green threads, blocking code + preload",
                          "callback loop (jg_io watchers)" };
    printf("\n1. I/O-bound: %d downloads from a local server that answers "
           "after %d ms\n   (%d-byte bodies), as in the seeds\n",
           o->requests, o->delay_ms, o->body_bytes);
    o->port = port;
    for (size_t i = 0; i < sizeof(ap) / sizeof(ap[0]); i++) {
        const char *pre = NULL;
        if (strcmp(ap[i], "green-preload") == 0) {
            pre = preload_path();
            if (!pre) {
                struct row *r = row_new(PART_IO, ap[i], lab[i]);
                r->skipped = true;
                snprintf(r->note, sizeof(r->note),
                         "skipped: preload library not built");
                continue;
            }
        }
        run_one(PART_IO, "io", ap[i], lab[i], o, pre);
    }
    o->port = 0;
    speedups(PART_IO);
    print_time_table(PART_IO);

    /* The fastest approach; among those within 1.5x of it, the leanest. */
    struct row *best = NULL, *pick = NULL, *seq = find(PART_IO, "sequential");
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->part == PART_IO && good(r) && r != seq &&
            (!best || r->wall_s < best->wall_s))
            best = r;
    }
    for (int i = 0; best && i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->part == PART_IO && good(r) && r != seq &&
            r->wall_s <= best->wall_s * 1.5 &&
            (!pick || r->maxrss_kb < pick->maxrss_kb))
            pick = r;
    }
    char *s = recs[0];
    if (!pick || !good(seq)) {
        snprintf(s, 400, "I/O-bound: not enough approaches finished to "
                 "compare");
        return;
    }
    /* Callbacks cost the most to write: green threads win when they are
     * as fast and at most about twice as big. */
    struct row *alt = NULL;
    if (strcmp(pick->approach, "loop") == 0) {
        struct row *g = find(PART_IO, "green");
        if (good(g) && g->wall_s <= best->wall_s * 1.5 &&
            g->maxrss_kb <= 2 * pick->maxrss_kb + 1024) {
            alt = pick;
            pick = g;
        }
    }
    char a[16], b[16];
    int n = snprintf(s, 400, "I/O-bound: %s took %s, %.0fx faster than "
                     "sequential, with %s peak memory",
                     pick->label, fmt_s(a, pick->wall_s), pick->speedup,
                     fmt_mem(b, (double)pick->maxrss_kb));
    if (alt)
        n += snprintf(s + n, 400 - (size_t)n, " (callbacks: %s, %s)",
                      fmt_s(a, alt->wall_s),
                      fmt_mem(b, (double)alt->maxrss_kb));
    n += snprintf(s + n, 400 - (size_t)n, ": use %s", family(pick->approach));
    struct row *pre = find(PART_IO, "green-preload");
    if (good(pre))
        snprintf(s + n, 400 - (size_t)n, "; plain blocking code under the "
                 "patch: %s", fmt_s(a, pre->wall_s));
    else if (pre && pre->skipped)
        snprintf(s + n, 400 - (size_t)n, " (the patch was not measured: "
                 "preload library not built)");
    printf("  -> %s\n", s);
}

/* ---- part 2 --------------------------------------------------------------------- */

static void calibrate(void)
{
    uint64_t m = 1u << 20;
    double t = 0;

    if (ns_per_iter > 0)
        return;
    for (;;) {
        double t0 = tour_now();
        volatile uint64_t sink = tour_sumsq(m);
        (void)sink;
        t = tour_now() - t0;
        if (t >= 0.02 || m >= (1ull << 36))
            break;
        m *= 2;
    }
    ns_per_iter = t * 1e9 / (double)m;
    if (ns_per_iter <= 0)
        ns_per_iter = 1;
}

static void part_cpu(struct tour_opts *o)
{
    int workers = o->workers ? o->workers : tour_ncpu();
    char thl[64], prl[64];

    if (!o->cpu_n) {
        calibrate();
        o->cpu_n = (long long)(o->cpu_seconds * 1e9 / ns_per_iter /
                               o->cpu_inputs);
        if (o->cpu_n < 1000)
            o->cpu_n = 1000;
    }
    snprintf(thl, sizeof(thl), "thread pool, %d threads", workers);
    snprintf(prl, sizeof(prl), "process pool, %d workers", workers);
    printf("\n2. CPU-bound: the seeds' sum of squares over %d inputs from "
           "%lld\n   (sized for about %.1f s sequentially; %d CPUs online)\n",
           o->cpu_inputs, o->cpu_n, o->cpu_seconds, tour_ncpu());
    struct row *seq = run_one(PART_CPU, "cpu", "sequential", "sequential", o,
                              NULL);
    run_one(PART_CPU, "cpu", "threads", thl, o, NULL);
    run_one(PART_CPU, "cpu", "procpool", prl, o, NULL);
    run_one(PART_CPU, "cpu", "green", "green threads (one OS thread)", o,
            NULL);
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->part == PART_CPU && r != seq && good(r) &&
            (!good(seq) || strcmp(r->check, seq->check) != 0)) {
            r->ok = false;
            snprintf(r->note, sizeof(r->note),
                     "results differ from the sequential ones");
        }
    }
    speedups(PART_CPU);
    print_time_table(PART_CPU);

    struct row *th = find(PART_CPU, "threads"), *pr = find(PART_CPU,
                                                           "procpool");
    struct row *gr = find(PART_CPU, "green");
    char *s = recs[1];
    if (!good(th) || !good(pr) || !good(gr)) {
        snprintf(s, 400, "CPU-bound: not every approach finished");
    } else if (fmax(th->speedup, pr->speedup) >= 1.3) {
        bool thr = th->speedup >= pr->speedup * 0.95;
        snprintf(s, 400, "CPU-bound: threads were %.1fx and processes %.1fx "
                 "faster than sequential on %d CPUs (C has no GIL); green "
                 "threads %.1fx (one OS thread): use %s%s",
                 th->speedup, pr->speedup, tour_ncpu(), gr->speedup,
                 thr ? "a thread pool" : "a process pool",
                 thr ? " (a process pool to isolate crashes: it cost "
                       "little more)" : "");
    } else {
        snprintf(s, 400, "CPU-bound: no parallel speed-up on this machine "
                 "now (%d CPUs online, busy?): threads %.1fx, processes "
                 "%.1fx, green threads %.1fx; green threads never help here",
                 tour_ncpu(), th->speedup, pr->speedup, gr->speedup);
    }
    printf("  -> %s\n", s);
}

/* ---- part 3 --------------------------------------------------------------------- */

static void part_conns(struct tour_opts *o)
{
    struct rlimit rl;
    char dedl[64];

    /* Each side holds one fd per connection, plus a few of its own. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        long cap = (long)(rl.rlim_cur == RLIM_INFINITY ? 1 << 20
                                                       : rl.rlim_cur) - 64;
        if (o->conns > cap) {
            snprintf(conns_note, sizeof(conns_note),
                     "capped from %d to %ld connections by ulimit -n (%ld)",
                     o->conns, cap, (long)rl.rlim_cur);
            o->conns = (int)cap;
        }
    }
    snprintf(dedl, sizeof(dedl), "green threads, %zu KiB stacks",
             jg_stack_size_default() / 1024);
    printf("\n3. Many connections: a server holding %d keep-alive clients "
           "(in another\n   process), each asking as fast as it is answered, "
           "for %.1f s\n", o->conns, o->conns_seconds);
    if (conns_note[0])
        printf("   (%s)\n", conns_note);
    run_pair(PART_CONNS, "conns-server", "conns-client", "green-sliced",
             "green threads, sliced stacks", o);
    run_pair(PART_CONNS, "conns-server", "conns-client", "green-dedicated",
             dedl, o);
    run_pair(PART_CONNS, "conns-server", "conns-client", "loop",
             "callback loop (jg_io watchers)", o);
    run_pair(PART_CONNS, "conns-server", "conns-client", "threads",
             "OS thread per connection (64 KiB)", o);

    char a[16], b[16];
    printf("  %-36s %9s %8s %8s %9s %8s %10s\n", "approach", "req/s",
           "p50", "p99", "mem/conn", "CPU", "peak mem");
    struct row *best = NULL;
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->part != PART_CONNS)
            continue;
        if (!good(r)) {
            printf("  %-36s FAILED: %s\n", r->label, r->note);
            continue;
        }
        printf("  %-36s %9.0f %6.2fms %6.2fms %7.1fKiB %8s %10s\n",
               r->label, r->req_s, r->p50_ms, r->p99_ms,
               r->bytes_per_conn / 1024, fmt_s(a, r->cpu_s),
               fmt_mem(b, (double)r->maxrss_kb));
        if (!best || r->bytes_per_conn < best->bytes_per_conn)
            best = r;
    }
    char *s = recs[2];
    struct row *th = find(PART_CONNS, "threads");
    struct row *alt = NULL, *gs = find(PART_CONNS, "green-sliced");
    /* As in part 1: sequential-looking code wins over callbacks when it
     * costs at most about twice the memory and serves as much. */
    if (best && strcmp(best->approach, "loop") == 0 && good(gs) &&
        gs->bytes_per_conn <= 2 * best->bytes_per_conn + 1024 &&
        gs->req_s >= 0.67 * best->req_s) {
        alt = best;
        best = gs;
    }
    if (!best) {
        snprintf(s, 400, "Many connections: no approach held them");
    } else {
        int n = snprintf(s, 400, "Many connections: %s held %d with %.1f KiB "
                         "each at %.0f req/s (p99 %.1f ms)",
                         best->label, best->conns,
                         best->bytes_per_conn / 1024, best->req_s,
                         best->p99_ms);
        if (alt)
            n += snprintf(s + n, 400 - (size_t)n, "; callbacks: %.1f KiB",
                          alt->bytes_per_conn / 1024);
        if (good(th) && th != best)
            n += snprintf(s + n, 400 - (size_t)n, "; a thread each: %.1f "
                          "KiB (+ a kernel stack)",
                          th->bytes_per_conn / 1024);
        snprintf(s + n, 400 - (size_t)n, ": use %s%s", family(best->approach),
                 strcmp(best->approach, "green-sliced") == 0
                     ? " with sliced stacks" : "");
    }
    printf("  -> %s\n", s);
}

/* ---- part 4 --------------------------------------------------------------------- */

static void part_bg(struct tour_opts *o, int port)
{
    struct tour_opts bo = *o;
    static const char *ap[] = { "none", "hub", "threads", "procpool" };
    static const char *lab[] = { "no background job",
                                 "job on the hub (blocks it)",
                                 "job on a thread pool",
                                 "job on a process pool" };

    calibrate();
    bo.cpu_n = (long long)(o->bg_cpu_ms * 1e6 / ns_per_iter);
    if (bo.cpu_n < 1)
        bo.cpu_n = 1;
    bo.port = port;
    printf("\n4. Background job: a green-thread server answers 16 users "
           "(each asks every\n   10 ms) while a forecast job runs every "
           "%d ms: a blocking %d ms download\n   and about %d ms of CPU\n",
           o->bg_period_ms, o->delay_ms, o->bg_cpu_ms);
    for (size_t i = 0; i < sizeof(ap) / sizeof(ap[0]); i++)
        run_pair(PART_BG, "bg-server", "bg-client", ap[i], lab[i], &bo);

    char b[16];
    printf("  %-36s %9s %9s %9s %6s %9s %10s\n", "approach", "p50", "p99",
           "max", "jobs", "job time", "peak mem");
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->part != PART_BG)
            continue;
        if (strcmp(r->approach, "none") != 0 && r->ok && r->jobs < 1) {
            r->ok = false;
            snprintf(r->note, sizeof(r->note), "the job never ran");
        }
        if (!good(r)) {
            printf("  %-36s FAILED: %s\n", r->label, r->note);
            continue;
        }
        printf("  %-36s %7.2fms %7.2fms %7.2fms %6d %7.0fms %10s\n",
               r->label, r->p50_ms, r->p99_ms, r->max_ms, r->jobs,
               r->job_s * 1000, fmt_mem(b, (double)r->maxrss_kb));
    }
    struct row *no = find(PART_BG, "none"), *hub = find(PART_BG, "hub");
    struct row *th = find(PART_BG, "threads"), *pr = find(PART_BG,
                                                          "procpool");
    char *s = recs[3];
    if (!good(no) || !good(hub) || !good(th) || !good(pr)) {
        snprintf(s, 400, "Background job: not every approach finished");
    } else {
        bool thr = th->p99_ms <= pr->p99_ms;
        snprintf(s, 400, "Background job: on the hub it pushed p99 latency "
                 "from %.1f ms to %.1f ms; on a thread pool %.1f ms, on a "
                 "process pool %.1f ms: run slow jobs on %s",
                 no->p99_ms, hub->p99_ms, th->p99_ms, pr->p99_ms,
                 thr ? "a thread pool" : "a process pool");
    }
    printf("  -> %s\n", s);
}

/* ---- JSON and SVG ------------------------------------------------------------------- */

static const char *part_name(int part)
{
    switch (part) {
    case PART_IO: return "io";
    case PART_CPU: return "cpu";
    case PART_CONNS: return "conns";
    default: return "bg";
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *k, double v)
{
    fprintf(f, ", \"%s\": ", k);
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

static int write_json(const char *path, const struct tour_opts *o)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "{\"tool\": \"juggle-tour\", \"version\": \"%s\", "
            "\"cpus\": %d, \"quick\": %s,\n \"requests\": %d, "
            "\"delay_ms\": %d, \"cpu_n\": %lld, \"conns\": %d,\n"
            " \"recommendations\": [", jg_version(), tour_ncpu(),
            o->quick ? "true" : "false", o->requests, o->delay_ms, o->cpu_n,
            o->conns);
    for (int i = 0, first = 1; i < 4; i++)
        if (recs[i][0]) {
            fputs(first ? "\n  " : ",\n  ", f);
            json_str(f, recs[i]);
            first = 0;
        }
    fprintf(f, "],\n \"results\": [");
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        fprintf(f, "%s\n  {\"part\": \"%s\", \"approach\": ", i ? "," : "",
                part_name(r->part));
        json_str(f, r->approach);
        fputs(", \"label\": ", f);
        json_str(f, r->label);
        json_num(f, "wall_s", r->wall_s);
        json_num(f, "cpu_s", r->cpu_s);
        fprintf(f, ", \"maxrss_kb\": %ld", r->maxrss_kb);
        json_num(f, "speedup", r->speedup);
        if (r->peak > 0)
            fprintf(f, ", \"peak\": %d", r->peak);
        fprintf(f, ", \"ok\": %s, \"skipped\": %s",
                r->ok && !r->skipped ? "true" : "false",
                r->skipped ? "true" : "false");
        if (r->part == PART_CPU) {
            struct row *seq = find(PART_CPU, "sequential");
            fprintf(f, ", \"check\": \"%s\", \"matches\": %s", r->check,
                    seq && r->check[0] && strcmp(seq->check, r->check) == 0
                        ? "true" : "false");
        }
        if (r->part == PART_CONNS || r->part == PART_BG) {
            json_num(f, "req_s", r->req_s);
            json_num(f, "p50_ms", r->p50_ms);
            json_num(f, "p99_ms", r->p99_ms);
            json_num(f, "max_ms", r->max_ms);
        }
        if (r->part == PART_CONNS) {
            fprintf(f, ", \"conns\": %d", r->conns);
            json_num(f, "bytes_per_conn", r->bytes_per_conn);
            json_num(f, "connect_s", r->connect_s);
        }
        if (r->part == PART_BG)
            fprintf(f, ", \"jobs\": %d", r->jobs);
        if (r->note[0]) {
            fputs(", \"note\": ", f);
            json_str(f, r->note);
        }
        fputc('}', f);
    }
    fprintf(f, "\n ]}\n");
    return fclose(f) == 0 ? 0 : -EIO;
}

static const char *color(const char *approach)
{
    if (strcmp(approach, "sequential") == 0 || strcmp(approach, "none") == 0)
        return "#8c8c8c";
    if (strncmp(approach, "green", 5) == 0)
        return "#2ca02c";
    if (strcmp(approach, "loop") == 0)
        return "#ff7f0e";
    if (strcmp(approach, "procpool") == 0)
        return "#9467bd";
    if (strcmp(approach, "hub") == 0)
        return "#d62728";
    return "#1f77b4";
}

/* The figure a part's bars show, and its unit. */
static double metric(const struct row *r, const char **unit)
{
    switch (r->part) {
    case PART_CONNS:
        *unit = "KiB per connection";
        return r->bytes_per_conn / 1024;
    case PART_BG:
        *unit = "p99 request latency, ms";
        return r->p99_ms;
    default:
        *unit = "wall time, s";
        return r->wall_s;
    }
}

static void svg_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

static int write_svg(const char *path)
{
    static const int parts[] = { PART_IO, PART_CPU, PART_CONNS, PART_BG };
    static const char *titles[] = { "1. I/O-bound downloads",
                                    "2. CPU-bound sum of squares",
                                    "3. Many connections: memory",
                                    "4. Background job: latency" };
    const int W = 1000, LX = 300, BW = 460, BH = 22, GAP = 6;
    int h = 60;

    for (int p = 0; p < 4; p++) {
        int n = 0;
        for (int i = 0; i < nrows; i++)
            n += rows[i].part == parts[p];
        if (n)
            h += 88 + n * (BH + GAP);
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" font-family=\"DejaVu Sans, Helvetica, Arial, "
            "sans-serif\" font-size=\"13\">\n<rect width=\"100%%\" "
            "height=\"100%%\" fill=\"white\"/>\n<text x=\"20\" y=\"32\" "
            "font-size=\"20\" font-weight=\"bold\">juggle-tour: which model "
            "for my task? (%d CPUs)</text>\n", W, h, tour_ncpu());
    int y = 60;
    for (int p = 0; p < 4; p++) {
        double lo = INFINITY, hi = 0;
        const char *unit = "";
        int n = 0;
        for (int i = 0; i < nrows; i++) {
            if (rows[i].part != parts[p])
                continue;
            n++;
            double v = metric(&rows[i], &unit);
            if (good(&rows[i]) && v > 0) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
        if (!n)
            continue;
        bool lg = hi > 0 && hi / lo > 20;
        /* A log axis starts a decade below the smallest bar. */
        double base = lg ? pow(10, floor(log10(lo)) - 0.3) : 0;
        fprintf(f, "<text x=\"20\" y=\"%d\" font-size=\"16\" "
                "font-weight=\"bold\">%s</text>\n<text x=\"20\" y=\"%d\" "
                "fill=\"#555\">%s%s, shorter is better</text>\n", y + 20,
                titles[p], y + 40, unit, lg ? " (log scale)" : "");
        y += 52;
        for (int i = 0; i < nrows; i++) {
            struct row *r = &rows[i];
            if (r->part != parts[p])
                continue;
            double v = metric(r, &unit);
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LX - 8,
                    y + 16);
            svg_text(f, r->label);
            fputs("</text>\n", f);
            if (!good(r) || v <= 0 || hi <= 0) {
                fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#a00\">", LX,
                        y + 16);
                svg_text(f, r->skipped ? r->note : "failed");
                fputs("</text>\n", f);
                y += BH + GAP;
                continue;
            }
            double frac = lg ? log(v / base) / log(hi / base) : v / hi;
            int w = (int)(frac * BW);
            if (w < 2)
                w = 2;
            char val[48];
            if (r->part == PART_CONNS)
                snprintf(val, sizeof(val), "%.1f KiB, %.0f req/s", v,
                         r->req_s);
            else if (r->part == PART_BG)
                snprintf(val, sizeof(val), "%.1f ms", v);
            else if (!isnan(r->speedup))
                snprintf(val, sizeof(val), "%.3g s  (%.1fx)", v, r->speedup);
            else
                snprintf(val, sizeof(val), "%.3g s", v);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                    "rx=\"3\" fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\">%s"
                    "</text>\n", LX, y, w, BH, color(r->approach),
                    LX + w + 6, y + 16, val);
            y += BH + GAP;
        }
        y += 36 - GAP;
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -EIO;
}

/* ---- main ------------------------------------------------------------------------ */

static int child_main(int argc, char **argv)
{
    struct tour_opts o;

    if (argc < 4)
        return 2;
    defaults(&o, false);
    parse(&o, argc, argv, 4);
    const char *role = argv[2], *ap = argv[3];
    if (strcmp(role, "httpd") == 0)
        return tour_http_server(&o);
    if (strcmp(role, "io") == 0)
        return tour_io_child(&o, ap);
    if (strcmp(role, "cpu") == 0)
        return tour_cpu_child(&o, ap);
    if (strcmp(role, "conns-server") == 0)
        return tour_conns_server(&o, ap);
    if (strcmp(role, "conns-client") == 0)
        return tour_conns_client(&o);
    if (strcmp(role, "bg-server") == 0)
        return tour_bg_child(&o, ap);
    if (strcmp(role, "bg-client") == 0)
        return tour_bg_client(&o);
    return 2;
}

int main(int argc, char **argv)
{
    struct tour_opts o;
    bool quick = false;

    /* First thing: process pools fork their workers from the server this
     * starts while we are single-threaded. Every approach's child runs this
     * too, so its pool workers are its own children. */
    int rc = jg_main_init(argc, argv);
    if (rc < 0) {
        fprintf(stderr, "juggle-tour: jg_main_init: %s\n", jg_strerror(rc));
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
    defaults(&o, quick);
    parse(&o, argc, argv, 1);
    tty = isatty(STDOUT_FILENO);
    signal(SIGPIPE, SIG_IGN);

    /* Many connections need many fds: take the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    double t0 = tour_now();
    printf("juggle-tour %s: which model for my task? Measured on this "
           "machine (%d CPUs)%s.\n", jg_version(), tour_ncpu(),
           o.quick ? ", quick run" : "");

    /* The delay server of parts 1 and 4, in its own process and hub. */
    struct child httpd;
    bool have_httpd = false;
    if (o.only & (PART_IO | PART_BG)) {
        if (child_start(&httpd, NULL, "httpd", "-", &o, NULL) == 0 &&
            child_port(&httpd, "starting the local server")) {
            have_httpd = true;
            show_done();
        } else {
            fprintf(stderr, "juggle-tour: the local HTTP server did not "
                    "start\n");
            return 1;
        }
    }
    if (o.only & PART_IO)
        part_io(&o, httpd.port);
    if (o.only & PART_CPU)
        part_cpu(&o);
    if (o.only & PART_CONNS)
        part_conns(&o);
    if (o.only & PART_BG)
        part_bg(&o, httpd.port);
    if (have_httpd)
        child_kill(&httpd);

    printf("\nIn short (%.0f s of measuring):\n", tour_now() - t0);
    for (int i = 0; i < 4; i++)
        if (recs[i][0])
            printf("  * %s\n", recs[i]);
    if (o.json && (rc = write_json(o.json, &o)) < 0) {
        fprintf(stderr, "juggle-tour: %s: %s\n", o.json, jg_strerror(rc));
        return 1;
    }
    if (o.svg && (rc = write_svg(o.svg)) < 0) {
        fprintf(stderr, "juggle-tour: %s: %s\n", o.svg, jg_strerror(rc));
        return 1;
    }
    int failed = 0;
    for (int i = 0; i < nrows; i++)
        failed += !rows[i].ok && !rows[i].skipped;
    if (failed)
        printf("%d approach%s failed (see the notes above).\n", failed,
               failed == 1 ? "" : "es");
    return failed ? 1 : 0;
}
