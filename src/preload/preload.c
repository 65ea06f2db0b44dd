/* SPDX-License-Identifier: MIT */
/*
 * preload.c - the frame of libjuggle_preload.so: the handshake with the one
 * runtime of the process, libc's definitions found once, the per-fd table
 * that keeps what we know of each descriptor (process-wide, like the fds),
 * the per-name counters behind jg_patch_calls and JG_PATCH_DEBUG, and the
 * cooperative waits every interposer uses.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "preload/preload.h"

const struct jg__patch_rt *jg__pl_rt;
_Atomic int jg__pl_on;
long jg__pl_tls_off = JG__PATCH_NO_TP;

/* ---- libc's definitions ------------------------------------------------- */

static long no_such_function(void)
{
    errno = ENOSYS;
    return -1;
}

void *jg__pl_resolve(struct jg__pl_sym *s)
{
    void *f = dlsym(RTLD_NEXT, s->name);

    /* An older libc without, say, epoll_pwait2: fail as a kernel would. */
    if (!f)
        f = (void *)no_such_function;
    atomic_store_explicit(&s->fn, f, memory_order_relaxed);
    return f;
}

PL_SYM(write);
PL_SYM(fcntl);
PL_SYM(clock_gettime);

/* ---- O_NONBLOCK borrowed for one call ---------------------------------------- */

_Atomic bool jg__pl_nb_used;
static pthread_mutex_t nb_mutex = PTHREAD_MUTEX_INITIALIZER;

/* Inside a signal handler the lock is not taken: the code it interrupted
 * may hold it (a handler's fcntl or accept is then libc's own). */
static _Thread_local int nb_skipped JG_TLS_IE;

void jg__pl_nb_lock(void)
{
    if (jg__pl_in_handler()) {
        nb_skipped++;
        return;
    }
    pthread_mutex_lock(&nb_mutex);
}

void jg__pl_nb_unlock(void)
{
    if (nb_skipped) {
        nb_skipped--;
        return;
    }
    pthread_mutex_unlock(&nb_mutex);
}

int jg__pl_getfl(int fd)
{
    int fl = REAL(fcntl)(fd, F_GETFL);

    /* Only a non-blocking answer can come from inside a window; outside
     * one (under the lock) the flag is the user's own. */
    if (fl >= 0 && (fl & O_NONBLOCK) &&
        atomic_load_explicit(&jg__pl_nb_used, memory_order_acquire)) {
        jg__pl_nb_lock();
        fl = REAL(fcntl)(fd, F_GETFL);
        jg__pl_nb_unlock();
    }
    return fl;
}

int jg__pl_nb_call(int fd, int (*op)(int fd, void *a), void *a)
{
    int r, e;

    /* Seen by jg__pl_getfl before any window opens (the lock orders the
     * rest). */
    if (!atomic_load_explicit(&jg__pl_nb_used, memory_order_relaxed))
        atomic_store(&jg__pl_nb_used, true);
    jg__pl_nb_lock();
    int fl = REAL(fcntl)(fd, F_GETFL);
    if (fl < 0) {
        r = -errno;
    } else if (fl & O_NONBLOCK) {
        /* Already non-blocking (another process's window, or the user's
         * own behind our table's back): never "restore" that value. */
        r = op(fd, a);
        r = r < 0 ? -errno : r;
    } else if (REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
    } else {
        r = op(fd, a);
        e = errno;
        (void)REAL(fcntl)(fd, F_SETFL, fl);
        r = r < 0 ? -e : r;
    }
    jg__pl_nb_unlock();
    return r;
}

/* A fork while a window is open would leave the child's copy of the lock
 * held: forks wait for the window to close. */
static void nb_prepare(void)
{
    jg__pl_nb_lock();
}

static void nb_after(void)
{
    jg__pl_nb_unlock();
}

/* ---- counters and the debug report ---------------------------------------- */

static const char *const names[PL_NNAMES] = {
#define PL_STR_(n) #n,
    PL_NAMES(PL_STR_)
#undef PL_STR_
};
static _Atomic uint64_t calls[PL_NNAMES];

/* JG_PATCH_DEBUG=1. Read on first use, not in our constructor: the
 * runtime's constructor may attach before ours runs. */
static bool debug(void)
{
    static _Atomic int on = -1;
    int v = atomic_load_explicit(&on, memory_order_relaxed);

    if (v < 0) {
        const char *d = getenv("JG_PATCH_DEBUG");
        v = d && *d && strcmp(d, "0") != 0;
        atomic_store_explicit(&on, v, memory_order_relaxed);
    }
    return v;
}

