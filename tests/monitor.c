/* SPDX-License-Identifier: MIT */
/*
 * monitor.c - blocking detection: a green thread that spins past the
 * threshold is named with its backtrace, once per hold, with the hold's
 * duration (callback, stderr, and JG_MONITOR in the environment); each of
 * many green threads blocking back to back is reported; a hold that goes on
 * is reported while it lasts; a busy but well-behaved echo server stays
 * unreported; stop joins the watchdog thread.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "juggle.h"
#include "t.h"

/* ---- what the callback saw (it runs on the watchdog thread) ------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int nreports;
static char last_name[64];
static int64_t last_elapsed;
static int last_nframes;
static int last_in_spin;        /* a frame lies inside spin_for */
static int stop_rc = 1;         /* jg_monitor_stop from the callback */

static void spin_for(int64_t ns);

static void on_report(void *arg, const char *name, int64_t elapsed_ns,
                      void *const *frames, int nframes)
{
    uintptr_t lo = (uintptr_t)spin_for, hi = lo + 4096;
    int in = 0;

    for (int i = 0; i < nframes; i++)
        if ((uintptr_t)frames[i] >= lo && (uintptr_t)frames[i] < hi)
            in = 1;
    pthread_mutex_lock(&mu);
    nreports++;
    snprintf(last_name, sizeof last_name, "%s", name);
    last_elapsed = elapsed_ns;
    last_nframes = nframes;
    last_in_spin = in;
    if (arg)
        stop_rc = jg_monitor_stop();
    pthread_mutex_unlock(&mu);
}

static int reports(void)
{
    int n;

    pthread_mutex_lock(&mu);
    n = nreports;
    pthread_mutex_unlock(&mu);
    return n;
}

static void reset_reports(void)
{
    pthread_mutex_lock(&mu);
    nreports = 0;
    last_name[0] = '\0';
    last_elapsed = 0;
    last_nframes = 0;
    last_in_spin = 0;
    pthread_mutex_unlock(&mu);
}

/* Wait (parked) until n reports came or 3 s passed. */
static void await_reports(int n)
{
    for (int i = 0; i < 300 && reports() < n; i++)
        T_OK(jg_sleep(JG_MS(10)));
}

/* ---- spinning green threads --------------------------------------------- */

/* Hold the CPU, reading the clock (the sanitizers deliver signals at such
 * calls), without ever coming back to the hub. */
static __attribute__((noinline)) void spin_for(int64_t ns)
{
    int64_t end = t_now_ns() + ns;

    while (t_now_ns() < end)
        ;
}

/* How long each of a spinner's episodes holds the CPU. */
static int64_t spin_ns = JG_MS(200);

static void *spinner(void *arg)
{
    int episodes = (int)(intptr_t)arg;

    for (int i = 0; i < episodes; i++) {
        spin_for(spin_ns);
        /* A park: the hub polls, which ends the episode. */
        T_OK(jg_sleep(JG_MS(1)));
    }
    return NULL;
}

static void spawn_named(struct jg_green **g, const char *name, int episodes)
{
    struct jg_spawn_opts o = { .name = name };

    T_OK(jg_spawn(g, spinner, (void *)(intptr_t)episodes, &o));
}

/* ---- cases -------------------------------------------------------------- */

/* Named, timed, with its own frames, and once per episode. */
static void test_reports_spinner_once_per_episode(void)
{
    struct jg_green *g;

    reset_reports();
    jg_monitor_set_callback(on_report, NULL);
    T_OK(jg_monitor_start(JG_MS(50)));
    T_EQ(jg_monitor_threshold(), JG_MS(50));

    spawn_named(&g, "spinner", 1);
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    await_reports(1);
    T_OK(jg_sleep(JG_MS(100)));         /* nothing more may come */
    pthread_mutex_lock(&mu);
    /* 200 ms over a 50 ms threshold, sampled 8 times per threshold:
     * still one report. */
    T_EQ(nreports, 1);
    T_STREQ(last_name, "spinner");
    /* Reported as the hold ended, with its duration, not as the
     * threshold passed (about 50 ms). */
    T_ASSERT(last_elapsed >= JG_MS(100));
    T_ASSERT(last_nframes >= 1);
    T_ASSERT(last_in_spin);             /* the hub thread's own stack */
    pthread_mutex_unlock(&mu);

    /* Two episodes, with a park between them: two reports. */
    reset_reports();
    spawn_named(&g, "twice", 2);
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    await_reports(2);
    T_OK(jg_sleep(JG_MS(100)));
    pthread_mutex_lock(&mu);
    T_EQ(nreports, 2);
    T_STREQ(last_name, "twice");
    pthread_mutex_unlock(&mu);

    /* The thread's original context blocks its hub just as well. */
    reset_reports();
    spin_for(JG_MS(200));
    await_reports(1);
    pthread_mutex_lock(&mu);
    T_EQ(nreports, 1);
    T_STREQ(last_name, "main");
    T_ASSERT(last_in_spin);
    pthread_mutex_unlock(&mu);

    T_OK(jg_monitor_stop());
    jg_monitor_set_callback(NULL, NULL);
}

