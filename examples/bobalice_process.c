/* SPDX-License-Identifier: MIT */
/*
 * bobalice_process.c - the seeds' bob/alice with processes and a queue
 * (Python's multiprocessing.Process + SimpleQueue): two child processes
 * sleep 0.3 s and 0.1 s, say hello, and put "<name> done!" on a jg_shmq, a
 * queue in shared memory that every process can use. The parent waits for
 * both children, then prints what the queue holds.
 *
 * Prints "hello alice", "hello bob", "alice done!", "bob done!" in about
 * 0.3 s: the children run at the same time.
 *
 * Children are cloned from juggle's fork server, which jg_main_init starts
 * (docs/processes.md). Like a Python queue made before Process.start(),
 * the queue is created before jg_main_init, so the fork server - and every
 * child cloned from it - inherits its shared mapping. (Under
 * JG_START_SPAWN=1 children are re-executed and would not.)
 */
#include <juggle.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Made before jg_main_init: the children see the same queue. */
static struct jg_shmq *results;

struct greeting {
    char name[16];
    int sleep_ms;
};

/*
 * The task each child runs: bytes in (a struct greeting), bytes out
 * (none here: the result travels through the queue instead).
 */
static int greet(const void *in, size_t n, struct jg_task_out *out)
{
    struct greeting g;
    struct timespec ts;
    char done[32];

    (void)out;
    if (n != sizeof(g))
        return jg_task_fail(out, -EINVAL, "bad input size %zu", n);
    memcpy(&g, in, sizeof(g));
    ts.tv_sec = 0;
    ts.tv_nsec = g.sleep_ms * 1000000L;
    nanosleep(&ts, NULL);       /* a child process may simply block */
    printf("hello %s\n", g.name);
    fflush(stdout);             /* our stdout is shared with the parent */
    snprintf(done, sizeof(done), "%s done!", g.name);
    /* A plain process waits on a futex in the region if the ring is full. */
    return jg_shmq_put(results, done, strlen(done), JG_SEC(5));
}
/* Registered by name before main runs, so the children find it too. */
JG_TASK("greet", greet)

int main(int argc, char **argv)
{
    static const struct greeting bob = { "bob", 300 };
    static const struct greeting alice = { "alice", 100 };
    struct jg_process *pb, *pa;
    int64_t t0 = jg_now();
    char msg[64];
    int rc;

    if ((rc = jg_shmq_create(&results, 4096)) < 0 ||
        (rc = jg_main_init(argc, argv)) < 0) {
        fprintf(stderr, "setup: %s\n", jg_strerror(rc));
        return 1;
    }
    if ((rc = jg_process_start(&pb, "greet", &bob, sizeof(bob))) < 0 ||
        (rc = jg_process_start(&pa, "greet", &alice, sizeof(alice))) < 0) {
        fprintf(stderr, "jg_process_start: %s\n", jg_strerror(rc));
        return 1;
    }
    /* Wait for both children (Process.join), then read their results. */
    if ((rc = jg_process_join(pb, JG_SEC(10))) < 0 ||
        (rc = jg_process_join(pa, JG_SEC(10))) < 0) {
        fprintf(stderr, "jg_process_join: %s\n", jg_strerror(rc));
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        ssize_t n = jg_shmq_get(results, msg, sizeof(msg) - 1, JG_SEC(1));
        if (n < 0) {
            fprintf(stderr, "jg_shmq_get: %s\n", jg_strerror((int)n));
            return 1;
        }
        msg[n] = '\0';
        printf("%s\n", msg);
    }
    printf("elapsed %.3f s\n", (double)(jg_now() - t0) / 1e9);
    jg_process_destroy(pb);
    jg_process_destroy(pa);
    jg_shmq_destroy(results);
    return 0;
}
