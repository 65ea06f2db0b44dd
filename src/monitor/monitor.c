/* SPDX-License-Identifier: MIT */
/*
 * monitor.c - blocking detection: a watchdog thread that watches every hub's
 * heartbeat (h->beat) and switch count (h->switches) and, when one green
 * thread holds its hub past the threshold (neither the hub loop nor another
 * green thread got the CPU meanwhile), has the hub's own OS thread sample it
 * (name and backtrace, in a SIGURG handler), then reports that hold when it
 * ends, with its duration: every green thread of a run of long holds back
 * to back gets its own report. A hold that goes on is also reported while
 * it lasts, at growing intervals.
 * Invariant: the watchdog touches a hub and its record only under `lock`,
 * which the hub's thread also takes to unregister before the hub goes away;
 * the record of a hub that went away in the middle of a reported hold stays
 * on the `retired` list until the watchdog has reported it.
 */
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "juggle/monitor.h"
#include "hub.h"
#include "sys.h"

/* Default action "ignore", rarely used by programs (Go's runtime chose it
 * for preemption for the same reasons). */
#define SAMPLE_SIG SIGURG
#define NAME_LEN 64
/* A sample not answered by then is reported without name and frames. */
#define ANSWER_WAIT_MIN JG_SEC(1)
/* A hold still going on is reported at this age (or twice the threshold,
 * if longer), then at every doubling of its age, then when it ends. */
#define ONGOING_FIRST JG_SEC(1)

/* IDLE: no hold past the threshold yet; SAMPLING: one is, its sample was
 * asked for; HELD: sampled (or given up on), reported when it ends. */
enum { IDLE, SAMPLING, HELD };

/* The watchdog's record of one hub (allocated by the hub's thread). */
struct jg__monitor_hub {
    struct jg__monitor_hub *next;
    struct jg_hub *hub;
    pthread_t thread;
    /* The watchdog's view, under `lock`. */
    uint64_t seen;              /* the beat last seen */
    uint64_t seen_sw;           /* the switch count last seen */
    int64_t looked;             /* when the watchdog last looked */
    int64_t since;              /* when the current hold began (estimate) */
    int64_t asked;              /* when it asked for the current sample */
    int64_t next_ongoing;       /* age of the next "still holding" report */
    int64_t gone;               /* retired: when the hub went away */
    int state;
    /*
     * A sample: the watchdog bumps req (release) and signals the thread;
     * the handler, if done != req, fills the answer and publishes done =
     * req (release); the watchdog reads the answer only after an acquire
     * load of done shows its request. The handler writes nothing once done
     * == req, so the two never touch the answer at the same time.
     */
    _Atomic uint32_t req, done;
    uint64_t a_beat;            /* the hub's beat as the handler saw it */
    uint64_t a_sw;              /* and its switch count */
    int64_t a_now;
    long a_tid;
    int a_nframes;
    char a_name[NAME_LEN];
    void *a_frames[JG_MONITOR_FRAMES];
};

/* One report, copied out of the registry for delivery without the lock. */
struct report {
    char name[NAME_LEN];
    int64_t elapsed;
    bool ongoing;               /* the hold goes on: elapsed is "so far" */
    long tid;
    int nframes;
    void *frames[JG_MONITOR_FRAMES];
};

/* `ctl` serializes start and stop (held across the join); `lock` guards the
 * registry and everything below it. Order: ctl, then lock. */
static pthread_mutex_t ctl = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;     /* CLOCK_MONOTONIC (init_once) */
static struct jg__monitor_hub *hubs;
/* Records of hubs that went away during a hold past the threshold, waiting
 * for the watchdog to report that hold and free them. */
static struct jg__monitor_hub *retired;
static bool running, stopping;
static pthread_t watchdog;
static int64_t threshold;
static jg_monitor_fn report_fn;
static void *report_arg;

/* The SIGURG disposition ours replaced: other SIGURGs go on to it. */
static struct sigaction prev_sa;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

/* ---- the sampling signal (runs on the hub's thread) --------------------- */
/*
 * Async-signal-safe throughout: it reads this thread's own hub (the
 * interrupted code is the only writer, so what it reads is consistent
 * enough for a name), copies bytes, reads the clock, and calls
 * backtrace(3), whose one allocation (loading libgcc_s) jg_monitor_start
 * made happen beforehand; glibc 2.35+ with GCC 12+'s unwinder finds
 * frame tables through _dl_find_object, without the loader lock.
 */

