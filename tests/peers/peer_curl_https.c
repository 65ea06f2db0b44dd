/* SPDX-License-Identifier: MIT */
/*
 * peer_curl_https.c - libcurl over HTTPS (OpenSSL), unmodified, from green
 * threads under the preload library, against tls_server (a thread per
 * connection, started by the test) with a certificate made at test time
 * and verified through CURLOPT_CAINFO: the easy interface from 100 green
 * threads, and the multi interface driven from green threads. Each request
 * is held by the server until all of them are there (and 50 ms at least),
 * so the server's peak count says whether they overlapped; every body is
 * checked, and the monitor saw no hub blocked. Skips (77) without the
 * openssl program or the server.
 */
#include <curl/curl.h>
#include <poll.h>

#include "peer.h"

static char cert[256];
static int port;
static struct peer_proc *srv;
static _Atomic int ungathered;  /* a request the server gave up holding */

/* ---- the server ---------------------------------------------------------- */

/* A self-signed certificate for 127.0.0.1 (and nothing else). */
static void make_cert(void)
{
    const char *openssl = peer_find("openssl", NULL);
    char key[256], log[256];

    if (!openssl)
        T_SKIP("the openssl program is not installed (scripts/deps.sh "
               "installs openssl)");
    snprintf(cert, sizeof(cert), "%s", peer_path("cert.pem"));
    snprintf(key, sizeof(key), "%s", peer_path("key.pem"));
    snprintf(log, sizeof(log), "%s", peer_path("openssl.log"));
    const char *argv[] = {
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", cert, "-days", "2", "-subj", "/CN=juggle peer test",
        "-addext", "subjectAltName=IP:127.0.0.1", NULL,
    };
    struct peer_spawn_opts o = { .log = log, .out_fd = -1 };
    int st = peer_run(argv, &o);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        peer_cat(log);
        T_FAIL_("openssl req failed (status 0x%x)", st);
    }
}

/* Start tls_server and read its "port N" line. */
static void server_start(void)
{
    const char *bin = getenv("JG_PEER_TLS_SERVER");
    char key[256], log[256], line[64] = "";
    int fds[2];

    if (!bin || access(bin, X_OK) != 0)
        T_SKIP("tls_server is not built (JG_PEER_TLS_SERVER)");
    snprintf(key, sizeof(key), "%s", peer_path("key.pem"));
    snprintf(log, sizeof(log), "%s", peer_path("server.log"));
    T_OK(pipe2(fds, O_CLOEXEC));
    const char *argv[] = { bin, cert, key, NULL };
    struct peer_spawn_opts o = { .log = log, .out_fd = fds[1] };
    srv = peer_server("tls_server", SIGTERM, argv, &o);
    close(fds[1]);
    struct pollfd p = { .fd = fds[0], .events = POLLIN };
    ssize_t n = 0;
    if (poll(&p, 1, 10000) == 1)
        n = read(fds[0], line, sizeof(line) - 1);
    close(fds[0]);
    if (n <= 0 || sscanf(line, "port %d", &port) != 1) {
        peer_cat(log);
        T_FAIL_("tls_server did not start");
    }
}

/* ---- fetching ------------------------------------------------------------ */

struct fetch {
    char url[256];
    char want[64];
    char body[128];
    size_t len;
    CURLcode rc;
    long status;
    int gathered;               /* the server's X-Gathered */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct fetch *f = ud;
    size_t k = size * n;

    if (f->len + k >= sizeof(f->body))
        return 0;               /* too long: curl reports a write error */
    memcpy(f->body + f->len, p, k);
    f->len += k;
    f->body[f->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct fetch *f = ud;

    if (!strncasecmp(p, "X-Gathered: ", 12))
        f->gathered = atoi(p + 12);
    return size * n;
}

/* An easy handle for f, as a user sets one up: CA-verified, no signals. */
static CURL *easy_for(struct fetch *f)
{
    CURL *c = curl_easy_init();

    T_ASSERT(c);
    f->rc = CURLE_FAILED_INIT;
    f->len = 0;
    f->body[0] = '\0';
    f->gathered = -1;
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_CAINFO, cert);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    /* Threaded programs turn curl's SIGALRM timeouts off. */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    return c;
}

