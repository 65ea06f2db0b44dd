/* SPDX-License-Identifier: MIT */
/*
 * switch.c - the switch round trip A -> B -> A between two green threads
 * through the public jg_switch (dedicated and sliced stacks), beside two
 * anchors measured in the same process: the raw arch switch underneath
 * (jg__ctx_switch, the floor) and glibc's swapcontext (the ceiling).
 */
#include <ucontext.h>

#include <juggle.h>

#include "arch/switch.h"
#include "bench.h"

#define RT_DEDICATED 2000000L
#define RT_SLICED 200000L
#define RT_SWAP 100000L
#define ANCHOR_STACK (64 * 1024)

/* ---- the raw arch switch: what jg_switch adds its bookkeeping to ---- */

static struct jg__ctx raw_main, raw_a, raw_b;
static long raw_n;
static double raw_ns;

static void raw_b_entry(void *val)
{
    (void)val;
    for (;;)
        jg__ctx_switch(&raw_b, &raw_a, NULL);
}

static void raw_a_entry(void *val)
{
    (void)val;
    jg__ctx_switch(&raw_a, &raw_b, NULL);       /* start B */
    int64_t t0 = bench_now();
    for (long i = 0; i < raw_n; i++)
        jg__ctx_switch(&raw_a, &raw_b, NULL);
    raw_ns = bench_per(t0, bench_now(), raw_n);
    for (;;)
        jg__ctx_switch(&raw_a, &raw_main, NULL);
}

static double raw_once(void *arg)
{
    static char stack_a[ANCHOR_STACK], stack_b[ANCHOR_STACK];
    (void)arg;
    jg__ctx_init(&raw_a, stack_a, sizeof(stack_a), raw_a_entry);
    jg__ctx_init(&raw_b, stack_b, sizeof(stack_b), raw_b_entry);
    jg__ctx_switch(&raw_main, &raw_a, NULL);
    return raw_ns;
}

/* ---- glibc swapcontext, the same pattern ---- */

static ucontext_t uc_main, uc_a, uc_b;
static long uc_n;
static double uc_ns;

static void uc_b_entry(void)
{
    for (;;)
        swapcontext(&uc_b, &uc_a);
}

static void uc_a_entry(void)
{
    swapcontext(&uc_a, &uc_b);                  /* start B */
    int64_t t0 = bench_now();
    for (long i = 0; i < uc_n; i++)
        swapcontext(&uc_a, &uc_b);
    uc_ns = bench_per(t0, bench_now(), uc_n);
    swapcontext(&uc_a, &uc_main);
}

static double uc_once(void *arg)
{
    static char stack_a[ANCHOR_STACK], stack_b[ANCHOR_STACK];
    (void)arg;
    getcontext(&uc_a);
    uc_a.uc_stack.ss_sp = stack_a;
    uc_a.uc_stack.ss_size = sizeof(stack_a);
    uc_a.uc_link = &uc_main;
    makecontext(&uc_a, uc_a_entry, 0);
    getcontext(&uc_b);
    uc_b.uc_stack.ss_sp = stack_b;
    uc_b.uc_stack.ss_size = sizeof(stack_b);
    uc_b.uc_link = &uc_main;
    makecontext(&uc_b, uc_b_entry, 0);
    swapcontext(&uc_main, &uc_a);
    return uc_ns;
}

int main(void)
{
    raw_n = RT_DEDICATED;
    uc_n = RT_SWAP;

    double ours = bench_rt(JG_STACK_DEDICATED, RT_DEDICATED);
    bench_print("switch.roundtrip", ours, "ns");
    bench_print("switch.roundtrip.sliced",
                bench_rt(JG_STACK_SLICED, RT_SLICED), "ns");
    bench_print("switch.roundtrip.raw", bench_run(raw_once, NULL), "ns");
    double swap = bench_run(uc_once, NULL);
    bench_print("switch.swapcontext", swap, "ns");
    bench_print("switch.ratio.swapcontext", swap / ours, "x");
    return 0;
}
