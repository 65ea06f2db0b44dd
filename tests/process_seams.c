/* SPDX-License-Identifier: MIT */
/*
 * process_seams.c - where the process layer meets the rest of the program:
 *  - children hold no fd of the program's but their own: a pipe opened
 *    without O_CLOEXEC before the fork server started (jg_main_init after
 *    it, or the lazy start) or before a re-exec start (JG_START_SPAWN=1)
 *    reaches neither pool workers nor jg_process children, so its reader
 *    sees EOF once the program closes its write end;
 *  - the lazy start docs/processes.md promises: without jg_main_init, the
 *    first pool or jg_process of a single-threaded program starts the fork
 *    server itself (a command name with spaces and ')' included);
 *  - no lock of the fork server is held across a call that can park:
 *    starting a child flushes stdio, and a stream whose write parks (a
 *    fopencookie stream over cooperative I/O) parks its green thread while
 *    another green thread of the hub starts a child of its own;
 *  - the process pool trusts no length a worker wrote: a task that forges
 *    its worker's reply (a spilled result shorter than the reply says, an
 *    fd that is no memfd, a spilled error), or shrinks the shared region,
 *    fails only its own future; the parent never takes SIGBUS, the same
 *    worker goes on serving. An initializer's large output leaves the
 *    results of later tasks intact.
 * Cases that need a program in its first moments run in a fresh copy of
 * this test (run_self), which opens its pipes before anything else.
 */
#include <juggle.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

extern char **environ;

/* ---- tasks --------------------------------------------------------------- */

static int t_getpid(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    int32_t pid = (int32_t)getpid();
    return jg_task_out_write(out, &pid, sizeof(pid));
}
JG_TASK("getpid", t_getpid)

static int t_square(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t x;
    if (n != sizeof(x))
        return jg_task_fail(out, -EINVAL, "want 8 bytes, got %zu", n);
    memcpy(&x, in, sizeof(x));
    x *= x;
    return jg_task_out_write(out, &x, sizeof(x));
}
JG_TASK("square", t_square)

/* Waits for its kill; dies with its parent too, should a failed check
 * end the parent first (a jg_process child outlives it otherwise, holding
 * the test's output pipe). */
static int t_hang(const void *in, size_t n, struct jg_task_out *out)
{
    (void)in;
    (void)n;
    (void)out;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(1);
    for (;;)
        pause();
    return 0;
}
JG_TASK("hang", t_hang)

/* How many of this process's fds are the pipe with inode *in. */
static int pipe_refs(ino_t ino)
{
    char want[64], path[64], link[64];
    int count = 0;

    snprintf(want, sizeof(want), "pipe:[%llu]", (unsigned long long)ino);
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(path, link, sizeof(link) - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        count += strcmp(link, want) == 0;
    }
    return count;
}

static int t_pipe_refs(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t ino;
    if (n != sizeof(ino))
        return jg_task_fail(out, -EINVAL, "want an inode");
    memcpy(&ino, in, sizeof(ino));
    int32_t c = pipe_refs((ino_t)ino);
    return jg_task_out_write(out, &c, sizeof(c));
}
JG_TASK("pipe_refs", t_pipe_refs)

/* ---- a worker forging its replies ---------------------------------------- */

/*
 * The worker's shared region as src/exec/pool_process/pool_process.h lays
 * it out (a test of the parent's distrust has to speak the wire format): a
 * header page, the request ring, the reply ring; records are 8-aligned.
 */
#define F_RING_CAP (256u << 10)
#define F_PAGE_HDR 4096u
#define F_REC_REPLY 3
#define F_REC_WRAP 0x7777
#define F_REC_SPILL 1

struct f_rec {
    uint32_t size;
    uint16_t kind;
    uint16_t flags;
    uint64_t id;
    uint32_t namelen;
    int32_t code;
    uint64_t len;
    int64_t ns;
};

struct f_ring {
    _Atomic uint64_t head;
    char pad1[56];
    _Atomic uint64_t tail;
    char pad2[56];
};

struct f_wpage {
    struct f_ring req, rep;
    _Atomic uint32_t w_sleep, m_sleep, stop;
    uint32_t max_tasks;
    _Atomic uint64_t cur_id;
    _Atomic int64_t cur_start;
};