/* An unnamed green thread is reported as jg_name names it. */
static void test_reports_default_name(void)
{
    struct jg_green *g;
    char want[64];

    reset_reports();
    jg_monitor_set_callback(on_report, NULL);
    T_OK(jg_monitor_start(JG_MS(50)));
    T_OK(jg_spawn(&g, spinner, (void *)(intptr_t)1, NULL));
    snprintf(want, sizeof want, "%s", jg_name(g));
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    await_reports(1);
    pthread_mutex_lock(&mu);
    T_EQ(nreports, 1);
    T_STREQ(last_name, want);
    T_ASSERT(strncmp(want, "green-", 6) == 0);
    pthread_mutex_unlock(&mu);
    T_OK(jg_monitor_stop());
    jg_monitor_set_callback(NULL, NULL);
}

/*
 * Run this test binary again, in a child whose stderr goes to out, with
 * argv[1] = name and the variable env ("K=V") set. Returns the wait status.
 * (fork + exec: a fresh process, as the environment case needs, and no
 * sanitizer state inherited from the cases run so far.)
 */
static int run_self(const char *name, const char *env, char *out, size_t cap)
{
    int p[2], status = 0;
    size_t have = 0;
    pid_t pid;

    T_ASSERT(pipe(p) == 0);
    fflush(NULL);
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        char self[] = "monitor", *argv[] = { self, (char *)name, NULL };

        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        putenv((char *)env);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(p[1]);
    for (;;) {
        ssize_t n = read(p[0], out + have, cap - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (have == cap - 1)
            break;
    }
    out[have] = '\0';
    close(p[0]);
    T_ASSERT(waitpid(pid, &status, 0) == pid);
    return status;
}

static int count_of(const char *s, const char *what)
{
    int n = 0;

    while ((s = strstr(s, what)) != NULL) {
        n++;
        s += strlen(what);
    }
    return n;
}

/* The child half of test_stderr_report. */
static void test_stderr_child(void)
{
    struct jg_green *g;

    if (!getenv("JG_TEST_MONITOR_CHILD"))
        T_SKIP_CASE("runs only under test_stderr_report");
    /* No callback: the report goes to stderr. */
    T_OK(jg_monitor_start(JG_MS(50)));
    spawn_named(&g, "stderr-spinner", 1);
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    T_OK(jg_sleep(JG_MS(200)));
    T_OK(jg_monitor_stop());
}

static void test_stderr_report(void)
{
    static char out[65536];
    int st = run_self("test_stderr_child", "JG_TEST_MONITOR_CHILD=1", out,
                      sizeof out);

    fprintf(stderr, "%s", out);
    T_ASSERT(WIFEXITED(st));
    T_EQ(WEXITSTATUS(st), 0);
    T_EQ(count_of(out, "juggle monitor:"), 1);
    T_ASSERT(strstr(out, "\"stderr-spinner\"") != NULL);
    T_ASSERT(strstr(out, "backtrace:") != NULL);
}

/* The child half of test_env_var: JG_MONITOR=50 alone starts the watchdog. */
static void test_env_child(void)
{
    struct jg_green *g;

    if (!getenv("JG_MONITOR"))
        T_SKIP_CASE("runs only under test_env_var");
    /* Read at the first hub creation, not before. */
    T_EQ(jg_monitor_threshold(), 0);
    spawn_named(&g, "env-spinner", 1);
    T_EQ(jg_monitor_threshold(), JG_MS(50));
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    T_OK(jg_sleep(JG_MS(200)));
    T_OK(jg_monitor_stop());
}

static void test_env_var(void)
{
    static char out[65536];
    int st = run_self("test_env_child", "JG_MONITOR=50", out, sizeof out);

    fprintf(stderr, "%s", out);
    T_ASSERT(WIFEXITED(st));
    T_EQ(WEXITSTATUS(st), 0);
    T_EQ(count_of(out, "juggle monitor:"), 1);
    T_ASSERT(strstr(out, "\"env-spinner\"") != NULL);
}

/* ---- a well-behaved server under load ----------------------------------- */

enum { CLIENTS = 50 };
static int port;
static long trips_done;

static void *echo_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[256];

    for (;;) {
        ssize_t n = jg_read(c, buf, sizeof buf, JG_SEC(30));
        if (n <= 0) {
            T_EQ(n, 0);
            break;
        }
        T_EQ(jg_write(c, buf, (size_t)n, NULL, JG_SEC(30)), (size_t)n);
    }
    T_OK(jg_close(c));
    return NULL;
}

