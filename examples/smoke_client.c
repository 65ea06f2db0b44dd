/* SPDX-License-Identifier: MIT */
/*
 * smoke_client.c - the client side of the server examples' smoke tests
 * (examples/smoke-server.sh): plain blocking sockets with receive
 * timeouts, independent of the library under test. Prints one "ok" line
 * per check and exits 0, or prints what went wrong and exits 1.
 *
 *   smoke_client echo PORT | http PORT | chat PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int port;

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); \
                       exit(1); } while (0)

static int dial(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port) };
    struct timeval tv = { 5, 0 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        FAIL("connect to port %d: %s", port, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            FAIL("send: %s", strerror(errno));
        p = (const char *)p + k;
        n -= (size_t)k;
    }
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Read until buf holds `want` occurrences of needle, or EOF (*eof). */
static size_t read_until(int fd, char *buf, size_t cap, const char *needle,
                         int want, int *eof)
{
    size_t have = 0;

    *eof = 0;
    for (;;) {
        int seen = 0;
        buf[have] = '\0';
        for (char *p = buf; (p = strstr(p, needle)); p++)
            seen++;
        if (seen >= want)
            return have;
        ssize_t k = recv(fd, buf + have, cap - 1 - have, 0);
        if (k == 0) {
            *eof = 1;
            return have;
        }
        if (k < 0)
            FAIL("recv: %s (have %zu bytes: %.200s)", strerror(errno), have,
                 buf);
        have += (size_t)k;
    }
}

/* ---- echo ---------------------------------------------------------------- */

static void echo(void)
{
    static char big[300000], back[300000];
    int fd = dial(), eof;

    send_all(fd, "hello\n", 6);
    read_until(fd, back, sizeof(back), "hello\n", 1, &eof);
    printf("ok echo: short message\n");
    /* 300 KB, more than the socket buffers hold: sent in 30 KB chunks,
     * each read back before the next, so neither side stalls. */
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof(big) - 2] = '\n';
    size_t got = 0;
    for (size_t off = 0; off < sizeof(big) - 1; off += 30000) {
        size_t n = sizeof(big) - 1 - off < 30000 ? sizeof(big) - 1 - off
                                                 : 30000;
        send_all(fd, big + off, n);
        while (got < off + n) {
            ssize_t k = recv(fd, back + got, sizeof(back) - got, 0);
            if (k <= 0)
                FAIL("echo recv after %zu bytes", got);
            got += (size_t)k;
        }
    }
    if (memcmp(big, back, sizeof(big) - 1))
        FAIL("echoed bytes differ");
    printf("ok echo: %zu bytes echoed intact\n", got);
    close(fd);
}

/* ---- http ---------------------------------------------------------------- */

#define HELLO "Hello, World!"
#define GET "GET / HTTP/1.1\r\nHost: t\r\n\r\n"

static void http(void)
{
    char buf[65536];
    int fd = dial(), eof;

    /* Keep-alive: three requests, one after the other, one connection. */
    for (int i = 0; i < 3; i++) {
        send_all(fd, GET, strlen(GET));
        read_until(fd, buf, sizeof(buf), HELLO, 1, &eof);
        if (eof || !strstr(buf, "HTTP/1.1 200 OK\r\n") ||
            !strstr(buf, "Content-Length: 13\r\n"))
            FAIL("keep-alive request %d: %.200s", i, buf);
    }
    printf("ok http: keep-alive\n");
    /* Pipelining: three requests in one write, three answers. */
    send_all(fd, GET GET GET, 3 * strlen(GET));
    read_until(fd, buf, sizeof(buf), HELLO, 3, &eof);
    if (eof)
        FAIL("pipelined: connection closed");
    printf("ok http: pipelining\n");
    /* A request split across reads: the head in three pieces. */
    send_all(fd, "GET / HT", 8);
    pause_ms(50);
    send_all(fd, "TP/1.1\r\nHost: t\r\n", 17);
    pause_ms(50);
    send_all(fd, "\r\n", 2);
    read_until(fd, buf, sizeof(buf), HELLO, 1, &eof);
    if (eof)
        FAIL("split request: connection closed");
    printf("ok http: request split across reads\n");
    /* A POST body is skipped, then the next request is answered. */
    static const char post[] = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
                               "abcde" GET;
    send_all(fd, post, sizeof(post) - 1);
    read_until(fd, buf, sizeof(buf), HELLO, 2, &eof);
    printf("ok http: request body skipped\n");
    /* Connection: close: one answer, then the server closes. */
    static const char last[] = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    send_all(fd, last, sizeof(last) - 1);
    read_until(fd, buf, sizeof(buf), "\x01", 1, &eof);
    if (!eof || !strstr(buf, HELLO) || !strstr(buf, "Connection: close"))
        FAIL("Connection: close: %.200s", buf);
    printf("ok http: Connection: close\n");
    close(fd);
    /* HTTP/1.0 closes by default; garbage gets a 400 and a close. */
    fd = dial();
    send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    read_until(fd, buf, sizeof(buf), "\x01", 1, &eof);
    if (!eof || !strstr(buf, HELLO))
        FAIL("HTTP/1.0: %.200s", buf);
    close(fd);
    fd = dial();
    send_all(fd, "NONSENSE\r\n\r\n", 12);
    read_until(fd, buf, sizeof(buf), "\x01", 1, &eof);
    if (!eof || !strstr(buf, " 400 "))
        FAIL("bad request: %.200s", buf);
    close(fd);
    printf("ok http: HTTP/1.0 and bad requests\n");
}

/* ---- chat ---------------------------------------------------------------- */

static void chat(void)
{
    static const char *names[3] = { "alice", "bob", "carol" };
    char buf[3][4096], line[64];
    int fd[3], eof;

    for (int i = 0; i < 3; i++) {
        fd[i] = dial();
        snprintf(line, sizeof(line), "%s\n", names[i]);
        send_all(fd[i], line, strlen(line));
    }
    /* alice sees carol join once all three are in the room. */
    read_until(fd[0], buf[0], sizeof(buf[0]), "* carol joined", 1, &eof);
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "hello from %s\n", names[i]);
        send_all(fd[i], line, strlen(line));
    }
    for (int i = 0; i < 3; i++) {
        /* Two lines from the others, none of our own. */
        read_until(fd[i], buf[i], sizeof(buf[i]), ": hello from ", 2, &eof);
        for (int j = 0; j < 3; j++) {
            snprintf(line, sizeof(line), "%s: hello from %s\n", names[j],
                     names[j]);
            if ((strstr(buf[i], line) != NULL) != (i != j))
                FAIL("%s got: %.300s", names[i], buf[i]);
        }
        printf("ok chat: %s saw the other two\n", names[i]);
    }
    close(fd[2]);
    read_until(fd[0], buf[0], sizeof(buf[0]), "* carol left", 1, &eof);
    printf("ok chat: carol left\n");
    close(fd[0]);
    close(fd[1]);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (port = atoi(argv[2])) <= 0) {
        fprintf(stderr, "usage: smoke_client echo|http|chat PORT\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(argv[1], "echo"))
        echo();
    else if (!strcmp(argv[1], "http"))
        http();
    else if (!strcmp(argv[1], "chat"))
        chat();
    else
        return 2;
    return 0;
}
