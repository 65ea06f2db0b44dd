/* SPDX-License-Identifier: MIT */
/*
 * juggle/shm.h - shared memory between processes: jg_shm regions (a memfd
 * whose pages are reserved at creation, so running out of memory is
 * -ENOSPC then, never SIGBUS later) and jg_shmq, a bounded byte-message
 * queue in such a region (multiprocessing.SimpleQueue) that keeps working
 * when a process using it is killed.
 */
#ifndef JUGGLE_SHM_H
#define JUGGLE_SHM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- regions ------------------------------------------------------------ */

struct jg_shm;

/*
 * Create a region of size bytes (any size > 0; not rounded up for the
 * caller, although the kernel reserves whole pages), filled with zeros and
 * mapped read-write. The memory is reserved now (fallocate): a size the
 * machine (or its memory cgroup) cannot provide right now is -ENOSPC
 * instead of a SIGBUS at first touch. Its fd is close-on-exec: children
 * made by fork() inherit it and the mapping; a program started with exec
 * gets it through jg_subprocess_opts.pass_fds (or after the caller clears
 * FD_CLOEXEC). Returns 0, -EINVAL (size 0, size above PTRDIFF_MAX, NULL
 * out), -ENOSPC, -ENOMEM, -EMFILE. Thread-safe. Does not switch.
 */
JG_API int jg_shm_create(struct jg_shm **out, size_t size);
/*
 * Open a region from an fd received from a parent (inherited over fork or
 * exec, or passed over a Unix socket) and map it; the region takes
 * ownership of fd (jg_shm_destroy closes it; on failure the fd is left to the
 * caller). The size is the fd's size. Returns 0, -EINVAL (NULL out, not a
 * regular file or memfd, empty), -EBADF, -ENOMEM. Does not switch.
 */
JG_API int jg_shm_open_fd(struct jg_shm **out, int fd);
/*
 * Map the region again after jg_shm_unmap (a no-op if mapped); *addr (if
 * non-NULL) receives the address, which may differ from the old one.
 * Returns 0, -EINVAL, -ENOMEM. Not thread-safe against jg_shm_unmap.
 */
JG_API int jg_shm_map(struct jg_shm *s, void **addr);
/*
 * Unmap the region, keeping its fd (and so its contents) alive: a parent
 * that only hands the fd to workers need not keep 1 GiB mapped. Returns 0
 * (also when already unmapped) or -EINVAL.
 */
JG_API int jg_shm_unmap(struct jg_shm *s);
/* The mapped address, or NULL when unmapped or s is NULL. */
JG_API void *jg_shm_addr(const struct jg_shm *s);
/* The size in bytes, or -EINVAL (NULL). */
JG_API ssize_t jg_shm_size(const struct jg_shm *s);
/* The fd to hand to a child (owned by s: do not close it), or -EINVAL. */
JG_API int jg_shm_fd(const struct jg_shm *s);
/*
 * Unmap, close the fd and free s. The memory itself lives while any
 * process still maps it or holds an fd to it. Returns 0 or -EINVAL.
 */
JG_API int jg_shm_destroy(struct jg_shm *s);

/* ---- the process-safe queue ---------------------------------------------- */

/*
 * A FIFO of byte messages in a ring inside a jg_shm region, usable at once
 * by any number of threads, green threads and processes that map it. A
 * robust process-shared mutex guards the ring: when a process dies while
 * holding it (killed mid-put or mid-get), the next user repairs the queue.
 * A message is visible to getters only once completely written (one
 * commit store), so a half-written message is discarded; a half-read one
 * stays queued for the next getter. Nothing fully put is ever lost.
 *
 * Waiting: a plain OS thread sleeps on a futex in the region (shared, not
 * PRIVATE). A green thread must not block its hub on a futex, so it polls:
 * it sleeps with jg_sleep for 50 us, doubling up to 2 ms, between checks
 * (a put is seen within about 2 ms; an idle waiter costs ~500 wake-ups/s).
 * It also never waits for the mutex itself: it tries it and backs off.
 */
struct jg_shmq;

/*
 * Create a queue whose ring holds capacity bytes (each message takes its
 * length plus 4 bytes); capacity 5 .. 1 GiB, else -EINVAL. Returns 0,
 * -EINVAL, -ENOSPC, -ENOMEM, -EMFILE. Thread-safe. After fork() the child
 * uses q as it is; an exec'd program uses jg_shmq_open_fd.
 */
JG_API int jg_shmq_create(struct jg_shmq **out, size_t capacity);
/*
 * Open a queue from a region fd (see jg_shm_open_fd: takes ownership of
 * fd on success). Returns 0, -EINVAL (not a queue made by jg_shmq_create,
 * or a corrupt header), -EBADF, -ENOMEM.
 */
JG_API int jg_shmq_open_fd(struct jg_shmq **out, int fd);
/* The region's fd to hand to a child (owned by q), or -EINVAL. */
JG_API int jg_shmq_fd(const struct jg_shmq *q);
/* The largest message a put accepts (capacity - 4), or -EINVAL. */
JG_API ssize_t jg_shmq_max_msg(const struct jg_shmq *q);
/*
 * Append a copy of msg[len] (len may be 0), waiting up to timeout_ns while
 * the ring is full (or its lock is held). Returns 0, -ETIMEDOUT (-EAGAIN
 * for timeout 0), -EMSGSIZE (len > jg_shmq_max_msg), -EINVAL, -ECANCELED
 * (a killed green thread), -EPERM (from a loop callback, if it would
 * wait), -EIO (the queue's memory was corrupted: unrecoverable).
 * Thread- and process-safe. May switch green threads.
 */
JG_API int jg_shmq_put(struct jg_shmq *q, const void *msg, size_t len,
                       int64_t timeout_ns);
/*
 * Remove the oldest message into buf[cap], waiting up to timeout_ns while
 * the queue is empty. Returns its length (>= 0), -EMSGSIZE (cap too small:
 * the message stays queued; a buffer of jg_shmq_max_msg bytes always
 * fits), -ETIMEDOUT (-EAGAIN for timeout 0), -EINVAL, -ECANCELED, -EPERM,
 * -EIO.
 * Thread- and process-safe. May switch green threads.
 */
JG_API ssize_t jg_shmq_get(struct jg_shmq *q, void *buf, size_t cap,
                           int64_t timeout_ns);
/*
 * The number of queued messages now (walks the ring under the lock), or
 * -EINVAL / -EIO. Does not switch (a green thread may block for as long as
 * another process holds the lock: one message copy).
 */
JG_API ssize_t jg_shmq_count(struct jg_shmq *q);
/*
 * How many times a user found the lock's holder dead and repaired the
 * queue (since creation, across all processes); -EINVAL for NULL.
 */
JG_API long jg_shmq_recoveries(const struct jg_shmq *q);
/* Unmap and free this process's handle; the queue lives on in others.
 * 0 or -EINVAL. */
JG_API int jg_shmq_destroy(struct jg_shmq *q);

#ifdef __cplusplus
}
#endif
#endif
