/* SPDX-License-Identifier: MIT */
/*
 * t.h - the test harness: assertions that print both sides, a case runner
 * where argv[1] selects one case (to run it alone under gdb), and helpers for
 * scaling counts (JG_TEST_SCALE) and knowing the build flavour.
 * Exit status: 0 pass, 1 fail, 77 skip (CTest SKIP_RETURN_CODE).
 */
#ifndef JG_T_H
#define JG_T_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T_FAIL_(...) do { \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr); \
        exit(1); \
    } while (0)

#define T_ASSERT(e) do { \
        if (!(e)) \
            T_FAIL_("assertion failed: %s", #e); \
    } while (0)

/* Integer equality, printing both values. */
#define T_EQ(a, b) do { \
        long long ta_ = (long long)(a), tb_ = (long long)(b); \
        if (ta_ != tb_) \
            T_FAIL_("%s == %s: %lld != %lld", #a, #b, ta_, tb_); \
    } while (0)

/* Pointer equality. */
#define T_PEQ(a, b) do { \
        const void *ta_ = (const void *)(a), *tb_ = (const void *)(b); \
        if (ta_ != tb_) \
            T_FAIL_("%s == %s: %p != %p", #a, #b, ta_, tb_); \
    } while (0)

#define T_STREQ(a, b) do { \
        const char *ta_ = (a), *tb_ = (b); \
        if (!ta_ || !tb_ || strcmp(ta_, tb_) != 0) \
            T_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, \
                    ta_ ? ta_ : "(null)", tb_ ? tb_ : "(null)"); \
    } while (0)

/* A juggle call that must succeed (>= 0). */
#define T_OK(rc) do { \
        long long tr_ = (long long)(rc); \
        if (tr_ < 0) \
            T_FAIL_("%s failed: %lld (%s)", #rc, tr_, strerror((int)-tr_)); \
    } while (0)

/* A juggle call that must fail with exactly this code. */
#define T_ERR(rc, code) do { \
        long long tr_ = (long long)(rc), tc_ = (long long)(code); \
        if (tr_ != tc_) \
            T_FAIL_("%s: got %lld (%s), want %lld (%s)", #rc, tr_, \
                    tr_ < 0 ? strerror((int)-tr_) : "ok", tc_, \
                    strerror((int)-tc_)); \
    } while (0)

#define T_SKIP(why) do { \
        fprintf(stderr, "SKIP: %s\n", why); \
        exit(77); \
    } while (0)

/* Skip only the current case (the executable goes on with the others):
 * use in a case function returning void. */
#define T_SKIP_CASE(why) do { \
        fprintf(stderr, "   (case skipped: %s)\n", why); \
        return; \
    } while (0)

/* The build flavour: sanitizers make timing and counts unreliable. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZED 1
#endif
#endif
#ifndef T_SANITIZED
#define T_SANITIZED 0
#endif
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#ifndef T_TSAN
#define T_TSAN 0
#endif

/* true in the plain build, where CPU-time bounds are asserted (never an
 * upper bound on wall time: tests count or order instead). */
static inline int t_plain(void)
{
    return !T_SANITIZED && !getenv("JG_TEST_NO_UPPER");
}

/* Scale a count by JG_TEST_SCALE (a divisor, default 1; min result 1). */
static inline long t_scale(long n)
{
    const char *s = getenv("JG_TEST_SCALE");
    long d = s ? atol(s) : 1;
    if (d < 1)
        d = 1;
    n /= d;
    return n < 1 ? 1 : n;
}

static inline int64_t t_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct t_case {
    const char *name;
    void (*fn)(void);
};
#define T_CASE(f) { #f, f }

/* Run every case, or only the one named by argv[1]. */
static inline int t_run(int argc, char **argv, const struct t_case *cases,
                        size_t n)
{
    int ran = 0;

    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        fprintf(stderr, "-- %s\n", cases[i].name);
        cases[i].fn();
        ran++;
    }
    if (argc > 1 && !ran) {
        fprintf(stderr, "no case named %s\n", argv[1]);
        return 1;
    }
    return 0;
}
#define T_MAIN(...) \
    int main(int argc, char **argv) \
    { \
        static const struct t_case cases_[] = { __VA_ARGS__ }; \
        return t_run(argc, argv, cases_, sizeof(cases_) / sizeof(cases_[0])); \
    }

#endif
