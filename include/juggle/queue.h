/* SPDX-License-Identifier: MIT */
/*
 * juggle/queue.h - green queues (gevent.queue, asyncio.Queue) and Go-style
 * channels with select. Both belong to the hub of the OS thread that created
 * them: every call from another OS thread returns -EXDEV. Waiters are served
 * first-come first-served and nothing put is ever lost: an item is handed to
 * a getter only when that getter resumes, and goes back if it was killed.
 *
 * Timeouts (int64_t ns): 0 tries without parking (-EAGAIN if the call would
 * wait), JG_FOREVER waits without limit, any other negative is -EINVAL. A
 * positive timeout that passes, or an enclosing deadline scope that expires,
 * gives -ETIMEDOUT; a killed caller gets -ECANCELED.
 */
#ifndef JUGGLE_QUEUE_H
#define JUGGLE_QUEUE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- queue --------------------------------------------------------------- */

struct jg_queue;

enum jg_queue_kind {
    JG_QUEUE_FIFO = 0,          /* first in, first out */
    JG_QUEUE_LIFO = 1,          /* last in, first out (a stack) */
    /* Lowest priority value first; equal priorities in FIFO order. */
    JG_QUEUE_PRIORITY = 2,
};

/*
 * Create a queue holding at most maxsize items (0: unbounded; asyncio's
 * Queue(maxsize)) of the given kind on the calling thread's hub. Returns
 * 0, -EINVAL (NULL out, bad kind), -ENOMEM.
 */
JG_API int jg_queue_create(struct jg_queue **out, size_t maxsize,
                           enum jg_queue_kind kind);
/*
 * Free q. Items still queued are dropped (they are the caller's: drain them
 * first with a 0 timeout get). Returns 0, -EBUSY (green threads wait on q;
 * close it and let them leave first), -EINVAL (NULL), -EXDEV.
 */
JG_API int jg_queue_destroy(struct jg_queue *q);
/*
 * Put item (any pointer, NULL too) at the tail (priority 0 for a priority
 * queue), waiting up to timeout_ns for room in a full bounded queue. A
 * waiting getter gets the item directly. Returns 0 (the item is in the
 * queue or handed on; it counts for jg_queue_join), or, with the item not
 * taken: -EPIPE (closed), -EAGAIN, -ETIMEDOUT, -ECANCELED, -ENOMEM, -EINVAL,
 * -EXDEV, -EPERM (from a loop callback or the hub), -EDEADLK.
 * May switch green threads.
 */
JG_API int jg_queue_put(struct jg_queue *q, void *item, int64_t timeout_ns);
/* jg_queue_put with a priority (a priority queue takes the lowest first;
 * FIFO and LIFO queues ignore it). */
JG_API int jg_queue_put_prio(struct jg_queue *q, void *item, int priority,
                             int64_t timeout_ns);
/*
 * Take the next item into *item, waiting up to timeout_ns for one. After
 * jg_queue_close the remaining items are still given out, then -EPIPE.
 * Returns 0, -EPIPE, -EAGAIN, -ETIMEDOUT, -ECANCELED (also when the item
 * was already earmarked for the caller: it goes back to the head of the
 * queue, or to its place by priority), -ENOMEM, -EINVAL, -EXDEV, -EPERM,
 * -EDEADLK. *item is written only on success. May switch green threads.
 */
JG_API int jg_queue_get(struct jg_queue *q, void **item, int64_t timeout_ns);
/* jg_queue_get that also reports the item's priority (may be NULL). */
JG_API int jg_queue_get_prio(struct jg_queue *q, void **item, int *priority,
                             int64_t timeout_ns);
/*
 * One item taken with get has been processed (Python's task_done). Returns
 * 0, -EINVAL (more calls than puts), -EXDEV. When every put item is done,
 * jg_queue_join's waiters wake. Does not switch.
 */
