/* SPDX-License-Identifier: MIT */
/*
 * swapcontext.c - anchor: glibc's swapcontext round trip A -> B -> A
 * between two makecontext'd contexts, the pattern of bench/switch.c.
 * Standalone (no juggle), so it runs alternately with ours.
 */
#include <ucontext.h>

#include "../bench.h"

#define N 100000L
#define STACK (64 * 1024)

static ucontext_t uc_main, uc_a, uc_b;
static double ns;

static void b_entry(void)
{
    for (;;)
        swapcontext(&uc_b, &uc_a);
}

static void a_entry(void)
{
    swapcontext(&uc_a, &uc_b);                  /* start B */
    int64_t t0 = bench_now();
    for (long i = 0; i < N; i++)
        swapcontext(&uc_a, &uc_b);
    ns = bench_per(t0, bench_now(), N);
}

static double once(void *arg)
{
    static char stack_a[STACK], stack_b[STACK];
    (void)arg;
    getcontext(&uc_a);
    uc_a.uc_stack.ss_sp = stack_a;
    uc_a.uc_stack.ss_size = sizeof(stack_a);
    uc_a.uc_link = &uc_main;                    /* A returns to main */
    makecontext(&uc_a, a_entry, 0);
    getcontext(&uc_b);
    uc_b.uc_stack.ss_sp = stack_b;
    uc_b.uc_stack.ss_size = sizeof(stack_b);
    uc_b.uc_link = &uc_main;
    makecontext(&uc_b, b_entry, 0);
    swapcontext(&uc_main, &uc_a);
    return ns;
}

int main(void)
{
    bench_print("switch.roundtrip.swapcontext", bench_run(once, NULL), "ns");
    return 0;
}
