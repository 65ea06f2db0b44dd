/* SPDX-License-Identifier: MIT */
/*
 * juggle/common.h - conventions shared by every layer: the error convention
 * (>= 0 success, -errno failure), time in int64_t nanoseconds on
 * CLOCK_MONOTONIC, and the JG_ERR pointer idiom for green-thread results.
 */
#ifndef JUGGLE_COMMON_H
#define JUGGLE_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define JG_API __attribute__((visibility("default")))
#else
#define JG_API
#endif

/* Private: the library's intrusive list node, embedded by the sync
 * objects users allocate (their fields are private). */
struct jg__list {
    struct jg__list *next, *prev;
};

/* The version of these headers; jg_version() gives the library's. */
#define JG_VERSION_MAJOR 0
#define JG_VERSION_MINOR 2
#define JG_VERSION_PATCH 0

/* Durations and deadlines are nanoseconds on CLOCK_MONOTONIC. The unit is
 * applied before the conversion, so fractions count: JG_SEC(0.5) is half a
 * second, JG_MS(1.5) 1.5 ms. */
#define JG_NS(x)  ((int64_t)(x))
#define JG_US(x)  ((int64_t)((x) * 1000LL))
#define JG_MS(x)  ((int64_t)((x) * 1000000LL))
#define JG_SEC(x) ((int64_t)((x) * 1000000000LL))
/* Wait without a time limit. Any other negative timeout is -EINVAL. */
#define JG_FOREVER ((int64_t)-1)

/*
 * A green function returns void *; it reports failure as JG_ERR(-code),
 * a pointer in the top 4095 bytes of the address space (the Linux kernel's
 * ERR_PTR idiom), which no valid object occupies.
 */
#define JG_ERR(code)      ((void *)(intptr_t)(code))
#define JG_IS_ERR(p)      ((uintptr_t)(p) >= (uintptr_t)-4095)
#define JG_ERR_CODE(p)    (JG_IS_ERR(p) ? (int)(intptr_t)(p) : 0)

/* Current CLOCK_MONOTONIC time in nanoseconds. Thread-safe. */
JG_API int64_t jg_now(void);

/*
 * Message for a negative error code (strerror(-code)); the string is static.
 * Positive or zero codes give "Success". Thread-safe.
 */
JG_API const char *jg_strerror(int code);

/* Library version as "MAJOR.MINOR.PATCH". */
JG_API const char *jg_version(void);

#ifdef __cplusplus
}
#endif
#endif