enum {
    FORGE_SHORT_MEMFD = 1,      /* spilled: 64 MiB said, 4 KiB sent */
    FORGE_NOT_MEMFD = 2,        /* spilled: a pipe sent instead */
    FORGE_SPILLED_ERROR = 3,    /* an error "spilled", no fd */
    FORGE_SHRINK_REGION = 4,    /* ftruncate the shared region */
};

/* The worker's shared region: its one memfd:jg-worker mapping. */
static struct f_wpage *find_region(char *range, size_t size)
{
    char line[512];
    void *at = NULL;
    int found = 0;
    FILE *fp = fopen("/proc/self/maps", "r");
    if (!fp)
        return NULL;
    while (fgets(line, sizeof(line), fp)) {
        if (!strstr(line, "/memfd:jg-worker"))
            continue;
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        at = (void *)lo;
        snprintf(range, size, "%lx-%lx", lo, hi);
        found++;
    }
    fclose(fp);
    return found == 1 ? at : NULL;
}

/* The fd whose link reads `what`, or the unix SEQPACKET socket if NULL. */
static int find_fd(const char *what)
{
    int found = -1;

    for (int fd = 3; fd < 1024; fd++) {
        char path[64], link[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(path, link, sizeof(link) - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        if (what) {
            if (strcmp(link, what) == 0)
                found = found < 0 ? fd : -2;
            continue;
        }
        int type;
        socklen_t len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
            type == SOCK_SEQPACKET)
            found = found < 0 ? fd : -2;
    }
    return found;
}

static int send_one_fd(int sock, int fd)
{
    char byte = 0;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = c.buf,
                         .msg_controllen = sizeof(c.buf) };
    memset(&c, 0, sizeof(c));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/*
 * Publish a forged reply for the running task where the worker's own
 * reply will go (so the ring stays consistent: the worker later writes
 * its real one over it and publishes the same head, which the parent has
 * passed), wake the parent and wait until it has taken the forgery.
 */
static int forge_reply(struct f_wpage *pg, uint16_t flags, int32_t code,
                       uint64_t len)
{
    char *buf = (char *)pg + F_PAGE_HDR + F_RING_CAP;
    uint64_t head = atomic_load(&pg->rep.head);
    uint64_t off = head & (F_RING_CAP - 1);
    const uint64_t size = sizeof(struct f_rec);

    if (F_RING_CAP - off < size) {
        struct f_rec *w = (struct f_rec *)(void *)(buf + off);
        w->size = (uint32_t)(F_RING_CAP - off);
        w->kind = F_REC_WRAP;
        head += F_RING_CAP - off;
        off = 0;
    }
    struct f_rec *r = (struct f_rec *)(void *)(buf + off);
    r->kind = F_REC_REPLY;
    r->flags = flags;
    r->id = atomic_load(&pg->cur_id);
    r->namelen = 0;
    r->code = code;
    r->len = len;
    r->ns = 0;
    r->size = (uint32_t)size;
    atomic_store(&pg->rep.head, head + size);
    int efd = find_fd("anon_inode:[eventfd]");
    if (efd < 0)
        return -ENOENT;
    atomic_store(&pg->m_sleep, 0);
    uint64_t one = 1;
    if (write(efd, &one, sizeof(one)) != sizeof(one))
        return -errno;
    for (int i = 0; i < 30000; i++) {
        if (atomic_load(&pg->rep.tail) >= head + size)
            return 0;
        usleep(1000);
    }
    return -ETIMEDOUT;
}

static int t_forge(const void *in, size_t n, struct jg_task_out *out)
{
    int32_t mode, rc = 0;
    char range[64];
    if (n != sizeof(mode))
        return jg_task_fail(out, -EINVAL, "want a mode");
    memcpy(&mode, in, sizeof(mode));
    struct f_wpage *pg = find_region(range, sizeof(range));
    int sock = find_fd(NULL);
    if (!pg || sock < 0)
        return jg_task_fail(out, -ENOENT, "no region or socket found");

    if (mode == FORGE_SHRINK_REGION) {
        /* The region's fd is closed, but the mapping names its file. */
        char path[128];
        snprintf(path, sizeof(path), "/proc/self/map_files/%s", range);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            rc = 1;             /* cannot reach it here: skipped */
        else if (ftruncate(fd, 0) < 0)
            rc = -errno;        /* sealed: -EPERM */
        if (fd >= 0)
            close(fd);
        return jg_task_out_write(out, &rc, sizeof(rc));
    }
    if (mode == FORGE_SHORT_MEMFD || mode == FORGE_NOT_MEMFD) {
        int fd, p[2] = { -1, -1 };
        if (mode == FORGE_SHORT_MEMFD) {
            fd = memfd_create("forged", MFD_CLOEXEC);
            if (fd < 0 || ftruncate(fd, 4096) < 0)
                return jg_task_fail(out, -errno, "memfd");
        } else {
            if (pipe(p) < 0)
                return jg_task_fail(out, -errno, "pipe");
            fd = p[0];
        }
        if ((rc = send_one_fd(sock, fd)) == 0)
            rc = forge_reply(pg, F_REC_SPILL, 0, (uint64_t)64 << 20);
        close(fd);
        if (p[1] >= 0)
            close(p[1]);
    } else if (mode == FORGE_SPILLED_ERROR) {
        rc = forge_reply(pg, F_REC_SPILL, -EIO, 1000);
    }
    /* The real reply, empty and so as big as the forgery, goes where the
     * forged one was. */
    return rc < 0 ? jg_task_fail(out, rc, "forging failed") : 0;
}
JG_TASK("forge", t_forge)

/* An initializer whose output is large: spilled, and worth nothing. */
static int t_big_init(const void *in, size_t n, struct jg_task_out *out)
{
    static char junk[100000];
    (void)in;
    (void)n;
    memset(junk, 'j', sizeof(junk));
    return jg_task_out_write(out, junk, sizeof(junk));
}
JG_TASK("big_init", t_big_init)

/* A result of the size asked, each byte its index mod 251. */
static int t_pattern(const void *in, size_t n, struct jg_task_out *out)
{
    uint64_t len;
    if (n != sizeof(len))
        return jg_task_fail(out, -EINVAL, "want a length");
    memcpy(&len, in, sizeof(len));
    char *p = malloc(len ? len : 1);
    if (!p)
        return jg_task_fail(out, -ENOMEM, "no memory");
    for (uint64_t i = 0; i < len; i++)
        p[i] = (char)(i % 251);
    int rc = jg_task_out_write(out, p, len);
    free(p);
    return rc;
}
JG_TASK("pattern", t_pattern)

/* ---- helpers ------------------------------------------------------------- */

/* The number of threads of this process, from /proc/self/status. */
static int threads_now(void)
{
    char line[256];
    int n = -1;
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return -1;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(fp);
    return n;
}

/* Run this test binary again with argv[1] = sub and one extra variable;
 * its exit status (77: the sub-case skipped itself). */
static int run_self(const char *sub, const char *env1)
{
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 2, sizeof(*envp));
    T_ASSERT(envp);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "JG_START_SPAWN=", 15) != 0)
            envp[k++] = environ[i];
    if (env1)
        envp[k++] = (char *)env1;
    char *argv[] = { (char *)"process_seams", (char *)sub, NULL };
    pid_t pid;
    fflush(NULL);
    T_EQ(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp), 0);
    free(envp);
    int st;
    T_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st))
        T_FAIL_("%s (%s) ended by signal %d", sub, env1 ? env1 : "",
                WTERMSIG(st));
    return WEXITSTATUS(st);
}

