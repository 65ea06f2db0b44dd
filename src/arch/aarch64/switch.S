/* SPDX-License-Identifier: MIT */
/*
 * aarch64 context switch (AAPCS64).
 *
 * void *jg__ctx_switch(struct jg__ctx *from, struct jg__ctx *to, void *val)
 * void *jg__ctx_jump(struct jg__ctx *from, struct jg__ctx *to, void *val)
 *   x0 = from, x1 = to, x2 = val; returns val of the switch that resumes us.
 *   The two differ only in how they enter the resumed side (see below).
 *
 * Saved on the suspended stack (176 bytes, a multiple of 16 so sp stays
 * 16-aligned as the ABI requires at every instruction):
 *   +0   x19 x20   +16 x21 x22   +32 x23 x24   +48 x25 x26   +64 x27 x28
 *   +80  x29 (frame pointer) x30 (link register: where we resume)
 *   +96  d8 d9     +112 d10 d11  +128 d12 d13  +144 d14 d15
 *   +160 FPCR (rounding mode, flush-to-zero: callee-saved control bits)
 * x19-x29 and the low 64 bits of v8-v15 are the ABI's callee-saved set.
 */
        .text

        .macro  SWITCH name, exit
        .globl  \name
        .hidden \name
        .type   \name, %function
        .p2align 4
\name:
        .cfi_startproc
        sub     sp, sp, #176            /* room for the saved state */
        .cfi_def_cfa_offset 176
        stp     x19, x20, [sp, #0]      /* callee-saved integer registers */
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]     /* frame pointer and return address */
        stp     d8, d9, [sp, #96]       /* callee-saved FP registers */
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        .cfi_offset x19, -176           /* where a debugger finds them */
        .cfi_offset x20, -168
        .cfi_offset x21, -160
        .cfi_offset x22, -152
        .cfi_offset x23, -144
        .cfi_offset x24, -136
        .cfi_offset x25, -128
        .cfi_offset x26, -120
        .cfi_offset x27, -112
        .cfi_offset x28, -104
        .cfi_offset x29, -96
        .cfi_offset x30, -88
        .cfi_offset d8, -80
        .cfi_offset d9, -72
        .cfi_offset d10, -64
        .cfi_offset d11, -56
        .cfi_offset d12, -48
        .cfi_offset d13, -40
        .cfi_offset d14, -32
        .cfi_offset d15, -24
        mrs     x9, fpcr                /* FP control register */
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]                /* from->sp = sp */

        ldr     x9, [x1]                /* sp = to->sp: the other stack */
        mov     sp, x9
        ldr     x9, [sp, #160]          /* its FP control register ... */
        mrs     x10, fpcr
        cmp     x9, x10                 /* writing FPCR is slow on many */
        b.eq    1f                      /* cores: only when it differs */
        msr     fpcr, x9
1:
        ldp     x19, x20, [sp, #0]      /* ... and its saved registers */
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        .cfi_def_cfa_offset 0
        mov     x0, x2                  /* hand val to the resumed side */
        .ifc \exit, ret
        ret                             /* to x30, a predicted return */
        .else
        br      x30                     /* to x30, an indirect branch */
        .endif
        .cfi_endproc
        .size   \name, .-\name
        .endm

/*
 * jg__ctx_switch returns with ret, predicted by the return stack: right
 * when both sides switched from the same call site (a park). jg__ctx_jump
 * enters the resumed side with br, for tail calls (jg_switch): the branch
 * predictor learns a ping-pong's alternation and no ret is left to miss.
 */
        SWITCH  jg__ctx_switch, ret
        SWITCH  jg__ctx_jump, br


/*
 * First code of a fresh context: jg__ctx_init put the entry function in x19;
 * the value passed by the switch is already in x0. The link register column
 * is undefined so that debuggers stop unwinding here.
 */
        .globl  jg__ctx_start
        .hidden jg__ctx_start
        .type   jg__ctx_start, %function
        .p2align 4
jg__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0                 /* end of the frame-pointer chain */
        blr     x19                     /* entry(val); never returns */
        brk     #0
        .cfi_endproc
        .size   jg__ctx_start, .-jg__ctx_start

        .section .note.GNU-stack,"",@progbits
