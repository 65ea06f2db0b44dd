/* SPDX-License-Identifier: MIT */
/*
 * peer_libpq.c - libpq, unmodified, from green threads under the preload
 * library, against a real PostgreSQL server that the test makes with
 * initdb in a temp dir and starts itself (as nobody when the test runs as
 * root: PostgreSQL refuses root), on a Unix socket in that dir and on
 * 127.0.0.1. 100 green threads, each on its own connection, run
 * SELECT pg_sleep(0.05), $1 with PQexecParams, and again with the async
 * API (PQsendQueryParams, PQconsumeInput, PQisBusy, poll on PQsocket):
 * every echoed parameter is checked, all queries are in flight at once
 * (counted by the client and sampled in pg_stat_activity), and the monitor
 * saw no hub blocked. Skips (77) when PostgreSQL is not installed.
 */
#include <libpq-fe.h>
#include <poll.h>

#include "peer.h"

static struct peer_proc *pg;
static char pg_tcp[256], pg_unix[256];  /* conninfo strings */

/* ---- the server ---------------------------------------------------------- */

/* initdb once; then postgres on a free port, retried if another test
 * took the port in between. */
static void pg_start(void)
{
    const char *ib = peer_find("initdb", "/usr/lib/postgresql/*/bin");
    char initdb[512], postgres[512], data[256], log[256], ilog[256];
    char portbuf[16];

    if (!ib)
        T_SKIP("PostgreSQL is not installed (scripts/deps.sh installs "
               "postgresql)");
    snprintf(initdb, sizeof(initdb), "%s", ib);
    snprintf(postgres, sizeof(postgres), "%.*s/postgres",
             (int)(strrchr(initdb, '/') - initdb), initdb);
    if (access(postgres, X_OK) != 0)
        T_SKIP("initdb found but no postgres beside it");
    peer_mkdir("pg");
    struct peer_user u = peer_unprivileged();
    snprintf(data, sizeof(data), "%s", peer_path("data"));
    snprintf(ilog, sizeof(ilog), "%s", peer_path("initdb.log"));
    snprintf(log, sizeof(log), "%s", peer_path("postgres.log"));
    const char *const env[] = { "LC_ALL=C", NULL };
    const char *iargv[] = {
        initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync",
        "--no-instructions", "-E", "UTF8", "--locale=C", NULL,
    };
    struct peer_spawn_opts io = { .user = &u, .log = ilog, .out_fd = -1,
                                  .env = env };
    int st = peer_run(iargv, &io);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        peer_cat(ilog);
        T_FAIL_("initdb failed (status 0x%x)", st);
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        int port = peer_free_port();
        snprintf(portbuf, sizeof(portbuf), "%d", port);
        const char *argv[] = {
            postgres, "-D", data, "-k", peer_dir, "-h", "127.0.0.1",
            "-p", portbuf, "-c", "fsync=off", "-c", "max_connections=250",
            "-c", "shared_buffers=16MB", NULL,
        };
        /* Killed with the test: SIGQUIT, so the postmaster takes its
         * backends along (immediate shutdown). */
        struct peer_spawn_opts o = { .user = &u, .log = log, .out_fd = -1,
                                     .env = env, .deathsig = SIGQUIT };
        pg = peer_server("postgres", SIGINT, argv, &o);
        snprintf(pg_tcp, sizeof(pg_tcp), "host=127.0.0.1 port=%d "
                 "dbname=postgres user=postgres connect_timeout=30", port);
        snprintf(pg_unix, sizeof(pg_unix), "host=%s port=%d "
                 "dbname=postgres user=postgres connect_timeout=30",
                 peer_dir, port);
        /* Ready when it accepts connections; 30 s for a loaded machine. */
        for (int i = 0; i < 3000; i++) {
            if (PQping(pg_unix) == PQPING_OK && PQping(pg_tcp) == PQPING_OK)
                return;
            if (peer_exited(pg, &st))
                break;
            usleep(10000);
        }
        peer_cat(log);
        if (pg->pid > 0)
            T_FAIL_("postgres did not answer on port %d", port);
        fprintf(stderr, "   postgres exited (status 0x%x); again\n", st);
    }
    T_FAIL_("postgres did not start");
}

