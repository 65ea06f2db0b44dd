/* SPDX-License-Identifier: MIT */
/*
 * preload_resolve.c - name resolution under the preload library gives
 * libc's answers, byte for byte: every lookup made from a green thread is
 * compared, field by field (addresses in order with their duplicates,
 * aliases, h_name, return code, errno, h_errno), with the same lookup made
 * from a plain OS thread, where the interposers are libc. No case assumes
 * anything of this machine's /etc/hosts; one case runs them all again with
 * Debian's default /etc/hosts bound over it in a private mount namespace.
 * Lookups park only their caller, and gethostbyname's result belongs to the
 * green thread that asked.
 */
#include <juggle.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

/* Only names every hosts file has ("localhost") and numbers: no case may
 * wait for DNS. */

/* ---- a text image of an answer ------------------------------------------- */

#define IMG 4096

struct img {
    char s[IMG];
    size_t n;
};

static void put(struct img *m, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int k = vsnprintf(m->s + m->n, IMG - m->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        m->n = m->n + (size_t)k < IMG ? m->n + (size_t)k : IMG - 1;
}

static void put_addr(struct img *m, int af, const void *a, int len)
{
    char b[INET6_ADDRSTRLEN];

    if ((af == AF_INET && len == 4) || (af == AF_INET6 && len == 16)) {
        put(m, " %s", inet_ntop(af, a, b, sizeof(b)));
        return;
    }
    put(m, " raw:");
    for (int i = 0; i < len; i++)
        put(m, "%02x", ((const unsigned char *)a)[i]);
}

/* Everything a caller can read of a hostent, in order. */
static void put_hostent(struct img *m, const struct hostent *h)
{
    if (!h) {
        put(m, " (null)");
        return;
    }
    put(m, " name=%s type=%d len=%d aliases:", h->h_name ? h->h_name : "-",
        h->h_addrtype, h->h_length);
    for (char **a = h->h_aliases; a && *a; a++)
        put(m, " %s", *a);
    put(m, " addrs:");
    for (char **a = h->h_addr_list; a && *a; a++)
        put_addr(m, h->h_addrtype, *a, h->h_length);
}

static void put_sockaddr(struct img *m, const struct sockaddr *sa,
                         socklen_t len)
{
    if (!sa) {
        put(m, " -");
        return;
    }
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s = (const void *)sa;
        put_addr(m, AF_INET, &s->sin_addr, 4);
        put(m, ":%d", ntohs(s->sin_port));
    } else if (sa->sa_family == AF_INET6 &&
               len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s = (const void *)sa;
        put_addr(m, AF_INET6, &s->sin6_addr, 16);
        put(m, ":%d/%u/%u", ntohs(s->sin6_port), s->sin6_flowinfo,
            s->sin6_scope_id);
    } else {
        put_addr(m, sa->sa_family, sa, (int)len);
    }
}

/* errno and h_errno before every call: values no lookup sets, so what a
 * call leaves there shows. */
#define ERRNO0 12345
#define HERRNO0 4242

static void before(void)
{
    errno = ERRNO0;
    h_errno = HERRNO0;
}

static void put_errs(struct img *m)
{
    int e = errno, he = h_errno;

    put(m, " errno=%d h_errno=%d", e, he);
}

/* ---- the lookups --------------------------------------------------------- */

static void q_gethostbyname(struct img *m, const char *name)
{
    before();
    struct hostent *h = gethostbyname(name);
    put_errs(m);
    put_hostent(m, h);
}

static void q_gethostbyname2(struct img *m, const char *name, int af)
{
    before();
    struct hostent *h = gethostbyname2(name, af);
    put_errs(m);
    put_hostent(m, h);
}

static void q_gethostbyaddr(struct img *m, const char *num, int af,
                            socklen_t len)
{
    unsigned char a[16] = { 0 };

    T_EQ(inet_pton(af, num, a), 1);
    before();
    struct hostent *h = gethostbyaddr(a, len, af);
    put_errs(m);
    put_hostent(m, h);
}

/* gethostbyname_r (af < 0) or gethostbyname2_r into a buffer of buflen
 * bytes of the caller's stack (a sliced one, for the green runs). */