static void name_of(const struct jg_green *g, char *out)
{
    const char *s = g->name;
    char num[24];
    size_t i = 0, j;

    if (!s) {
        if (g->flags & JG__G_MAIN) {
            s = "main";
        } else if (g->flags & JG__G_HUB) {
            s = "hub";
        } else {
            /* jg_name's on-demand name, without its malloc. */
            memcpy(out, "green-", 6);
            i = 6;
            s = jg__utoa(num, g->id);
        }
    }
    for (j = 0; s[j] && i < NAME_LEN - 1; j++)
        out[i++] = s[j];
    out[i] = '\0';
}

/* Inlined: backtrace() then counts exactly on_sample and the kernel's
 * signal trampoline above the interrupted frame (take_answer drops 2). */
static inline __attribute__((always_inline)) void
answer(struct jg_hub *h, struct jg__monitor_hub *r)
{
    r->a_beat = atomic_load_explicit(&h->beat, memory_order_relaxed);
    r->a_sw = atomic_load_explicit(&h->switches, memory_order_relaxed);
    name_of(h->current, r->a_name);
    r->a_now = jg_now();
    r->a_tid = (long)gettid();
    r->a_nframes = backtrace(r->a_frames, JG_MONITOR_FRAMES);
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    if (prev_sa.sa_flags & SA_SIGINFO) {
        if (prev_sa.sa_sigaction)
            prev_sa.sa_sigaction(sig, si, uc);
    } else if (prev_sa.sa_handler != SIG_DFL &&
               prev_sa.sa_handler != SIG_IGN) {
        prev_sa.sa_handler(sig);
    }
}

static void on_sample(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    struct jg_hub *h = jg__tls_hub;
    struct jg__monitor_hub *r = h ? h->mon : NULL;
    uint32_t want;

    /* Ours: sent by pthread_kill from this process while a request of
     * this hub is open. Anything else (out-of-band TCP data, the
     * program's own SIGURG) goes to the previous handler. */
    if (r && si && si->si_code == SI_TKILL && si->si_pid == getpid()) {
        want = atomic_load_explicit(&r->req, memory_order_acquire);
        if (atomic_load_explicit(&r->done, memory_order_relaxed) != want) {
            answer(h, r);
            atomic_store_explicit(&r->done, want, memory_order_release);
            errno = saved_errno;
            return;
        }
    }
    chain(sig, si, uc);
    errno = saved_errno;
}

