/* SPDX-License-Identifier: MIT */
/*
 * preload_read.c - what the patch costs where it must cost nothing: read(2)
 * from a plain thread (no hub), run once plain and once with
 * libjuggle_preload.so in LD_PRELOAD (bench/compare/run-preload.sh pairs
 * them and counts instructions under callgrind); and the figure behind the
 * regular-file decision: a 4 KiB pread from the page cache made directly
 * versus sent to the offload pool with jg_run_in_thread.
 *   bench_preload_read              BENCH lines
 *   bench_preload_read calls N      N reads, no output (for callgrind)
 */
#include <fcntl.h>
#include <juggle.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static int zero_fd;
static long nreads = 1000000;

static double rep_read(void *arg)
{
    char c;

    (void)arg;
    int64_t t0 = bench_now();
    for (long i = 0; i < nreads; i++)
        if (read(zero_fd, &c, 1) != 1)
            bench_die("read", i);
    return bench_per(t0, bench_now(), nreads);
}

/* ---- regular files: direct or offloaded ------------------------------------ */

#define FILE_OPS 20000
static int file_fd;
static char page[4096];

static void *do_pread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)pread(file_fd, page, sizeof page, 0);
}

static double rep_direct(void *arg)
{
    (void)arg;
    int64_t t0 = bench_now();
    for (int i = 0; i < FILE_OPS; i++)
        if (do_pread(NULL) != (void *)(intptr_t)sizeof page)
            bench_die("pread", i);
    return bench_per(t0, bench_now(), FILE_OPS);
}

static double offload_ns;

static void *offload_green(void *arg)
{
    void *res;

    (void)arg;
    int64_t t0 = bench_now();
    for (int i = 0; i < FILE_OPS / 10; i++) {
        int rc = jg_run_in_thread(&res, do_pread, NULL, JG_FOREVER);
        if (rc < 0 || res != (void *)(intptr_t)sizeof page)
            bench_die("jg_run_in_thread", rc);
    }
    offload_ns = bench_per(t0, bench_now(), FILE_OPS / 10);
    return NULL;
}

static double rep_offload(void *arg)
{
    struct jg_green *g;

    (void)arg;
    if (jg_spawn(&g, offload_green, NULL, NULL) < 0 ||
        jg_join(g, NULL, JG_FOREVER) < 0)
        bench_die("spawn", 0);
    return offload_ns;
}

int main(int argc, char **argv)
{
    const char *pre = getenv("LD_PRELOAD");
    bool patched = pre && strstr(pre, "juggle_preload");
    char name[64];

    zero_fd = open("/dev/zero", O_RDONLY);
    if (zero_fd < 0)
        bench_die("open /dev/zero", errno);
    if (argc == 3 && strcmp(argv[1], "calls") == 0) {
        nreads = atol(argv[2]);
        (void)rep_read(NULL);
        return 0;
    }
    /* The main thread has no hub yet: the pass-through path. */
    snprintf(name, sizeof name, "preload.read.passthrough.%s",
             patched ? "patched" : "libc");
    bench_print(name, bench_run(rep_read, NULL), "ns");
    if (patched)
        return 0;

    char path[] = "/tmp/jg-bench-file-XXXXXX";
    file_fd = mkstemp(path);
    if (file_fd < 0 || write(file_fd, page, sizeof page) != sizeof page)
        bench_die("mkstemp", errno);
    unlink(path);
    bench_print("file.pread4k.direct", bench_run(rep_direct, NULL), "ns");
    bench_print("file.pread4k.offload", bench_run(rep_offload, NULL), "ns");
    close(file_fd);
    return 0;
}
