/* SPDX-License-Identifier: MIT */
/*
 * arch/tp.h - whether this ISA lets C read the thread pointer
 * (__builtin_thread_pointer) and puts initial-exec TLS at one fixed offset
 * from it in every thread. The preload library includes it in every file
 * (through preload.h), so it includes nothing.
 */
#ifndef JG_ARCH_TP_H
#define JG_ARCH_TP_H

/* 1 on x86-64 and aarch64, else 0 (callers fall back to a function). */
#if defined(__x86_64__) || defined(__aarch64__)
#define JG_ARCH_HAS_TP 1
#else
#define JG_ARCH_HAS_TP 0
#endif

#endif
