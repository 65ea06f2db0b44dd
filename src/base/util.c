/* SPDX-License-Identifier: MIT */
/*
 * util.c - small shared helpers: the clock, error strings, the version,
 * and the async-signal-safe output used by panics and the overflow report.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

int64_t jg_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *jg_strerror(int code)
{
    if (code >= 0)
        return "Success";
    /* strerror may return a thread-local buffer for unknown codes only;
     * known codes come from a static table. */
    return strerror(-code);
}

#define JG_STR_(x) #x
#define JG_STR(x) JG_STR_(x)

const char *jg_version(void)
{
    return JG_STR(JG_VERSION_MAJOR) "." JG_STR(JG_VERSION_MINOR) "."
           JG_STR(JG_VERSION_PATCH);
}

void jg__write_stderr(const char *s)
{
    size_t n = strlen(s);

    while (n > 0) {
        ssize_t w = jg__sys_write(STDERR_FILENO, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

char *jg__utoa(char *buf, uint64_t v)
{
    char tmp[21];
    int i = 0;

    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int j = 0; j < i; j++)
        buf[j] = tmp[i - 1 - j];
    buf[i] = '\0';
    return buf;
}

void jg__panic(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    char num[21];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jg__write_stderr("juggle: ");
    jg__write_stderr(file);
    jg__write_stderr(":");
    jg__write_stderr(jg__utoa(num, (uint64_t)line));
    jg__write_stderr(": ");
    jg__write_stderr(msg);
    jg__write_stderr("\n");
    abort();
}

void jg__block_all_signals(void)
{
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}
