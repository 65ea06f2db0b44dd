/* SPDX-License-Identifier: MIT */
/*
 * stack.c - dedicated green-thread stacks: one mmap'd region per stack, a
 * PROT_NONE guard below the usable part (2 VMAs per stack), a bounded
 * per-hub free pool, and the overflow report from a sigaltstack handler.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stack.h"
#include "sys.h"

/*
 * valgrind must be told about stacks or it takes every switch for a huge
 * stack-pointer jump. Its client requests are a few no-op instructions
 * outside valgrind and happen only at map/unmap, so they stay in release.
 */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define JG_VALGRIND 1
#endif
#endif
#ifndef JG_VALGRIND
#define JG_VALGRIND 0
#endif

/*
 * Sanitizer entry points, declared here so that the sanitizer headers need
 * not exist; compiled out unless the code is built with ASan.
 * LSan does not scan mmap'd memory: heap pointers held only by a green
 * thread's locals would be reported as leaks without the root region.
 */
#if JG_ASAN
#define JG_STACK_HOOKS 1
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
void __asan_get_shadow_mapping(size_t *shadow_scale, size_t *shadow_offset);
void __lsan_register_root_region(const void *p, size_t size);
void __lsan_unregister_root_region(const void *p, size_t size);
#else
#define JG_STACK_HOOKS 0
#endif

/* The sigaltstack of each OS thread that runs green threads. */
#define JG_ALTSTACK_SIZE (64 * 1024)

static size_t page_size(void)
{
    static size_t cached;       /* racy but benign: all store the same */
    size_t p = __atomic_load_n(&cached, __ATOMIC_RELAXED);

    if (unlikely(!p)) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&cached, p, __ATOMIC_RELAXED);
    }
    return p;
}

static size_t round_page(size_t n)
{
    size_t p = page_size();
    return (n + p - 1) & ~(p - 1);
}

/* The guard: JG_STACK_GUARD, or one page where pages are larger. */
static size_t guard_size(void)
{
    return round_page(JG_STACK_GUARD);
}

size_t jg__stack_default_size(void)
{
    /* ASan's redzones and fake frames make every frame several times
     * larger; 256 KiB is a multiple of every page size Linux uses. */
    return (size_t)256 * 1024 * (JG_ASAN ? 4 : 1);
}

#if JG_STACK_HOOKS
/*
 * Clear ASan's poison on [p, p + n). A plain unpoison writes the shadow
 * (an eighth of n) and so makes it resident: 128 KiB per 1 MiB stack, at
 * every reuse. Instead give the whole shadow pages back to the kernel (they
 * read as zero, "addressable", as ASan itself does for large regions) and
 * unpoison only the unaligned ends.
 */
static void asan_clear(void *p, size_t n)
{
    size_t scale, off, pg = page_size();
    uintptr_t lo = (uintptr_t)p, hi = lo + n;
    uintptr_t slo, shi;

    __asan_get_shadow_mapping(&scale, &off);
    slo = ((lo >> scale) + off + pg - 1) & ~(pg - 1);
    shi = ((hi >> scale) + off) & ~(pg - 1);
    if (shi > slo && madvise((void *)slo, shi - slo, MADV_DONTNEED) == 0) {
        uintptr_t alo = (slo - off) << scale, ahi = (shi - off) << scale;
        __asan_unpoison_memory_region(p, alo - lo);
        __asan_unpoison_memory_region((void *)ahi, hi - ahi);
        return;
    }
    __asan_unpoison_memory_region(p, n);
}
#endif

/*
 * The usable size for a request: 0 is the default, anything else is rounded
 * up to pages and raised to at least JG_STACK_GUARD (smaller stacks cannot
 * even hold libc's printf). 0 if the request is absurd (overflow).
 */
static size_t usable_size(size_t size)
{
    if (size == 0)
        return jg__stack_default_size();
    if (size > SIZE_MAX / 4)
        return 0;
    if (size < JG_STACK_GUARD)
        size = JG_STACK_GUARD;
    return round_page(size);
}

/*
 * Map one stack: the whole region PROT_NONE first, then open the part above
 * the guard. Doing it in this order means no instant exists where usable
 * memory lies unguarded; a failure of either step (ENOMEM, or EAGAIN/ENOMEM
 * past vm.max_map_count) unmaps what exists and reports -ENOMEM.
 */
