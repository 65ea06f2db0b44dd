/* SPDX-License-Identifier: MIT */
/*
 * peer_redis.c - hiredis' blocking client, unmodified, against a real
 * redis-server started by the test (without the preload library): many
 * green threads sit in BLPOP at once while another pushes, every pop gets
 * its own value, and the monitor saw no hub blocked. Skips (77) when
 * redis-server is not installed.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>

#include "peer.h"

static struct peer_proc *redis;
static const char *redis_sock, *redis_log;

/* Start redis-server on a Unix socket only, and wait until it answers. */
static void redis_start(void)
{
    const char *bin = peer_find("redis-server", NULL);
    char sock[256], log[256];

    if (!bin)
        T_SKIP("redis-server is not installed (scripts/deps.sh installs "
               "redis-server)");
    peer_mkdir("redis");
    snprintf(sock, sizeof(sock), "%s", peer_path("redis.sock"));
    snprintf(log, sizeof(log), "%s", peer_path("redis.log"));
    redis_sock = strdup(sock);
    redis_log = strdup(log);
    const char *argv[] = {
        bin, "--port", "0", "--unixsocket", redis_sock,
        "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
        "--dir", peer_dir, "--logfile", redis_log, "--daemonize", "no",
        NULL,
    };
    struct peer_spawn_opts o = { .out_fd = -1, .deathsig = SIGTERM };
    redis = peer_server("redis-server", SIGTERM, argv, &o);
    /* Ready when PING answers; give a slow (sanitized) machine 10 s. */
    for (int i = 0; i < 1000; i++) {
        redisContext *c = redisConnectUnix(redis_sock);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS
                && !strcmp(r->str, "PONG");
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        int st;
        if (peer_exited(redis, &st)) {
            peer_cat(redis_log);
            T_FAIL_("redis-server exited at start (status 0x%x)", st);
        }
        usleep(10000);
    }
    peer_cat(redis_log);
    T_FAIL_("redis-server did not answer on %s", redis_sock);
}

/* ---- BLPOP in many green threads ----------------------------------------- */

struct popper {
    int idx;
    int ok;                     /* got ["q:<idx>", "v<idx>"] */
    int64_t took;
};

static long npop;
static int blocked_peak;

static void *pop_one(void *arg)
{
    struct popper *p = arg;
    redisContext *c = redisConnectUnix(redis_sock);
    char key[32], want[32];

    if (!c || c->err) {
        if (c)
            redisFree(c);
        return JG_ERR(-ECONNREFUSED);
    }
    snprintf(key, sizeof(key), "q:%d", p->idx);
    snprintf(want, sizeof(want), "v%d", p->idx);
    int64_t t0 = t_now_ns();
    redisReply *r = redisCommand(c, "BLPOP %s 1", key);
    p->took = t_now_ns() - t0;
    p->ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && !strcmp(r->element[0]->str, key)
        && !strcmp(r->element[1]->str, want);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* The server's count of clients blocked in BLPOP, or -1. */
static int blocked_clients(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO clients");
    int n = -1;

    if (r && r->type == REDIS_REPLY_STRING) {
        const char *s = strstr(r->str, "blocked_clients:");
        if (s)
            n = atoi(s + strlen("blocked_clients:"));
    }
    if (r)
        freeReplyObject(r);
    return n;
}

/*
 * Wait (plain usleep, patched) until every popper is blocked in redis at
 * once, then push one value for each. Giving up after 800 ms leaves the
 * pops to time out, which the test reports.
 */
static void *push_all(void *arg)
{
    redisContext *c = redisConnectUnix(redis_sock);
    int64_t end = t_now_ns() + JG_MS(800);

    (void)arg;
    if (!c || c->err)
        return JG_ERR(-ECONNREFUSED);
    for (;;) {
        int b = blocked_clients(c);
        if (b > blocked_peak)
            blocked_peak = b;
        if (b >= npop || t_now_ns() > end)
            break;
        usleep(2000);
    }
    for (long i = 0; i < npop; i++) {
        redisReply *r = redisCommand(c, "RPUSH q:%ld v%ld", i, i);
        if (r)
            freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void test_redis_blpop_overlap(void)
{
    struct popper *p;
    struct jg_green **g, *pusher;

    npop = t_scale(100);
    blocked_peak = 0;
    p = calloc((size_t)npop, sizeof(*p));
    g = calloc((size_t)npop, sizeof(*g));
    T_ASSERT(p && g);
    peer_monitor_start();
    int64_t t0 = t_now_ns();
    for (long i = 0; i < npop; i++) {
        p[i].idx = (int)i;
        T_OK(jg_spawn(&g[i], pop_one, &p[i], NULL));
    }
    T_OK(jg_spawn(&pusher, push_all, NULL, NULL));
    for (long i = 0; i < npop; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    T_OK(jg_join(pusher, NULL, JG_FOREVER));
    int64_t el = t_now_ns() - t0;
    peer_monitor_check("BLPOP");
    fprintf(stderr, "   %ld BLPOPs: %.3f s, peak blocked %d\n", npop,
            (double)el / 1e9, blocked_peak);
    /* All outstanding at once: the server held every one of them. */
    T_EQ(blocked_peak, npop);
    for (long i = 0; i < npop; i++) {
        T_EQ(p[i].ok, 1);
        /* A pop that timed out would have taken its full second. */
        T_ASSERT(p[i].took < JG_SEC(1));
    }
    free(p);
    free(g);
}

/* ---- the same client from a plain OS thread is untouched ----------------- */

static void *plain_thread(void *arg)
{
    redisContext *c = redisConnectUnix(redis_sock);
    int *ok = arg;

    if (!c || c->err)
        return NULL;
    redisReply *r = redisCommand(c, "BLPOP plain:q 0.2");
    /* Nothing pushed: a plain thread waits its 200 ms and gets nil. */
    *ok = r && r->type == REDIS_REPLY_NIL;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

static void test_redis_plain_thread(void)
{
    pthread_t t;
    int ok = 0;

    int64_t t0 = t_now_ns();
    T_EQ(pthread_create(&t, NULL, plain_thread, &ok), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_EQ(ok, 1);
    T_ASSERT(t_now_ns() - t0 >= JG_MS(200));
}

static void run_all(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_redis_blpop_overlap),
        T_CASE(test_redis_plain_thread),
    };
    if (t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0])) != 0)
        exit(1);
}

int main(int argc, char **argv)
{
    if (!jg_patch_enabled())
        T_FAIL_("the preload library is not attached: "
                "run with LD_PRELOAD=libjuggle_preload.so");
    redis_start();
    run_all(argc, argv);
    peer_stop_all();
    return 0;
}
