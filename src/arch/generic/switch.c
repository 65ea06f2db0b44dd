/* SPDX-License-Identifier: MIT */
/*
 * arch/generic/switch.c - the portable fallback context switch over
 * swapcontext(3). Much slower (it saves the signal mask with a system call)
 * but correct anywhere glibc runs. The value travels through a thread-local
 * slot, since swapcontext carries none.
 */
#include <stdint.h>
#include <stdlib.h>

#include "switch.h"

static _Thread_local void *passed;
static _Thread_local void (*starting)(void *val);

static void start(void)
{
    void (*entry)(void *) = starting;

    entry(passed);
    abort();                    /* entry never returns */
}

void jg__ctx_init(struct jg__ctx *ctx, void *lo, size_t size,
                  void (*entry)(void *val))
{
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    ctx->entry = entry;
    makecontext(&ctx->uc, start, 0);
}

void *jg__ctx_switch(struct jg__ctx *from, struct jg__ctx *to, void *val)
{
    /* swapcontext keeps the registers in the ucontext, not on the stack;
     * what the suspended side needs on its stack is this frame and the
     * return address swapcontext pushes. 256 bytes below this frame bounds
     * both (stack slicing copies from here up). */
    from->sp = (char *)__builtin_frame_address(0) - 256;
    passed = val;
    starting = to->entry;
    swapcontext(&from->uc, &to->uc);
    return passed;
}

void *jg__ctx_jump(struct jg__ctx *from, struct jg__ctx *to, void *val)
{
    return jg__ctx_switch(from, to, val);
}
