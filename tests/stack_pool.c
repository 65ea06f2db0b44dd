/* SPDX-License-Identifier: MIT */
/*
 * stack_pool.c - the stack layer's internal API: LIFO reuse from the pool,
 * the bound, reservations, sizes, the guard region (in /proc/self/maps and
 * by faulting in a child), ASan/LSan hooks, and -ENOMEM with nothing leaked
 * when vm.max_map_count is reached.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stack.h"
#include "t.h"

#if JG_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
int __asan_address_is_poisoned(void const volatile *addr);
int __lsan_do_recoverable_leak_check(void);
#endif

static size_t pagesz(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* true if [p, p + one page) is mapped (msync fails with ENOMEM if not). */
static int mapped(void *p)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(pagesz() - 1);
    return msync((void *)a, pagesz(), MS_ASYNC) == 0;
}

/*
 * Number of VMAs of this process: the lines of /proc/self/maps. Reads with
 * a static buffer and raw read(2), so it neither allocates nor maps (it is
 * used while the map count is exhausted).
 */
static long count_vmas(void)
{
    static char buf[65536];
    long lines = 0;
    ssize_t n;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

    T_ASSERT(fd >= 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

/*
 * VMA counts are exact except under TSan, whose munmap interceptor remaps
 * parts of its shadow (splitting its own mappings) as it goes.
 */
#define T_VMAS(a, b) do { \
        if (!T_TSAN) \
            T_EQ(a, b); \
    } while (0)

static void pool_init(struct jg__stack_pool *p, size_t max)
{
    jg__stack_pool_init(p);
    p->max = max;
}

static void default_size(void)
{
    T_EQ(jg__stack_default_size(), (JG_ASAN ? 4 : 1) * 256 * 1024);
    T_EQ(jg__stack_default_size() % pagesz(), 0);

    struct jg__stack_pool p;
    jg__stack_pool_init(&p);
    T_EQ(p.max, JG_STACK_POOL_MAX);
    T_EQ(p.count, 0);
    T_PEQ(p.free, NULL);
}

/* The most recently returned stack goes out first; nothing is remapped. */
static void reuse_lifo(void)
{
    struct jg__stack_pool p;
    struct jg__stack *a, *b, *c;

    pool_init(&p, 4);
    T_OK(jg__stack_get(&p, 0, &a));
    T_OK(jg__stack_get(&p, 0, &b));
    T_ASSERT(a != b);
    T_EQ(a->size, jg__stack_default_size());
    memset(a->base, 0xa5, a->size);         /* usable end to end */
    memset(b->base, 0x5a, b->size);
    jg__stack_put(&p, a, 0);
    jg__stack_put(&p, b, 0);
    T_EQ(p.count, 2);
    long vmas = count_vmas();
    T_OK(jg__stack_get(&p, 0, &c));
    T_PEQ(c, b);
    T_OK(jg__stack_get(&p, 0, &c));
    T_PEQ(c, a);
    T_EQ(p.count, 0);
    T_VMAS(count_vmas(), vmas);               /* taken, not mapped */
    /* Reused stacks are still whole and writable. */
    T_EQ(((unsigned char *)a->base)[0], 0xa5);
    memset(a->base, 0, a->size);
    jg__stack_unmap(a);
    jg__stack_unmap(b);
}

/* Beyond max (+ extra) a returned stack is unmapped at once. */
static void bound(void)
{
    struct jg__stack_pool p;
    struct jg__stack *s[5];
    void *base[5];

    pool_init(&p, 2);
    for (int i = 0; i < 5; i++) {
        T_OK(jg__stack_get(&p, 0, &s[i]));
        base[i] = s[i]->base;
    }
    long vmas = count_vmas();
    for (int i = 0; i < 5; i++) {
        jg__stack_put(&p, s[i], 0);
        T_EQ(p.count, i < 2 ? i + 1 : 2);
        T_EQ(mapped(base[i]), i < 2);
        T_VMAS(count_vmas(), vmas - (i < 2 ? 0 : 2 * (i - 1)));
    }
    /* extra widens the bound for one call (the hub's reservations). */
    T_OK(jg__stack_get(&p, 0, &s[0]));
    T_OK(jg__stack_get(&p, 0, &s[1]));
    T_OK(jg__stack_get(&p, 0, &s[2]));
    jg__stack_put(&p, s[0], 1);
    jg__stack_put(&p, s[1], 1);
    jg__stack_put(&p, s[2], 1);
    T_EQ(p.count, 3);
    T_ASSERT(mapped(s[2]->base));
    jg__stack_pool_drain(&p);
    T_EQ(p.count, 0);
    T_PEQ(p.free, NULL);
    T_VMAS(count_vmas(), vmas - 10);
}

/* A reservation maps one stack onto the free list, bound or not. */
static void reserve(void)
{
    struct jg__stack_pool p;
    struct jg__stack *s;

    pool_init(&p, 0);
    long vmas = count_vmas();
    T_OK(jg__stack_reserve(&p));
    T_OK(jg__stack_reserve(&p));
    T_EQ(p.count, 2);
    T_VMAS(count_vmas(), vmas + 4);           /* two VMAs per stack */
    struct jg__stack *first = p.free;
    T_OK(jg__stack_get(&p, 0, &s));
    T_PEQ(s, first);
    T_EQ(p.count, 1);
    T_VMAS(count_vmas(), vmas + 4);
    /* The pool holds 1 (a reservation): with max 0 it is kept only while
     * the caller says one more reservation is outstanding. */
    jg__stack_put(&p, s, 2);
    T_EQ(p.count, 2);
    T_OK(jg__stack_get(&p, 0, &s));
    jg__stack_put(&p, s, 0);
    T_EQ(p.count, 1);
    T_VMAS(count_vmas(), vmas + 2);
    jg__stack_pool_drain(&p);
    T_VMAS(count_vmas(), vmas);
}

/* Sizes round up to pages, small ones rise to the guard size, and only
 * default-size stacks are pooled. */
static void sizes(void)
{
    struct jg__stack_pool p;
    struct jg__stack *s;
    size_t pg = pagesz();

    pool_init(&p, 8);
    T_OK(jg__stack_get(&p, 1, &s));
    T_EQ(s->size, JG_STACK_GUARD > pg ? JG_STACK_GUARD : pg);
    memset(s->base, 1, s->size);
    jg__stack_put(&p, s, 0);
    T_EQ(p.count, 0);                       /* not default: unmapped */

    T_OK(jg__stack_get(&p, 100000, &s));
    T_EQ(s->size, (100000 + pg - 1) / pg * pg);
    T_EQ((uintptr_t)s->base % pg, 0);
    T_EQ((char *)s->base - (char *)s->map, s->map_len - s->size);
    T_ASSERT(s->map_len - s->size >= JG_STACK_GUARD);
    memset(s->base, 1, s->size);
    void *b = s->base;
    jg__stack_put(&p, s, 0);
    T_EQ(p.count, 0);
    T_ASSERT(!mapped(b));

    /* A large stack costs address space only (MAP_NORESERVE). */
    T_OK(jg__stack_get(&p, (size_t)256 << 20, &s));
    T_EQ(s->size, (size_t)256 << 20);
    ((char *)s->base)[s->size - 1] = 1;
    jg__stack_put(&p, s, 0);

    /* Absurd sizes fail cleanly. */
    T_ERR(jg__stack_get(&p, SIZE_MAX, &s), -ENOMEM);
    T_ERR(jg__stack_get(&p, SIZE_MAX / 2, &s), -ENOMEM);
}

/* /proc/self/maps shows ---p of at least JG_STACK_GUARD right below base,
 * and rw-p from base to the top. */
static void guard_in_maps(void)
{
    struct jg__stack_pool p;
    struct jg__stack *s;
    char line[512];
    int found_guard = 0, found_usable = 0;

    pool_init(&p, 0);
    T_OK(jg__stack_get(&p, 0, &s));
    FILE *f = fopen("/proc/self/maps", "r");
    T_ASSERT(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perm[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3)
            continue;
        if (hi == (uintptr_t)s->base) {
            T_STREQ(perm, "---p");
            T_ASSERT(hi - lo >= JG_STACK_GUARD);
            T_ASSERT(lo <= (uintptr_t)s->map);
            found_guard = 1;
        }
        if (lo == (uintptr_t)s->base) {
            T_STREQ(perm, "rw-p");
            T_ASSERT(hi >= (uintptr_t)s->base + s->size);
            found_usable = 1;
        }
    }
    fclose(f);
    T_ASSERT(found_guard && found_usable);
    jg__stack_put(&p, s, 0);
}

/* Touching the byte below base (or the guard's lowest byte) faults; the top
 * and bottom usable bytes do not. In a child, with the default action. */
static void guard_faults(void)
{
    struct jg__stack_pool p;
    struct jg__stack *s;

    pool_init(&p, 0);
    T_OK(jg__stack_get(&p, 0, &s));
    for (int which = 0; which < 2; which++) {
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof(dfl));
            dfl.sa_handler = SIG_DFL;
            sigaction(SIGSEGV, &dfl, NULL);     /* not ASan's report */
            volatile char *b = s->base;
            b[0] = 1;
            b[s->size - 1] = 1;
            if (which == 0)
                b[-1] = 1;
            else
                *(volatile char *)s->map = 1;
            _exit(0);
        }
        int st;
        T_EQ(waitpid(pid, &st, 0), pid);
        T_ASSERT(WIFSIGNALED(st));
        T_EQ(WTERMSIG(st), SIGSEGV);
    }
    jg__stack_put(&p, s, 0);
}