static struct jg_future *submit(struct jg_executor *ex, const char *task,
                                const void *in, size_t n)
{
    struct jg_future *f;
    T_OK(jg_executor_submit(ex, &f, task, in, n));
    return f;
}

static int32_t result_i32(struct jg_future *f)
{
    const void *p;
    size_t len;
    int32_t v;
    T_OK(jg_future_bytes(f, &p, &len, JG_SEC(60)));
    T_EQ(len, sizeof(v));
    memcpy(&v, p, sizeof(v));
    jg_future_unref(f);
    return v;
}

/* A pipe without O_CLOEXEC, as programs (and libraries) open them. */
struct tpipe {
    int rd, wr;
    uint64_t ino;
};

static void tpipe_open(struct tpipe *p)
{
    int fds[2];
    struct stat st;
    T_EQ(pipe(fds), 0);
    T_EQ(fstat(fds[0], &st), 0);
    p->rd = fds[0];
    p->wr = fds[1];
    p->ino = (uint64_t)st.st_ino;
}

/*
 * Close our write end and read: with no other writer anywhere, the read
 * sees EOF at once; a copy of the write end in a child (or in the fork
 * server) makes it would-block instead. No timing involved.
 */
static void expect_eof(struct tpipe *p, const char *who)
{
    char c;
    T_EQ(close(p->wr), 0);
    T_EQ(fcntl(p->rd, F_SETFL, O_NONBLOCK), 0);
    ssize_t r = read(p->rd, &c, 1);
    if (r != 0)
        T_FAIL_("%s: no EOF on the pipe after its writer closed it "
                "(read: %zd, %s): a child holds its write end", who, r,
                r < 0 ? strerror(errno) : "data");
    close(p->rd);
}