static void q_byname_r(struct img *m, const char *name, int af,
                       size_t buflen)
{
    char buf[2048];
    struct hostent he, *res = (struct hostent *)&m;
    int herr = HERRNO0, rc;

    T_ASSERT(buflen <= sizeof(buf));
    before();
    if (af < 0)
        rc = gethostbyname_r(name, &he, buf, buflen, &res, &herr);
    else
        rc = gethostbyname2_r(name, af, &he, buf, buflen, &res, &herr);
    put_errs(m);
    put(m, " rc=%d herr=%d res=%s", rc, herr,
        res == &he ? "ret" : res ? "other" : "null");
    if (res == &he) {
        /* Every pointer of the answer lies inside the caller's buffer. */
        int inside = (char *)he.h_name >= buf &&
                     (char *)he.h_name < buf + buflen;
        for (char **a = he.h_addr_list; *a; a++)
            inside &= *a >= buf && *a < buf + buflen;
        put(m, " inside=%d", inside);
        put_hostent(m, &he);
    }
}

static void q_getaddrinfo(struct img *m, const char *node,
                          const char *service, const struct addrinfo *hints)
{
    struct addrinfo *res = (struct addrinfo *)&m;

    before();
    int rc = getaddrinfo(node, service, hints, &res);
    put_errs(m);
    put(m, " rc=%d", rc);
    if (rc != 0)
        return;
    for (struct addrinfo *p = res; p; p = p->ai_next) {
        put(m, " [flags=%d fam=%d type=%d proto=%d canon=%s", p->ai_flags,
            p->ai_family, p->ai_socktype, p->ai_protocol,
            p->ai_canonname ? p->ai_canonname : "-");
        put_sockaddr(m, p->ai_addr, p->ai_addrlen);
        put(m, "]");
    }
    freeaddrinfo(res);
}

static void q_getnameinfo(struct img *m, const char *num, int af, int port,
                          socklen_t hostlen, socklen_t servlen, int flags)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (af == AF_INET) {
        struct sockaddr_in *s = (void *)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)port);
        T_EQ(inet_pton(AF_INET, num, &s->sin_addr), 1);
        len = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (void *)&ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)port);
        T_EQ(inet_pton(AF_INET6, num, &s->sin6_addr), 1);
        len = sizeof(*s);
    }
    memset(host, '#', sizeof(host));
    memset(serv, '#', sizeof(serv));
    host[sizeof(host) - 1] = serv[sizeof(serv) - 1] = 0;
    before();
    int rc = getnameinfo((struct sockaddr *)&ss, len, hostlen ? host : NULL,
                         hostlen, servlen ? serv : NULL, servlen, flags);
    put_errs(m);
    /* The whole buffers: what a call writes past the answer shows too. */
    put(m, " rc=%d host=%s serv=%s", rc, host, serv);
}