static void say(const char *a, const char *b, const char *c)
{
    char line[256];
    size_t n = 0;

    for (const char *const *p = (const char *const[]){ a, b, c, NULL };
         *p; p++) {
        size_t l = strlen(*p);
        if (l > sizeof line - 1 - n)
            l = sizeof line - 1 - n;
        memcpy(line + n, *p, l);
        n += l;
    }
    line[n++] = '\n';
    /* libc's write: our own would make this a cooperative call. */
    if (REAL(write)(2, line, n) < 0)
        return;
}

void jg__pl_note(enum jg__pl_name name)
{
    uint64_t was = atomic_fetch_add_explicit(&calls[name], 1,
                                             memory_order_relaxed);
    if (unlikely(was == 0) && debug())
        say("juggle-patch: ", names[name], " made cooperative");
}

static int64_t pl_calls(const char *name)
{
    for (int i = 0; i < PL_NNAMES; i++)
        if (strcmp(names[i], name) == 0)
            return (int64_t)atomic_load_explicit(&calls[i],
                                                 memory_order_relaxed);
    return -ENOENT;
}

/* ---- the handshake ----------------------------------------------------------- */

static void pl_enable(bool on)
{
    atomic_store_explicit(&jg__pl_on, jg__pl_rt && on, memory_order_release);
}

static bool pl_enabled(void)
{
    return atomic_load_explicit(&jg__pl_on, memory_order_acquire);
}

static const struct jg__patch_pl pl_table = {
    .abi = JG__PATCH_ABI,
    .enable = pl_enable,
    .enabled = pl_enabled,
    .calls = pl_calls,
};

/*
 * Called once by each copy of the runtime in the process (libjuggle.so's
 * constructor, or the program's own copy of libjuggle.a). The first one
 * that matches this build wins; a second copy would have hubs of its own
 * that our TLS read cannot see, so it is refused (its patch stays off).
 */
PL_EXPORT const struct jg__patch_pl *jg__preload_attach(
    const struct jg__patch_rt *rt)
{
    if (!rt || rt->abi != JG__PATCH_ABI ||
        rt->head_size != sizeof(struct jg__hub_head)
#if JG_ARCH_HAS_TP
        || rt->tls_hub_off == JG__PATCH_NO_TP
#endif
        ) {
        say("juggle-patch: ", "runtime of another build refused",
            " (rebuild libjuggle_preload.so with it)");
        return NULL;
    }
    if (jg__pl_rt) {
        if (debug())
            say("juggle-patch: ", "a second runtime copy refused", "");
        return jg__pl_rt == rt ? &pl_table : NULL;
    }
    jg__pl_tls_off = rt->tls_hub_off;
    jg__pl_rt = rt;
    /* Release: a thread that sees the patch on sees the table above. */
    atomic_store_explicit(&jg__pl_on, rt->enabled, memory_order_release);
    if (debug())
        say("juggle-patch: ", "attached", rt->enabled ? "" : " (off)");
    return &pl_table;
}

__attribute__((constructor)) static void pl_ctor(void)
{
    pthread_atfork(nb_prepare, nb_after, nb_after);
    /* A runtime in libjuggle.so, or a program exporting its own, may not
     * have found us yet if its constructor ran first: ask it to attach. */
    bool (*enabled)(void);
    *(void **)&enabled = dlsym(RTLD_DEFAULT, "jg_patch_enabled");
    if (enabled)
        (void)enabled();
}

/* ---- time ---------------------------------------------------------------- */

