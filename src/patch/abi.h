/* SPDX-License-Identifier: MIT */
/*
 * abi.h - the handshake between a copy of the runtime (libjuggle.so, or
 * libjuggle.a inside a program) and libjuggle_preload.so, which links no
 * runtime of its own: the runtime hands over a table of entry points once,
 * so the interposers and the program's jg_* calls share one hub per thread.
 */
#ifndef JG_PRELOAD_ABI_H
#define JG_PRELOAD_ABI_H

#include <stdbool.h>
#include <stdint.h>
#include <netdb.h>

#include "iofd.h"

struct jg_green;

/*
 * All the preload library reads of a hub: struct jg_hub (green/hub.h)
 * starts with these fields, in this order (runtime.c asserts it), and the
 * preload library sees nothing else of it.
 */
struct jg__hub_head {
    struct jg_green *current;   /* the running green thread */
    struct jg_green *hub_g;     /* the hub's own context */
};

/* Bumped whenever either table or struct jg__hub_head changes shape. */
#define JG__PATCH_ABI 3


/* What the runtime offers the preload library (runtime.c fills it). */
struct jg__patch_rt {
    uint32_t abi;               /* JG__PATCH_ABI */
    uint32_t head_size;         /* sizeof(struct jg__hub_head) */
    /* &jg__tls_hub minus the thread pointer: the same for every thread,
     * since the variable is initial-exec TLS (static TLS block).
     * JG__PATCH_NO_TP where no thread-pointer builtin exists. */
    long tls_hub_off;
    /* The calling thread's hub or NULL, never creating one. */
    struct jg__hub_head *(*hub)(void);
    /* jg__wait_fd_until: > 0 events, -ETIMEDOUT, -ECANCELED, -EBADF, -EPERM */
    int (*wait_fd)(int fd, uint32_t events, int64_t deadline);
    /* Park the calling green thread until deadline (absolute ns). */
    int (*sleep_until)(int64_t deadline);
    /* jg_close (waiters get -EBADF, io.c forgets the fd), -errno. */
    int (*close)(int fd);
    /* Waiters on fd wake with -EBADF (dup2 onto a watched fd). */
    void (*fd_closing)(int fd);
    /* A fresh fd with this number: the loop drops an old belief. */
    void (*fd_fresh)(int fd);
    int (*run_in_thread)(void **result, void *(*fn)(void *), void *arg,
                         int64_t timeout_ns);
    int (*getaddrinfo)(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res,
                       int64_t timeout_ns);
    const char *(*name)(void);  /* the running green thread's name */
    /* Green-local storage (sync.h's jg_local_*), for resolve.c. */
    int (*local_key_create)(uint32_t *key, void (*dtor)(void *));
    int (*local_set)(uint32_t key, void *value);
    void *(*local_get)(uint32_t key);
    /* jg__poll_wait_until: park once on the hub's loop until one of n fds
     * is ready. 1 (ready, or an fd the loop cannot watch: look now),
     * -ETIMEDOUT, -ECANCELED, -EPERM, -ENOMEM. fds is read before the
     * park only (it may live on the caller's sliced stack). */
    int (*poll_wait)(const struct jg__pollfd *fds, int n, int64_t deadline);
    bool enabled;               /* jg_patch_enable's state at attach */
};

#define JG__PATCH_NO_TP (-0x7fffffffL)

/* What the preload library offers back. */
struct jg__patch_pl {
    uint32_t abi;
    void (*enable)(bool on);
    bool (*enabled)(void);
    /* Cooperative calls of one interposed function (by name) so far, or
     * -ENOENT for a name that is not interposed. */
    int64_t (*calls)(const char *name);
};

/* The preload library's one non-libc export, found with dlsym(RTLD_DEFAULT).
 * Returns NULL when it refuses (ABI mismatch, another runtime attached). */
typedef const struct jg__patch_pl *(*jg__patch_attach_fn)(
    const struct jg__patch_rt *rt);
#define JG__PATCH_ATTACH "jg__preload_attach"

#endif