static int stack_map(size_t size, struct jg__stack **out)
{
    size_t guard = guard_size();
    size_t len = guard + size;
    struct jg__stack *s;
    char *m;

    s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    m = mmap(NULL, len, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
        free(s);
        return -ENOMEM;
    }
    if (mprotect(m + guard, size, PROT_READ | PROT_WRITE) != 0) {
        /* Unmapping the whole region never needs a VMA split, so this
         * cannot itself fail for want of map count. */
        munmap(m, len);
        free(s);
        return -ENOMEM;
    }
    s->map = m;
    s->map_len = len;
    s->base = m + guard;
    s->size = size;
    s->name = NULL;
    s->next = NULL;
    s->vg_id = 0;
#if JG_VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->base, (char *)s->base + size);
#endif
#if JG_STACK_HOOKS
    /* The kernel may hand back an address range whose shadow still holds
     * the poison of an earlier stack that lived there. */
    asan_clear(s->base, size);
    __lsan_register_root_region(s->base, size);
#endif
    *out = s;
    return 0;
}

void jg__stack_unmap(struct jg__stack *s)
{
    if (!s)
        return;
#if JG_STACK_HOOKS
    __lsan_unregister_root_region(s->base, s->size);
    /* Leave clean shadow behind for whatever is mapped here next. */
    asan_clear(s->base, s->size);
#endif
#if JG_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    munmap(s->map, s->map_len);
    free(s);
}

int jg__stack_get(struct jg__stack_pool *p, size_t size,
                  struct jg__stack **out)
{
    struct jg__stack *s;

    size = usable_size(size);
    if (!size)
        return -ENOMEM;
    /* Only default-size stacks are pooled; LIFO, so the most recently
     * used (cache- and TLB-warm) stack goes out first. */
    if (size == jg__stack_default_size() && p->free) {
        s = p->free;
        p->free = s->next;
        p->count--;
        s->next = NULL;
        s->name = NULL;
#if JG_STACK_HOOKS
        /* The last owner's frames left redzones poisoned: a new owner's
         * frames at the same addresses would be reported as overflows. */
        asan_clear(s->base, s->size);
#endif
        *out = s;
        return 0;
    }
    return stack_map(size, out);
}

void jg__stack_put(struct jg__stack_pool *p, struct jg__stack *s,
                   size_t extra)
{
    if (!s)
        return;
    /* Pages the last owner touched stay resident while pooled: at most
     * max stacks' worth, the price of not faulting them in again. */
    if (s->size == jg__stack_default_size() && p->count < p->max + extra) {
        s->name = NULL;
        s->next = p->free;
        p->free = s;
        p->count++;
        return;
    }
    jg__stack_unmap(s);
}

int jg__stack_get_spare(struct jg__stack_pool *p, size_t keep,
                        struct jg__stack **out)
{
    if (p->count > keep)
        return jg__stack_get(p, 0, out);
    return stack_map(jg__stack_default_size(), out);
}

int jg__stack_reserve(struct jg__stack_pool *p)
{
    struct jg__stack *s;
    int rc = stack_map(jg__stack_default_size(), &s);

    if (rc < 0)
        return rc;
    s->next = p->free;
    p->free = s;
    p->count++;
    return 0;
}

void jg__stack_pool_trim(struct jg__stack_pool *p, size_t extra)
{
    while (p->count > p->max + extra && p->free) {
        struct jg__stack *s = p->free;

        p->free = s->next;
        p->count--;
        jg__stack_unmap(s);
    }
}

void jg__stack_pool_drain(struct jg__stack_pool *p)
{
    struct jg__stack *s;

    while ((s = p->free)) {
        p->free = s->next;
        jg__stack_unmap(s);
    }
    p->count = 0;
}

/* -- The overflow report ------------------------------------------------ */

/* The handlers that were installed before ours; we chain to them. */
static struct sigaction prev_segv, prev_bus;
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;
static int handlers_rc;
static _Thread_local bool altstack_done;