JG_API int jg_queue_task_done(struct jg_queue *q);
/*
 * Wait until every item ever put has been marked done with
 * jg_queue_task_done. Returns 0, -ETIMEDOUT (also for timeout 0 with work
 * outstanding), -ECANCELED, -EINVAL, -EXDEV, -EPERM, -EDEADLK.
 * May switch green threads.
 */
JG_API int jg_queue_join(struct jg_queue *q, int64_t timeout_ns);
/*
 * Close q: puts fail with -EPIPE from now on (waiting putters wake with it,
 * their items not taken); gets drain what is left, then fail with -EPIPE.
 * Returns 0 (also when already closed), -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_queue_close(struct jg_queue *q);
/* Items in q now (not counting items handed to getters that have not run
 * yet), or -EINVAL (NULL), -EXDEV (another thread's queue). */
JG_API ssize_t jg_queue_size(const struct jg_queue *q);

/* ---- channels ------------------------------------------------------------ */

struct jg_chan;

/*
 * Create a channel on the calling thread's hub: capacity 0 is unbuffered
 * (a send waits for a receiver, Go's rendezvous), otherwise a send waits
 * only while capacity values are buffered. Returns 0, -EINVAL, -ENOMEM.
 */
JG_API int jg_chan_create(struct jg_chan **out, size_t capacity);
/* Free c (buffered values are dropped). 0, -EBUSY (waiters), -EINVAL,
 * -EXDEV. */
JG_API int jg_chan_destroy(struct jg_chan *c);
/*
 * Send v, waiting up to timeout_ns for a receiver or buffer room. Returns 0
 * (the value is buffered or handed on), -EPIPE (closed, also while
 * waiting), -EAGAIN, -ETIMEDOUT, -ECANCELED, -ENOMEM, -EINVAL, -EXDEV,
 * -EPERM, -EDEADLK. May switch green threads.
 */
JG_API int jg_chan_send(struct jg_chan *c, void *v, int64_t timeout_ns);
/*
 * Receive into *v, waiting up to timeout_ns. A closed channel still gives
 * its buffered values, then -EPIPE. A value earmarked for a receiver that is
 * killed before it resumes goes back to the channel's head (beyond the
 * capacity if need be). Returns 0, -EPIPE, -EAGAIN, -ETIMEDOUT, -ECANCELED,
 * -ENOMEM, -EINVAL, -EXDEV, -EPERM, -EDEADLK. May switch green threads.
 */
JG_API int jg_chan_recv(struct jg_chan *c, void **v, int64_t timeout_ns);
/*
 * Close c: waiting senders and receivers wake with -EPIPE; later sends fail
 * with -EPIPE; receives drain the buffer, then fail with -EPIPE. Returns 0
 * (also when already closed), -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_chan_close(struct jg_chan *c);
/* Values buffered in c now, or -EINVAL (NULL), -EXDEV. */
JG_API ssize_t jg_chan_len(const struct jg_chan *c);

enum jg_select_op {
    JG_SELECT_RECV = 0,
    JG_SELECT_SEND = 1,
};

/* One case of jg_select. A NULL chan is never ready (Go's nil channel). */
struct jg_select_case {
    struct jg_chan *chan;
    int op;                     /* enum jg_select_op */
    void *value;                /* SEND: the value; RECV: filled on firing */
    int result;                 /* filled on firing: 0, or -EPIPE (closed) */
};

/*
 * Wait until one of the n cases can proceed, perform it, and return its
 * index (Go's select). When several are ready, one is chosen uniformly at
 * random so that no case starves. A case on a closed channel is ready and
 * fires with result -EPIPE (a RECV case once the buffer is drained). Only
 * the case that fired is written (value for RECV, result), after the caller
 * resumes. Returns the index, or -EAGAIN (timeout 0, nothing ready),
 * -ETIMEDOUT, -ECANCELED, -ENOMEM, -EINVAL (NULL cases with n > 0, bad op
 * or timeout), -EXDEV (a channel of another hub), -EPERM, -EDEADLK.
 * May switch green threads.
 */
JG_API int jg_select(struct jg_select_case *cases, size_t n,
                     int64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif
