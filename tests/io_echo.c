/* SPDX-License-Identifier: MIT */
/*
 * io_echo.c - a green-thread TCP echo server and 1,000 green-thread clients
 * (JG_TEST_SCALE divides) in one process: every message comes back intact,
 * and the server really served connections side by side.
 */
#include <sys/resource.h>
#include <unistd.h>

#include "juggle.h"
#include "t.h"

enum { MSGS = 4 };

static int port;
static int open_conns, peak_conns, served;
static long echoed_bytes, sent_bytes;

static void *handler(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[512];

    if (++open_conns > peak_conns)
        peak_conns = open_conns;
    for (;;) {
        ssize_t n = jg_read(c, buf, sizeof(buf), JG_SEC(30));
        if (n <= 0) {
            T_EQ(n, 0);         /* the client closed, nothing else */
            break;
        }
        T_EQ(jg_write(c, buf, (size_t)n, NULL, JG_SEC(30)), (size_t)n);
        echoed_bytes += n;
    }
    T_OK(jg_close(c));
    open_conns--;
    served++;
    return NULL;
}

static void *server(void *arg)
{
    int l = *(int *)arg;

    for (;;) {
        int c = jg_accept(l, NULL, NULL, JG_FOREVER);
        if (c == -EBADF)        /* main closed the listener: done */
            return NULL;
        T_OK(c);
        T_OK(jg_spawn(NULL, handler, (void *)(intptr_t)c, NULL));
    }
}

static void *client(void *arg)
{
    long id = (long)(intptr_t)arg;
    char out[128], in[128];
    int c = jg_tcp_dial("127.0.0.1", port, JG_SEC(30));

    T_OK(c);
    for (int m = 0; m < MSGS; m++) {
        /* Sizes vary so reads and writes split differently. */
        int len = snprintf(out, sizeof(out), "client %ld message %d %.*s",
                           id, m, (int)(id % 60), "................"
                           "............................................");
        T_EQ(jg_write(c, out, (size_t)len, NULL, JG_SEC(30)), (size_t)len);
        sent_bytes += len;
        int have = 0;
        while (have < len) {
            ssize_t n = jg_read(c, in + have, sizeof(in) - (size_t)have,
                                JG_SEC(30));
            T_ASSERT(n > 0);
            have += (int)n;
        }
        T_EQ(have, len);
        T_ASSERT(memcmp(in, out, (size_t)len) == 0);
        if (m == 0)
            T_OK(jg_yield());   /* let the others connect meanwhile */
    }
    T_OK(jg_close(c));
    return NULL;
}

static void test_echo_many_clients(void)
{
    long n = t_scale(1000);
    struct rlimit rl;

    /* Each connection costs two fds here (client and server side). */
    T_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < (rlim_t)(2 * n + 64) && rl.rlim_max >= rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    T_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < (rlim_t)(2 * n + 64))
        T_SKIP("RLIMIT_NOFILE too low for the echo test");

    int l = jg_tcp_listen("127.0.0.1", 0);
    T_OK(l);
    port = jg_sock_port(l);
    T_ASSERT(port > 0);
    struct jg_green *srv, **cl = calloc((size_t)n, sizeof(*cl));
    T_ASSERT(cl);
    T_OK(jg_spawn(&srv, server, &l, NULL));
    for (long i = 0; i < n; i++) {
        /* Half of the clients park on sliced stacks. */
        struct jg_spawn_opts o = {
            .stack_model = i % 2 ? JG_STACK_SLICED : JG_STACK_DEDICATED,
        };
        T_OK(jg_spawn(&cl[i], client, (void *)(intptr_t)i, &o));
    }
    for (long i = 0; i < n; i++)
        T_OK(jg_join(cl[i], NULL, JG_SEC(60)));
    /* The handlers finish once they read the clients' end of file. */
    for (int i = 0; i < 3000 && served < n; i++)
        T_OK(jg_sleep(JG_MS(10)));
    T_EQ(served, n);
    T_EQ(open_conns, 0);
    T_OK(jg_close(l));
    T_OK(jg_join(srv, NULL, JG_SEC(5)));
    fprintf(stderr, "%ld clients, peak %d connections open at once\n", n,
            peak_conns);
    if (n > 1)
        T_ASSERT(peak_conns > 1);
    T_EQ(echoed_bytes, sent_bytes);
    free(cl);
}

T_MAIN(T_CASE(test_echo_many_clients))