/* A request f->url with curl_easy_perform, from any thread. */
static void fetch_now(struct fetch *f)
{
    CURL *c = easy_for(f);

    f->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(c);
}

/* GET path from the main context; its body. */
static const char *get(const char *path)
{
    static struct fetch f;

    snprintf(f.url, sizeof(f.url), "https://127.0.0.1:%d%s", port, path);
    fetch_now(&f);
    if (f.rc != CURLE_OK)
        T_FAIL_("GET %s: %s", path, curl_easy_strerror(f.rc));
    T_EQ(f.status, 200);
    return f.body;
}

/* The server's counts since the last reset. */
static void stats(int *peak, int *served)
{
    T_EQ(sscanf(get("/stats"), "peak %d served %d", peak, served), 2);
}

/* n fetches of /echo/<tag><i>, each held until all n are there. */
static struct fetch *fetches(const char *tag, long n)
{
    struct fetch *f = calloc((size_t)n, sizeof(*f));

    T_ASSERT(f);
    for (long i = 0; i < n; i++) {
        snprintf(f[i].want, sizeof(f[i].want), "%s%ld", tag, i);
        snprintf(f[i].url, sizeof(f[i].url),
                 "https://127.0.0.1:%d/echo/%s?delay=50&gather=%ld", port,
                 f[i].want, n);
    }
    return f;
}

/* Every answer right, and the server held all n at once. */
static void check(struct fetch *f, long n, const char *what, int64_t el)
{
    int peak, served;

    stats(&peak, &served);
    fprintf(stderr, "   %s: %ld fetches, %.3f s, server peak %d\n", what, n,
            (double)el / 1e9, peak);
    for (long i = 0; i < n; i++) {
        if (f[i].rc != CURLE_OK)
            T_FAIL_("fetch %ld: %s", i, curl_easy_strerror(f[i].rc));
        T_EQ(f[i].status, 200);
        T_STREQ(f[i].body, f[i].want);
        T_EQ(f[i].gathered, 1);
    }
    T_EQ(served, n);
    T_EQ(peak, n);
    T_ASSERT(el >= JG_MS(50));
}

/* ---- the easy interface from 100 green threads --------------------------- */

static void *easy_one(void *arg)
{
    struct fetch *f = arg;

    /* One request the server gave up on (3 s) means the others came one
     * at a time: fail now rather than 3 s per green thread. */
    if (atomic_load(&ungathered))
        return NULL;
    fetch_now(f);
    if (f->gathered == 0)
        atomic_store(&ungathered, 1);
    return NULL;
}

static void test_easy_https_overlap(void)
{
    long n = t_scale(100);
    struct fetch *f = fetches("e", n);
    struct jg_green **g = calloc((size_t)n, sizeof(*g));

    T_ASSERT(g);
    T_STREQ(get("/reset"), "ok");
    peer_monitor_start();
    int64_t t0 = t_now_ns();
    for (long i = 0; i < n; i++)
        T_OK(jg_spawn(&g[i], easy_one, &f[i], NULL));
    for (long i = 0; i < n; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    int64_t el = t_now_ns() - t0;
    peer_monitor_check("easy");
    check(f, n, "easy", el);
    free(f);
    free(g);
}

/* ---- the multi interface, driven from green threads ---------------------- */

struct multi_job {
    struct fetch *f;
    long n;
    int polls;                  /* curl_multi_poll calls that waited */
};

static volatile int multi_done;
static long ticks;

/* One multi handle with n transfers, run to completion: what a user of
 * the multi interface writes (perform, poll, read the messages). */
static void *multi_run(void *arg)
{
    struct multi_job *j = arg;
    CURLM *m = curl_multi_init();
    CURL **e = calloc((size_t)j->n, sizeof(*e));
    int running = 1;

    T_ASSERT(m && e);
    for (long i = 0; i < j->n; i++) {
        e[i] = easy_for(&j->f[i]);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, &j->f[i]);
        T_EQ(curl_multi_add_handle(m, e[i]), CURLM_OK);
    }
    while (running) {
        T_EQ(curl_multi_perform(m, &running), CURLM_OK);
        if (running) {
            T_EQ(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
            j->polls++;
        }
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE) {
            struct fetch *f;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &f);
            f->rc = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
                              &f->status);
        }
    for (long i = 0; i < j->n; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    free(e);
    return NULL;
}