/* ---- common to both APIs ------------------------------------------------- */

struct client {
    int idx;
    char want[32];              /* the parameter, echoed */
    int ok;
    char err[160];
};

static struct peer_overlap ov;
static struct jg_event all_connected;
static long nclients, nconnected;
static volatile int sampling;
static int server_peak;         /* backends seen in pg_sleep at once */

/* The connection for client i: TCP for even ones, the socket for odd. */
static const char *conninfo(int i)
{
    return i % 2 ? pg_unix : pg_tcp;
}

/* Each client waits here until all are connected, so the queries (not
 * the connection set-up, serialised in the postmaster) are what overlap. */
static void connected_barrier(void)
{
    if (++nconnected == nclients)
        jg_event_set(&all_connected);
    T_OK(jg_event_wait(&all_connected, JG_FOREVER));
}

static void note_err(struct client *c, const char *what, PGconn *conn)
{
    snprintf(c->err, sizeof(c->err), "%s: %s", what,
             conn ? PQerrorMessage(conn) : "out of memory");
}

/* The result of the query: one row whose second column is the parameter. */
static void check_result(struct client *c, PGresult *r, PGconn *conn)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        note_err(c, "query", conn);
        return;
    }
    c->ok = PQntuples(r) == 1 && PQnfields(r) == 2 &&
            !strcmp(PQgetvalue(r, 0, 1), c->want);
    if (!c->ok)
        snprintf(c->err, sizeof(c->err), "got %s, want %s",
                 PQntuples(r) == 1 ? PQgetvalue(r, 0, 1) : "no row",
                 c->want);
}

/* A green thread of its own samples how many backends sleep at once. */
static void *sampler(void *arg)
{
    PGconn *conn = PQconnectdb(pg_unix);

    (void)arg;
    if (PQstatus(conn) != CONNECTION_OK)
        T_FAIL_("sampler: %s", PQerrorMessage(conn));
    while (sampling) {
        PGresult *r = PQexec(conn, "SELECT count(*) FROM pg_stat_activity "
                             "WHERE wait_event = 'PgSleep'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            int n = atoi(PQgetvalue(r, 0, 0));
            if (n > server_peak)
                server_peak = n;
        }
        PQclear(r);
        /* jg_sleep, not the patched usleep: the sampler must not starve
         * the others if the patch were off. */
        jg_sleep(JG_MS(2));
    }
    PQfinish(conn);
    return NULL;
}

/* n clients of fn at once, and what they must have seen. */
static void run_clients(void *(*fn)(void *), const char *what)
{
    long n = t_scale(100);
    struct client *c = calloc((size_t)n, sizeof(*c));
    struct jg_green **g = calloc((size_t)n, sizeof(*g)), *smp;

    T_ASSERT(c && g);
    nclients = n;
    nconnected = 0;
    server_peak = 0;
    atomic_store(&ov.inside, 0);
    atomic_store(&ov.peak, 0);
    T_OK(jg_event_init(&all_connected));
    sampling = 1;
    peer_monitor_start();
    T_OK(jg_spawn(&smp, sampler, NULL, NULL));
    int64_t t0 = t_now_ns();
    for (long i = 0; i < n; i++) {
        c[i].idx = (int)i;
        snprintf(c[i].want, sizeof(c[i].want), "v%ld", i);
        T_OK(jg_spawn(&g[i], fn, &c[i], NULL));
    }
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    int64_t el = t_now_ns() - t0;
    sampling = 0;
    T_OK(jg_join(smp, NULL, JG_FOREVER));
    peer_monitor_check(what);
    int peak = atomic_load(&ov.peak);
    fprintf(stderr, "   %s: %ld clients, %.3f s, %d queries in flight at "
            "once, %d backends seen in pg_sleep at once\n", what, n,
            (double)el / 1e9, peak, server_peak);
    for (long i = 0; i < n; i++)
        if (!c[i].ok)
            T_FAIL_("client %ld: %s", i, c[i].err);
    /* Every query in flight at once: one that held the hub would have
     * kept the others from even sending theirs. */
    T_EQ(peak, n);
    /* The server agrees: several slept at once. (Samples 2 ms apart can
     * miss the moment all n did, on a loaded machine: not asserted.) */
    T_ASSERT(server_peak >= (n < 2 ? n : 2));
    T_ASSERT(el >= JG_MS(50));
    jg_event_destroy(&all_connected);
    free(c);
    free(g);
}

static const char query[] = "SELECT pg_sleep(0.05), $1::text";

/* ---- the blocking API: PQconnectdb, PQexecParams ------------------------- */

static void *blocking_client(void *arg)
{
    struct client *c = arg;
    PGconn *conn = PQconnectdb(conninfo(c->idx));
    const char *params[1] = { c->want };

    if (PQstatus(conn) != CONNECTION_OK) {
        note_err(c, "connect", conn);
        connected_barrier();
        PQfinish(conn);
        return NULL;
    }
    connected_barrier();
    peer_enter(&ov);
    PGresult *r = PQexecParams(conn, query, 1, NULL, params, NULL, NULL, 0);
    peer_leave(&ov);
    check_result(c, r, conn);
    PQclear(r);
    PQfinish(conn);
    return NULL;
}

static void test_pq_exec_params_overlap(void)
{
    run_clients(blocking_client, "PQexecParams");
}

/* ---- the async API: PQconnectPoll, PQsendQueryParams, PQisBusy ----------- */

/* Wait on the connection's socket as an event-driven user does. */
static int wait_sock(PGconn *conn, short ev)
{
    struct pollfd p = { .fd = PQsocket(conn), .events = ev };

    if (p.fd < 0)
        return -1;
    return poll(&p, 1, 30000) == 1 ? 0 : -1;
}

static PGconn *async_connect(struct client *c)
{
    PGconn *conn = PQconnectStart(conninfo(c->idx));
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;

    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        return conn;
    /* PQsocket may change between calls (another address): asked anew. */
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        if (wait_sock(conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT))
            break;
        st = PQconnectPoll(conn);
    }
    return conn;
}

static void *async_client(void *arg)
{
    struct client *c = arg;
    PGconn *conn = async_connect(c);
    const char *params[1] = { c->want };
    PGresult *r, *last = NULL;

    if (PQstatus(conn) != CONNECTION_OK) {
        note_err(c, "connect", conn);
        connected_barrier();
        PQfinish(conn);
        return NULL;
    }
    connected_barrier();
    PQsetnonblocking(conn, 1);
    peer_enter(&ov);
    if (!PQsendQueryParams(conn, query, 1, NULL, params, NULL, NULL, 0)) {
        note_err(c, "send", conn);
        goto out;
    }
    int f;
    while ((f = PQflush(conn)) == 1)
        if (wait_sock(conn, POLLOUT | POLLIN) < 0 || !PQconsumeInput(conn))
            break;
    if (f != 0) {
        note_err(c, "flush", conn);
        goto out;
    }
    for (;;) {
        if (!PQconsumeInput(conn)) {
            note_err(c, "consume", conn);
            goto out;
        }
        if (!PQisBusy(conn)) {
            if (!(r = PQgetResult(conn)))
                break;
            PQclear(last);
            last = r;
            continue;
        }
        if (wait_sock(conn, POLLIN) < 0) {
            note_err(c, "poll", conn);
            goto out;
        }
    }
    if (last)
        check_result(c, last, conn);
    else
        snprintf(c->err, sizeof(c->err), "no result");
out:
    peer_leave(&ov);
    PQclear(last);
    PQfinish(conn);
    return NULL;
}

static void test_pq_async_api_overlap(void)
{
    run_clients(async_client, "async");
}

int main(int argc, char **argv)
{
    if (!jg_patch_enabled())
        T_FAIL_("the preload library is not attached: "
                "run with LD_PRELOAD=libjuggle_preload.so");
    pg_start();
    static const struct t_case cases[] = {
        T_CASE(test_pq_exec_params_overlap),
        T_CASE(test_pq_async_api_overlap),
    };
    int rc = t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    peer_stop_all();
    return rc;
}
