/* SPDX-License-Identifier: MIT */
/*
 * juggle/group.h - groups and pools of green threads (gevent.pool, asyncio's
 * TaskGroup) and waiting for several green threads (gevent.joinall / wait).
 * A group belongs to the hub of the OS thread that created it: calls from
 * another OS thread return -EXDEV. Timeouts follow queue.h: 0 tries without
 * parking, JG_FOREVER waits, other negatives are -EINVAL; an enclosing
 * deadline scope bounds every wait.
 */
#ifndef JUGGLE_GROUP_H
#define JUGGLE_GROUP_H

#include "common.h"
#include "green.h"

#ifdef __cplusplus
extern "C" {
#endif

struct jg_group;

enum jg_group_policy {
    /* Members run to their end whatever the others do; every failure is
     * counted (jg_group_failed) and reported to on_done. */
    JG_GROUP_COLLECT = 0,
    /* The first member that fails (returns JG_ERR(...), or is killed from
     * outside the group) makes the group kill all the others and refuse new
     * spawns with -ECANCELED; join reports that first error. */
    JG_GROUP_FAIL_FAST = 1,
};

struct jg_group_opts {
    size_t size;                /* at most this many members at once (a
                                 * pool); 0: unlimited (a group) */
    enum jg_group_policy policy;
    const struct jg_spawn_opts *spawn; /* copied; for every member */
    /*
     * Called on the hub as each member ends: g (valid during the call), its
     * result, and its status (0, the JG_ERR code, or -ECANCELED if killed).
     * It must not spawn into or kill the group; it cannot block (blocking
     * calls return -EPERM there), but may jg_spawn other green threads.
     */
    void (*on_done)(void *ctx, struct jg_green *g, void *result, int status);
    void *ctx;
};

/* Create a group (opts may be NULL: unlimited, COLLECT). 0, -EINVAL,
 * -ENOMEM. */
JG_API int jg_group_create(struct jg_group **out,
                           const struct jg_group_opts *opts);
/* Free grp. 0, -EBUSY (members alive or green threads waiting on it),
 * -EINVAL, -EXDEV. */
JG_API int jg_group_destroy(struct jg_group *grp);
/*
 * Spawn fn(arg) as a member, waiting up to timeout_ns for a free place in a
 * full pool (first come, first served). With out == NULL the member is
 * detached; otherwise *out is its handle, to be joined or detached by the
 * caller as with jg_spawn. Returns 0, -EAGAIN (pool full, timeout 0),
 * -ETIMEDOUT, -ECANCELED (the caller was killed, or a FAIL_FAST group has
 * failed), -ENOMEM, -EINVAL, -EXDEV, -EPERM, -EDEADLK.
 * May switch green threads (only while the pool is full).
 */
JG_API int jg_group_spawn(struct jg_group *grp, struct jg_green **out,
                          jg_green_fn fn, void *arg, int64_t timeout_ns);
/*
 * Wait until every member has ended. Returns 0 if none failed, else the
 * first failure's code (sticky for the group's life: the JG_ERR code of a
 * member's result, or -ECANCELED for a member killed from outside; members
 * the group killed itself do not count); without all ended: -ETIMEDOUT
 * (also timeout 0), -ECANCELED (the caller was killed; members keep
 * running), -EINVAL, -EXDEV, -EPERM, -EDEADLK. May switch green threads.
 */
JG_API int jg_group_join(struct jg_group *grp, int64_t timeout_ns);
/*
 * Kill every member (jg_kill; they end at their next blocking call). Does
 * not wait: follow with jg_group_join. Returns how many were killed,
 * -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_group_kill(struct jg_group *grp);
/* Members that have not ended, or -EINVAL (NULL), -EXDEV. */
JG_API ssize_t jg_group_count(const struct jg_group *grp);
/* Members that failed so far (see jg_group_join for what counts), or
 * -EINVAL, -EXDEV. */
JG_API ssize_t jg_group_failed(const struct jg_group *grp);

/*
 * Run fn(args[i]) for i in [0, n) on at most the group's size members at
 * once (every job at once in an unlimited group) and store each result in
 * results[i], in input order (JG_ERR(...) for a job that failed,
 * JG_ERR(-ECANCELED) for one that never ran). Jobs are taken in input order
 * by worker members. Returns 0, the first failure's code (FAIL_FAST: the
 * other jobs are cancelled; COLLECT: every job ran), -ECANCELED (jobs were
 * left: the caller or the workers were killed, or the group failed),
 * -ETIMEDOUT (the remaining workers are killed), -ENOMEM, -EINVAL, -EXDEV,
 * -EPERM, -EDEADLK. args and results are read and written only while the
 * caller runs. May switch green threads.
 */
JG_API int jg_group_map(struct jg_group *grp, jg_green_fn fn,
                        void *const *args, void **results, size_t n,
                        int64_t timeout_ns);

/* An imap_unordered iteration (opaque). */
struct jg_imap;

/*
 * Start running fn(args[i]) for i in [0, n) as jg_group_map does (args is
 * copied) and return an iterator that yields results as jobs finish.
 * Starts as many workers as the pool has free places now; jg_imap_next
 * starts more. Returns 0, -ECANCELED (a FAIL_FAST group has failed),
 * -ENOMEM, -EINVAL, -EXDEV. Does not switch.
 */
JG_API int jg_group_imap_unordered(struct jg_group *grp,
                                   struct jg_imap **out, jg_green_fn fn,
                                   void *const *args, size_t n);
/*
 * The next finished job: its input index in *index and its result in
 * *result (either may be NULL). Returns 1 with a result, 0 when no more
 * will come (all delivered, or the run stopped: a FAIL_FAST failure,
 * workers killed), -ETIMEDOUT, -ECANCELED (the caller was killed), -EBUSY
 * (another green thread is in jg_imap_next on it), -ENOMEM, -EINVAL,
 * -EXDEV, -EPERM, -EDEADLK. May switch green threads.
 */
JG_API int jg_imap_next(struct jg_imap *it, size_t *index, void **result,
                        int64_t timeout_ns);
/*
 * End the iteration and destroy it: no new job starts, running workers
 * are killed, and the iterator's memory goes once they have ended. Returns
 * 0, -EINVAL, -EBUSY (a green thread waits in jg_imap_next; nothing
 * changed), -EXDEV. Does not switch.
 */
JG_API int jg_imap_destroy(struct jg_imap *it);

/*
 * Wait until at least count of the n green threads gs[] have finished
 * (count 0 means all n; gevent.joinall and wait). Handles are not
 * released: join or detach them afterwards. Returns how many of them have
 * finished (at least count), or -ETIMEDOUT (fewer had when timeout_ns
 * passed; with 0, fewer have now), -ECANCELED (the caller was killed),
 * -ENOMEM, -EINVAL (NULL or detached entry, count > n, bad timeout),
 * -EXDEV (a green thread of another hub), -EDEADLK (the caller is one of
 * them, or nothing can wake it), -EPERM. May switch green threads.
 */
JG_API int jg_wait_green(struct jg_green *const *gs, size_t n, size_t count,
                         int64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif
