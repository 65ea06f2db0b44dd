/* SPDX-License-Identifier: MIT */
/*
 * signal.c - inside a signal handler the interposers are libc (DESIGN.md,
 * Seams): a handler's write to a full pipe must block its thread as libc's
 * would, not park the interrupted green thread and run others inside the
 * handler. sigaction and the signal() family install a trampoline in place
 * of a user's function handler; it raises a thread-local depth around the
 * call, and jg__pl_green() answers NULL while it is above zero. What the
 * calls report back (the old action) is the user's own handler and flags.
 * Everything here is async-signal-safe: atomics, TLS, libc's sigaction.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "preload/preload.h"

PL_SYM(sigaction);
PL_SYM(signal);
PL_SYM(bsd_signal);
PL_SYM(ssignal);
PL_SYM(sysv_signal);
PL_SYM(__sysv_signal);
PL_SYM(sigset);

extern __sighandler_t bsd_signal(int sig, __sighandler_t h);
extern __sighandler_t ssignal(int sig, __sighandler_t h);
extern __sighandler_t __sysv_signal(int sig, __sighandler_t h);

/* Sanitizer runtimes install their own handlers through sigaction while
 * they initialise, before instrumented code may run: none in this file. */
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define NO_SAN __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef NO_SAN
#define NO_SAN __attribute__((no_sanitize_address, no_sanitize_thread))
#endif

/* libc's definition, resolved here rather than by preload.c's (which is
 * instrumented): a sanitizer's first sigaction comes before any
 * constructor of ours. */
NO_SAN static void *sig_sym(struct jg__pl_sym *s)
{
    void *f = atomic_load_explicit(&s->fn, memory_order_relaxed);

    if (unlikely(!f)) {
        f = dlsym(RTLD_NEXT, s->name);
        atomic_store_explicit(&s->fn, f, memory_order_relaxed);
    }
    return f;
}
#undef REAL
#define REAL(fn) ((__typeof__(&fn))sig_sym(&pl_sym_##fn))

#define NSIGS 65            /* 1..64 on Linux */
#define LEVELS 8            /* nested handlers whose frames we remember */

typedef void (*sa_fn)(int, siginfo_t *, void *);
/* Between handler types: through void (*)(void), which GCC allows. */
#define AS_FN(h) ((sa_fn)(void (*)(void))(h))
#define AS_H(f) ((__sighandler_t)(void (*)(void))(f))

/* The user's handler per signal while the trampoline is installed (always
 * called with three arguments: harmless for a one-argument handler in
 * every Linux ABI), and whether the user asked for SA_SIGINFO. */
static _Atomic(sa_fn) user_fn[NSIGS];
static _Atomic int forced[NSIGS];   /* we added SA_SIGINFO */

_Thread_local int jg__pl_sig_depth JG_TLS_IE;
/* Where each handler level started: its frame, or the alternate signal
 * stack it ran on, to notice a handler left by siglongjmp. */
static _Thread_local uintptr_t lvl_sp[LEVELS] JG_TLS_IE;
static _Thread_local uintptr_t lvl_lo[LEVELS] JG_TLS_IE;
static _Thread_local uintptr_t lvl_hi[LEVELS] JG_TLS_IE;
/* The green thread (or hub context) each level interrupted: a handler
 * never switches, so another one running means the level is over (its
 * stack is elsewhere, and comparing frames would say nothing). */
static _Thread_local const void *lvl_cur[LEVELS] JG_TLS_IE;

/* The running green thread of this thread's hub, or NULL. */
NO_SAN static const void *running(void)
{
    if (!atomic_load_explicit(&jg__pl_on, memory_order_acquire))
        return NULL;
    struct jg__hub_head *h = jg__pl_hub();
    return h ? h->current : NULL;
}

NO_SAN static void trampoline(int sig, siginfo_t *si, void *uc)
{
    char here;
    int d = jg__pl_sig_depth++;
    sa_fn fn = sig > 0 && sig < NSIGS
        ? atomic_load_explicit(&user_fn[sig], memory_order_acquire) : NULL;

    /* Raised before recording: a nested handler in between records the
     * next level, never this one. */
    atomic_signal_fence(memory_order_seq_cst);
    if (d < LEVELS) {
        const ucontext_t *u = uc;
        uintptr_t sp = (uintptr_t)&here, lo = 0, hi = 0;
        /* The kernel saves the alternate stack in the context: are we on
         * it? (SS_ONSTACK there tells only about the interrupted code.) */
        if (u && !(u->uc_stack.ss_flags & SS_DISABLE) && u->uc_stack.ss_size) {
            lo = (uintptr_t)u->uc_stack.ss_sp;
            hi = lo + u->uc_stack.ss_size;
            if (sp < lo || sp >= hi)
                lo = hi = 0;
        }
        lvl_sp[d] = sp;
        lvl_lo[d] = lo;
        lvl_hi[d] = hi;
        lvl_cur[d] = running();
    }
    atomic_signal_fence(memory_order_seq_cst);
    if (fn && (void *)fn != (void *)SIG_IGN && (void *)fn != (void *)SIG_DFL)
        fn(sig, si, uc);
    atomic_signal_fence(memory_order_seq_cst);
    jg__pl_sig_depth = d;
}

NO_SAN bool jg__pl_sig_inside(void)
{
    char here;
    uintptr_t sp = (uintptr_t)&here;

    /* A handler that left by siglongjmp never lowered the depth: a level
     * whose frame (or alternate stack) we are no longer in is over. */
    while (jg__pl_sig_depth > 0) {
        int d = jg__pl_sig_depth - 1;
        if (d >= LEVELS)
            return true;
        bool left = running() != lvl_cur[d] ||
                    (lvl_hi[d] ? sp < lvl_lo[d] || sp >= lvl_hi[d]
                               : sp > lvl_sp[d]);
        if (!left)
            return true;
        jg__pl_sig_depth = d;
    }
    return false;
}

NO_SAN static bool is_fn(__sighandler_t h)
{
    return h != SIG_DFL && h != SIG_IGN && h != SIG_ERR && h != SIG_HOLD;
}

/* The action the kernel holds, as the user installed it: their handler
 * for the trampoline, and without the SA_SIGINFO we added. */
NO_SAN static void as_user(struct sigaction *k, sa_fn prev, int was_forced)
{
    if (k->sa_sigaction == trampoline) {
        k->sa_sigaction = prev;
        if (!prev)
            k->sa_handler = SIG_DFL;
    }
    if (was_forced)
        k->sa_flags &= ~SA_SIGINFO;
}

NO_SAN PL_EXPORT int sigaction(int sig, const struct sigaction *act,
                        struct sigaction *old)
{
    struct sigaction mine, k;
    const struct sigaction *use = act;

    if (sig <= 0 || sig >= NSIGS)
        return REAL(sigaction)(sig, act, old);
    sa_fn prev = atomic_load_explicit(&user_fn[sig], memory_order_acquire);
    int was_forced = atomic_load_explicit(&forced[sig], memory_order_relaxed);
    if (act && (act->sa_flags & SA_SIGINFO ? act->sa_sigaction != NULL
                                           : is_fn(act->sa_handler))) {
        /* Published before the kernel can call the trampoline for it. */
        atomic_store_explicit(&user_fn[sig], act->sa_flags & SA_SIGINFO
                              ? act->sa_sigaction : AS_FN(act->sa_handler),
                              memory_order_release);
        mine = *act;
        mine.sa_sigaction = trampoline;
        mine.sa_flags |= SA_SIGINFO;
        use = &mine;
    }
    int r = REAL(sigaction)(sig, use, &k);
    if (r < 0) {
        atomic_store_explicit(&user_fn[sig], prev, memory_order_release);
        return r;
    }
    if (act) {
        if (use != &mine)
            atomic_store_explicit(&user_fn[sig], NULL, memory_order_release);
        atomic_store_explicit(&forced[sig],
                              use == &mine && !(act->sa_flags & SA_SIGINFO),
                              memory_order_relaxed);
    }
    if (old) {
        as_user(&k, prev, was_forced);
        *old = k;
    }
    return r;
}

/*
 * The signal() family: libc's own call (its flags, siginterrupt's and
 * sigset's rules), then a function handler it installed is wrapped in the
 * trampoline with the same flags and mask. A signal in between runs the
 * handler unwrapped, as without the patch.
 */
NO_SAN static __sighandler_t wrapped(int sig, __sighandler_t ret, sa_fn prev)
{
    struct sigaction k;

    if (sig <= 0 || sig >= NSIGS || ret == SIG_ERR ||
        REAL(sigaction)(sig, NULL, &k) < 0)
        return ret;
    if (!(k.sa_flags & SA_SIGINFO) && is_fn(k.sa_handler)) {
        atomic_store_explicit(&user_fn[sig], AS_FN(k.sa_handler),
                              memory_order_release);
        atomic_store_explicit(&forced[sig], 1, memory_order_relaxed);
        k.sa_sigaction = trampoline;
        k.sa_flags |= SA_SIGINFO;
        (void)REAL(sigaction)(sig, &k, NULL);
    } else if (k.sa_sigaction != trampoline) {
        /* SIG_DFL, SIG_IGN (or sigset's SIG_HOLD, which keeps it). */
        atomic_store_explicit(&user_fn[sig], NULL, memory_order_release);
        atomic_store_explicit(&forced[sig], 0, memory_order_relaxed);
    }
    /* The old handler libc saw may be our trampoline: report the user's. */
    if (AS_FN(ret) == trampoline)
        return prev ? AS_H(prev) : SIG_DFL;
    return ret;
}

#define SIGNAL_LIKE(name) \
    NO_SAN PL_EXPORT __sighandler_t name(int sig, __sighandler_t h) \
    { \
        sa_fn prev = sig > 0 && sig < NSIGS \
            ? atomic_load_explicit(&user_fn[sig], memory_order_acquire) \
            : NULL; \
        return wrapped(sig, REAL(name)(sig, h), prev); \
    }

SIGNAL_LIKE(signal)
SIGNAL_LIKE(bsd_signal)
SIGNAL_LIKE(ssignal)
SIGNAL_LIKE(sysv_signal)
SIGNAL_LIKE(__sysv_signal)
/* sigset is obsolescent, and still called. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
SIGNAL_LIKE(sigset)
#pragma GCC diagnostic pop

/* Resolve now: the first sigaction may come from inside a handler, where
 * dlsym is not safe. */
__attribute__((constructor)) static void signal_ctor(void)
{
    (void)sig_sym(&pl_sym_sigaction);
    (void)sig_sym(&pl_sym_signal);
    (void)sig_sym(&pl_sym_bsd_signal);
    (void)sig_sym(&pl_sym_ssignal);
    (void)sig_sym(&pl_sym_sysv_signal);
    (void)sig_sym(&pl_sym___sysv_signal);
    (void)sig_sym(&pl_sym_sigset);
}
