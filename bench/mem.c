/* SPDX-License-Identifier: MIT */
/*
 * mem.c - resident memory per idle green thread: spawn N, let each run to
 * its park in jg_sleep, and divide the RSS growth by N. Each repetition runs
 * in a fresh forked child, so models and repetitions never share memory.
 */
#include <sys/wait.h>
#include <unistd.h>

#include <juggle.h>

#include "bench.h"

#define N_DEDICATED 20000
#define N_SLICED 200000

struct mem_case {
    int model;
    int n;
};

static void *idle_fn(void *arg)
{
    (void)arg;
    jg_sleep(JG_SEC(100));
    return NULL;
}

static void *nop(void *arg)
{
    return arg;
}

/* Resident bytes of this process (statm's second field). */
static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        bench_die("open /proc/self/statm", 0);
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        bench_die("read /proc/self/statm", 0);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* In the child: bytes per parked green thread. */
static double measure(const struct mem_case *c)
{
    struct jg_spawn_opts o;
    struct jg_green *g;
    int rc;

    memset(&o, 0, sizeof(o));
    o.stack_model = c->model;
    /* The hub, its loop and (sliced) the shared stack exist beforehand. */
    rc = jg_spawn(&g, nop, NULL, &o);
    if (rc < 0)
        bench_die("jg_spawn (warm-up)", rc);
    rc = jg_join(g, NULL, JG_FOREVER);
    if (rc < 0)
        bench_die("jg_join (warm-up)", rc);

    long before = rss_bytes();
    for (int i = 0; i < c->n; i++) {
        rc = jg_spawn(NULL, idle_fn, NULL, &o);
        if (rc < 0)
            bench_die("jg_spawn", rc);
    }
    rc = jg_yield();                /* each runs once, to its park */
    if (rc < 0)
        bench_die("jg_yield", rc);
    if (jg_count() != (size_t)c->n)
        bench_die("parked green threads", (long)jg_count());
    long after = rss_bytes();
    return (double)(after - before) / c->n;
}

static double fork_once(void *arg)
{
    const struct mem_case *c = (const struct mem_case *)arg;
    double v = -1.0;
    int fds[2], status;

    if (pipe(fds) < 0)
        bench_die("pipe", errno);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork", errno);
    if (pid == 0) {
        close(fds[0]);
        v = measure(c);
        if (write(fds[1], &v, sizeof(v)) != (ssize_t)sizeof(v))
            _exit(1);
        _exit(0);                   /* the parked threads go with us */
    }
    close(fds[1]);
    ssize_t n = read(fds[0], &v, sizeof(v));
    close(fds[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0 || n != (ssize_t)sizeof(v))
        bench_die("measuring child", status);
    return v;
}

int main(void)
{
    struct mem_case dedicated = { JG_STACK_DEDICATED, N_DEDICATED };
    struct mem_case sliced = { JG_STACK_SLICED, N_SLICED };

    bench_print("mem.idle.dedicated", bench_run(fork_once, &dedicated), "B");
    bench_print("mem.idle.sliced", bench_run(fork_once, &sliced), "B");
    return 0;
}
