/* SPDX-License-Identifier: MIT */
/*
 * arch/cpu.h - the per-ISA bits that code above the arch layer needs
 * besides the context switch: the spin-wait hint and the raw clone system
 * call, whose argument order differs between ISAs. An #if on the ISA
 * outside arch/ belongs here instead (tp.h holds the thread-pointer test).
 */
#ifndef JG_ARCH_CPU_H
#define JG_ARCH_CPU_H

#include <sys/syscall.h>
#include <unistd.h>

/*
 * A spin-wait hint to the CPU (it saves power and yields the core to a
 * sibling hyperthread), and a compiler barrier on every ISA, so a loop
 * that spins on it re-reads memory each time round.
 */
static inline void jg__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * The clone system call without glibc, fork-like: no new stack, the child
 * goes on from here on a copy of the caller's. flags as for clone(2);
 * parent_tid, child_tid and tls are used as the flags say (NULL / 0
 * otherwise). Returns as syscall(2) does: the child's pid in the parent,
 * 0 in the child, -1 with errno. The kernel takes the last two arguments
 * in another order on x86-64, (flags, stack, parent_tid, child_tid, tls),
 * than on aarch64 and most other ISAs, (flags, stack, parent_tid, tls,
 * child_tid); s390 and microblaze differ again and are not supported.
 */
static inline long jg__clone_raw(unsigned long flags, void *parent_tid,
                                 void *child_tid, unsigned long tls)
{
#if defined(__x86_64__)
    return syscall(SYS_clone, flags, NULL, parent_tid, child_tid, tls);
#else
    return syscall(SYS_clone, flags, NULL, parent_tid, tls, child_tid);
#endif
}

#endif
