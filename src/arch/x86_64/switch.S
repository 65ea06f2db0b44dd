/* SPDX-License-Identifier: MIT */
/*
 * x86-64 context switch (System V AMD64 ABI).
 *
 * void *jg__ctx_switch(struct jg__ctx *from, struct jg__ctx *to, void *val)
 * void *jg__ctx_jump(struct jg__ctx *from, struct jg__ctx *to, void *val)
 *   rdi = from, rsi = to, rdx = val; returns val of the switch that resumes us.
 *   The two differ only in how they enter the resumed side (see below).
 *
 * Saved on the suspended stack, from the saved stack pointer upwards:
 *   +0  MXCSR (4 bytes, control/status: rounding, exception masks)
 *   +4  x87 control word (2 bytes)
 *   +8  r15, +16 r14, +24 r13, +32 r12, +40 rbx, +48 rbp
 *   +56 return address
 * These are exactly the callee-saved registers of the ABI; MXCSR's control
 * bits and the x87 control word are callee-saved too. Caller-saved registers
 * (and the SSE/x87 data registers) are dead across a call. The direction
 * flag is clear at every call by the ABI, so it needs no saving.
 *
 * Alignment: at the call into jg__ctx_switch rsp is 16-aligned, so the saved
 * stack pointer is 16-aligned too (ret + 6 pushes + 8 bytes = 64). A fresh
 * context is laid out the same way by jg__ctx_init, with jg__ctx_start as the
 * return address, so that the first switch into it "returns" there.
 */
        .text

/*
 * SWITCH exit: the shared body; `exit` is how the resumed side is entered.
 */
        .macro  SWITCH name, exit
        .globl  \name
        .hidden \name
        .type   \name, @function
        .p2align 4
\name:
        .cfi_startproc
        pushq   %rbp                    /* callee-saved registers ... */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r15, 0
        subq    $8, %rsp                /* ... and a slot for the FPU state */
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)                  /* SSE control/status word */
        fnstcw  4(%rsp)                 /* x87 control word */
        movq    %rsp, (%rdi)            /* from->sp = rsp */

        movq    (%rsi), %rsp            /* rsp = to->sp: now on the other stack */
        ldmxcsr (%rsp)                  /* its FPU state ... */
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15                    /* ... and its callee-saved registers */
        .cfi_adjust_cfa_offset -8
        popq    %r14
        .cfi_adjust_cfa_offset -8
        popq    %r13
        .cfi_adjust_cfa_offset -8
        popq    %r12
        .cfi_adjust_cfa_offset -8
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        movq    %rdx, %rax              /* hand val to the resumed side */
        .ifc \exit, ret
        ret                             /* pops its resume address */
        .else
        popq    %r8                     /* its resume address, entered */
        .cfi_adjust_cfa_offset -8       /* with an indirect jump */
        .cfi_register rip, r8
        jmpq    *%r8
        .endif
        .cfi_endproc
        .size   \name, .-\name
        .endm

/*
 * jg__ctx_switch returns with ret: right when both sides switched from the
 * same call site (a park in the runtime), since the return stack buffer
 * then predicts the resumed side's address.
 */
        SWITCH  jg__ctx_switch, ret

/*
 * jg__ctx_jump enters the resumed side with an indirect jmp, predicted by
 * the branch target buffer, which learns a ping-pong's alternation. It is
 * for tail calls (jg_switch): the caller's frame is gone, the resumed side
 * continues straight in user code, and no ret is left to mispredict.
 */
        SWITCH  jg__ctx_jump, jmp

/*
 * First code of a fresh context: jg__ctx_init put the entry function in r12;
 * the value passed by the switch is in rax. rsp is 16-aligned here, so the
 * call leaves the callee's frame aligned as the ABI wants. The entry never
 * returns; ud2 traps if it does. The return address column is undefined so
 * that debuggers stop unwinding here: this is the bottom of a green stack.
 */
        .globl  jg__ctx_start
        .hidden jg__ctx_start
        .type   jg__ctx_start, @function
        .p2align 4
jg__ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %rax, %rdi              /* entry(val) */
        callq   *%r12
        ud2
        .cfi_endproc
        .size   jg__ctx_start, .-jg__ctx_start

        .section .note.GNU-stack,"",@progbits
