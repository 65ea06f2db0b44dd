/* SPDX-License-Identifier: MIT */
/*
 * arch/switch.h - the one function of the arch layer: save the callee-saved
 * state on the current stack, switch to another saved context, and hand it
 * a value. x86-64 and aarch64 in assembly; ucontext as the fallback.
 */
#ifndef JG_ARCH_SWITCH_H
#define JG_ARCH_SWITCH_H

#include <stddef.h>

#if defined(JG_SWITCH_UCONTEXT)
#include <ucontext.h>
struct jg__ctx {
    void *sp;                   /* a lower bound of the saved stack pointer */
    void (*entry)(void *val);
    ucontext_t uc;
};
#else
struct jg__ctx {
    void *sp;                   /* saved stack pointer; offset 0 (asm uses it) */
};
#endif

/*
 * Prepare ctx to start entry(val) on the stack [lo, lo + size) the first time
 * something switches to it with val. entry must never return.
 */
__attribute__((visibility("hidden")))
void jg__ctx_init(struct jg__ctx *ctx, void *lo, size_t size,
                  void (*entry)(void *val));

/*
 * Save the current context in from, resume to, and pass val: the resumed
 * side's jg__ctx_switch (or entry) receives val. Returns the value passed
 * by whoever switches back to from. After it, from->sp is at or below the
 * lowest stack byte the suspended context needs (stack slicing copies
 * [from->sp, top) out).
 */
__attribute__((visibility("hidden")))
void *jg__ctx_switch(struct jg__ctx *from, struct jg__ctx *to, void *val);

/*
 * The same switch, entering the resumed side with an indirect jump instead
 * of a return: for tail calls, where the caller has nothing left to do
 * after the switch (the resumed side continues in its own caller).
 */
__attribute__((visibility("hidden")))
void *jg__ctx_jump(struct jg__ctx *from, struct jg__ctx *to, void *val);

#endif