static void *multi_ticker(void *arg)
{
    (void)arg;
    while (!multi_done) {
        jg_sleep(JG_MS(2));
        ticks++;
    }
    return NULL;
}

/* Two multi handles in two green threads, n transfers in all: the server
 * holds each until all n are there, so both loops must run at once. */
static void test_multi_https_in_green_threads(void)
{
    long n = t_scale(100) < 2 ? 2 : t_scale(100);
    struct fetch *f = fetches("m", n);
    struct multi_job j[2] = {
        { .f = f, .n = n / 2 }, { .f = f + n / 2, .n = n - n / 2 },
    };
    struct jg_green *g[2], *tk;

    T_STREQ(get("/reset"), "ok");
    multi_done = 0;
    ticks = 0;
    peer_monitor_start();
    T_OK(jg_spawn(&tk, multi_ticker, NULL, NULL));
    int64_t t0 = t_now_ns();
    for (int i = 0; i < 2; i++)
        T_OK(jg_spawn(&g[i], multi_run, &j[i], NULL));
    for (int i = 0; i < 2; i++)
        T_OK(jg_join(g[i], NULL, JG_FOREVER));
    int64_t el = t_now_ns() - t0;
    multi_done = 1;
    T_OK(jg_join(tk, NULL, JG_FOREVER));
    peer_monitor_check("multi");
    fprintf(stderr, "   multi: %d + %d polls, %ld ticks meanwhile\n",
            j[0].polls, j[1].polls, ticks);
    check(f, n, "multi", el);
    /* The hub ran other green threads while the loops waited (>= 50 ms
     * of 2 ms naps: a few even on a loaded machine). */
    T_ASSERT(ticks >= 3);
    free(f);
}

/* ---- verification is on -------------------------------------------------- */

/* The certificate names 127.0.0.1 only: "localhost" (pinned to that
 * address) must fail verification, so nothing above passed unverified. */
static void test_https_verifies_the_peer(void)
{
    struct fetch f = { 0 };
    char pin[64];
    struct curl_slist *res;

    snprintf(pin, sizeof(pin), "localhost:%d:127.0.0.1", port);
    res = curl_slist_append(NULL, pin);
    snprintf(f.url, sizeof(f.url), "https://localhost:%d/echo/x", port);
    CURL *c = easy_for(&f);
    curl_easy_setopt(c, CURLOPT_RESOLVE, res);
    f.rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    curl_slist_free_all(res);
    T_EQ(f.rc, CURLE_PEER_FAILED_VERIFICATION);
}

int main(int argc, char **argv)
{
    if (!jg_patch_enabled())
        T_FAIL_("the preload library is not attached: "
                "run with LD_PRELOAD=libjuggle_preload.so");
    peer_mkdir("curl");
    make_cert();
    server_start();
    T_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    /* OpenSSL loads its configuration on the first handshake: here, not
     * inside the watched part. */
    T_STREQ(get("/reset"), "ok");
    static const struct t_case cases[] = {
        T_CASE(test_easy_https_overlap),
        T_CASE(test_multi_https_in_green_threads),
        T_CASE(test_https_verifies_the_peer),
    };
    int rc = t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    curl_global_cleanup();
    peer_stop_all();
    return rc;
}
