/* SPDX-License-Identifier: MIT */
/*
 * process_preload.c - children started from green threads under the
 * preload library (a PRELOAD test): several green threads of one hub call
 * jg_process_start at once and every child's result comes back. The fork
 * server's lock is a pthread mutex; if the round trip to the server it
 * guards could park (an interposed, cooperative recv), a second green
 * thread would block the hub on that mutex while the holder waits to be
 * resumed by the very same hub: a deadlock.
 */
#include <juggle.h>
#include <stdatomic.h>
#include <unistd.h>
#include "t.h"

static int t_echo(const void *in, size_t n, struct jg_task_out *out)
{
    int rc = jg_task_out_write(out, "echo:", 5);
    return rc < 0 ? rc : jg_task_out_write(out, in, n);
}
JG_TASK("echo", t_echo)

static _Atomic int in_start;    /* green threads inside jg_process_start */
static _Atomic int ok;          /* children whose result was right */

static void *starter(void *arg)
{
    long i = (long)(intptr_t)arg;
    char in[32], want[40];
    int n = snprintf(in, sizeof(in), "child %ld", i);
    snprintf(want, sizeof(want), "echo:%s", in);
    struct jg_process *p;
    const void *o;
    size_t len;
    int code;

    /* Every green thread reaches the start before any has finished. */
    atomic_fetch_add(&in_start, 1);
    int rc = jg_process_start(&p, "echo", in, (size_t)n);
    if (rc < 0)
        return JG_ERR(rc);
    if ((rc = jg_process_join(p, JG_SEC(30))) == 0 &&
        (rc = jg_process_exitcode(p, &code)) == 0 &&
        (rc = jg_process_output(p, &o, &len)) == 0) {
        if (code == 0 && len == strlen(want) && memcmp(o, want, len) == 0)
            atomic_fetch_add(&ok, 1);
        else
            rc = -EBADMSG;
    }
    jg_process_destroy(p);
    return JG_ERR(rc);
}

static void test_concurrent_starts_from_green_threads(void)
{
    enum { N = 8 };
    struct jg_green *g[N];

    for (int round = 0; round < (int)t_scale(20); round++) {
        atomic_store(&in_start, 0);
        atomic_store(&ok, 0);
        for (long i = 0; i < N; i++)
            T_OK(jg_spawn(&g[i], starter, (void *)(intptr_t)i, NULL));
        for (int i = 0; i < N; i++) {
            void *res;
            T_OK(jg_join(g[i], &res, JG_SEC(60)));
            T_EQ(JG_ERR_CODE(res), 0);
        }
        T_EQ(atomic_load(&in_start), N);
        T_EQ(atomic_load(&ok), N);
    }
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_concurrent_starts_from_green_threads),
    };

    /* Run by ctest with LD_PRELOAD=libjuggle_preload.so. */
    if (!jg_patch_enabled())
        T_FAIL_("the preload library is not loaded (LD_PRELOAD)");
    T_OK(jg_main_init(argc, argv));
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
