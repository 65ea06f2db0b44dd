/* SPDX-License-Identifier: MIT */
/*
 * shm_sum.c - shared memory between processes: the parent fills an array
 * of 32-bit integers in a jg_shm region, two child processes each sum one
 * half of it in place - no copy travels through a pipe - and the parent
 * adds their answers and checks them against its own sum.
 *
 * Children are cloned from the fork server that jg_main_init starts; the
 * region is created before it, so they inherit the mapping (as memory
 * made before fork() is). Only the half's bounds travel as task input.
 */
#include <juggle.h>
#include <stdio.h>
#include <string.h>

#define COUNT (1u << 20)        /* 1M numbers, 4 MiB */

static struct jg_shm *region;   /* made before jg_main_init */

struct half {
    size_t from, to;
};

/* Sum numbers[from, to) of the shared array: runs in a child. */
static int sum_half(const void *in, size_t n, struct jg_task_out *out)
{
    const uint32_t *a = jg_shm_addr(region);
    struct half h;
    uint64_t s = 0;

    if (n != sizeof(h) || !a)
        return jg_task_fail(out, -EINVAL, "bad input");
    memcpy(&h, in, sizeof(h));
    for (size_t i = h.from; i < h.to; i++)
        s += a[i];
    return jg_task_out_write(out, &s, sizeof(s));
}
JG_TASK("sum_half", sum_half)

int main(int argc, char **argv)
{
    struct jg_process *p[2];
    uint64_t expect = 0, total = 0;
    int rc;

    if ((rc = jg_shm_create(&region, COUNT * sizeof(uint32_t))) < 0 ||
        (rc = jg_main_init(argc, argv)) < 0) {
        fprintf(stderr, "setup: %s\n", jg_strerror(rc));
        return 1;
    }
    /* Fill after the fork server exists: the pages are shared, so the
     * children see these values. */
    uint32_t *a = jg_shm_addr(region);
    for (uint32_t i = 0; i < COUNT; i++) {
        a[i] = i * 2654435761u >> 8;    /* any values will do */
        expect += a[i];
    }
    for (int w = 0; w < 2; w++) {
        struct half h = { w * (COUNT / 2), (w + 1) * (COUNT / 2) };
        if ((rc = jg_process_start(&p[w], "sum_half", &h, sizeof(h))) < 0) {
            fprintf(stderr, "start: %s\n", jg_strerror(rc));
            return 1;
        }
    }
    for (int w = 0; w < 2; w++) {
        const void *out;
        size_t n;
        uint64_t s;
        if ((rc = jg_process_join(p[w], JG_SEC(30))) < 0 ||
            (rc = jg_process_output(p[w], &out, &n)) < 0 || n != sizeof(s)) {
            fprintf(stderr, "worker %d failed: %s\n", w, jg_strerror(rc));
            return 1;
        }
        memcpy(&s, out, sizeof(s));
        printf("worker %d summed %u numbers: %llu\n", w, COUNT / 2,
               (unsigned long long)s);
        total += s;
        jg_process_destroy(p[w]);
    }
    printf("total %llu, expected %llu: %s\n", (unsigned long long)total,
           (unsigned long long)expect, total == expect ? "ok" : "WRONG");
    jg_shm_destroy(region);
    return total != expect;
}
