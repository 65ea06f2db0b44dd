/* SPDX-License-Identifier: MIT */
/*
 * shm.c - shared memory regions (memfd + fallocate, so exhaustion is
 * -ENOSPC at creation) and jg_shmq, a bounded message ring in a region
 * guarded by a robust process-shared mutex. Invariant of the ring: every
 * byte between head and tail is a complete message, because each put or
 * get publishes its work with one store made last; a process killed at any
 * point before that store leaves the ring as it found it.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"
#include "sys.h"

/* ---- regions ------------------------------------------------------------ */

struct jg_shm {
    int fd;
    size_t size;
    void *addr;                 /* NULL while unmapped */
};

/* Read one "Key: value kB" line of /proc/meminfo, in bytes; -1 if absent. */
static int64_t meminfo_kb(const char *text, const char *key)
{
    const char *p = strstr(text, key);

    if (!p)
        return -1;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    return (int64_t)strtoull(p, NULL, 10) * 1024;
}

/* The first number of a small file (cgroup files), or -1 ("max", absent). */
static int64_t file_num(const char *path)
{
    char buf[64];
    int fd = jg__sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = jg__sys_read(fd, buf, sizeof buf - 1);
    jg__sys_close(fd);
    if (n <= 0 || buf[0] < '0' || buf[0] > '9')
        return -1;
    buf[n] = '\0';
    return (int64_t)strtoull(buf, NULL, 10);
}

/*
 * Bytes of memory a new region can take without pushing the machine (or
 * our memory cgroup) into the OOM killer, or UINT64_MAX if unknown. Linux
 * (checked on 6.x) does not fail fallocate on a memfd with ENOSPC when RAM
 * runs out: it reclaims and then OOM-kills someone. So we refuse up front
 * what cannot fit; a race with other allocators remains possible.
 */
static uint64_t mem_avail(void)
{
    char text[4096];
    uint64_t avail = UINT64_MAX;
    int fd = jg__sys_open("/proc/meminfo", O_RDONLY | O_CLOEXEC, 0);

    if (fd >= 0) {
        ssize_t n = jg__sys_read(fd, text, sizeof text - 1);
        jg__sys_close(fd);
        if (n > 0) {
            text[n] = '\0';
            int64_t a = meminfo_kb(text, "MemAvailable");
            int64_t s = meminfo_kb(text, "SwapFree");
            if (a >= 0)
                avail = (uint64_t)a + (uint64_t)(s > 0 ? s : 0);
        }
    }
    /* cgroup v2, as seen from inside the container or the unit. */
    int64_t max = file_num("/sys/fs/cgroup/memory.max");
    int64_t cur = file_num("/sys/fs/cgroup/memory.current");
    if (max >= 0 && cur >= 0) {
        uint64_t left = max > cur ? (uint64_t)(max - cur) : 0;
        if (left < avail)
            avail = left;
    }
    return avail;
}

/* Reserve size bytes of fd's pages now; 0 or -errno. */
static int reserve(int fd, size_t size)
{
    int r;

    do
        r = fallocate(fd, 0, 0, (off_t)size);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    /* A filesystem without fallocate (none for memfd since Linux 3.17,
     * but seccomp filters exist): size it and lose the early -ENOSPC. */
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
        if (ftruncate(fd, (off_t)size) < 0)
            return -errno;
        return 0;
    }
    /* shmem reports a failed page allocation as ENOMEM or ENOSPC: one
     * code for the caller. */
    return errno == ENOMEM ? -ENOSPC : -errno;
}

static int shm_mmap(struct jg_shm *s)
{
    void *p = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   s->fd, 0);

    if (p == MAP_FAILED)
        return -errno;
    s->addr = p;
    return 0;
}

int jg_shm_create(struct jg_shm **out, size_t size)
{
    struct jg_shm *s;
    int rc;

    if (!out || size == 0 || size > PTRDIFF_MAX)
        return -EINVAL;
    if (size > mem_avail())
        return -ENOSPC;
    if (!(s = calloc(1, sizeof *s)))
        return -ENOMEM;
    s->size = size;
    s->fd = jg__sys_memfd_create("juggle-shm", MFD_CLOEXEC);
    if (s->fd < 0) {
        rc = -errno;
        goto err_free;
    }
    if ((rc = reserve(s->fd, size)) < 0 || (rc = shm_mmap(s)) < 0)
        goto err_close;
    *out = s;
    return 0;
err_close:
    jg__sys_close(s->fd);
err_free:
    free(s);
    return rc;
}