/* A reused stack carries the last owner's poison; get must clear it. */
static void asan_reuse(void)
{
    struct jg__stack_pool p;
    struct jg__stack *s, *t;

    pool_init(&p, 1);
    T_OK(jg__stack_get(&p, 0, &s));
#if JG_ASAN
    /* What a dead fiber's frames leave behind: poisoned redzones. */
    __asan_poison_memory_region((char *)s->base + 4096, 8192);
    T_ASSERT(__asan_address_is_poisoned((char *)s->base + 4096));
#endif
    jg__stack_put(&p, s, 0);
    T_OK(jg__stack_get(&p, 0, &t));
    T_PEQ(t, s);
#if JG_ASAN
    T_ASSERT(!__asan_address_is_poisoned((char *)t->base + 4096));
#endif
    memset(t->base, 0x11, t->size);         /* would trip ASan if poisoned */
    jg__stack_put(&p, t, 0);
    jg__stack_pool_drain(&p);
}

#if JG_ASAN
static JG_NOINLINE void stash(struct jg__stack *s)
{
    void *volatile *slot = (void *volatile *)((char *)s->base + 1024);
    *slot = malloc(48);
}

static JG_NOINLINE void scrub(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof(junk));
}
#endif

/* LSan scans live stacks: a pointer held only on one is not a leak. */
static void lsan_root(void)
{
#if JG_ASAN
    struct jg__stack_pool p;
    struct jg__stack *s;

    pool_init(&p, 0);
    T_OK(jg__stack_get(&p, 0, &s));
    stash(s);
    scrub();
    T_EQ(__lsan_do_recoverable_leak_check(), 0);
    free(*(void **)((char *)s->base + 1024));
    jg__stack_put(&p, s, 0);
#else
    fprintf(stderr, "(no LSan in this build)\n");
#endif
}

