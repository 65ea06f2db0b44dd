/* SPDX-License-Identifier: MIT */
/*
 * pool_responsive.c - a green-thread server stays responsive while CPU work
 * runs on the pools: the hub pinned to CPU 1, one process-pool worker at
 * nice 19 on CPU 0 crunching, a green thread awaiting its futures; a client
 * thread's median request latency grows by less than 5 ms. Plain build on
 * two or more CPUs only (timing), exit 77 elsewhere.
 */
#include <juggle.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

/* The worker's initializer: CPU 0, lowest priority. */
static int t_niced(const void *in, size_t n, struct jg_task_out *out)
{
    cpu_set_t set;

    (void)in, (void)n, (void)out;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        return -errno;
    if (setpriority(PRIO_PROCESS, 0, 19) < 0)
        return -errno;
    return 0;
}
JG_TASK("niced", t_niced)

/* About 100 ms of CPU, the result checked by the caller. */
static int t_crunch(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t s = 0, k;

    if (n != sizeof(k))
        return -EINVAL;
    memcpy(&k, in, sizeof(k));
    for (uint64_t i = 0; i < k; i++)
        s = s * 31 + i * i;
    return jg_task_out_write(out, &s, sizeof(s));
}
JG_TASK("crunch", t_crunch)

static int port;

/* The server: one green thread per connection, echoing 8-byte requests. */
static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b[8];

    for (;;) {
        ssize_t n = jg_read(fd, b, sizeof(b), JG_FOREVER);
        if (n <= 0 || jg_write(fd, b, (size_t)n, NULL, JG_SEC(5)) < 0)
            break;
    }
    jg_close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;

    for (;;) {
        int fd = jg_accept(lfd, NULL, NULL, JG_FOREVER);
        if (fd < 0)
            return NULL;
        T_OK(jg_spawn(NULL, serve, (void *)(intptr_t)fd, NULL));
    }
}

/* The client, a plain thread: n round trips, their median in ns. */
static int64_t median_rtt(int fd, int n)
{
    int64_t *rtt = calloc((size_t)n, sizeof(*rtt));
    char b[8] = "pingpong";

    T_ASSERT(rtt);
    for (int i = 0; i < n; i++) {
        int64_t t0 = t_now_ns();
        T_EQ(write(fd, b, sizeof(b)), (long)sizeof(b));
        T_EQ(read(fd, b, sizeof(b)), (long)sizeof(b));
        rtt[i] = t_now_ns() - t0;
        usleep(2000);
    }
    for (int i = 1; i < n; i++)         /* insertion sort: n is small */
        for (int j = i; j > 0 && rtt[j - 1] > rtt[j]; j--) {
            int64_t t = rtt[j];
            rtt[j] = rtt[j - 1];
            rtt[j - 1] = t;
        }
    int64_t m = rtt[n / 2];
    free(rtt);
    return m;
}

static int64_t base_ns, busy_ns;
static _Atomic int phase;

static void *client(void *arg)
{
    int fd;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

    (void)arg;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    T_ASSERT(fd >= 0);
    T_OK(connect(fd, (struct sockaddr *)&a, sizeof(a)));
    base_ns = median_rtt(fd, 100);
    atomic_store(&phase, 1);            /* start the CPU work */
    while (atomic_load(&phase) != 2)
        usleep(1000);
    busy_ns = median_rtt(fd, 100);
    atomic_store(&phase, 3);
    close(fd);
    return NULL;
}

/* Keeps the pool busy until the client has measured. */
static void *cruncher(void *arg)
{
    struct jg_executor *ex = arg;
    uint64_t k = 30000000, want = 0;

    for (uint64_t i = 0; i < k; i++)
        want = want * 31 + i * i;
    while (atomic_load(&phase) < 1)
        jg_sleep(JG_MS(1));
    atomic_store(&phase, 2);
    while (atomic_load(&phase) < 3) {
        struct jg_future *f;
        const void *p;
        size_t n;

        T_OK(jg_executor_submit(ex, &f, "crunch", &k, sizeof(k)));
        T_OK(jg_future_bytes(f, &p, &n, JG_SEC(30)));  /* parks only us */
        T_EQ(n, sizeof(uint64_t));
        T_ASSERT(memcmp(p, &want, sizeof(want)) == 0);
        jg_future_unref(f);
    }
    return NULL;
}

static void test_server_responsive_beside_pool(void)
{
    struct jg_process_pool_opts o = { .workers = 1, .init_task = "niced" };
    struct jg_executor *ex;
    struct jg_green *acc, *cr;
    cpu_set_t set;
    pthread_t t;

    if (!t_plain())
        T_SKIP("latency bounds are checked in the plain build only");
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        T_SKIP("needs two CPUs");
    T_OK(jg_process_pool_create(&ex, &o));
    /* The hub on CPU 1, the niced worker on CPU 0. */
    CPU_ZERO(&set);
    CPU_SET(1, &set);
    T_OK(sched_setaffinity(0, sizeof(set), &set));

    int lfd = jg_tcp_listen("127.0.0.1", 0);
    T_OK(lfd);
    port = jg_sock_port(lfd);
    T_OK(jg_spawn(&acc, acceptor, (void *)(intptr_t)lfd, NULL));
    T_OK(jg_spawn(&cr, cruncher, ex, NULL));
    T_EQ(pthread_create(&t, NULL, client, NULL), 0);
    T_OK(jg_join(cr, NULL, JG_FOREVER));
    T_EQ(pthread_join(t, NULL), 0);
    fprintf(stderr, "   median round trip: %.3f ms idle, %.3f ms beside "
            "the pool\n", base_ns / 1e6, busy_ns / 1e6);
    T_ASSERT(busy_ns - base_ns < JG_MS(5));
    T_OK(jg_kill(acc));
    T_OK(jg_close(lfd));
    jg_join(acc, NULL, JG_FOREVER);
    jg_executor_destroy(ex);
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_server_responsive_beside_pool),
    };

    T_OK(jg_main_init(argc, argv));
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