/* Write the report for an overflow of s and abort (write(2) only). */
static _Noreturn void report_overflow(const struct jg__stack *s)
{
    char num[24];

    jg__write_stderr("juggle: green thread '");
    if (s->name) {
        jg__write_stderr(s->name);
    } else {
        jg__write_stderr("green-");
        jg__write_stderr(jg__utoa(num, s->owner_id));
    }
    jg__write_stderr("' overflowed its ");
    jg__write_stderr(jg__utoa(num, s->size));
    jg__write_stderr("-byte stack\n");
    /* abort() unblocks SIGABRT and resets it to default if a handler
     * returns: the process dies by SIGABRT whatever the user installed. */
    abort();
}

/*
 * Hand a fault that is not ours to whoever was there before: call a
 * previous function handler as it asked to be called, or reinstate the
 * default action so the faulting instruction faults again on return and the
 * process dies as it would have without juggle.
 */
static void chain(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
    struct sigaction dfl;

    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        struct sigaction call = *prev;
        if (prev->sa_flags & SA_RESETHAND) {
            /* One-shot handler: the next fault takes the default. */
            prev->sa_handler = SIG_DFL;
            prev->sa_flags &= ~SA_SIGINFO;
        }
        /* Run it with the mask it asked for; sigreturn restores ours. */
        pthread_sigmask(SIG_BLOCK, &call.sa_mask, NULL);
        if (call.sa_flags & SA_SIGINFO)
            call.sa_sigaction(sig, si, uc);
        else
            call.sa_handler(sig);
        return;
    }
    /* SIG_IGN cannot ignore a real fault (it would fault forever): the
     * kernel itself would kill; so do we, with the default action. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    jg__sys_sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0) {
        /* Sent by kill/tgkill, not a fault: nothing re-executes, so send
         * it again; it is blocked until this handler returns. */
        raise(sig);
    }
}

/* Set once by the layer above (jg__stack_thread_init); read from the
 * handler. Always the same function: relaxed. */
static _Atomic(jg__stack_running_fn) running_fn;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    jg__stack_running_fn fn =
        atomic_load_explicit(&running_fn, memory_order_relaxed);
    struct jg__stack *s = fn ? fn() : NULL;

    /* Only a fault inside the guard of the stack we are running on is an
     * overflow; a stray pointer into another stack's guard is a bug of
     * another kind and goes down the normal path. */
    if (s && si->si_code > 0) {
        uintptr_t a = (uintptr_t)si->si_addr;
        if (a >= (uintptr_t)s->map && a < (uintptr_t)s->base)
            report_overflow(s);
    }
    chain(sig, si, uc);
    errno = saved_errno;
}

static void altstack_free(void *m)
{
    stack_t ss;
    stack_t cur;

    /* Only unmap it if it is still the thread's alternate stack and we
     * are not running on it (a thread may exit from a handler). */
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == m &&
        !(cur.ss_flags & SS_ONSTACK)) {
        memset(&ss, 0, sizeof(ss));
        ss.ss_flags = SS_DISABLE;
        if (sigaltstack(&ss, NULL) == 0)
            munmap(m, JG_ALTSTACK_SIZE);
    }
}

static void install_handlers(void)
{
    struct sigaction sa;

    if (pthread_key_create(&altstack_key, altstack_free) != 0) {
        handlers_rc = -ENOMEM;
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    /* sigaction stores the previous disposition atomically with ours, so
     * no fault can find prev_* half-written. */
    if (jg__sys_sigaction(SIGSEGV, &sa, &prev_segv) != 0 ||
        jg__sys_sigaction(SIGBUS, &sa, &prev_bus) != 0)
        handlers_rc = -errno;
}

int jg__stack_thread_init(jg__stack_running_fn running)
{
    stack_t cur, ss;
    void *m;

    if (running)
        atomic_store_explicit(&running_fn, running, memory_order_relaxed);
    pthread_once(&handlers_once, install_handlers);
    if (handlers_rc < 0)
        return handlers_rc;
    if (altstack_done)
        return 0;
    /* A thread that already has an alternate stack (the user's, or ASan's)
     * keeps it: the handler needs little room. */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
        altstack_done = true;
        return 0;
    }
    m = mmap(NULL, JG_ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    memset(&ss, 0, sizeof(ss));
    ss.ss_sp = m;
    ss.ss_size = JG_ALTSTACK_SIZE;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(m, JG_ALTSTACK_SIZE);
        return -ENOMEM;
    }
    /* Freed when the thread exits, if it is still ours then. */
    pthread_setspecific(altstack_key, m);
    altstack_done = true;
    return 0;
}