/* ---- in a fresh copy: children inherit none of the program's fds -------- */

/*
 * The pipes are opened first; then, by the variable run_self set: the fork
 * server started by jg_main_init, the lazy start (no jg_main_init), or the
 * re-exec start (JG_START_SPAWN=1).
 */
static int sub_no_inherited_fds(int argc, char **argv)
{
    struct tpipe a, b;
    tpipe_open(&a);
    tpipe_open(&b);
    bool lazy = getenv("JG_TEST_LAZY") != NULL;
    if (!lazy)
        T_OK(jg_main_init(argc, argv));
    else if (threads_now() != 1)
        T_SKIP("this build runs threads of its own: no lazy start");

    /* A pool worker: alive once it has answered. */
    struct jg_process_pool_opts o = { .workers = 1 };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    T_ASSERT(result_i32(submit(ex, "getpid", NULL, 0)) != getpid());
    int32_t refs = result_i32(submit(ex, "pipe_refs", &a.ino,
                                     sizeof(a.ino)));
    expect_eof(&a, "process pool worker");
    T_EQ(refs, 0);
    jg_executor_destroy(ex);

    /* A jg_process child: it counts, then another one lives while we
     * close our end. */
    struct jg_process *p;
    const void *out;
    size_t n;
    T_OK(jg_process_start(&p, "pipe_refs", &b.ino, sizeof(b.ino)));
    T_OK(jg_process_join(p, JG_SEC(30)));
    T_OK(jg_process_output(p, &out, &n));
    T_EQ(n, sizeof(refs));
    memcpy(&refs, out, sizeof(refs));
    jg_process_destroy(p);
    T_OK(jg_process_start(&p, "hang", NULL, 0));
    expect_eof(&b, "jg_process child");
    T_EQ(refs, 0);
    jg_process_destroy(p);
    return 0;
}

static void test_children_inherit_no_fds_fork_server(void)
{
    T_EQ(run_self("sub_no_inherited_fds", NULL), 0);
}

static void test_children_inherit_no_fds_lazy_start(void)
{
    int rc = run_self("sub_no_inherited_fds", "JG_TEST_LAZY=1");
    if (rc == 77)
        T_SKIP_CASE("threads run before main()");
    T_EQ(rc, 0);
}

static void test_children_inherit_no_fds_spawn(void)
{
    T_EQ(run_self("sub_no_inherited_fds", "JG_START_SPAWN=1"), 0);
}

/* ---- in a fresh copy: the lazy fork-server start ------------------------- */

static int sub_lazy_start(void)
{
    /* /proc/self/stat's command name may hold spaces and ')': the field
     * count must start after the last one. */
    prctl(PR_SET_NAME, "a) b (c) d");
    if (threads_now() != 1)
        T_SKIP("this build runs threads of its own: no lazy start");

    struct jg_process_pool_opts o = { .workers = 2 };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    /* Workers are children of ours, cloned from the server. */
    for (uint64_t i = 0; i < 16; i++) {
        struct jg_future *f = submit(ex, "square", &i, sizeof(i));
        const void *p;
        size_t len;
        uint64_t v;
        T_OK(jg_future_bytes(f, &p, &len, JG_SEC(60)));
        T_EQ(len, sizeof(v));
        memcpy(&v, p, sizeof(v));
        T_EQ(v, i * i);
        jg_future_unref(f);
    }
    /* The manager thread runs now, and the server started before it
     * serves jg_process too. */
    T_ASSERT(threads_now() >= 2);
    struct jg_process *p;
    int code;
    T_OK(jg_process_start(&p, "getpid", NULL, 0));
    T_OK(jg_process_join(p, JG_SEC(30)));
    T_OK(jg_process_exitcode(p, &code));
    T_EQ(code, 0);
    jg_process_destroy(p);
    jg_executor_destroy(ex);
    return 0;
}