/* Every case; each leaves its image in m[i]. Returns the count. */
static int run_cases(struct img *m)
{
    struct addrinfo h4 = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct addrinfo canon = { .ai_flags = AI_CANONNAME };
    struct addrinfo numeric = { .ai_flags = AI_NUMERICHOST };
    struct addrinfo num6 = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo badflags = { .ai_flags = 0x40000000 };
    struct addrinfo badfam = { .ai_family = AF_APPLETALK };
    struct addrinfo stream = { .ai_socktype = SOCK_STREAM };
    struct addrinfo v4 = { .ai_family = AF_INET };
    int i = 0;

    q_gethostbyname(&m[i++], "localhost");
    q_gethostbyname(&m[i++], "127.0.0.2");
    /* All digits and dots, yet no address: a failure without DNS. */
    q_gethostbyname(&m[i++], "256.256.256.256");
    q_gethostbyname(&m[i++], "::1");
    q_gethostbyname2(&m[i++], "localhost", AF_INET);
    q_gethostbyname2(&m[i++], "::1", AF_INET6);
    q_gethostbyname2(&m[i++], "127.0.0.5", AF_INET6);
    q_gethostbyname2(&m[i++], "localhost", AF_APPLETALK);
    q_byname_r(&m[i++], "localhost", -1, 2048);
    q_byname_r(&m[i++], "127.0.0.6", -1, 2048);
    /* Too small: ERANGE as libc reports it. */
    q_byname_r(&m[i++], "localhost", -1, 8);
    q_byname_r(&m[i++], "localhost", AF_INET, 2048);
    q_byname_r(&m[i++], "::1", AF_INET6, 2048);
    q_byname_r(&m[i++], "localhost", AF_INET, 16);
    q_gethostbyaddr(&m[i++], "127.0.0.1", AF_INET, 4);
    /* A length that is no address of the family: libc's error. */
    q_gethostbyaddr(&m[i++], "127.0.0.1", AF_INET, 3);
    q_getaddrinfo(&m[i++], "localhost", NULL, NULL);
    q_getaddrinfo(&m[i++], "localhost", "80", &h4);
    q_getaddrinfo(&m[i++], "localhost", NULL, &canon);
    q_getaddrinfo(&m[i++], "localhost", NULL, &numeric);
    q_getaddrinfo(&m[i++], "localhost", NULL, &badflags);
    q_getaddrinfo(&m[i++], "localhost", NULL, &badfam);
    q_getaddrinfo(&m[i++], NULL, NULL, &v4);
    q_getaddrinfo(&m[i++], "::1", "443", &num6);
    /* A name from /etc/services, or its error if there is none. */
    q_getaddrinfo(&m[i++], "127.0.0.1", "http", &stream);
    q_getnameinfo(&m[i++], "127.0.0.1", AF_INET, 80, NI_MAXHOST, NI_MAXSERV,
                  0);
    q_getnameinfo(&m[i++], "127.0.0.1", AF_INET, 80, NI_MAXHOST, NI_MAXSERV,
                  NI_NAMEREQD);
    q_getnameinfo(&m[i++], "10.1.2.3", AF_INET, 22, NI_MAXHOST, NI_MAXSERV,
                  NI_NUMERICHOST | NI_NUMERICSERV);
    q_getnameinfo(&m[i++], "::1", AF_INET6, 443, NI_MAXHOST, NI_MAXSERV,
                  NI_NUMERICHOST);
    /* Buffers too small for the answer: EAI_OVERFLOW. */
    q_getnameinfo(&m[i++], "127.0.0.1", AF_INET, 80, 2, 2, 0);
    q_getnameinfo(&m[i++], "127.0.0.1", AF_INET, 80, 0, NI_MAXSERV, 0);
    return i;
}
#define NCASES 31

/* The interposed names the cases call, and how many calls of each. */
static const struct {
    const char *name;
    int calls;
} called[] = {
    { "gethostbyname", 4 }, { "gethostbyname2", 4 },
    { "gethostbyname_r", 3 }, { "gethostbyname2_r", 3 },
    { "gethostbyaddr", 2 }, { "getaddrinfo", 9 }, { "getnameinfo", 6 },
};
#define NCALLED (sizeof(called) / sizeof(called[0]))

static struct img libc_img[NCASES], green_img[NCASES];

static void *plain_cases(void *arg)
{
    *(int *)arg = run_cases(libc_img);
    return NULL;
}

static void *green_cases(void *arg)
{
    *(int *)arg = run_cases(green_img);
    return NULL;
}

/* libc's answers, from a plain OS thread, where the interposers are
 * libc. Run twice: the first lookups of a thread may set errno while
 * libc loads its configuration; the second show its steady state. */
static void libc_answers(void)
{
    pthread_t t;
    int n = 0;

    for (int k = 0; k < 2; k++) {
        memset(libc_img, 0, sizeof(libc_img));
        T_EQ(pthread_create(&t, NULL, plain_cases, &n), 0);
        T_EQ(pthread_join(t, NULL), 0);
        T_EQ(n, NCASES);
    }
}

static void same_answers(const char *how)
{
    for (int i = 0; i < NCASES; i++) {
        if (strcmp(green_img[i].s, libc_img[i].s) != 0) {
            fprintf(stderr, "%s case %d:\n  libc:  %s\n  green: %s\n", how,
                    i, libc_img[i].s, green_img[i].s);
            T_STREQ(green_img[i].s, libc_img[i].s);
        }
    }
}

/*
 * Every case from a green thread, on a dedicated and on a sliced stack
 * (the _r answers are copied into the caller's buffer after it resumes,
 * never written into a parked stack), gives libc's image; and each call
 * took the cooperative path.
 */
