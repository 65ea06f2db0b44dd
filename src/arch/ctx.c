/* SPDX-License-Identifier: MIT */
/*
 * arch/ctx.c - lays out a fresh context's first frame for the assembly
 * switch, so that the first jg__ctx_switch into it "returns" to
 * jg__ctx_start, which calls the entry function.
 */
#include <stdint.h>
#include <string.h>

#include "switch.h"

void jg__ctx_start(void);

#if defined(__x86_64__)
void jg__ctx_init(struct jg__ctx *ctx, void *lo, size_t size,
                  void (*entry)(void *val))
{
    /* 16-aligned top, minus a zeroed slot that ends the frame chain. */
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16 - 64);
    uint32_t mxcsr;
    uint16_t fpucw;

    /* A new context starts with the creator's floating-point modes. */
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(sp, 0, 16 + 64);
    memcpy((char *)sp, &mxcsr, 4);
    memcpy((char *)sp + 4, &fpucw, 2);
    sp[4] = (uint64_t)(uintptr_t)entry;            /* r12 */
    sp[7] = (uint64_t)(uintptr_t)jg__ctx_start;    /* return address */
    ctx->sp = sp;
}
#elif defined(__aarch64__)
void jg__ctx_init(struct jg__ctx *ctx, void *lo, size_t size,
                  void (*entry)(void *val))
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16 - 176);
    uint64_t fpcr;

    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(sp, 0, 16 + 176);
    sp[0] = (uint64_t)(uintptr_t)entry;            /* x19 */
    sp[11] = (uint64_t)(uintptr_t)jg__ctx_start;   /* x30 */
    sp[20] = fpcr;
    ctx->sp = sp;
}
#else
#error "no assembly context switch for this ISA: build with -DJG_SWITCH=ucontext"
#endif