static void test_lazy_fork_server_start(void)
{
    int rc = run_self("sub_lazy_start", NULL);
    if (rc == 77)
        T_SKIP_CASE("threads run before main()");
    T_EQ(rc, 0);
}

/* ---- in a fresh copy: a start whose stdio flush parks -------------------- */

static int t_echo(const void *in, size_t n, struct jg_task_out *out)
{
    int rc = jg_task_out_write(out, "echo:", 5);
    return rc < 0 ? rc : jg_task_out_write(out, in, n);
}
JG_TASK("echo", t_echo)

static _Atomic int parked_writes;

/* A stream's write that parks its green thread, the first time only. */
static ssize_t parking_write(void *cookie, const char *buf, size_t n)
{
    (void)cookie;
    (void)buf;
    if (atomic_fetch_add(&parked_writes, 1) == 0 && jg_current())
        jg_sleep(JG_MS(50));
    return (ssize_t)n;
}

static void *start_echo(void *arg)
{
    const char *in = arg;
    struct jg_process *p;
    const void *out;
    size_t n;

    int rc = jg_process_start(&p, "echo", in, strlen(in));
    if (rc < 0)
        return JG_ERR(rc);
    if ((rc = jg_process_join(p, JG_SEC(30))) == 0 &&
        (rc = jg_process_output(p, &out, &n)) == 0 &&
        (n != strlen(in) + 5 || memcmp((const char *)out + 5, in, n - 5)))
        rc = -EBADMSG;
    jg_process_destroy(p);
    return JG_ERR(rc);
}

/* Started with JG_START_SPAWN=1 (every start flushes) or for the lazy
 * start (JG_TEST_LAZY=1: the first start flushes before its fork). */
static int sub_start_while_flush_parks(int argc, char **argv)
{
    if (!getenv("JG_TEST_LAZY"))
        T_OK(jg_main_init(argc, argv));
    else if (threads_now() != 1)
        T_SKIP("this build runs threads of its own: no lazy start");
    /* A hang is the failure: end it, do not wait for ctest's timeout. */
    alarm(60);
    cookie_io_functions_t io = { .write = parking_write };
    FILE *fp = fopencookie(NULL, "w", io);
    T_ASSERT(fp);
    setvbuf(fp, NULL, _IOFBF, 4096);
    fputs("buffered, flushed by the first start", fp);

    /* The first parks in the flush; the second starts meanwhile, on the
     * same hub. */
    static char first[] = "first", second[] = "second";
    struct jg_green *a, *b;
    void *ra, *rb;
    T_OK(jg_spawn(&a, start_echo, first, NULL));
    T_OK(jg_spawn(&b, start_echo, second, NULL));
    T_OK(jg_join(a, &ra, JG_SEC(30)));
    T_OK(jg_join(b, &rb, JG_SEC(30)));
    T_EQ(JG_ERR_CODE(ra), 0);
    T_EQ(JG_ERR_CODE(rb), 0);
    T_ASSERT(atomic_load(&parked_writes) >= 1);
    fclose(fp);
    return 0;
}

static void test_start_while_stdio_flush_parks(void)
{
    T_EQ(run_self("sub_start_while_flush_parks", "JG_START_SPAWN=1"), 0);
    int rc = run_self("sub_start_while_flush_parks", "JG_TEST_LAZY=1");
    if (rc == 77)
        T_SKIP_CASE("threads run before main(): no lazy start");
    T_EQ(rc, 0);
}

/* ---- the parent trusts no length a worker wrote -------------------------- */

static void check_pattern(struct jg_executor *ex, uint64_t len)
{
    struct jg_future *f = submit(ex, "pattern", &len, sizeof(len));
    const void *p;
    size_t n;
    T_OK(jg_future_bytes(f, &p, &n, JG_SEC(60)));
    T_EQ(n, len);
    for (uint64_t i = 0; i < len; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(i % 251))
            T_FAIL_("result of %llu bytes differs at byte %llu",
                    (unsigned long long)len, (unsigned long long)i);
    jg_future_unref(f);
}

