/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what every module of libjuggle shares and users never see:
 * branch hints, assertions that abort with file:line, the intrusive list,
 * and the sanitizer switches. Internal non-static names are jg__*.
 */
#ifndef JG_INTERNAL_H
#define JG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "juggle.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define JG_HIDDEN   __attribute__((visibility("hidden")))
#define JG_NOINLINE __attribute__((noinline))
#define JG_UNUSED   __attribute__((unused))
/* Hot thread-locals use the initial-exec model: no __tls_get_addr call in
 * the shared library (it is loaded at startup or preloaded, never late). */
#define JG_TLS_IE   __attribute__((tls_model("initial-exec")))

#define JG_CONTAINER_OF(p, type, member) \
    ((type *)(void *)((char *)(p) - offsetof(type, member)))
#define JG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A programming error that cannot be reported: abort with where and why. */
JG_HIDDEN _Noreturn void jg__panic(const char *file, int line,
                                   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define JG_PANIC(...) jg__panic(__FILE__, __LINE__, __VA_ARGS__)
#define JG_ASSERT(e) \
    (likely(e) ? (void)0 : jg__panic(__FILE__, __LINE__, "assertion %s", #e))

/* write(2) a whole string to stderr; async-signal-safe. */
JG_HIDDEN void jg__write_stderr(const char *s);
/* Format an unsigned number into buf (>= 21 bytes); async-signal-safe. */
JG_HIDDEN char *jg__utoa(char *buf, uint64_t v);

/* Sanitizer detection, for both gcc (__SANITIZE_*__) and clang. */
#if defined(__SANITIZE_ADDRESS__)
#define JG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JG_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define JG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define JG_TSAN 1
#endif
#endif
#ifndef JG_ASAN
#define JG_ASAN 0
#endif
#ifndef JG_TSAN
#define JG_TSAN 0
#endif
#if JG_ASAN
#define JG_NO_ASAN __attribute__((no_sanitize_address))
#else
#define JG_NO_ASAN
#endif

/*
 * Intrusive doubly linked list with a sentinel head (libuv's queue, Linux's
 * list_head): the one list of the library (struct jg__list is declared in
 * juggle/common.h, where the public sync objects embed one). A node off
 * every list has next == prev == NULL (jg__list_remove).
 */

static inline void jg__list_init(struct jg__list *h)
{
    h->next = h->prev = h;
}

static inline bool jg__list_empty(const struct jg__list *h)
{
    return h->next == h;
}

static inline void jg__list_push_back(struct jg__list *h, struct jg__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void jg__list_push_front(struct jg__list *h, struct jg__list *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

/* Unlink n and mark it off-list (next == NULL). */
static inline void jg__list_remove(struct jg__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

static inline bool jg__list_linked(const struct jg__list *n)
{
    return n->next != NULL;
}

static inline struct jg__list *jg__list_pop_front(struct jg__list *h)
{
    struct jg__list *n = h->next;
    if (n == h)
        return NULL;
    jg__list_remove(n);
    return n;
}

/* Validate a timeout: 0, positive, or JG_FOREVER. */
static inline bool jg__timeout_ok(int64_t t)
{
    return t >= 0 || t == JG_FOREVER;
}

/* Absolute deadline for a timeout from now (INT64_MAX for JG_FOREVER). */
static inline int64_t jg__deadline_after(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return INT64_MAX;
    int64_t now = jg_now();
    if (timeout_ns > INT64_MAX - now)
        return INT64_MAX;
    return now + timeout_ns;
}

/* What is left of an absolute deadline as a timeout: JG_FOREVER for
 * none, 0 once it has passed. */
static inline int64_t jg__deadline_left(int64_t deadline)
{
    int64_t left;

    if (deadline == INT64_MAX)
        return JG_FOREVER;
    left = deadline - jg_now();
    return left > 0 ? left : 0;
}

/*
 * The CPUs this process may use (cpus.c): its affinity mask, lowered to a
 * cgroup CPU quota rounded up and never below 2 (Go 1.25's rule). The
 * parts, for tests: the tightest quota in CPUs of the cgroup hierarchy
 * seen under root ("" for the real one; 0: none), and the rule itself.
 */
JG_HIDDEN int jg__cpus_available(void);
JG_HIDDEN double jg__cpu_quota_at(const char *root);
JG_HIDDEN int jg__cpus_pick(int affinity, double quota);

/* Block every signal in the calling thread (juggle's own threads do). */
JG_HIDDEN void jg__block_all_signals(void);

#endif
