/* SPDX-License-Identifier: MIT */
/*
 * preload.h - what the files of libjuggle_preload.so share: libc's own
 * definitions found with dlsym(RTLD_NEXT), the "am I in a green thread"
 * check (one acquire load and one TLS read, the whole cost of a call from
 * a plain thread), the -1 + errno convention, the per-fd table, and the
 * cooperative waits. Everything here is hidden; only the interposed libc
 * names (PL_EXPORT) leave the library, unversioned.
 */
#ifndef JG_PRELOAD_H
#define JG_PRELOAD_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch/tp.h"
#include "internal.h"
#include "patch/abi.h"

/* An interposed libc name: default visibility, no version node. */
#define PL_EXPORT __attribute__((visibility("default")))

/* Every interposed name, for the per-name counters (jg_patch_calls) and the
 * JG_PATCH_DEBUG report. resolve.c's names are listed here too. */
#define PL_NAMES(X) \
    X(read) X(write) X(readv) X(writev) X(pread) X(pwrite) X(pread64) \
    X(pwrite64) X(recv) X(recvfrom) X(recvmsg) X(recvmmsg) X(send) \
    X(sendto) X(sendmsg) X(sendmmsg) X(accept) X(accept4) X(connect) \
    X(poll) X(ppoll) X(select) X(pselect) X(epoll_wait) X(epoll_pwait) \
    X(epoll_pwait2) X(sleep) X(usleep) X(nanosleep) X(clock_nanosleep) \
    X(close) X(dup2) X(dup3) X(fcntl) X(ioctl) X(setsockopt) \
    X(__read_chk) X(__recv_chk) X(__recvfrom_chk) X(__poll_chk) \
    X(__ppoll_chk) X(__pread_chk) X(__pread64_chk) \
    X(getaddrinfo) X(gethostbyname) X(gethostbyname2) X(gethostbyname_r) \
    X(gethostbyname2_r) X(gethostbyaddr) X(getnameinfo) \
    X(waitpid) X(waitid) X(wait) X(wait3) X(wait4) X(system) X(popen) \
    X(pclose) X(fileno) X(fileno_unlocked)

enum jg__pl_name {
#define PL_ENUM_(n) PL_##n,
    PL_NAMES(PL_ENUM_)
#undef PL_ENUM_
    PL_NNAMES
};

/* ---- libc's definitions ------------------------------------------------- */

/* One libc function, found with dlsym(RTLD_NEXT) on first use (the
 * pointer is only ever set to the same value, hence relaxed). */
struct jg__pl_sym {
    const char *name;
    _Atomic(void *) fn;
};

/* Resolve s (a function returning -1 with ENOSYS when libc lacks it). */
JG_HIDDEN void *jg__pl_resolve(struct jg__pl_sym *s);

static inline void *jg__pl_sym_get(struct jg__pl_sym *s)
{
    void *f = atomic_load_explicit(&s->fn, memory_order_relaxed);
    return likely(f != NULL) ? f : jg__pl_resolve(s);
}

/* PL_SYM(read) defines the slot; REAL(read)(fd, buf, n) calls libc's. */
#define PL_SYM(fn) static struct jg__pl_sym pl_sym_##fn = { #fn, NULL }
#define REAL(fn) ((__typeof__(&fn))jg__pl_sym_get(&pl_sym_##fn))

/* ---- the green-thread check ---------------------------------------------- */

/* The attached runtime (NULL until one attaches), and whether the patch is
 * on: published with release after the runtime's table is in place. */
JG_HIDDEN extern const struct jg__patch_rt *jg__pl_rt;
JG_HIDDEN extern _Atomic int jg__pl_on;
JG_HIDDEN extern long jg__pl_tls_off;

/* The calling thread's hub (NULL if none); only once a runtime attached. */
static inline struct jg__hub_head *jg__pl_hub(void)
{
#if JG_ARCH_HAS_TP
    /* The runtime always gives the offset on these (attach checks). */
    return *(struct jg__hub_head *const *)(
        (char *)__builtin_thread_pointer() + jg__pl_tls_off);
#else
    return jg__pl_rt->hub();
#endif
}

/* Signal handlers running on this thread (signal.c's trampoline), and
 * whether one still runs (a handler left by siglongjmp is forgotten). */
JG_HIDDEN extern _Thread_local int jg__pl_sig_depth JG_TLS_IE;
JG_HIDDEN bool jg__pl_sig_inside(void);

static inline bool jg__pl_in_handler(void)
{
    return unlikely(jg__pl_sig_depth > 0) && jg__pl_sig_inside();
}

/*
 * The hub when the caller is a green thread (the thread's main context
 * included) and the patch is on; NULL on a plain OS thread, in the hub's
 * own context, inside a signal handler, before a runtime attached, or
 * with the patch off. This is the whole pass-through cost: no system
 * call, lock or read-modify-write.
 */
static inline struct jg__hub_head *jg__pl_green(void)
{
    if (!atomic_load_explicit(&jg__pl_on, memory_order_acquire))
        return NULL;
    if (jg__pl_in_handler())
        return NULL;
    struct jg__hub_head *h = jg__pl_hub();
    if (!h || h->current == h->hub_g)
        return NULL;
    return h;
}

/* The runtime when it is attached and this thread has a hub (any
 * context): for close and fd creation, which keep the loop's beliefs true. */
static inline const struct jg__patch_rt *jg__pl_hub_rt(void)
{
    if (!atomic_load_explicit(&jg__pl_on, memory_order_acquire) ||
        jg__pl_in_handler())
        return NULL;
    return jg__pl_hub() ? jg__pl_rt : NULL;
}

/* The runtime when it is attached and the patch is on, on any thread: for
 * close, dup2 and fd creation, whose waiters may be parked on another
 * thread's hub. */
static inline const struct jg__patch_rt *jg__pl_on_rt(void)
{
    /* Inside a signal handler libc's own: the runtime's close takes locks
     * and wakes watchers, which the interrupted code may be in. */
    if (!atomic_load_explicit(&jg__pl_on, memory_order_acquire) ||
        jg__pl_in_handler())
        return NULL;
    return jg__pl_rt;
}

/* The handshake (abi.h): each runtime copy calls it once. */
PL_EXPORT const struct jg__patch_pl *jg__preload_attach(
    const struct jg__patch_rt *rt);

/* Count a cooperative call of `name` (and report it once under
 * JG_PATCH_DEBUG=1). Green path only. */
JG_HIDDEN void jg__pl_note(enum jg__pl_name name);

/* ---- errors --------------------------------------------------------------- */

/* libc's convention from a -errno result: -1 with errno set, or r. */
static inline long jg__pl_ret(long r)
{
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

/* ---- time ------------------------------------------------------------------ */

JG_HIDDEN int64_t jg__pl_now(void);
/* now + ns, saturating; ns < 0 means none (INT64_MAX). */
JG_HIDDEN int64_t jg__pl_after(int64_t ns);

/* ---- the per-fd table ------------------------------------------------------ */

enum {
    PL_K_KNOWN = 1u << 0,   /* the entry is valid */
    PL_K_SOCK = 1u << 1,    /* a socket: MSG_DONTWAIT works per call */
    PL_K_FILE = 1u << 2,    /* regular file, directory, block device */
    PL_K_NB = 1u << 3,      /* the user's O_NONBLOCK (== the kernel's) */
};

/* fd's kind (> 0), learned with fstat + fcntl on first use, or -errno. */
JG_HIDDEN int jg__pl_fd_kind(int fd);
/* A new fd with this number (bits: what we know, 0 to learn later). */
JG_HIDDEN void jg__pl_fd_fresh(int fd, uint32_t bits);
/* Set or clear PL_K_NB on a known entry (fcntl, ioctl FIONBIO). */
JG_HIDDEN void jg__pl_fd_nonblock(int fd, bool nb);
/* Forget every number in [lo, hi] (close_range, closefrom). */
JG_HIDDEN void jg__pl_fd_forget_range(unsigned lo, unsigned hi);
/* Copy what we know of from into to (dup). */
JG_HIDDEN void jg__pl_fd_copy(int from, int to);
/* SO_RCVTIMEO (snd false) or SO_SNDTIMEO in ns, 0 for none. */
JG_HIDDEN int64_t jg__pl_fd_timeout(int fd, bool snd);
JG_HIDDEN void jg__pl_fd_set_timeout(int fd, bool snd, int64_t ns);

/* ---- O_NONBLOCK borrowed for one call ---------------------------------------- */

/*
 * accept and connect have no per-call non-blocking flag: io.c sets
 * O_NONBLOCK around the one system call (jg__pl_nb_call). The flag
 * belongs to the file description, which other threads (and processes)
 * may share, so every such window runs under one process-wide lock, and
 * the calls that read or set the flag take it too once any window was
 * ever opened: no thread of this process sees O_NONBLOCK it did not set,
 * and no window ever restores a stale value. Nothing under the lock can
 * park: it holds three fast system calls at most.
 */
JG_HIDDEN extern _Atomic bool jg__pl_nb_used;
JG_HIDDEN void jg__pl_nb_lock(void);
JG_HIDDEN void jg__pl_nb_unlock(void);
/* fcntl(fd, F_GETFL) as the user's own setting, outside any window. */
JG_HIDDEN int jg__pl_getfl(int fd);
/* op(fd, a) with O_NONBLOCK set for just that call: op's result or
 * -errno. A description already non-blocking is left as it is. */
JG_HIDDEN int jg__pl_nb_call(int fd, int (*op)(int fd, void *a), void *a);

/* ---- cooperative waits ----------------------------------------------------- */

/*
 * Park until fd is ready for events (JG_READ/JG_WRITE) as a blocking call
 * would wait: 0 when ready; -own_errno once `deadline` (the call's own
 * timeout, INT64_MAX for none) passed; -ETIMEDOUT when an enclosing
 * deadline scope expired first; -ECANCELED (killed), -EBADF (closed while
 * waiting), -EPERM (cannot park here, or epoll cannot watch fd: the caller
 * then makes the blocking libc call).
 */
JG_HIDDEN int jg__pl_wait(int fd, uint32_t events, int64_t deadline,
                          int own_errno);
/* poll(2) fd once without waiting (libc's poll): 1 ready (or error or
 * hang-up), 0 not, -errno (-EBADF for a closed fd). */
JG_HIDDEN int jg__pl_ready_now(int fd, short ev);
/* Park until deadline: 0 at the deadline, -ETIMEDOUT (scope), -ECANCELED. */
JG_HIDDEN int jg__pl_sleep_until(int64_t deadline);

#endif