int jg_shm_open_fd(struct jg_shm **out, int fd)
{
    struct jg_shm *s;
    struct stat st;
    int rc;

    if (!out)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0)
        return -EINVAL;
    if (!(s = calloc(1, sizeof *s)))
        return -ENOMEM;
    s->fd = fd;
    s->size = (size_t)st.st_size;
    if ((rc = shm_mmap(s)) < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int jg_shm_map(struct jg_shm *s, void **addr)
{
    int rc;

    if (!s)
        return -EINVAL;
    if (!s->addr && (rc = shm_mmap(s)) < 0)
        return rc;
    if (addr)
        *addr = s->addr;
    return 0;
}

int jg_shm_unmap(struct jg_shm *s)
{
    if (!s)
        return -EINVAL;
    if (s->addr)
        munmap(s->addr, s->size);
    s->addr = NULL;
    return 0;
}

void *jg_shm_addr(const struct jg_shm *s)
{
    return s ? s->addr : NULL;
}

ssize_t jg_shm_size(const struct jg_shm *s)
{
    return s ? (ssize_t)s->size : -EINVAL;
}

int jg_shm_fd(const struct jg_shm *s)
{
    return s ? s->fd : -EINVAL;
}

/* Unmap and free, leaving the fd open (a failed jg_shmq_open_fd). */
static void shm_release(struct jg_shm *s)
{
    jg_shm_unmap(s);
    free(s);
}

int jg_shm_destroy(struct jg_shm *s)
{
    if (!s)
        return -EINVAL;
    int fd = s->fd;
    shm_release(s);
    /* Plain close: nobody waits on a memfd, so no loop knows this fd (and
     * a forked child must not touch its parent's loop). */
    return jg__sys_close(fd) < 0 && errno != EINTR ? -errno : 0;
}

/* ---- the queue ----------------------------------------------------------- */

#define Q_MAGIC 0x6a67736d71756575ULL   /* "jgsmqueu" */
#define Q_DATA 4096                     /* the ring starts one page in */
#define Q_MAX_CAP ((uint64_t)1 << 30)
#define Q_LEN 4                         /* bytes of a message's length */
/* A plain thread's futex wait is cut into slices this long, so a waker
 * killed between its commit and its futex wake costs a delay, not a hang. */
#define Q_SLICE JG_MS(100)
/* A green thread's polling interval: from the first to the last. */
#define Q_STEP_MIN JG_US(50)
#define Q_STEP_MAX JG_MS(2)

/* The queue's header at the start of its region (shared by processes). */
struct qhdr {
    _Atomic uint64_t magic;     /* stored last by create */
    uint64_t capacity;          /* ring bytes */
    pthread_mutex_t lock;       /* robust, process-shared */
    _Atomic uint64_t head;      /* position of the oldest message */
    _Atomic uint64_t tail;      /* end of the newest complete message */
    _Atomic uint32_t put_seq;   /* bumped by each put: getters' futex */
    _Atomic uint32_t get_seq;   /* bumped by each get: putters' futex */
    _Atomic uint32_t getters;   /* plain threads asleep on put_seq */
    _Atomic uint32_t putters;   /* ... and on get_seq */
    _Atomic long recoveries;    /* EOWNERDEAD repairs */
};
_Static_assert(sizeof(struct qhdr) <= Q_DATA, "queue header fits its page");

struct jg_shmq {
    struct jg_shm *shm;
    struct qhdr *h;
    unsigned char *ring;
    uint64_t cap;
};

/* Tests stop a process inside the critical section with this (where is 0
 * mid-put, half the message written; 1 mid-get, before the commit). */
JG_HIDDEN void (*jg__shmq_hook)(int where);

/* Copy n bytes into / out of the ring at position pos, wrapping. */
static void ring_put(struct jg_shmq *q, uint64_t pos, const void *src,
                     size_t n)
{
    size_t off = (size_t)(pos % q->cap);
    size_t first = n < q->cap - off ? n : (size_t)(q->cap - off);

    memcpy(q->ring + off, src, first);
    memcpy(q->ring, (const char *)src + first, n - first);
}

static void ring_get(struct jg_shmq *q, uint64_t pos, void *dst, size_t n)
{
    size_t off = (size_t)(pos % q->cap);
    size_t first = n < q->cap - off ? n : (size_t)(q->cap - off);

    memcpy(dst, q->ring + off, first);
    memcpy((char *)dst + first, q->ring, n - first);
}

static uint32_t msg_len(struct jg_shmq *q, uint64_t pos)
{
    uint32_t len;

    ring_get(q, pos, &len, Q_LEN);
    return len;
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
    /* Shared (not FUTEX_PRIVATE_FLAG): the waiters are other processes. */
    syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * The lock holder died. Its put or get made no commit (or it would have
 * finished), so head..tail still holds whole messages; check that anyway
 * before declaring the state consistent, and wake every sleeper: the dead
 * process may have died between a commit and its wake-up.
 */
static int repair(struct jg_shmq *q)
{
    struct qhdr *h = q->h;
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    uint64_t pos = head;

    if (tail < head || tail - head > q->cap)
        goto corrupt;
    while (pos < tail) {
        if (tail - pos < Q_LEN || msg_len(q, pos) > tail - pos - Q_LEN)
            goto corrupt;
        pos += Q_LEN + msg_len(q, pos);
    }
    atomic_fetch_add(&h->recoveries, 1);
    pthread_mutex_consistent(&h->lock);
    atomic_fetch_add(&h->put_seq, 1);
    atomic_fetch_add(&h->get_seq, 1);
    futex_wake_all(&h->put_seq);
    futex_wake_all(&h->get_seq);
    return 0;
corrupt:
    /* Unlocking without pthread_mutex_consistent makes the mutex
     * ENOTRECOVERABLE for everyone: the queue is gone, loudly. */
    pthread_mutex_unlock(&h->lock);
    return -EIO;
}

/* Turn a pthread_mutex_(try)lock result into "locked" (0) or -errno. */
static int locked(struct jg_shmq *q, int r)
{
    if (r == 0)
        return 0;
    if (r == EOWNERDEAD)
        return repair(q);
    if (r == ENOTRECOVERABLE)
        return -EIO;
    return -r;
}

/* One put or get's waiting state: deadline computed at the first wait. */
struct qwait {
    int64_t timeout;
    int64_t deadline;
    int64_t step;               /* green back-off */
    bool green;                 /* park as a green thread, or block */
};

static int qwait_init(struct qwait *w, int64_t timeout_ns)
{
    struct jg_hub *h = jg__tls_hub;

    if (!jg__timeout_ok(timeout_ns))
        return -EINVAL;
    w->timeout = timeout_ns;
    w->deadline = 0;
    w->step = Q_STEP_MIN;
    /*
     * A thread with a hub waits the green way even from its main context:
     * its hub may have green threads and callbacks to serve. A thread
     * without one (a pool worker, a plain pthread) sleeps on the futex.
     */
    w->green = h != NULL && h->current != NULL;
    if (w->green && timeout_ns != 0 && (h->current->flags & JG__G_CANCELLED))
        return -ECANCELED;
    return 0;
}

/* Time left before the deadline (computed on first use), or -errno. */
static int64_t qwait_left(struct qwait *w)
{
    if (w->timeout == 0)
        return -EAGAIN;
    if (!w->deadline)
        w->deadline = jg__deadline_after(w->timeout);
    if (w->deadline == INT64_MAX)
        return INT64_MAX;
    int64_t left = w->deadline - jg_now();
    return left > 0 ? left : -ETIMEDOUT;
}

/* A green thread's back-off sleep, bounded by the deadline. */
static int qwait_sleep(struct qwait *w)
{
    int64_t left = qwait_left(w);

    if (left < 0)
        return (int)left;
    int rc = jg_sleep(w->step < left ? w->step : left);
    if (rc < 0)
        return rc;
    if (w->step < Q_STEP_MAX)
        w->step = w->step * 2 < Q_STEP_MAX ? w->step * 2 : Q_STEP_MAX;
    return 0;
}

/*
 * Take the ring's lock within the deadline. It is held for one message
 * copy, or by a process that died (the kernel then hands it on with
 * EOWNERDEAD), or by one that is stopped: hence the deadline. A green
 * thread never blocks its hub on it: it tries and sleeps.
 */
static int q_lock(struct jg_shmq *q, struct qwait *w)
{
    pthread_mutex_t *m = &q->h->lock;
    int r = pthread_mutex_trylock(m);

    while (r == EBUSY) {
        int64_t left = qwait_left(w);
        if (left < 0)
            return (int)left;
        if (w->green) {
            if ((r = jg_sleep(left < Q_STEP_MIN ? left : Q_STEP_MIN)) < 0)
                return r;
            r = pthread_mutex_trylock(m);
        } else if (left == INT64_MAX) {
            r = pthread_mutex_lock(m);
        } else {
            /* timedlock wants CLOCK_REALTIME: convert the time left (a
             * clock step shifts only this wait). */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t t = (int64_t)ts.tv_sec * JG_SEC(1) + ts.tv_nsec + left;
            ts.tv_sec = t / JG_SEC(1);
            ts.tv_nsec = t % JG_SEC(1);
            r = pthread_mutex_timedlock(m, &ts);
            if (r == ETIMEDOUT)
                return -ETIMEDOUT;
        }
    }
    return locked(q, r);
}

/*
 * Wait until *seq differs from seen (the lock is not held), within the
 * deadline. 0 means "look again", < 0 is the result. sleepers counts the
 * plain threads on the futex, so that wakers skip the system call when
 * nobody sleeps; a sleeper killed inside leaves it high, which only costs
 * wake-ups.
 */
static int q_wait(struct qwait *w, _Atomic uint32_t *seq, uint32_t seen,
                  _Atomic uint32_t *sleepers)
{
    int64_t left = qwait_left(w);

    if (left < 0)
        return (int)left;
    if (w->green) {
        while (atomic_load(seq) == seen) {
            int rc = qwait_sleep(w);
            if (rc < 0)
                return rc;
        }
        w->step = Q_STEP_MIN;
        return 0;
    }
    int64_t until = jg_now() + (left < Q_SLICE ? left : Q_SLICE);
    struct timespec ts = {
        .tv_sec = until / JG_SEC(1), .tv_nsec = until % JG_SEC(1),
    };
    /* Dekker with the waker: we count ourselves, it bumps seq, both
     * sequentially consistent; then either it sees us and wakes us, or the
     * kernel sees the new seq and does not let us sleep. */
    atomic_fetch_add(sleepers, 1);
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
    syscall(SYS_futex, seq, FUTEX_WAIT_BITSET, seen, &ts, NULL,
            FUTEX_BITSET_MATCH_ANY);
    atomic_fetch_sub(sleepers, 1);
    return 0;
}

/* After a commit: wake the other side's plain sleepers if there are any. */
static void q_wake(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers)
{
    if (atomic_load(sleepers) > 0)
        futex_wake_all(seq);
}

int jg_shmq_put(struct jg_shmq *q, const void *msg, size_t len,
                int64_t timeout_ns)
{
    struct qwait w;
    int rc;

    if (!q || (!msg && len))
        return -EINVAL;
    if ((rc = qwait_init(&w, timeout_ns)) < 0)
        return rc;
    if (len > q->cap - Q_LEN)
        return -EMSGSIZE;
    struct qhdr *h = q->h;
    for (;;) {
        if ((rc = q_lock(q, &w)) < 0)
            return rc;
        uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
        uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
        if (q->cap - (tail - head) >= Q_LEN + len) {
            uint32_t n = (uint32_t)len;
            size_t half = len / 2;
            ring_put(q, tail, &n, Q_LEN);
            ring_put(q, tail + Q_LEN, msg, half);
            if (jg__shmq_hook)
                jg__shmq_hook(0);
            ring_put(q, tail + Q_LEN + half, (const char *)msg + half,
                     len - half);
            /* The commit: one untorn store. Getters read it under the
             * mutex, whose release orders the copies before it. */
            atomic_store_explicit(&h->tail, tail + Q_LEN + len,
                                  memory_order_relaxed);
            atomic_fetch_add(&h->put_seq, 1);
            pthread_mutex_unlock(&h->lock);
            q_wake(&h->put_seq, &h->getters);
            return 0;
        }
        uint32_t seen = atomic_load(&h->get_seq);
        pthread_mutex_unlock(&h->lock);
        if ((rc = q_wait(&w, &h->get_seq, seen, &h->putters)) < 0)
            return rc;
    }
}

ssize_t jg_shmq_get(struct jg_shmq *q, void *buf, size_t cap,
                    int64_t timeout_ns)
{
    struct qwait w;
    int rc;

    if (!q || (!buf && cap))
        return -EINVAL;
    if ((rc = qwait_init(&w, timeout_ns)) < 0)
        return rc;
    struct qhdr *h = q->h;
    for (;;) {
        if ((rc = q_lock(q, &w)) < 0)
            return rc;
        uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
        uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
        if (head != tail) {
            uint32_t n = msg_len(q, head);
            if (n > cap) {
                pthread_mutex_unlock(&h->lock);
                return -EMSGSIZE;
            }
            ring_get(q, head + Q_LEN, buf, n);
            if (jg__shmq_hook)
                jg__shmq_hook(1);
            /* The commit: the message leaves the ring only now. */
            atomic_store_explicit(&h->head, head + Q_LEN + n,
                                  memory_order_relaxed);
            atomic_fetch_add(&h->get_seq, 1);
            pthread_mutex_unlock(&h->lock);
            q_wake(&h->get_seq, &h->putters);
            return n;
        }
        uint32_t seen = atomic_load(&h->put_seq);
        pthread_mutex_unlock(&h->lock);
        if ((rc = q_wait(&w, &h->put_seq, seen, &h->getters)) < 0)
            return rc;
    }
}

ssize_t jg_shmq_count(struct jg_shmq *q)
{
    ssize_t n = 0;
    int rc;

    if (!q)
        return -EINVAL;
    if ((rc = locked(q, pthread_mutex_lock(&q->h->lock))) < 0)
        return rc;
    uint64_t pos = atomic_load_explicit(&q->h->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&q->h->tail, memory_order_relaxed);
    for (; pos < tail; n++)
        pos += Q_LEN + msg_len(q, pos);
    pthread_mutex_unlock(&q->h->lock);
    return n;
}

long jg_shmq_recoveries(const struct jg_shmq *q)
{
    return q ? atomic_load(&q->h->recoveries) : -EINVAL;
}

/* Wrap a mapped region as a queue handle. */
static int q_wrap(struct jg_shmq **out, struct jg_shm *s)
{
    struct jg_shmq *q = calloc(1, sizeof *q);

    if (!q)
        return -ENOMEM;
    q->shm = s;
    q->h = s->addr;
    q->ring = (unsigned char *)s->addr + Q_DATA;
    q->cap = s->size - Q_DATA;
    *out = q;
    return 0;
}

int jg_shmq_create(struct jg_shmq **out, size_t capacity)
{
    pthread_mutexattr_t a;
    struct jg_shm *s;
    int rc;

    if (!out || capacity <= Q_LEN || capacity > Q_MAX_CAP)
        return -EINVAL;
    if ((rc = jg_shm_create(&s, Q_DATA + capacity)) < 0)
        return rc;
    struct qhdr *h = s->addr;
    /* Robust: the kernel marks the lock OWNER_DIED when its holder dies.
     * Shared: its futex is keyed by the page, not by our address space. */
    if ((rc = -pthread_mutexattr_init(&a)) < 0)
        goto err_shm;
    if ((rc = -pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) < 0 ||
        (rc = -pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) < 0 ||
        (rc = -pthread_mutex_init(&h->lock, &a)) < 0) {
        pthread_mutexattr_destroy(&a);
        goto err_shm;
    }
    pthread_mutexattr_destroy(&a);
    h->capacity = capacity;
    atomic_store_explicit(&h->magic, Q_MAGIC, memory_order_release);
    if ((rc = q_wrap(out, s)) < 0)
        goto err_shm;
    return 0;
err_shm:
    jg_shm_destroy(s);
    return rc;
}

int jg_shmq_open_fd(struct jg_shmq **out, int fd)
{
    struct jg_shm *s;
    int rc;

    if (!out)
        return -EINVAL;
    if ((rc = jg_shm_open_fd(&s, fd)) < 0)
        return rc;
    struct qhdr *h = s->addr;
    if (s->size <= Q_DATA + Q_LEN ||
        atomic_load_explicit(&h->magic, memory_order_acquire) != Q_MAGIC ||
        h->capacity != s->size - Q_DATA) {
        rc = -EINVAL;
        goto err_release;
    }
    if ((rc = q_wrap(out, s)) < 0)
        goto err_release;
    return 0;
err_release:
    /* The fd stays the caller's on failure. */
    shm_release(s);
    return rc;
}

int jg_shmq_fd(const struct jg_shmq *q)
{
    return q ? q->shm->fd : -EINVAL;
}

ssize_t jg_shmq_max_msg(const struct jg_shmq *q)
{
    return q ? (ssize_t)(q->cap - Q_LEN) : -EINVAL;
}

int jg_shmq_destroy(struct jg_shmq *q)
{
    if (!q)
        return -EINVAL;
    int rc = jg_shm_destroy(q->shm);
    free(q);
    return rc;
}