static void *echo_server(void *arg)
{
    int l = *(int *)arg;

    for (;;) {
        int c = jg_accept(l, NULL, NULL, JG_FOREVER);
        if (c == -EBADF)
            return NULL;
        T_OK(c);
        T_OK(jg_spawn(NULL, echo_conn, (void *)(intptr_t)c, NULL));
    }
}

static void *echo_client(void *arg)
{
    long trips = (long)(intptr_t)arg;
    char out[64], in[64];
    int c = jg_tcp_dial("127.0.0.1", port, JG_SEC(30));

    T_OK(c);
    for (long i = 0; i < trips; i++) {
        int len = snprintf(out, sizeof out, "trip %ld", i);
        int have = 0;

        T_EQ(jg_write(c, out, (size_t)len, NULL, JG_SEC(30)), (size_t)len);
        while (have < len) {
            ssize_t n = jg_read(c, in + have, sizeof in - (size_t)have,
                                JG_SEC(30));
            T_ASSERT(n > 0);
            have += (int)n;
        }
        T_EQ(have, len);
        T_ASSERT(memcmp(in, out, (size_t)len) == 0);
        trips_done++;
    }
    T_OK(jg_close(c));
    return NULL;
}

static void test_silent_under_load(void)
{
    long trips = t_scale(2000);
    struct jg_green *srv, *cl[CLIENTS], *g;
    int l = jg_tcp_listen("127.0.0.1", 0);
    int64_t t0;

    T_OK(l);
    port = jg_sock_port(l);
    T_ASSERT(port > 0);
    reset_reports();
    jg_monitor_set_callback(on_report, NULL);
    T_OK(jg_monitor_start(JG_MS(200)));

    t0 = t_now_ns();
    T_OK(jg_spawn(&srv, echo_server, &l, NULL));
    for (int i = 0; i < CLIENTS; i++)
        T_OK(jg_spawn(&cl[i], echo_client, (void *)(intptr_t)trips, NULL));
    for (int i = 0; i < CLIENTS; i++)
        T_OK(jg_join(cl[i], NULL, JG_SEC(60)));
    T_OK(jg_close(l));
    T_OK(jg_join(srv, NULL, JG_SEC(5)));
    fprintf(stderr, "%d clients x %ld round trips in %.2f s\n", CLIENTS,
            trips, (double)(t_now_ns() - t0) / 1e9);
    T_EQ(trips_done, CLIENTS * trips);
    T_EQ(reports(), 0);

    /* The watchdog was watching all along: a real block is seen. */
    spin_ns = JG_MS(400);
    spawn_named(&g, "control", 1);
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    spin_ns = JG_MS(200);
    await_reports(1);
    T_EQ(reports(), 1);
    pthread_mutex_lock(&mu);
    T_STREQ(last_name, "control");
    pthread_mutex_unlock(&mu);
    T_OK(jg_monitor_stop());
    jg_monitor_set_callback(NULL, NULL);
}


/* ---- holds back to back, long holds, a hub that goes away --------------- */