/*
 * Past vm.max_map_count, get and reserve fail with -ENOMEM and leave no
 * VMA behind; once VMAs are free again, stacks map. Plain build only: the
 * sanitizers' own mappings make the count unpredictable. Runs last since
 * it skips the whole executable elsewhere.
 */
static void enomem_at_map_count(void)
{
    static void *singles[4096];
    struct jg__stack_pool p;
    struct jg__stack *s;
    size_t pg = pagesz();
    long max = 0;
    int nsingles = 0;

    if (T_SANITIZED)
        T_SKIP_CASE("max_map_count test only in the plain build");
    if (getenv("JG_TEST_EMULATED"))
        T_SKIP_CASE("an emulator's own mappings hide the guest's VMA count");
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    T_ASSERT(f);
    T_EQ(fscanf(f, "%ld", &max), 1);
    fclose(f);
    if (max > 4L * 1024 * 1024)
        T_SKIP_CASE("vm.max_map_count too large to exhaust quickly");
    pool_init(&p, 0);
    long vmas0 = count_vmas();

    /*
     * One PROT_NONE region, then every other page made readable: each
     * mprotect splits a VMA into three, until the kernel refuses.
     */
    size_t npages = 2 * (size_t)max + 8;
    char *fill = mmap(NULL, npages * pg, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T_ASSERT(fill != MAP_FAILED);
    size_t split = 0;
    for (size_t i = 1; i + 1 < npages; i += 2) {
        if (mprotect(fill + i * pg, pg, PROT_READ) != 0) {
            T_EQ(errno, ENOMEM);
            break;
        }
        split++;
    }
    T_ASSERT(split > 100);

    /* At (or one below) the limit: no stack, nothing left behind. */
    long v = count_vmas();
    T_ERR(jg__stack_get(&p, 0, &s), -ENOMEM);
    T_ERR(jg__stack_reserve(&p), -ENOMEM);
    T_VMAS(count_vmas(), v);
    T_EQ(p.count, 0);

    /*
     * Exactly at the limit, with single-page mappings on top: merge one
     * split page back (two VMAs fewer), then map alternating single pages
     * until mmap itself fails.
     */
    T_OK(mprotect(fill + (2 * split - 1) * pg, pg, PROT_NONE));
    for (;;) {
        T_ASSERT(nsingles < (int)JG_ARRAY_SIZE(singles));
        void *m = mmap(NULL, pg, nsingles % 2 ? PROT_READ : PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            break;
        singles[nsingles++] = m;
    }
    T_ASSERT(nsingles >= 2);
    v = count_vmas();
    T_ERR(jg__stack_get(&p, 0, &s), -ENOMEM);
    T_VMAS(count_vmas(), v);

    /*
     * Free one VMA at a time. mmap may take the count one past the limit
     * but a split may not, so for a while the mmap succeeds and the guard
     * split fails (the mprotect path, unmapped again); then a stack maps.
     */
    int freed = 0, rc;
    do {
        T_ASSERT(nsingles > 0);
        munmap(singles[--nsingles], pg);
        freed++;
        v = count_vmas();
        rc = jg__stack_get(&p, 0, &s);
        if (rc < 0) {
            T_ERR(rc, -ENOMEM);
            T_VMAS(count_vmas(), v);
        }
    } while (rc < 0 && freed < 8);
    T_OK(rc);
    T_ASSERT(freed >= 2 && freed <= 4);
    T_ASSERT(mapped(s->base));
    memset(s->base, 1, s->size);
    jg__stack_put(&p, s, 0);

    /* Everything released: back to normal. */
    while (nsingles > 0)
        munmap(singles[--nsingles], pg);
    munmap(fill, npages * pg);
    T_VMAS(count_vmas(), vmas0);
    T_OK(jg__stack_get(&p, 0, &s));
    jg__stack_put(&p, s, 0);
    T_VMAS(count_vmas(), vmas0);
}

T_MAIN(T_CASE(default_size), T_CASE(reuse_lifo), T_CASE(bound),
       T_CASE(reserve), T_CASE(sizes), T_CASE(guard_in_maps),
       T_CASE(guard_faults), T_CASE(asan_reuse), T_CASE(lsan_root),
       T_CASE(enomem_at_map_count))