/* Install on_sample unless it is already SIGURG's handler. */
static int install_handler(void)
{
    struct sigaction sa, cur;

    if (jg__sys_sigaction(SAMPLE_SIG, NULL, &cur) == 0 &&
        (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sample)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sample;
    /* SA_RESTART: read, write, accept, ... resume after the handler.
     * SA_ONSTACK: a green thread deep in its stack may have no room for
     * the unwinder; the hub's threads have a 64 KiB sigaltstack. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (jg__sys_sigaction(SAMPLE_SIG, &sa, &cur) < 0)
        return -errno;
    prev_sa = cur;
    return 0;
}

/* ---- the registry ------------------------------------------------------- */

/* JG_MONITOR=<ms>: start the watchdog as the process makes its first hub. */
static void start_from_env_once(void)
{
    const char *s = getenv("JG_MONITOR");
    int saved_errno = errno;
    long long ms;
    char *end;

    if (!s || !*s)
        return;
    errno = 0;
    ms = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || ms < 1 || ms > 3600 * 1000)
        jg__write_stderr("juggle: JG_MONITOR wants milliseconds from 1 to "
                         "3600000; ignored\n");
    else if (jg_monitor_start(JG_MS(ms)) < 0)
        jg__write_stderr("juggle: JG_MONITOR: no watchdog thread\n");
    errno = saved_errno;
}

static void hub_added(struct jg_hub *h)
{
    struct jg__monitor_hub *r = calloc(1, sizeof *r);

    if (r) {
        r->hub = h;
        r->thread = pthread_self();
        /* Before it is linked: a sample must always find its record. */
        h->mon = r;
        pthread_mutex_lock(&lock);
        r->seen = atomic_load_explicit(&h->beat, memory_order_relaxed);
        r->seen_sw = atomic_load_explicit(&h->switches,
                                          memory_order_relaxed);
        r->since = r->looked = jg_now();
        r->next = hubs;
        hubs = r;
        pthread_mutex_unlock(&lock);
    }
    /* Without a record the hub is simply not watched. Either way, the
     * first hub of the process reads JG_MONITOR. */
    pthread_once(&env_once, start_from_env_once);
}

static void hub_removed(struct jg_hub *h)
{
    struct jg__monitor_hub *r = h->mon, **p;
    bool keep;

    if (!r)
        return;
    pthread_mutex_lock(&lock);
    for (p = &hubs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    /* A hold past the threshold ended with the hub (its thread exits):
     * the watchdog still reports it, from the record, then frees it. */
    keep = running && r->state != IDLE;
    if (keep) {
        r->gone = jg_now();
        r->hub = NULL;
        r->next = retired;
        retired = r;
    }
    pthread_mutex_unlock(&lock);
    /* The watchdog cannot signal us any more; a signal already pending
     * must find no record before the memory goes (the handler runs on this
     * thread, so a compiler barrier orders the two). */
    h->mon = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    if (!keep)
        free(r);
}

/* The hub layer tells us of hubs (it must not call up into this layer);
 * registered before main, so before any hub is made. */
static const struct jg__hub_observer watch = { hub_added, hub_removed };

/* Referenced from juggle/monitor.h so that static links keep this object
 * (and JG_MONITOR works without a call to jg_monitor_*). */
const int jg_monitor_hook = 1;

__attribute__((constructor)) static void monitor_ctor(void)
{
    jg__hub_observe(&watch);
}

/* ---- the watchdog thread ------------------------------------------------ */

/*
 * Fill out with the hold of r that lasted `elapsed`: the sampled name and
 * frames when the sample answered for this very hold, "?" otherwise.
 */
static void take_report(struct jg__monitor_hub *r, int64_t elapsed,
                        bool ongoing, struct report *out)
{
    uint32_t req = atomic_load_explicit(&r->req, memory_order_relaxed);
    int skip = 0;

    out->elapsed = elapsed;
    out->ongoing = ongoing;
    if (r->state == IDLE ||
        atomic_load_explicit(&r->done, memory_order_acquire) != req ||
        r->a_beat != r->seen || r->a_sw != r->seen_sw) {
        /* Not answered (the thread blocks the signal, or the hold ended
         * before the handler ran): report what the watchdog knows. */
        strcpy(out->name, "?");
        out->tid = 0;
        out->nframes = 0;
        return;
    }
    memcpy(out->name, r->a_name, strlen(r->a_name) + 1);
    out->tid = r->a_tid;
    /* backtrace() counts from inside the handler: drop on_sample and the
     * signal trampoline (__restore_rt, or the vDSO's on aarch64), so the
     * first frame is the interrupted code. */
    if (r->a_nframes > 2)
        skip = 2;
    out->nframes = r->a_nframes - skip;
    memcpy(out->frames, r->a_frames + skip,
           (size_t)out->nframes * sizeof(void *));
}

/* The first "still holding" report of a hold comes at this age. */
static int64_t first_ongoing(int64_t thr)
{
    return thr > ONGOING_FIRST / 2 ? 2 * thr : ONGOING_FIRST;
}

/*
 * One record's step (under lock). Returns true when out holds a report.
 *
 * A hold is the time one green thread keeps the CPU of its hub: it ends
 * when the hub loop regains control (the beat moves) or when the CPU goes
 * straight to another green thread (the switch count moves). The watchdog
 * sees the end at its next look, so it takes the middle of the interval
 * between two looks as the moment: the end of one hold and the start of
 * the next, each off by at most half a look period (a watchdog delayed by
 * a loaded machine errs on both sides, not only one).
 */
static bool step(struct jg__monitor_hub *r, int64_t now, int64_t thr,
                 struct report *out)
{
    uint64_t b = atomic_load_explicit(&r->hub->beat, memory_order_relaxed);
    uint64_t sw = atomic_load_explicit(&r->hub->switches,
                                       memory_order_relaxed);
    uint32_t req = atomic_load_explicit(&r->req, memory_order_relaxed);
    int64_t at;
    bool rep = false;

    if (b != r->seen || sw != r->seen_sw) {
        /* The hold ended since the last look: report it if it was past
         * the threshold, and a new one starts. */
        at = r->looked + (now - r->looked) / 2;
        if (r->state != IDLE) {
            take_report(r, at - r->since, false, out);
            rep = true;
        }
        r->seen = b;
        r->seen_sw = sw;
        r->since = at;
        r->looked = now;
        r->state = IDLE;
        return rep;
    }
    r->looked = now;
    if (b & 1)
        return false;           /* idle in its poll: not blocking */
    switch (r->state) {
    case IDLE:
        if (now - r->since <= thr)
            return false;
        r->state = SAMPLING;
        r->asked = now;
        r->next_ongoing = first_ongoing(thr);
        atomic_store_explicit(&r->req, req + 1, memory_order_release);
        /* The thread is alive: it unregisters (under lock) before it
         * ends. */
        if (pthread_kill(r->thread, SAMPLE_SIG) != 0)
            r->state = HELD;    /* reported unsampled */
        return false;
    case SAMPLING:
        /* Answered; or the thread blocks the signal, or (TSan) only takes
         * it at its next intercepted call: stop waiting, the report says
         * what is known. */
        if (atomic_load_explicit(&r->done, memory_order_acquire) == req ||
            now - r->asked > (thr > ANSWER_WAIT_MIN ? thr : ANSWER_WAIT_MIN))
            r->state = HELD;
        break;
    default:
        break;
    }
    /* A long hold is also reported while it lasts. */
    if (now - r->since < r->next_ongoing)
        return false;
    while (r->next_ongoing <= now - r->since)
        r->next_ongoing *= 2;
    take_report(r, now - r->since, true, out);
    return true;
}

/* The watchdog stops: report a hold past the threshold as it stands (ended
 * or not) and forget it. Under lock; true when out holds a report. */
static bool step_last(struct jg__monitor_hub *r, int64_t now,
                      struct report *out)
{
    uint64_t b = atomic_load_explicit(&r->hub->beat, memory_order_relaxed);
    uint64_t sw = atomic_load_explicit(&r->hub->switches,
                                       memory_order_relaxed);
    bool ended = b != r->seen || sw != r->seen_sw;

    if (r->state == IDLE)
        return false;
    take_report(r, (ended ? r->looked + (now - r->looked) / 2 : now) -
                r->since, !ended, out);
    r->state = IDLE;
    return true;
}

/* Report one retired hold and free its record (under lock); false when
 * there is none. */
static bool step_retired(struct report *out)
{
    struct jg__monitor_hub *r = retired;

    if (!r)
        return false;
    retired = r->next;
    take_report(r, r->gone - r->since, false, out);
    free(r);
    return true;
}

static void emit(const struct report *rep, jg_monitor_fn fn, void *arg)
{
    char line[256];
    int n;

    if (fn) {
        fn(arg, rep->name, rep->elapsed, rep->frames, rep->nframes);
        return;
    }
    n = snprintf(line, sizeof line,
                 "juggle monitor: green thread \"%s\" %s its hub "
                 "(thread %ld) for %.1f ms%s without coming back to the "
                 "loop%s\n", rep->name, rep->ongoing ? "has held" : "held",
                 rep->tid, (double)rep->elapsed / 1e6,
                 rep->ongoing ? " so far" : "",
                 rep->nframes > 0 ? "; backtrace:" : "");
    if (n > 0)
        jg__write_stderr(line);
    if (rep->nframes > 0)
        backtrace_symbols_fd(rep->frames, rep->nframes, STDERR_FILENO);
}

static void *watchdog_main(void *unused)
{
    struct report rep;
    struct jg__monitor_hub *r;

    (void)unused;
    jg__block_all_signals();
    pthread_mutex_lock(&lock);
    /* Holds start now: nothing was watched while we were stopped. */
    for (r = hubs; r; r = r->next) {
        r->seen = atomic_load_explicit(&r->hub->beat, memory_order_relaxed);
        r->seen_sw = atomic_load_explicit(&r->hub->switches,
                                          memory_order_relaxed);
        r->since = r->looked = jg_now();
        r->state = IDLE;
    }
    for (;;) {
        int64_t now = jg_now(), wait, until;
        bool found = step_retired(&rep), answer_soon = false;
        struct timespec ts;

        for (r = hubs; r && !found; r = r->next) {
            if (stopping) {
                /* Nothing is lost: the holds past the threshold are
                 * reported before jg_monitor_stop returns. */
                found = step_last(r, now, &rep);
                continue;
            }
            found = step(r, now, threshold, &rep);
            if (r->state == SAMPLING && now - r->asked < JG_MS(20))
                answer_soon = true;
        }
        if (!found && stopping)
            break;
        if (found) {
            jg_monitor_fn fn = report_fn;
            void *arg = report_arg;

            /* Deliver without the lock: the callback may take its time,
             * and hubs must stay free to come and go meanwhile. */
            pthread_mutex_unlock(&lock);
            emit(&rep, fn, arg);
            pthread_mutex_lock(&lock);
            continue;
        }
        /* Look 8 times per threshold: a hold is seen past the threshold
         * at most an eighth of it late, and its end and start are timed
         * to a sixteenth. An answer is normally there within
         * microseconds. */
        wait = threshold / 8;
        if (wait < JG_MS(1) || answer_soon)
            wait = JG_MS(1);
        if (wait > JG_MS(100))
            wait = JG_MS(100);
        until = now + wait;
        ts.tv_sec = (time_t)(until / JG_SEC(1));
        ts.tv_nsec = (long)(until % JG_SEC(1));
        pthread_cond_timedwait(&wake, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* ---- fork --------------------------------------------------------------- */
/*
 * A forked child has one thread: no watchdog, and only its own hub. The
 * locks are taken across fork so the child finds the registry whole.
 */
static void fork_prepare(void)
{
    pthread_mutex_lock(&ctl);
    pthread_mutex_lock(&lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&ctl);
}

static void fork_child(void)
{
    struct jg__monitor_hub **p = &hubs, *r;

    running = stopping = false;
    threshold = 0;
    while ((r = retired) != NULL) {
        retired = r->next;
        free(r);
    }
    while ((r = *p) != NULL) {
        if (pthread_equal(r->thread, pthread_self())) {
            p = &r->next;
            continue;
        }
        /* That thread does not exist here; its hub is abandoned. */
        *p = r->next;
        r->hub->mon = NULL;
        free(r);
    }
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&ctl);
}

static void init_once(void)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &a);
    pthread_condattr_destroy(&a);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- the API ---------------------------------------------------------- */

static bool on_watchdog(void)
{
    bool self;

    pthread_mutex_lock(&lock);
    self = running && pthread_equal(watchdog, pthread_self());
    pthread_mutex_unlock(&lock);
    return self;
}

int jg_monitor_start(int64_t threshold_ns)
{
    sigset_t all, old;
    void *warm[4];
    int rc;

    if (threshold_ns < JG_MS(1) || threshold_ns > JG_SEC(3600))
        return -EINVAL;
    pthread_once(&once, init_once);
    if (on_watchdog()) {
        /* From the callback: only the threshold can change (taking ctl
         * here could wait for a stop that waits for us). */
        pthread_mutex_lock(&lock);
        threshold = threshold_ns;
        pthread_mutex_unlock(&lock);
        return 0;
    }
    pthread_mutex_lock(&ctl);
    pthread_mutex_lock(&lock);
    threshold = threshold_ns;
    if (running) {
        /* Recompute the period now rather than at the next tick. */
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        pthread_mutex_unlock(&ctl);
        return 0;
    }
    stopping = false;
    pthread_mutex_unlock(&lock);

    /* backtrace's first call loads libgcc_s (malloc, dlopen): never in
     * the signal handler. */
    (void)backtrace(warm, 4);
    rc = install_handler();
    if (rc < 0)
        goto out;
    /* The thread starts with every signal blocked, so none lands on it
     * before it blocks them itself. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&watchdog, NULL, watchdog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        pthread_mutex_lock(&lock);
        running = true;
        pthread_mutex_unlock(&lock);
    }
out:
    pthread_mutex_unlock(&ctl);
    return rc;
}

int jg_monitor_stop(void)
{
    struct jg__monitor_hub *r;

    pthread_once(&once, init_once);
    if (on_watchdog())
        return -EDEADLK;
    pthread_mutex_lock(&ctl);
    pthread_mutex_lock(&lock);
    if (!running) {
        pthread_mutex_unlock(&lock);
        pthread_mutex_unlock(&ctl);
        return -ESRCH;
    }
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(watchdog, NULL);
    pthread_mutex_lock(&lock);
    running = false;
    threshold = 0;
    /* Hubs that went away after the watchdog's last look: unreported. */
    while ((r = retired) != NULL) {
        retired = r->next;
        free(r);
    }
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&ctl);
    return 0;
}

int64_t jg_monitor_threshold(void)
{
    int64_t t;

    pthread_mutex_lock(&lock);
    t = running ? threshold : 0;
    pthread_mutex_unlock(&lock);
    return t;
}

void jg_monitor_set_callback(jg_monitor_fn fn, void *arg)
{
    pthread_mutex_lock(&lock);
    report_fn = fn;
    report_arg = arg;
    pthread_mutex_unlock(&lock);
}