/* Every report of the cases below (the callback runs on the watchdog). */
enum { MAX_HOLDS = 64 };
static struct hold_rep {
    char name[64];
    int64_t elapsed;
} holds[MAX_HOLDS];
static int nholds;

static void on_hold(void *arg, const char *name, int64_t elapsed_ns,
                    void *const *frames, int nframes)
{
    (void)frames, (void)nframes, (void)arg;
    pthread_mutex_lock(&mu);
    if (nholds < MAX_HOLDS) {
        snprintf(holds[nholds].name, sizeof holds[0].name, "%s", name);
        holds[nholds].elapsed = elapsed_ns;
    }
    nholds++;
    pthread_mutex_unlock(&mu);
}

static void reset_holds(void)
{
    pthread_mutex_lock(&mu);
    nholds = 0;
    pthread_mutex_unlock(&mu);
}

/* Block the whole OS thread in plain sleeps (the monitor's sample may
 * interrupt one: sleep on to the same instant). In steps of 10 ms: TSan
 * delivers a signal only as an intercepted call returns. */
static void plain_sleep(int64_t ns)
{
    struct timespec ts;
    int64_t until = t_now_ns() + ns, step;

    do {
        step = t_now_ns() + JG_MS(10);
        if (step > until)
            step = until;
        ts.tv_sec = (time_t)(step / 1000000000LL);
        ts.tv_nsec = (long)(step % 1000000000LL);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
                               NULL) != 0)
            ;
    } while (step < until);
}

static void *plain_sleeper(void *arg)
{
    plain_sleep((int64_t)(intptr_t)arg);
    return NULL;
}

/*
 * Issue 9: 40 green threads, each blocking the hub 53 ms in a plain sleep
 * and returning, hand the CPU straight to one another: the monitor gave one
 * "20.8 ms" report for the 2.1 s. Each is a hold of its own: each gets a
 * report naming it, with its own duration.
 */
static void test_reports_each_green_thread_of_back_to_back_holds(void)
{
    int n = (int)t_scale(40);
    struct jg_green *g[40];
    bool seen[40] = { false };
    char name[40][16];

    if (n > 40)
        n = 40;
    reset_holds();
    jg_monitor_set_callback(on_hold, NULL);
    T_OK(jg_monitor_start(JG_MS(20)));
    for (int i = 0; i < n; i++) {
        struct jg_spawn_opts o = { .name = name[i] };

        snprintf(name[i], sizeof name[i], "hold-%d", i);
        T_OK(jg_spawn(&g[i], plain_sleeper, (void *)(intptr_t)JG_MS(53),
                      &o));
    }
    for (int i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_SEC(30)));
    T_OK(jg_monitor_stop());    /* the last hold is reported by now */
    jg_monitor_set_callback(NULL, NULL);

    pthread_mutex_lock(&mu);
    fprintf(stderr, "%d holds of 53 ms: %d reports\n", n, nholds);
    for (int i = 0; i < nholds && i < MAX_HOLDS; i++) {
        int k = -1;

        fprintf(stderr, "   %s %.1f ms\n", holds[i].name,
                (double)holds[i].elapsed / 1e6);
        T_ASSERT(sscanf(holds[i].name, "hold-%d", &k) == 1);
        T_ASSERT(k >= 0 && k < n);
        T_ASSERT(!seen[k]);                     /* one report per hold */
        seen[k] = true;
        T_ASSERT(holds[i].elapsed >= JG_MS(40));
    }
    T_ASSERT(nholds >= n - 1);
    T_ASSERT(nholds <= n);
    pthread_mutex_unlock(&mu);
}

/* A hold that does not end is reported while it lasts (at 1 s here), then
 * once more, with its whole duration, when it ends. */
static void test_reports_long_hold_while_it_lasts(void)
{
    reset_holds();
    jg_monitor_set_callback(on_hold, NULL);
    T_OK(jg_monitor_start(JG_MS(50)));
    T_OK(jg_yield());                           /* this thread's hub */
    plain_sleep(JG_MS(1500));
    T_OK(jg_sleep(JG_MS(50)));                  /* ends the hold */
    T_OK(jg_monitor_stop());
    jg_monitor_set_callback(NULL, NULL);
    pthread_mutex_lock(&mu);
    T_EQ(nholds, 2);
    T_STREQ(holds[0].name, "main");
    T_STREQ(holds[1].name, "main");
    T_ASSERT(holds[0].elapsed >= JG_SEC(1));
    T_ASSERT(holds[1].elapsed >= JG_MS(1400));
    T_ASSERT(holds[1].elapsed > holds[0].elapsed);
    pthread_mutex_unlock(&mu);
}

