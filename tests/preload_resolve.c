/* SPDX-License-Identifier: MIT */
/*
 * preload_resolve.c - name resolution under the preload library: plain
 * getaddrinfo and gethostbyname from green threads give libc's answers and
 * error codes, park only their caller (another green thread keeps ticking),
 * and gethostbyname's result belongs to the green thread that asked.
 */
#include <juggle.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

static uint32_t ipv4(const char *s)
{
    struct in_addr a;

    T_EQ(inet_pton(AF_INET, s, &a), 1);
    return a.s_addr;
}

/* ---- getaddrinfo parks only its caller ----------------------------------- */

static volatile int ticking;
static long ticks;

/* A green thread whose 1 ms timer keeps firing while others resolve. */
static void *ticker(void *arg)
{
    (void)arg;
    while (ticking) {
        if (jg_sleep(JG_MS(1)) < 0)
            return NULL;
        ticks++;
    }
    return NULL;
}

struct gai_loop {
    long calls;
    long bad;                   /* wrong answers */
    long ticks_during;
};

static void *resolve_loop(void *arg)
{
    struct gai_loop *l = arg;
    struct addrinfo hints = { .ai_family = AF_INET,
                              .ai_socktype = SOCK_STREAM };
    long t0 = ticks;
    int64_t end = t_now_ns() + JG_MS(30);

    /* Resolve for 30 ms. Were getaddrinfo libc's own blocking call, this
     * loop would never give the hub up and the ticker would stand still. */
    while (t_now_ns() < end || l->calls < 20) {
        struct addrinfo *res = NULL;
        int rc = getaddrinfo("localhost", "80", &hints, &res);
        if (rc != 0 || !res || res->ai_family != AF_INET) {
            l->bad++;
        } else {
            const struct sockaddr_in *a = (const void *)res->ai_addr;
            if (a->sin_addr.s_addr != ipv4("127.0.0.1") ||
                ntohs(a->sin_port) != 80)
                l->bad++;
        }
        if (res)
            freeaddrinfo(res);
        l->calls++;
    }
    l->ticks_during = ticks - t0;
    return NULL;
}

static void test_getaddrinfo_parks_caller_only(void)
{
    struct jg_green *t, *r;
    struct gai_loop l = { 0 };
    int64_t before = jg_patch_calls("getaddrinfo");

    T_OK(before);
    ticking = 1;
    ticks = 0;
    T_OK(jg_spawn(&t, ticker, NULL, NULL));
    T_OK(jg_yield());
    T_OK(jg_spawn(&r, resolve_loop, &l, NULL));
    T_OK(jg_join(r, NULL, JG_FOREVER));
    ticking = 0;
    T_OK(jg_join(t, NULL, JG_FOREVER));
    fprintf(stderr, "   %ld lookups, %ld ticks meanwhile\n", l.calls,
            l.ticks_during);
    T_EQ(l.bad, 0);
    T_ASSERT(l.calls >= 20);
    /* Every lookup took the cooperative path. */
    T_EQ(jg_patch_calls("getaddrinfo") - before, l.calls);
    /* 30 ms of lookups: a live 1 ms timer fires many times. */
    T_ASSERT(l.ticks_during >= 5);
}

/* ---- getaddrinfo's errors are libc's errors ------------------------------ */

struct gai_case {
    const char *node, *service;
    struct addrinfo hints;
    int rc;
    int family;                 /* of the first answer, when rc == 0 */
};

