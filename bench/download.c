/* SPDX-License-Identifier: MIT */
/*
 * download.c - the seeds' I/O case with unmodified blocking code: 160
 * downloads of 10,000-byte bodies from a local server that answers each
 * request after 50 ms, each download in a green thread making plain
 * socket/connect/send/recv calls, made cooperative by libjuggle_preload.so
 * (the program re-executes itself with it in LD_PRELOAD).
 *   BENCH io.download.preload <s> s        (physical limit 0.050 s)
 * The server is a separate epoll process pinned to CPU 0; the clients run
 * where bench/run.sh pins them (CPU 1).
 *   bench_download               server + clients (what bench/run.sh runs)
 *   bench_download --serve       only the server: prints its port, serves
 *                                until stdin reaches end of file
 *   bench_download --port P      only the clients, against a server on P
 */
#include <juggle.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

#define DOWNLOADS 160
#define BODY 10000
#define DELAY_NS JG_MS(50)
#define MAXFD 4096

/* ---- the server: one epoll thread, each answer 50 ms after its request --- */

struct sconn {
    int fd;
    size_t got;                 /* request bytes read */
    size_t sent;                /* response bytes written */
    int64_t due;                /* 0: still reading the request */
    struct sconn *next;         /* the due queue, in arrival order */
    char req[256];
};

static char response[BODY + 128];
static size_t response_len;

static int64_t now_ns(void)
{
    return bench_now();
}

static void arm(int tfd, int64_t when)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    /* Zero disarms; an absolute time already past fires at once. */
    if (when > 0) {
        its.it_value.tv_sec = when / 1000000000LL;
        its.it_value.tv_nsec = when % 1000000000LL;
    }
    (void)timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void sconn_close(int epfd, struct sconn **tab, struct sconn *c)
{
    (void)epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    tab[c->fd] = NULL;
    free(c);
}

/* Write what the socket takes; true when c is finished (closed). */
static int sconn_send(int epfd, struct sconn **tab, struct sconn *c)
{
    while (c->sent < response_len) {
        ssize_t n = write(c->fd, response + c->sent, response_len - c->sent);
        if (n < 0 && errno == EAGAIN) {
            struct epoll_event ev = { .events = EPOLLOUT, .data.fd = c->fd };
            (void)epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        if (n <= 0)
            break;
        c->sent += (size_t)n;
    }
    sconn_close(epfd, tab, c);
    return 1;
}

/*
 * Serve on listening socket lfd until stopfd is readable. Requests are
 * answered in arrival order, each DELAY_NS after its end, by one timerfd
 * armed at the head of the queue (ns precision, unlike epoll's ms).
 */
static void serve(int lfd, int stopfd)
{
    static struct sconn *tab[MAXFD];
    struct sconn *head = NULL, *tail = NULL;
    struct epoll_event evs[128], ev = { .events = EPOLLIN };
    int epfd = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);

    if (epfd < 0 || tfd < 0)
        bench_die("server epoll/timerfd", -errno);
    ev.data.fd = lfd;
    (void)epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = tfd;
    (void)epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.fd = stopfd;
    (void)epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev);
    for (;;) {
        int n = epoll_wait(epfd, evs, 128, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == stopfd)
                return;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct sconn *c = calloc(1, sizeof(*c));
                    if (!c || cfd >= MAXFD) {
                        free(c);
                        close(cfd);
                        continue;
                    }
                    c->fd = cfd;
                    tab[cfd] = c;
                    ev.data.fd = cfd;
                    (void)epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
                }
            } else if (fd == tfd) {
                uint64_t ticks;
                (void)!read(tfd, &ticks, sizeof(ticks));
                int64_t now = now_ns();
                while (head && head->due <= now) {
                    struct sconn *c = head;
                    head = c->next;
                    if (!head)
                        tail = NULL;
                    sconn_send(epfd, tab, c);
                }
                arm(tfd, head ? head->due : 0);
            } else if (tab[fd] && tab[fd]->due) {
                sconn_send(epfd, tab, tab[fd]);         /* EPOLLOUT */
            } else if (tab[fd]) {
                struct sconn *c = tab[fd];
                ssize_t k = read(fd, c->req + c->got,
                                 sizeof(c->req) - 1 - c->got);
                if (k <= 0) {
                    if (k < 0 && errno == EAGAIN)
                        continue;
                    sconn_close(epfd, tab, c);
                    continue;
                }
                c->got += (size_t)k;
                c->req[c->got] = '\0';
                if (!strstr(c->req, "\r\n\r\n"))
                    continue;
                /* Complete: stop reading, queue the answer. */
                ev.data.fd = fd;
                ev.events = 0;
                (void)epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
                ev.events = EPOLLIN;
                c->due = now_ns() + DELAY_NS;
                if (tail)
                    tail->next = c;
                else
                    head = c;
                tail = c;
                if (head == c)
                    arm(tfd, c->due);
            }
        }
    }
}

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* Best effort: a machine with one CPU runs both on it. */
    (void)sched_setaffinity(0, sizeof(set), &set);
}

static void make_response(void)
{
    int h = snprintf(response, sizeof(response),
                     "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", BODY);
    for (int i = 0; i < BODY; i++)
        response[h + i] = (char)('a' + i % 26);
    response_len = (size_t)h + BODY;
}

/* A listening socket on 127.0.0.1, port 0; its port in *port. */
static int listen_any(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        bench_die("server listen", -errno);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Fork the server process (pinned to CPU 0); returns its pid and port. */
static pid_t server_spawn(int *port)
{
    int lfd = listen_any(port), stop[2];
    pid_t pid;

    if (pipe(stop) < 0)
        bench_die("pipe", -errno);
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        bench_die("fork", -errno);
    if (pid == 0) {
        /* Ends with the parent: the pipe's write end closes with it. */
        close(stop[1]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin(0);
        serve(lfd, stop[0]);
        _exit(0);
    }
    close(stop[0]);
    close(lfd);
    /* The write end stays open until exit: closing it stops the server. */
    return pid;
}

/* ---- the clients: what a user writes without knowing of green threads --- */

static struct sockaddr_in server_addr;
static long ok_count;

static void *download(void *arg)
{
    static const char req[] = "GET /file HTTP/1.0\r\nHost: x\r\n\r\n";
    char buf[16384];
    size_t total = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)arg;
    if (fd < 0)
        return JG_ERR(-errno);
    if (connect(fd, (struct sockaddr *)&server_addr,
                sizeof(server_addr)) < 0 ||
        send(fd, req, sizeof(req) - 1, 0) != (ssize_t)(sizeof(req) - 1)) {
        int e = errno;
        close(fd);
        return JG_ERR(-e);
    }
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += (size_t)n;
    close(fd);
    if (total == response_len)
        ok_count++;
    return NULL;
}

/* One repetition: seconds for all DOWNLOADS, every body checked. */
static double once(void *arg)
{
    struct jg_green *g[DOWNLOADS];
    int rc;

    (void)arg;
    ok_count = 0;
    int64_t t0 = bench_now();
    for (int i = 0; i < DOWNLOADS; i++)
        if ((rc = jg_spawn(&g[i], download, NULL, NULL)) < 0)
            bench_die("jg_spawn", rc);
    for (int i = 0; i < DOWNLOADS; i++)
        if ((rc = jg_join(g[i], NULL, JG_FOREVER)) < 0)
            bench_die("download", rc);
    double s = (double)(bench_now() - t0) / 1e9;
    if (ok_count != DOWNLOADS)
        bench_die("complete downloads", ok_count);
    /* Blocking calls that were not made cooperative run one after the
     * other: 160 x 50 ms. No figure from a run the patch missed. */
    if (s > 2.0)
        bench_die("preload: downloads did not overlap", (long)(s * 1000));
    if (getenv("BENCH_VERBOSE") && *getenv("BENCH_VERBOSE"))
        fprintf(stderr, "download: %.4f s\n", s);
    return s;
}

/* Run again with the preload library in LD_PRELOAD (once). */
static void reexec_preloaded(char **argv)
{
#ifdef JG_PRELOAD_PATH
    const char *old = getenv("LD_PRELOAD");
    char *v;

    if (getenv("JG_DOWNLOAD_PRELOADED"))
        return;
    if (asprintf(&v, "%s%s%s", JG_PRELOAD_PATH, old && *old ? ":" : "",
                 old ? old : "") < 0)
        bench_die("asprintf", -ENOMEM);
    setenv("LD_PRELOAD", v, 1);
    setenv("JG_DOWNLOAD_PRELOADED", "1", 1);
    execv("/proc/self/exe", argv);
    bench_die("execv(/proc/self/exe)", -errno);
#else
    (void)argv;
    bench_die("built without the preload library (juggle_preload)", 0);
#endif
}

int main(int argc, char **argv)
{
    int port = 0;

    make_response();
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && !strcmp(argv[1], "--serve")) {
        /* Only the server, in this process; stdin's end stops it. */
        int lfd = listen_any(&port);
        printf("%d\n", port);
        fflush(stdout);
        serve(lfd, 0);
        return 0;
    }
    reexec_preloaded(argv);
    pid_t server = 0;
    if (argc > 2 && !strcmp(argv[1], "--port"))
        port = atoi(argv[2]);
    else
        server = server_spawn(&port);
    pin(1);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)port);
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Milliseconds matter here: four decimals, not bench_print's two. */
    printf("BENCH io.download.preload %.4f s\n", bench_run(once, NULL));
    fflush(stdout);
    if (server > 0) {
        kill(server, SIGTERM);
        (void)waitpid(server, NULL, 0);
    }
    return 0;
}