/* A thread whose hub goes away right after a long hold: still reported. */
static void *hold_then_exit(void *arg)
{
    struct jg_spawn_opts o = { .name = "last-words" };
    struct jg_green *g;

    (void)arg;
    T_OK(jg_spawn(&g, plain_sleeper, (void *)(intptr_t)JG_MS(150), &o));
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    return NULL;
}

static void test_reports_hold_of_exiting_thread(void)
{
    pthread_t t;

    reset_holds();
    jg_monitor_set_callback(on_hold, NULL);
    T_OK(jg_monitor_start(JG_MS(50)));
    T_ASSERT(pthread_create(&t, NULL, hold_then_exit, NULL) == 0);
    T_ASSERT(pthread_join(t, NULL) == 0);
    T_OK(jg_monitor_stop());
    jg_monitor_set_callback(NULL, NULL);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nholds && i < MAX_HOLDS; i++)
        fprintf(stderr, "   %s %.1f ms\n", holds[i].name,
                (double)holds[i].elapsed / 1e6);
    /* The main thread's own hub, blocked in pthread_join meanwhile, may
     * be reported too: look at the other thread's hold only. */
    int mine = 0;
    for (int i = 0; i < nholds && i < MAX_HOLDS; i++) {
        if (strcmp(holds[i].name, "last-words") == 0) {
            mine++;
            T_ASSERT(holds[i].elapsed >= JG_MS(100));
        }
    }
    T_EQ(mine, 1);
    pthread_mutex_unlock(&mu);
}

/* ---- lifecycle ---------------------------------------------------------- */

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    T_ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_start_stop(void)
{
    int before = threads_now();
    struct jg_green *g;

    T_ERR(jg_monitor_start(0), -EINVAL);
    T_ERR(jg_monitor_start(-1), -EINVAL);
    T_ERR(jg_monitor_start(JG_MS(1) - 1), -EINVAL);
    T_ERR(jg_monitor_start(JG_SEC(3601)), -EINVAL);
    T_ERR(jg_monitor_stop(), -ESRCH);
    T_EQ(jg_monitor_threshold(), 0);

    T_OK(jg_monitor_start(JG_MS(500)));
    T_EQ(threads_now(), before + 1);
    /* Started again: the threshold changes, no second thread. */
    T_OK(jg_monitor_start(JG_MS(40)));
    T_EQ(jg_monitor_threshold(), JG_MS(40));
    T_EQ(threads_now(), before + 1);

    /* Stop from the callback is refused; stop itself joins. */
    reset_reports();
    stop_rc = 1;
    jg_monitor_set_callback(on_report, &stop_rc);
    spawn_named(&g, "stopper", 1);
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    await_reports(1);
    pthread_mutex_lock(&mu);
    T_EQ(nreports, 1);
    T_ERR(stop_rc, -EDEADLK);
    pthread_mutex_unlock(&mu);
    T_OK(jg_monitor_stop());
    T_EQ(jg_monitor_threshold(), 0);
    T_EQ(threads_now(), before);
    T_ERR(jg_monitor_stop(), -ESRCH);

    /* Stopped means silent. */
    reset_reports();
    spawn_named(&g, "unwatched", 1);
    T_OK(jg_join(g, NULL, JG_SEC(10)));
    T_EQ(reports(), 0);
    jg_monitor_set_callback(NULL, NULL);
}

T_MAIN(T_CASE(test_reports_spinner_once_per_episode),
       T_CASE(test_reports_default_name),
       T_CASE(test_stderr_child),
       T_CASE(test_stderr_report),
       T_CASE(test_env_child),
       T_CASE(test_env_var),
       T_CASE(test_silent_under_load),
       T_CASE(test_reports_each_green_thread_of_back_to_back_holds),
       T_CASE(test_reports_long_hold_while_it_lasts),
       T_CASE(test_reports_hold_of_exiting_thread),
       T_CASE(test_start_stop))