static struct gai_case gai_cases[] = {
    /* Numeric only, and "localhost" is not a number. */
    { "localhost", NULL, { .ai_flags = AI_NUMERICHOST }, 0, 0 },
    /* Flags outside the defined set. */
    { "localhost", NULL, { .ai_flags = 0x40000000 }, 0, 0 },
    /* A family getaddrinfo does not know. */
    { "localhost", NULL, { .ai_family = AF_APPLETALK }, 0, 0 },
    /* Neither a node nor a service. */
    { NULL, NULL, { .ai_family = AF_INET }, 0, 0 },
    /* A numeric IPv6 address. */
    { "::1", "443", { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, 0, 0 },
    /* A service name from /etc/services, or its error if there is none. */
    { "127.0.0.1", "http", { .ai_socktype = SOCK_STREAM }, 0, 0 },
};
#define NGAI (sizeof(gai_cases) / sizeof(gai_cases[0]))

static void run_gai_cases(int *rc, int *family)
{
    for (size_t i = 0; i < NGAI; i++) {
        struct addrinfo *res = NULL;
        rc[i] = getaddrinfo(gai_cases[i].node, gai_cases[i].service,
                            &gai_cases[i].hints, &res);
        family[i] = rc[i] == 0 && res ? res->ai_family : -1;
        if (res)
            freeaddrinfo(res);
    }
}

static void *gai_cases_green(void *arg)
{
    int *out = arg;

    run_gai_cases(out, out + NGAI);
    return NULL;
}

static void *gai_cases_plain(void *arg)
{
    return gai_cases_green(arg);
}

static void test_getaddrinfo_errors_as_libc(void)
{
    int want[2 * NGAI], got[2 * NGAI];
    struct jg_green *g;
    pthread_t t;

    /* What libc says, from a plain OS thread (untouched by the patch). */
    T_EQ(pthread_create(&t, NULL, gai_cases_plain, want), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_EQ(want[0], EAI_NONAME);
    T_EQ(want[1], EAI_BADFLAGS);
    T_EQ(want[2], EAI_FAMILY);
    T_EQ(want[3], EAI_NONAME);
    T_EQ(want[4], 0);
    T_EQ(want[NGAI + 4], AF_INET6);
    T_OK(jg_spawn(&g, gai_cases_green, got, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    for (size_t i = 0; i < 2 * NGAI; i++)
        T_EQ(got[i], want[i]);
}

/* ---- gethostbyname: a result per green thread ---------------------------- */

struct ghbn {
    const char *name;
    const char *addr;           /* the address it must give */
    int ok;
    struct hostent *hp;
};

/*
 * Look name up, let the other green thread look its own name up, then
 * check that our result still says ours: libc's one static hostent per OS
 * thread would now hold the other's answer.
 */
static void *ghbn_green(void *arg)
{
    struct ghbn *q = arg;
    struct hostent *hp = gethostbyname(q->name);

    if (!hp)
        return JG_ERR(-ENOENT);
    q->hp = hp;
    if (jg_sleep(JG_MS(20)) < 0)
        return JG_ERR(-ECANCELED);
    uint32_t a;
    memcpy(&a, hp->h_addr, sizeof(a));
    q->ok = hp->h_addrtype == AF_INET && hp->h_length == 4 &&
        a == ipv4(q->addr) && hp->h_addr_list[1] == NULL &&
        !strcmp(hp->h_name, q->name);
    return NULL;
}

static void test_gethostbyname_per_green(void)
{
    /* Both answered without DNS: /etc/hosts, and a dotted number. */
    struct ghbn a = { "localhost", "127.0.0.1", 0, NULL };
    struct ghbn b = { "127.0.0.2", "127.0.0.2", 0, NULL };
    struct jg_green *ga, *gb;
    int64_t before = jg_patch_calls("gethostbyname");

    T_OK(before);
    T_OK(jg_spawn(&ga, ghbn_green, &a, NULL));
    T_OK(jg_spawn(&gb, ghbn_green, &b, NULL));
    T_OK(jg_join(ga, NULL, JG_FOREVER));
    T_OK(jg_join(gb, NULL, JG_FOREVER));
    T_EQ(a.ok, 1);
    T_EQ(b.ok, 1);
    T_ASSERT(a.hp != b.hp);
    T_EQ(jg_patch_calls("gethostbyname") - before, 2);
}

/* The same green thread gets the same storage back, refilled. */
static void *ghbn_twice(void *arg)
{
    struct hostent *h1 = gethostbyname("127.0.0.3");
    struct hostent *h2;
    uint32_t a;

    (void)arg;
    if (!h1)
        return JG_ERR(-ENOENT);
    h2 = gethostbyname("127.0.0.4");
    if (h2 != h1)
        return JG_ERR(-EINVAL);
    memcpy(&a, h2->h_addr, sizeof(a));
    return a == ipv4("127.0.0.4") ? NULL : JG_ERR(-EIO);
}

static void test_gethostbyname_reuses_storage(void)
{
    struct jg_green *g;

    T_OK(jg_spawn(&g, ghbn_twice, NULL, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
}

/* ---- gethostbyname's failures: h_errno and errno as libc sets them ------- */

struct ghbn_err {
    struct hostent *hp;
    int herr;
    int err;
};

static void ghbn_bad(struct ghbn_err *e)
{
    /* All digits and dots, yet no address: HOST_NOT_FOUND without DNS. */
    h_errno = 0;
    errno = 12345;
    e->hp = gethostbyname("256.256.256.256");
    e->herr = h_errno;
    e->err = errno;
}

static void *ghbn_bad_green(void *arg)
{
    ghbn_bad(arg);
    return NULL;
}

static void test_gethostbyname_h_errno(void)
{
    struct ghbn_err want, got;
    struct jg_green *g;
    pthread_t t;

    T_EQ(pthread_create(&t, NULL, ghbn_bad_green, &want), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_PEQ(want.hp, NULL);
    T_EQ(want.herr, HOST_NOT_FOUND);
    T_OK(jg_spawn(&g, ghbn_bad_green, &got, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_PEQ(got.hp, NULL);
    T_EQ(got.herr, want.herr);
    T_EQ(got.err, want.err);
}

/* ---- gethostbyname2 and gethostbyname_r ---------------------------------- */

static void *ghbn_family(void *arg)
{
    int *ok = arg;
    struct hostent *h4 = gethostbyname("127.0.0.5");
    struct hostent *h6 = gethostbyname2("::1", AF_INET6);
    uint32_t a;

    if (!h4 || !h6)
        return JG_ERR(-ENOENT);
    /* Separate results, as libc keeps them: gethostbyname2 leaves
     * gethostbyname's in place. */
    memcpy(&a, h4->h_addr, sizeof(a));
    ok[0] = h4 != h6 && a == ipv4("127.0.0.5") && h4->h_addrtype == AF_INET;
    ok[1] = h6->h_addrtype == AF_INET6 && h6->h_length == 16 &&
        !memcmp(h6->h_addr, &in6addr_loopback, 16);
    return NULL;
}

static void test_gethostbyname2(void)
{
    int ok[2] = { 0, 0 };
    struct jg_green *g;

    T_OK(jg_spawn(&g, ghbn_family, ok, NULL));
    T_OK(jg_join(g, NULL, JG_FOREVER));
    T_EQ(ok[0], 1);
    T_EQ(ok[1], 1);
}

struct ghbnr {
    int rc, herr;
    struct hostent he, *res;
    char buf[1024];
    int small_rc;
};

/* The caller's buffer (here on a green thread's stack) gets the answer,
 * and a buffer too small gets ERANGE, as from libc. */
static void *ghbnr_green(void *arg)
{
    struct ghbnr *q = arg;
    char buf[1024], tiny[8];
    struct hostent he, *res = NULL;
    int herr = 0;

    q->rc = gethostbyname_r("localhost", &he, buf, sizeof(buf), &res, &herr);
    q->herr = herr;
    if (q->rc == 0 && res == &he) {
        q->res = &q->he;
        q->he = he;
        /* Every pointer of the answer lies inside our buffer. */
        if ((char *)he.h_name < buf || (char *)he.h_name >= buf + sizeof(buf)
            || (char *)he.h_addr_list[0] < buf
            || (char *)he.h_addr_list[0] >= buf + sizeof(buf))
            q->res = NULL;
        else
            memcpy(q->buf, he.h_addr_list[0], 4);
    }
    q->small_rc = gethostbyname_r("localhost", &he, tiny, sizeof(tiny),
                                  &res, &herr);
    if (res != NULL)
        q->small_rc = -1;
    return NULL;
}

static void test_gethostbyname_r(void)
{
    struct ghbnr q;
    struct jg_green *g;
    struct jg_spawn_opts o = { .stack_model = JG_STACK_SLICED };
    uint32_t a;

    /* Dedicated and sliced stacks: the answer is copied in after the
     * green thread resumes, never written into a parked stack. */
    for (int m = 0; m < 2; m++) {
        memset(&q, 0, sizeof(q));
        T_OK(jg_spawn(&g, ghbnr_green, &q, m ? &o : NULL));
        T_OK(jg_join(g, NULL, JG_FOREVER));
        T_EQ(q.rc, 0);
        T_PEQ(q.res, &q.he);
        memcpy(&a, q.buf, 4);
        T_EQ(a, ipv4("127.0.0.1"));
        T_EQ(q.small_rc, ERANGE);
    }
}

T_MAIN(T_CASE(test_getaddrinfo_parks_caller_only),
       T_CASE(test_getaddrinfo_errors_as_libc),
       T_CASE(test_gethostbyname_per_green),
       T_CASE(test_gethostbyname_reuses_storage),
       T_CASE(test_gethostbyname_h_errno),
       T_CASE(test_gethostbyname2),
       T_CASE(test_gethostbyname_r))