static void test_forged_reply_fails_only_its_task(void)
{
    static const struct {
        int32_t mode;
        const char *what;
    } forgeries[] = {
        { FORGE_SHORT_MEMFD, "spilled result shorter than said" },
        { FORGE_NOT_MEMFD, "spilled result not a memfd" },
        { FORGE_SPILLED_ERROR, "spilled error" },
    };
    struct jg_process_pool_opts o = { .workers = 1 };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    int32_t pid = result_i32(submit(ex, "getpid", NULL, 0));

    for (size_t k = 0; k < sizeof(forgeries) / sizeof(forgeries[0]); k++) {
        fprintf(stderr, "   %s\n", forgeries[k].what);
        struct jg_future *f = submit(ex, "forge", &forgeries[k].mode,
                                     sizeof(int32_t));
        /* Queued behind it on the same worker: these come back right. */
        struct jg_future *g[4];
        for (uint64_t i = 0; i < 4; i++)
            g[i] = submit(ex, "square", &i, sizeof(i));
        T_ERR(jg_future_result(f, NULL, JG_SEC(60)), -EPROTO);
        const char *msg = jg_future_error_message(f);
        T_ASSERT(msg && strstr(msg, "worker"));
        fprintf(stderr, "   -> %s\n", msg);
        jg_future_unref(f);
        for (uint64_t i = 0; i < 4; i++) {
            const void *p;
            size_t len;
            uint64_t v;
            T_OK(jg_future_bytes(g[i], &p, &len, JG_SEC(60)));
            T_EQ(len, sizeof(v));
            memcpy(&v, p, sizeof(v));
            T_EQ(v, i * i);
            jg_future_unref(g[i]);
        }
        /* The same worker serves on; real spilled results still work. */
        T_EQ(result_i32(submit(ex, "getpid", NULL, 0)), pid);
        check_pattern(ex, 100000);
    }
    jg_executor_destroy(ex);
}

static void test_worker_cannot_shrink_shared_region(void)
{
    struct jg_process_pool_opts o = { .workers = 1 };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    int32_t mode = FORGE_SHRINK_REGION;
    int32_t rc = result_i32(submit(ex, "forge", &mode, sizeof(mode)));
    if (rc == 1) {
        jg_executor_destroy(ex);
        T_SKIP_CASE("/proc/self/map_files cannot be opened here");
    }
    /* Sealed against shrinking: a SIGBUS in the parent otherwise. */
    T_ERR(rc, -EPERM);
    check_pattern(ex, 100);
    jg_executor_destroy(ex);
}

static void test_large_init_output_leaves_results_intact(void)
{
    struct jg_process_pool_opts o = { .workers = 1,
                                      .init_task = "big_init" };
    struct jg_executor *ex;
    T_OK(jg_process_pool_create(&ex, &o));
    /* Larger and smaller than the initializer's spilled output. */
    check_pattern(ex, 300000);
    check_pattern(ex, 50000);
    jg_executor_destroy(ex);
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_children_inherit_no_fds_fork_server),
        T_CASE(test_children_inherit_no_fds_lazy_start),
        T_CASE(test_children_inherit_no_fds_spawn),
        T_CASE(test_lazy_fork_server_start),
        T_CASE(test_start_while_stdio_flush_parks),
        T_CASE(test_forged_reply_fails_only_its_task),
        T_CASE(test_worker_cannot_shrink_shared_region),
        T_CASE(test_large_init_output_leaves_results_intact),
    };

    /* The sub-cases come first: they open fds before the fork server. */
    if (argc > 1 && strcmp(argv[1], "sub_no_inherited_fds") == 0)
        return sub_no_inherited_fds(argc, argv);
    if (argc > 1 && strcmp(argv[1], "sub_lazy_start") == 0)
        return sub_lazy_start();
    if (argc > 1 && strcmp(argv[1], "sub_start_while_flush_parks") == 0)
        return sub_start_while_flush_parks(argc, argv);
    T_OK(jg_main_init(argc, argv));
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