static void test_answers_are_libc_answers(void)
{
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    int64_t was[NCALLED];

    libc_answers();
    for (size_t k = 0; k < NCALLED; k++)
        T_OK(was[k] = jg_patch_calls(called[k].name));
    for (int model = 0; model < 2; model++) {
        struct jg_green *g;
        int n = 0;

        memset(green_img, 0, sizeof(green_img));
        T_OK(jg_spawn(&g, green_cases, &n, model ? &sliced : NULL));
        T_OK(jg_join(g, NULL, JG_FOREVER));
        T_EQ(n, NCASES);
        same_answers(model ? "sliced" : "dedicated");
    }
    for (size_t k = 0; k < NCALLED; k++)
        T_EQ(jg_patch_calls(called[k].name) - was[k], 2 * called[k].calls);
    fprintf(stderr, "   localhost: %s\n", libc_img[0].s);
}

/* ---- the same under Debian's default /etc/hosts -------------------------- */

/* Debian 12's /etc/hosts as the installer writes it (netbase). */
static const char debian_hosts[] =
    "127.0.0.1\tlocalhost\n"
    "127.0.1.1\tdebian\n"
    "\n"
    "# The following lines are desirable for IPv6 capable hosts\n"
    "::1     localhost ip6-localhost ip6-loopback\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n";

/* In the child: a private mount namespace with debian_hosts over
 * /etc/hosts. 0, or a reason to skip. */
static const char *bind_debian_hosts(void)
{
    char path[] = "/tmp/jg-hosts-XXXXXX";
    int fd = mkstemp(path);

    if (fd < 0)
        return "mkstemp failed";
    if (write(fd, debian_hosts, sizeof(debian_hosts) - 1) !=
        (ssize_t)sizeof(debian_hosts) - 1)
        return "cannot write the hosts file";
    close(fd);
    if (unshare(CLONE_NEWNS) < 0) {
        unlink(path);
        return "unshare(CLONE_NEWNS) refused (not root?)";
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount(path, "/etc/hosts", NULL, MS_BIND, NULL) < 0) {
        unlink(path);
        return "cannot bind a file over /etc/hosts";
    }
    unlink(path);
    return NULL;
}

static void test_answers_with_debian_hosts(void)
{
    pid_t pid;
    int st;

    if (getenv("JG_TEST_DEBIAN_HOSTS"))
        T_SKIP_CASE("already inside");
    /* The child binds the file and runs every case again in a fresh
     * image of this program (glibc reads /etc/hosts afresh there). */
    fflush(NULL);
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        const char *why = bind_debian_hosts();
        if (why) {
            fprintf(stderr, "   (case skipped: %s)\n", why);
            _exit(77);
        }
        setenv("JG_TEST_DEBIAN_HOSTS", "1", 1);
        execl("/proc/self/exe", "preload_resolve",
              "test_debian_hosts_inside", (char *)NULL);
        _exit(2);
    }
    T_EQ(waitpid(pid, &st, 0), pid);
    T_ASSERT(WIFEXITED(st));
    T_ASSERT(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77);
}

/* Run by the child above: the file is in effect (libc's own answer has
 * the aliases and the duplicate), and the green answers are libc's. */
static void test_debian_hosts_inside(void)
{
    if (!getenv("JG_TEST_DEBIAN_HOSTS"))
        T_SKIP_CASE("run by test_answers_with_debian_hosts");
    libc_answers();
    T_ASSERT(strstr(libc_img[0].s, "aliases: ip6-localhost ip6-loopback"));
    T_ASSERT(strstr(libc_img[0].s, "addrs: 127.0.0.1 127.0.0.1"));
    test_answers_are_libc_answers();
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
    const char *want;           /* libc's image of the lookup */
    long calls;
    long bad;                   /* answers other than libc's */
    long ticks_during;
};

static const struct addrinfo loop_hints = { .ai_family = AF_INET,
                                            .ai_socktype = SOCK_STREAM };

static void *resolve_loop(void *arg)
{
    struct gai_loop *l = arg;
    long t0 = ticks;
    int64_t end = t_now_ns() + JG_MS(30);

    /* Resolve for 30 ms. Were getaddrinfo libc's own blocking call, this
     * loop would never give the hub up and the ticker would stand still. */
    while (t_now_ns() < end || l->calls < 20) {
        static struct img m;
        memset(&m, 0, sizeof(m));
        q_getaddrinfo(&m, "localhost", "80", &loop_hints);
        l->bad += strcmp(m.s, l->want) != 0;
        l->calls++;
    }
    l->ticks_during = ticks - t0;
    return NULL;
}

static void *plain_gai(void *arg)
{
    q_getaddrinfo(arg, "localhost", "80", &loop_hints);
    return NULL;
}

static void test_getaddrinfo_parks_caller_only(void)
{
    static struct img want;
    struct jg_green *t, *r;
    struct gai_loop l = { want.s, 0, 0, 0 };
    int64_t before_calls = jg_patch_calls("getaddrinfo");
    pthread_t pt;

    T_OK(before_calls);
    T_EQ(pthread_create(&pt, NULL, plain_gai, &want), 0);
    T_EQ(pthread_join(pt, NULL), 0);
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
    T_EQ(jg_patch_calls("getaddrinfo") - before_calls, l.calls);
    /* 30 ms of lookups: a live 1 ms timer fires many times. */
    T_ASSERT(l.ticks_during >= 5);
}

/* ---- gethostbyname: a result per green thread ---------------------------- */

struct ghbn {
    const char *name;
    struct img want;            /* libc's image */
    struct img got;             /* ours, taken after the other's lookup */
    struct hostent *hp;
};

static void *ghbn_plain(void *arg)
{
    struct ghbn *q = arg;

    put_hostent(&q->want, gethostbyname(q->name));
    return NULL;
}

/*
 * Look name up, let the other green thread look its own name up, then
 * take the image of our result: libc's one static hostent per OS thread
 * would now hold the other's answer.
 */
static void *ghbn_green(void *arg)
{
    struct ghbn *q = arg;
    struct hostent *hp = gethostbyname(q->name);

    q->hp = hp;
    if (jg_sleep(JG_MS(20)) < 0)
        return JG_ERR(-ECANCELED);
    put_hostent(&q->got, hp);
    return NULL;
}

static void test_gethostbyname_per_green(void)
{
    static struct ghbn a = { .name = "localhost" };
    static struct ghbn b = { .name = "127.0.0.2" };
    struct jg_green *ga, *gb;
    int64_t was = jg_patch_calls("gethostbyname");
    pthread_t t;

    T_OK(was);
    T_EQ(pthread_create(&t, NULL, ghbn_plain, &a), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_EQ(pthread_create(&t, NULL, ghbn_plain, &b), 0);
    T_EQ(pthread_join(t, NULL), 0);
    T_ASSERT(strcmp(a.want.s, b.want.s) != 0);
    T_OK(jg_spawn(&ga, ghbn_green, &a, NULL));
    T_OK(jg_spawn(&gb, ghbn_green, &b, NULL));
    T_OK(jg_join(ga, NULL, JG_FOREVER));
    T_OK(jg_join(gb, NULL, JG_FOREVER));
    T_STREQ(a.got.s, a.want.s);
    T_STREQ(b.got.s, b.want.s);
    T_ASSERT(a.hp && b.hp && a.hp != b.hp);
    T_EQ(jg_patch_calls("gethostbyname") - was, 2);
}

/* The same green thread gets the same storage back, refilled. */
static void *ghbn_twice(void *arg)
{
    struct hostent *h1 = gethostbyname("127.0.0.3");
    struct hostent *h2;
    uint32_t a, want;

    (void)arg;
    if (!h1)
        return JG_ERR(-ENOENT);
    h2 = gethostbyname("127.0.0.4");
    if (h2 != h1)
        return JG_ERR(-EINVAL);
    memcpy(&a, h2->h_addr, sizeof(a));
    T_EQ(inet_pton(AF_INET, "127.0.0.4", &want), 1);
    return a == want ? NULL : JG_ERR(-EIO);
}

static void test_gethostbyname_reuses_storage(void)
{
    struct jg_green *g;
    void *res = NULL;

    T_OK(jg_spawn(&g, ghbn_twice, NULL, NULL));
    T_OK(jg_join(g, &res, JG_FOREVER));
    T_PEQ(res, NULL);
}

T_MAIN(T_CASE(test_answers_are_libc_answers),
       T_CASE(test_answers_with_debian_hosts),
       T_CASE(test_debian_hosts_inside),
       T_CASE(test_getaddrinfo_parks_caller_only),
       T_CASE(test_gethostbyname_per_green),
       T_CASE(test_gethostbyname_reuses_storage))
