/* SPDX-License-Identifier: MIT */
/*
 * bobalice_thread.c - the seeds' bob/alice with OS threads and a queue
 * (Python's threading.Thread + queue.Queue): two pthreads sleep 0.3 s and
 * 0.1 s, say hello, and put "<name> done!" on a queue that main reads. The
 * queue is a plain mutex + condition variable: threads need no runtime.
 *
 * Prints "hello alice", "hello bob", "alice done!", "bob done!": the
 * sleeps overlap, so the whole run takes about 0.3 s.
 */
#include <juggle.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* A bounded FIFO of strings shared by threads (queue.Queue). */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    const char *items[8];
    unsigned head, count;
};

static void queue_put(struct queue *q, const char *s)
{
    pthread_mutex_lock(&q->lock);
    q->items[(q->head + q->count++) % 8] = s;   /* never more than 2 here */
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

static const char *queue_get(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    /* A loop, not an if: wake-ups may be spurious. */
    while (q->count == 0)
        pthread_cond_wait(&q->nonempty, &q->lock);
    const char *s = q->items[q->head];
    q->head = (q->head + 1) % 8;
    q->count--;
    pthread_mutex_unlock(&q->lock);
    return s;
}

struct worker {
    const char *name, *done;
    long sleep_ms;
    struct queue *q;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    struct timespec ts = { 0, w->sleep_ms * 1000000L };

    /* A real blocking sleep: only this OS thread waits. */
    nanosleep(&ts, NULL);
    printf("hello %s\n", w->name);
    fflush(stdout);             /* keep the lines in the order they happen */
    queue_put(w->q, w->done);
    return NULL;
}

int main(void)
{
    struct queue q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                       { 0 }, 0, 0 };
    struct worker bob = { "bob", "bob done!", 300, &q };
    struct worker alice = { "alice", "alice done!", 100, &q };
    pthread_t tb, ta;
    int64_t t0 = jg_now();

    if (pthread_create(&tb, NULL, run, &bob) ||
        pthread_create(&ta, NULL, run, &alice)) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    /* The results, in the order the threads finished. */
    for (int i = 0; i < 2; i++)
        printf("%s\n", queue_get(&q));
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    printf("elapsed %.3f s\n", (double)(jg_now() - t0) / 1e9);
    return 0;
}
