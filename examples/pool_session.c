/* SPDX-License-Identifier: MIT */
/*
 * pool_session.c - the seeds' "global session" pattern with a process pool
 * (multiprocessing.Pool(initializer=set_global_session)): something costly
 * to make - a database connection, an HTTP session - is made once per
 * worker process by the pool's initializer, kept in a global of that
 * worker, and used by every task the worker runs. Processes share no
 * memory, so each worker has its own session; none is made per task.
 *
 * Prints what each task saw, then a summary line: every worker that ran
 * tasks opened its session exactly once.
 */
#include <juggle.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TASKS 8

/* The per-worker "session": a global, so one per process. */
static struct session {
    pid_t pid;
    int opened;                 /* times the initializer ran here */
    int requests;               /* tasks served with it */
} session;

/* The initializer: runs once in each worker before its first task. */
static int open_session(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in, (void)n, (void)out;
    session.pid = getpid();
    session.opened++;           /* 1, unless it ran twice in this process */
    return 0;
}
JG_TASK("open_session", open_session)

/* What a task reports back to the parent. */
struct report {
    int url;
    pid_t pid;
    int opened, request;
};

/* A "download" that uses the worker's session. */
static int download(const void *in, size_t n, struct jg_task_out *out)
{
    struct report r;
    struct timespec ts = { 0, 20 * 1000000L };

    if (n != sizeof(int))
        return jg_task_fail(out, -EINVAL, "want an int");
    if (session.opened == 0)
        return jg_task_fail(out, -ENOTCONN, "no session: init did not run");
    memcpy(&r.url, in, sizeof(int));
    nanosleep(&ts, NULL);       /* the network, as far as we know */
    r.pid = session.pid;
    r.opened = session.opened;
    r.request = ++session.requests;
    return jg_task_out_write(out, &r, sizeof(r));
}
JG_TASK("download", download)

int main(int argc, char **argv)
{
    struct jg_process_pool_opts o = { .workers = 2,
                                      .init_task = "open_session" };
    struct jg_future *f[TASKS];
    struct jg_executor *pool;
    pid_t pids[TASKS];
    int npids = 0, bad = 0, rc;

    /* First thing: start the fork server while single-threaded. */
    if ((rc = jg_main_init(argc, argv)) < 0 ||
        (rc = jg_process_pool_create(&pool, &o)) < 0) {
        fprintf(stderr, "pool: %s\n", jg_strerror(rc));
        return 1;
    }
    for (int i = 0; i < TASKS; i++)
        if ((rc = jg_executor_submit(pool, &f[i], "download", &i,
                                     sizeof(i))) < 0) {
            fprintf(stderr, "submit: %s\n", jg_strerror(rc));
            return 1;
        }
    /* Results in submission order; each future holds the task's bytes. */
    for (int i = 0; i < TASKS; i++) {
        const void *p;
        size_t n;
        struct report r;
        if ((rc = jg_future_bytes(f[i], &p, &n, JG_SEC(30))) < 0 ||
            n != sizeof(r)) {
            fprintf(stderr, "task %d: %s %s\n", i, jg_strerror(rc),
                    jg_future_error_message(f[i]));
            return 1;
        }
        memcpy(&r, p, sizeof(r));
        printf("url %d: worker %d, session opened %d time(s), request #%d\n",
               r.url, (int)r.pid, r.opened, r.request);
        bad += r.opened != 1;
        int k = 0;
        while (k < npids && pids[k] != r.pid)
            k++;
        if (k == npids)
            pids[npids++] = r.pid;
        jg_future_unref(f[i]);
    }
    jg_executor_destroy(pool);
    printf("%d tasks on %d worker(s): %s\n", TASKS, npids,
           bad ? "a session was opened twice" : "one session per worker");
    return bad != 0;
}
