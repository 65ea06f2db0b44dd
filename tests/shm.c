/* SPDX-License-Identifier: MIT */
/*
 * shm.c - shared memory regions and the process-safe queue: a region
 * written by the parent and read by a forked child through its fd, bad
 * sizes, 1 GiB of integers summed by two forked workers without copying,
 * queue order/limits/timeouts, several processes on one queue while a
 * lock holder is SIGKILLed mid-put (and mid-get), and green waiters that
 * leave their hub serving.
 */
#include <juggle.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

/* The library's test hook: called inside the queue's critical section. */
extern void (*jg__shmq_hook)(int where);

/* fork with stdio flushed (or the child's exit would repeat our output). */
static pid_t t_fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    return pid;
}

/* Wait for pid; return its wait status. */
static int t_reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        T_ASSERT(errno == EINTR);
    return st;
}

static void t_reap_ok(pid_t pid)
{
    int st = t_reap(pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        T_FAIL_("child %d: status 0x%x", (int)pid, st);
}

/* ---- regions ------------------------------------------------------------ */

static void test_region_parent_child(void)
{
    struct jg_shm *s;
    const size_t size = 1 << 20;

    T_OK(jg_shm_create(&s, size));
    T_EQ(jg_shm_size(s), size);
    unsigned char *a = jg_shm_addr(s);
    T_ASSERT(a != NULL);
    /* Zero-filled, then a pattern the child checks. */
    for (size_t i = 0; i < size; i += 4096)
        T_EQ(a[i], 0);
    for (size_t i = 0; i < size; i++)
        a[i] = (unsigned char)(i * 7 + 1);
    int fd = jg_shm_fd(s);
    T_ASSERT(fd >= 0);
    T_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    pid_t pid = t_fork();
    if (pid == 0) {
        /* The child maps the region itself from the inherited fd. */
        struct jg_shm *c;
        if (jg_shm_open_fd(&c, dup(fd)) < 0 || jg_shm_size(c) != size)
            _exit(2);
        unsigned char *b = jg_shm_addr(c);
        if (b == a)
            _exit(3);       /* its own mapping, not the inherited one */
        for (size_t i = 0; i < size; i++)
            if (b[i] != (unsigned char)(i * 7 + 1))
                _exit(4);
        b[size - 1] = 0xAB;  /* an answer through the same pages */
        _exit(jg_shm_destroy(c) == 0 ? 0 : 5);
    }
    t_reap_ok(pid);
    T_EQ(a[size - 1], 0xAB);

    /* Unmapped, the contents live on in the fd; mapping again sees them. */
    T_OK(jg_shm_unmap(s));
    T_PEQ(jg_shm_addr(s), NULL);
    T_OK(jg_shm_unmap(s));
    void *again = NULL;
    T_OK(jg_shm_map(s, &again));
    T_ASSERT(again != NULL);
    T_PEQ(jg_shm_addr(s), again);
    T_EQ(((unsigned char *)again)[size - 1], 0xAB);
    T_EQ(((unsigned char *)again)[1], 8);
    T_OK(jg_shm_destroy(s));

    /* Odd sizes are kept exactly. */
    T_OK(jg_shm_create(&s, 1));
    T_EQ(jg_shm_size(s), 1);
    *(char *)jg_shm_addr(s) = 'x';
    T_OK(jg_shm_destroy(s));
}

static void test_region_bad_sizes(void)
{
    struct jg_shm *s = NULL;
    struct jg_shmq *q = NULL;
    int p[2];

    T_ERR(jg_shm_create(&s, 0), -EINVAL);
    T_ERR(jg_shm_create(&s, SIZE_MAX), -EINVAL);
    T_ERR(jg_shm_create(&s, (size_t)PTRDIFF_MAX + 1), -EINVAL);
    T_ERR(jg_shm_create(NULL, 4096), -EINVAL);
    /* 1 PiB: refused at creation, not a SIGBUS (or the OOM killer) later. */
    T_ERR(jg_shm_create(&s, (size_t)1 << 50), -ENOSPC);
    T_PEQ(s, NULL);

    T_ERR(jg_shm_open_fd(&s, -1), -EBADF);
    T_ERR(jg_shm_open_fd(NULL, 0), -EINVAL);
    T_OK(pipe(p));
    T_ERR(jg_shm_open_fd(&s, p[0]), -EINVAL);
    close(p[0]);
    close(p[1]);
    T_ERR(jg_shm_map(NULL, NULL), -EINVAL);
    T_ERR(jg_shm_unmap(NULL), -EINVAL);
    T_ERR(jg_shm_fd(NULL), -EINVAL);
    T_ERR(jg_shm_destroy(NULL), -EINVAL);
    T_PEQ(jg_shm_addr(NULL), NULL);
    T_ERR(jg_shm_size(NULL), -EINVAL);
    T_ERR(jg_shmq_max_msg(NULL), -EINVAL);

    T_ERR(jg_shmq_create(&q, 0), -EINVAL);
    T_ERR(jg_shmq_create(&q, 4), -EINVAL);
    T_ERR(jg_shmq_create(&q, ((size_t)1 << 30) + 1), -EINVAL);
    T_ERR(jg_shmq_create(NULL, 4096), -EINVAL);
    /* A region that is not a queue is refused; the fd stays ours. */
    T_OK(jg_shm_create(&s, 8192));
    int fd = dup(jg_shm_fd(s));
    T_ERR(jg_shmq_open_fd(&q, fd), -EINVAL);
    T_ASSERT(fcntl(fd, F_GETFD) >= 0);
    close(fd);
    T_OK(jg_shm_destroy(s));
    T_ERR(jg_shmq_put(NULL, "x", 1, 0), -EINVAL);
    T_ERR(jg_shmq_get(NULL, p, 1, 0), -EINVAL);
    T_ERR(jg_shmq_count(NULL), -EINVAL);
    T_ERR(jg_shmq_destroy(NULL), -EINVAL);
}

/*
 * The seeds' "array of a billion 32-bit integers": 1 GiB (plain build;
 * smaller under sanitizers) of uint32 filled by the parent, each half
 * summed by a forked worker that maps the region from the fd.
 */
static void test_sum_1gib(void)
{
    size_t bytes = T_SANITIZED ? (size_t)t_scale(64L << 20) : (size_t)1 << 30;
    size_t n = bytes / sizeof(uint32_t);
    struct jg_shm *s, *res;
    enum { WORKERS = 2 };
    pid_t pids[WORKERS];

    int rc = jg_shm_create(&s, bytes);
    if (rc == -ENOSPC)
        T_SKIP("not enough free memory for the region");
    T_OK(rc);
    T_OK(jg_shm_create(&res, WORKERS * sizeof(uint64_t)));
    uint32_t *a = jg_shm_addr(s);
    for (size_t i = 0; i < n; i++)
        a[i] = (uint32_t)i;
    /* The parent needs no mapping while the workers sum. */
    T_OK(jg_shm_unmap(s));
    int fd = jg_shm_fd(s);
    uint64_t *sums = jg_shm_addr(res);

    int64_t t0 = t_now_ns();
    for (int w = 0; w < WORKERS; w++) {
        if ((pids[w] = t_fork()) == 0) {
            struct jg_shm *c;
            if (jg_shm_open_fd(&c, dup(fd)) < 0)
                _exit(2);
            const uint32_t *v = jg_shm_addr(c);
            size_t lo = n / WORKERS * (size_t)w;
            size_t hi = w == WORKERS - 1 ? n : lo + n / WORKERS;
            uint64_t sum = 0;
            for (size_t i = lo; i < hi; i++)
                sum += v[i];
            sums[w] = sum;
            _exit(0);
        }
    }
    for (int w = 0; w < WORKERS; w++)
        t_reap_ok(pids[w]);
    int64_t dt = t_now_ns() - t0;
    uint64_t want = (uint64_t)n * (n - 1) / 2;
    T_EQ(sums[0] + sums[1], want);
    T_ASSERT(sums[0] > 0 && sums[1] > sums[0]);
    fprintf(stderr, "summed %zu MiB in 2 workers: %.1f ms\n", bytes >> 20,
            (double)dt / 1e6);
    T_OK(jg_shm_destroy(s));
    T_OK(jg_shm_destroy(res));
}

/* ---- the queue: one process ---------------------------------------------- */

static void test_queue_basic(void)
{
    struct jg_shmq *q;
    char buf[300];

    T_OK(jg_shmq_create(&q, 256));
    T_EQ(jg_shmq_max_msg(q), 252);
    T_ERR(jg_shmq_get(q, buf, sizeof buf, 0), -EAGAIN);
    T_OK(jg_shmq_put(q, "one", 3, 0));
    T_OK(jg_shmq_put(q, "", 0, 0));
    T_OK(jg_shmq_put(q, "three", 5, 0));
    T_EQ(jg_shmq_count(q), 3);
    /* Too small a buffer: the message stays first in line. */
    T_ERR(jg_shmq_get(q, buf, 2, 0), -EMSGSIZE);
    T_EQ(jg_shmq_get(q, buf, sizeof buf, 0), 3);
    T_ASSERT(memcmp(buf, "one", 3) == 0);
    T_EQ(jg_shmq_get(q, buf, sizeof buf, 0), 0);
    T_EQ(jg_shmq_get(q, buf, sizeof buf, JG_FOREVER), 5);
    T_ASSERT(memcmp(buf, "three", 5) == 0);
    T_EQ(jg_shmq_count(q), 0);

    /* Limits: a message of max_msg fits exactly; one more byte never. */
    memset(buf, 'm', sizeof buf);
    T_ERR(jg_shmq_put(q, buf, 253, 0), -EMSGSIZE);
    T_OK(jg_shmq_put(q, buf, 252, 0));
    T_ERR(jg_shmq_put(q, "x", 1, 0), -EAGAIN);
    int64_t t0 = t_now_ns();
    T_ERR(jg_shmq_put(q, "x", 1, JG_MS(30)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    T_EQ(jg_shmq_get(q, buf, sizeof buf, 0), 252);
    t0 = t_now_ns();
    /* Only the timeout can end it (nobody puts): not early. */
    T_ERR(jg_shmq_get(q, buf, sizeof buf, JG_MS(30)), -ETIMEDOUT);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(30));
    T_ERR(jg_shmq_put(q, "x", 1, -5), -EINVAL);
    T_ERR(jg_shmq_put(q, NULL, 1, 0), -EINVAL);

    /* Wrap-around: messages of every size through a small ring, in order,
     * byte-exact, with several queued at a time. */
    unsigned next_put = 0, next_get = 0;
    long rounds = t_scale(20000);
    while (next_get < rounds) {
        while (next_put < rounds) {
            size_t len = next_put % 97;
            for (size_t j = 0; j < len; j++)
                buf[j] = (char)(next_put + j);
            if (jg_shmq_put(q, buf, len, 0) == -EAGAIN)
                break;
            next_put++;
        }
        ssize_t n = jg_shmq_get(q, buf, sizeof buf, 0);
        T_EQ(n, next_get % 97);
        for (ssize_t j = 0; j < n; j++)
            T_EQ((unsigned char)buf[j], (unsigned char)(next_get + j));
        next_get++;
    }
    T_EQ(jg_shmq_count(q), 0);
    T_EQ(jg_shmq_recoveries(q), 0);
    T_OK(jg_shmq_destroy(q));
}

/* ---- the queue: processes, and a lock holder killed ---------------------- */

enum { PRODUCERS = 3, VICTIM = PRODUCERS, VICTIM_PUTS = 10 };

/* Shared bookkeeping, in a region of its own. */
struct book {
    _Atomic long consumed;          /* items taken by any consumer */
    _Atomic int bad;                /* a consumer saw a corrupt item */
    _Atomic unsigned char seen[];   /* per item: times taken */
};

static int stop_fd = -1;            /* the hook's "I hold the lock" pipe */

/* Test hook: tell the parent we are inside the critical section (mid-put
 * or mid-get) and wait there to be killed. */
static void hold_and_wait(int where)
{
    char c = (char)('0' + where);
    if (write(stop_fd, &c, 1) != 1)
        _exit(9);
    for (;;)
        pause();
}

/* An item: producer, sequence number, then a payload derived from both. */
static size_t item_make(char *buf, int prod, long seq)
{
    size_t len = 8 + (size_t)(seq * 13 + prod) % 200;
    int32_t hdr[2] = { prod, (int32_t)seq };

    memcpy(buf, hdr, 8);
    for (size_t j = 8; j < len; j++)
        buf[j] = (char)(prod * 31 + seq + (long)j);
    return len;
}

/* Check an item and count it. Returns its index, or -1 if corrupt. */
static long item_take(struct book *b, const char *buf, ssize_t len, long per)
{
    int32_t hdr[2];
    char want[256];

    if (len < 8)
        return -1;
    memcpy(hdr, buf, 8);
    if (hdr[0] < 0 || hdr[0] > VICTIM || hdr[1] < 0 || hdr[1] >= per)
        return -1;
    if ((ssize_t)item_make(want, hdr[0], hdr[1]) != len ||
        memcmp(want, buf, (size_t)len) != 0)
        return -1;
    long idx = (long)hdr[0] * per + hdr[1];
    atomic_fetch_add(&b->seen[idx], 1);
    atomic_fetch_add(&b->consumed, 1);
    return idx;
}

struct consumer {
    struct jg_shmq *q;
    struct book *b;
    long per, total;
    int64_t give_up;                /* absolute deadline */
};

/* Take items until every expected one is taken (by anyone). */
static void *consume(void *arg)
{
    struct consumer *c = arg;
    char buf[256];

    while (atomic_load(&c->b->consumed) < c->total) {
        if (t_now_ns() > c->give_up)
            return (void *)1;
        ssize_t n = jg_shmq_get(c->q, buf, sizeof buf, JG_MS(20));
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0 || item_take(c->b, buf, n, c->per) < 0) {
            atomic_store(&c->b->bad, 1);
            return (void *)2;
        }
    }
    return NULL;
}

struct producer {
    struct jg_shmq *q;
    int id;
    long count;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    char buf[256];

    for (long i = 0; i < p->count; i++) {
        size_t len = item_make(buf, p->id, i);
        if (jg_shmq_put(p->q, buf, len, JG_SEC(20)) < 0)
            return (void *)1;
    }
    return NULL;
}

/* Run fn on a plain pthread (no hub: futex waits) and exit with its
 * result; or on the child's main context (its hub: green waits). */
static _Noreturn void child_run(void *(*fn)(void *), void *arg, bool thread)
{
    void *r;
    pthread_t t;

    if (thread) {
        if (pthread_create(&t, NULL, fn, arg) != 0)
            _exit(8);
        pthread_join(t, &r);
    } else {
        r = fn(arg);
    }
    _exit(r ? (int)(intptr_t)r + 10 : 0);
}

static void test_queue_killed_putter(void)
{
    long per = t_scale(3000);
    if (per < VICTIM_PUTS + 1)
        per = VICTIM_PUTS + 1;
    long total = PRODUCERS * per + VICTIM_PUTS;
    struct jg_shmq *q;
    struct jg_shm *bs;
    int pfd[2];

    /* Give this process a hub, so forked children have one too: then the
     * children's main contexts wait the green way, their threads the
     * futex way, and both kinds meet on one queue. */
    T_OK(jg_yield());
    T_OK(jg_shmq_create(&q, 4096));
    T_OK(jg_shm_create(&bs, sizeof(struct book) + (size_t)(total + per)));
    struct book *b = jg_shm_addr(bs);
    T_OK(pipe(pfd));

    /* The victim puts VICTIM_PUTS items, then stops halfway through the
     * next one, holding the lock, until it is killed. */
    pid_t victim = t_fork();
    if (victim == 0) {
        struct producer p = { q, VICTIM, VICTIM_PUTS };
        if (produce(&p))
            _exit(7);
        stop_fd = pfd[1];
        jg__shmq_hook = hold_and_wait;
        char buf[256];
        size_t len = item_make(buf, VICTIM, VICTIM_PUTS);
        jg_shmq_put(q, buf, len, JG_FOREVER);
        _exit(6);           /* never: the hook does not return */
    }
    char c;
    T_EQ(read(pfd[0], &c, 1), 1);
    T_EQ(c, '0');

    /* Everyone else starts while the lock is held by the victim. */
    struct consumer cons = { q, b, per, total, t_now_ns() + JG_SEC(30) };
    pid_t kids[PRODUCERS + 1];
    for (int i = 0; i < PRODUCERS; i++) {
        if ((kids[i] = t_fork()) == 0) {
            struct producer p = { q, i, per };
            child_run(produce, &p, i % 2 == 1);
        }
    }
    if ((kids[PRODUCERS] = t_fork()) == 0)
        child_run(consume, &cons, true);

    usleep(50000);
    T_EQ(atomic_load(&b->consumed), 0);     /* all stuck on the lock */
    T_OK(kill(victim, SIGKILL));
    int st = t_reap(victim);
    T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    /* The parent consumes too, as a green thread's main context. */
    T_ASSERT(consume(&cons) == NULL);
    for (int i = 0; i <= PRODUCERS; i++)
        t_reap_ok(kids[i]);

    T_EQ(atomic_load(&b->bad), 0);
    T_EQ(atomic_load(&b->consumed), total);
    for (int p = 0; p < PRODUCERS; p++)
        for (long i = 0; i < per; i++)
            T_EQ(atomic_load(&b->seen[p * per + i]), 1);
    /* The victim's whole items arrived; its half-written one did not. */
    for (long i = 0; i < VICTIM_PUTS; i++)
        T_EQ(atomic_load(&b->seen[VICTIM * per + i]), 1);
    T_EQ(atomic_load(&b->seen[VICTIM * per + VICTIM_PUTS]), 0);
    T_EQ(jg_shmq_recoveries(q), 1);
    T_EQ(jg_shmq_count(q), 0);
    close(pfd[0]);
    close(pfd[1]);
    T_OK(jg_shm_destroy(bs));
    T_OK(jg_shmq_destroy(q));
}

/* A getter killed after copying a message but before removing it: the
 * message is not lost, the next getter receives it. */
static void test_queue_killed_getter(void)
{
    struct jg_shmq *q;
    char buf[64];
    int pfd[2];

    T_OK(jg_shmq_create(&q, 1024));
    T_OK(jg_shmq_put(q, "first", 5, 0));
    T_OK(jg_shmq_put(q, "second", 6, 0));
    T_OK(pipe(pfd));
    pid_t pid = t_fork();
    if (pid == 0) {
        stop_fd = pfd[1];
        jg__shmq_hook = hold_and_wait;
        jg_shmq_get(q, buf, sizeof buf, JG_FOREVER);
        _exit(6);
    }
    char c;
    T_EQ(read(pfd[0], &c, 1), 1);
    T_EQ(c, '1');
    /* While the dead-to-be holds the lock, a timed get gives up. */
    T_ERR(jg_shmq_get(q, buf, sizeof buf, JG_MS(20)), -ETIMEDOUT);
    T_OK(kill(pid, SIGKILL));
    t_reap(pid);
    T_EQ(jg_shmq_get(q, buf, sizeof buf, JG_SEC(5)), 5);
    T_ASSERT(memcmp(buf, "first", 5) == 0);
    T_EQ(jg_shmq_get(q, buf, sizeof buf, 0), 6);
    T_ASSERT(memcmp(buf, "second", 6) == 0);
    T_EQ(jg_shmq_recoveries(q), 1);
    close(pfd[0]);
    close(pfd[1]);
    T_OK(jg_shmq_destroy(q));
}

/* ---- green waiters leave the hub serving --------------------------------- */

static struct jg_shmq *gq;
static _Atomic long ticks;
static _Atomic int getter_done;

static void *green_ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&getter_done)) {
        jg_sleep(JG_MS(1));
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

static void *green_getter(void *arg)
{
    char buf[32];
    ssize_t n = jg_shmq_get(gq, buf, sizeof buf, JG_SEC(10));
    (void)arg;
    atomic_store(&getter_done, 1);
    if (n != 4 || memcmp(buf, "ping", 4) != 0)
        return JG_ERR(-EBADMSG);
    return NULL;
}

static void test_queue_green_waits(void)
{
    struct jg_green *tg, *gg;

    T_OK(jg_shmq_create(&gq, 128));
    T_OK(jg_spawn(&tg, green_ticker, NULL, NULL));
    T_OK(jg_spawn(&gg, green_getter, NULL, NULL));
    pid_t pid = t_fork();
    if (pid == 0) {
        /* A child whose put lands 200 ms later. */
        usleep(200000);
        _exit(jg_shmq_put(gq, "ping", 4, JG_SEC(5)) == 0 ? 0 : 1);
    }
    int64_t t0 = t_now_ns();
    T_OK(jg_join(gg, NULL, JG_SEC(20)));
    int64_t dt = t_now_ns() - t0;
    T_OK(jg_join(tg, NULL, JG_SEC(5)));
    t_reap_ok(pid);
    T_ASSERT(dt >= JG_MS(150));
    /* The hub kept serving the ticker while the getter waited: a getter
     * that blocked the hub for the 200 ms would leave it 2 ticks at most
     * (about 200 expected; a loaded machine gives fewer, not that few). */
    T_ASSERT(atomic_load(&ticks) >= 5);
    T_OK(jg_shmq_destroy(gq));
}

T_MAIN(T_CASE(test_region_parent_child), T_CASE(test_region_bad_sizes),
       T_CASE(test_sum_1gib), T_CASE(test_queue_basic),
       T_CASE(test_queue_killed_putter), T_CASE(test_queue_killed_getter),
       T_CASE(test_queue_green_waits))