int64_t jg__pl_now(void)
{
    struct timespec ts;

    REAL(clock_gettime)(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t jg__pl_after(int64_t ns)
{
    if (ns < 0)
        return INT64_MAX;
    int64_t now = jg__pl_now();
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

/* ---- the per-fd table ------------------------------------------------------ */

/*
 * Two levels, chunks made on first use, so a process with a million fds
 * allowed pays only for the ones it touches. Fields are relaxed atomics:
 * fds are process-wide, so any thread may store, and an entry is a hint
 * that every fd-creating call we see overwrites (glibc also closes and
 * makes fds behind our back: fclose, opendir, NSS; see docs/preload.md).
 */
#define CHUNK_BITS 9
#define CHUNK (1 << CHUNK_BITS)
#define NCHUNKS 2048        /* fds below 1M are cached; others relearned */

struct entry {
    _Atomic uint32_t bits;
    _Atomic int64_t rcvto, sndto;   /* ns, 0 for none */
};

static _Atomic(struct entry *) chunks[NCHUNKS];

/* fd's entry, or NULL; with make, the chunk is created if missing. */
static struct entry *entry_of(int fd, bool make)
{
    if (fd < 0 || (fd >> CHUNK_BITS) >= NCHUNKS)
        return NULL;
    _Atomic(struct entry *) *slot = &chunks[fd >> CHUNK_BITS];
    struct entry *c = atomic_load_explicit(slot, memory_order_acquire);
    if (!c && make) {
        struct entry *n = calloc(CHUNK, sizeof *n);
        if (!n)
            return NULL;
        /* Two threads may race to make it: one wins, one frees. */
        if (atomic_compare_exchange_strong(slot, &c, n))
            c = n;
        else
            free(n);
    }
    return c ? &c[fd & (CHUNK - 1)] : NULL;
}

int jg__pl_fd_kind(int fd)
{
    struct entry *e = entry_of(fd, true);
    uint32_t bits = e ? atomic_load_explicit(&e->bits, memory_order_relaxed)
                      : 0;
    struct stat st;

    if (bits)
        return (int)bits;
    if (fd < 0)
        return -EBADF;
    if (fstat(fd, &st) < 0)
        return -errno;
    int fl = jg__pl_getfl(fd);
    if (fl < 0)
        return -errno;
    bits = PL_K_KNOWN;
    if (S_ISSOCK(st.st_mode))
        bits |= PL_K_SOCK;
    else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) ||
             S_ISBLK(st.st_mode))
        bits |= PL_K_FILE;
    if (fl & O_NONBLOCK)
        bits |= PL_K_NB;
    if (e)
        atomic_store_explicit(&e->bits, bits, memory_order_relaxed);
    return (int)bits;
}

void jg__pl_fd_fresh(int fd, uint32_t bits)
{
    /* No chunk: no belief to correct. Never allocate on this path, which
     * plain threads take too. */
    struct entry *e = entry_of(fd, false);

    if (e) {
        atomic_store_explicit(&e->bits, bits, memory_order_relaxed);
        atomic_store_explicit(&e->rcvto, 0, memory_order_relaxed);
        atomic_store_explicit(&e->sndto, 0, memory_order_relaxed);
    }
}

void jg__pl_fd_forget_range(unsigned lo, unsigned hi)
{
    /* Only numbers with a chunk can hold a belief; others are skipped
     * a chunk at a time, so closefrom(3) costs little. */
    for (unsigned long fd = lo; fd <= hi && fd < (unsigned long)NCHUNKS * CHUNK;
         fd++) {
        if (!atomic_load_explicit(&chunks[fd >> CHUNK_BITS],
                                  memory_order_acquire)) {
            fd |= CHUNK - 1;
            continue;
        }
        jg__pl_fd_fresh((int)fd, 0);
    }
}

void jg__pl_fd_nonblock(int fd, bool nb)
{
    struct entry *e = entry_of(fd, false);

    if (!e)
        return;
    uint32_t b = atomic_load_explicit(&e->bits, memory_order_relaxed);
    if (b)
        atomic_store_explicit(&e->bits, nb ? b | PL_K_NB : b & ~PL_K_NB,
                              memory_order_relaxed);
}

void jg__pl_fd_copy(int from, int to)
{
    struct entry *a = entry_of(from, false), *b = entry_of(to, true);

    if (!b)
        return;
    atomic_store_explicit(&b->bits,
        a ? atomic_load_explicit(&a->bits, memory_order_relaxed) : 0,
        memory_order_relaxed);
    atomic_store_explicit(&b->rcvto,
        a ? atomic_load_explicit(&a->rcvto, memory_order_relaxed) : 0,
        memory_order_relaxed);
    atomic_store_explicit(&b->sndto,
        a ? atomic_load_explicit(&a->sndto, memory_order_relaxed) : 0,
        memory_order_relaxed);
}

int64_t jg__pl_fd_timeout(int fd, bool snd)
{
    struct entry *e = entry_of(fd, false);

    if (!e)
        return 0;
    return atomic_load_explicit(snd ? &e->sndto : &e->rcvto,
                                memory_order_relaxed);
}

void jg__pl_fd_set_timeout(int fd, bool snd, int64_t ns)
{
    struct entry *e = entry_of(fd, ns != 0);

    if (e)
        atomic_store_explicit(snd ? &e->sndto : &e->rcvto, ns,
                              memory_order_relaxed);
}

/* ---- cooperative waits ----------------------------------------------------- */

/* Which way an expired wait ended: our own timeout, or a deadline scope. */
static int expired(int64_t deadline, int own_errno)
{
    if (deadline != INT64_MAX && jg__pl_now() >= deadline)
        return -own_errno;
    return -ETIMEDOUT;
}

int jg__pl_wait(int fd, uint32_t events, int64_t deadline, int own_errno)
{
    int r = jg__pl_rt->wait_fd(fd, events, deadline);

    if (r > 0)
        return 0;
    if (r == -ETIMEDOUT)
        return expired(deadline, own_errno);
    return r;
}

int jg__pl_sleep_until(int64_t deadline)
{
    int r = jg__pl_rt->sleep_until(deadline);

    /* At our own deadline the sleep is done; before it, a scope ended it. */
    if (r == -ETIMEDOUT)
        return jg__pl_now() >= deadline ? 0 : -ETIMEDOUT;
    return r;
}
