/* SPDX-License-Identifier: MIT */
/*
 * process.c - jg_process (multiprocessing.Process): a registered task run
 * once in a child started through forkserver.c. The input travels in a
 * memfd, the output comes back in another; the child is watched and reaped
 * through its pidfd, so a join from a green thread parks only that green
 * thread and no pid is ever signalled after it could be reused.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "executor.h"
#include "forkserver.h"
#include "hub.h"
#include "iofd.h"
#include "sys.h"

struct jg_process {
    pid_t pid;
    int pidfd;
    int outfd;                  /* the memfd the child writes its output to */
    bool reaped;
    siginfo_t si;
    char *out;                  /* the output, read on first request */
    size_t out_len;
    bool out_read;
};

/* Write all of p[0..n) to fd. */
static int write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = jg__sys_write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * The child: fds are {input memfd, output memfd}; the input starts with the
 * task name (NUL-terminated), then the payload.
 */
static _Noreturn void child_main(const int *fds, int nfds)
{
    struct stat st;
    struct jg_task_out out;

    if (nfds != 2 || fstat(fds[0], &st) < 0 || st.st_size <= 0)
        _exit(126);
    size_t len = (size_t)st.st_size;
    char *in = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fds[0], 0);
    if (in == MAP_FAILED)
        _exit(126);
    jg__sys_close(fds[0]);
    size_t nl = strnlen(in, len);
    if (nl == len)
        _exit(126);
    jg__task_out_init(&out);
    int rc = jg__task_run(in, in + nl + 1, len - nl - 1, &out);
    if (rc >= 0) {
        if (write_all(fds[1], out.p, out.len) < 0)
            rc = -EIO;
    } else {
        fprintf(stderr, "juggle: process task '%s' failed: %s%s%s\n", in,
                jg_strerror(rc), out.msg ? ": " : "",
                out.msg ? out.msg : "");
    }
    /* Our own buffered output only: the fork server flushed before. */
    fflush(NULL);
    _exit(rc < 0 ? 1 : 0);
}

/* Here, beside jg_process_start: a static link that starts processes keeps
 * this object, so its children have the entry. A task may print: the
 * program's output buffered before goes first. */
JG__CHILD_KIND(JG__CHILD_PROCESS, child_main, JG__CHILD_FLUSH_ON_SPAWN)

int jg_process_start(struct jg_process **out, const char *task,
                     const void *in, size_t n)
{
    int rc, fds[2] = { -1, -1 };

    if (!out || !task || !*task || (n && !in))
        return -EINVAL;
    *out = NULL;
    if (!jg_task_find(task))
        return -ENOENT;
    struct jg_process *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->pidfd = p->outfd = -1;
    fds[0] = jg__sys_memfd_create("jg-process-in", MFD_CLOEXEC);
    fds[1] = jg__sys_memfd_create("jg-process-out", MFD_CLOEXEC);
    if (fds[0] < 0 || fds[1] < 0) {
        rc = -errno;
        goto err;
    }
    rc = write_all(fds[0], task, strlen(task) + 1);
    if (rc == 0 && n)
        rc = write_all(fds[0], in, n);
    if (rc < 0)
        goto err;
    rc = jg__child_start(JG__CHILD_PROCESS, fds, 2, &p->pid, &p->pidfd);
    if (rc < 0)
        goto err;
    jg__sys_close(fds[0]);
    p->outfd = fds[1];
    *out = p;
    return 0;

err:
    if (fds[0] >= 0)
        jg__sys_close(fds[0]);
    if (fds[1] >= 0)
        jg__sys_close(fds[1]);
    free(p);
    return rc;
}

pid_t jg_process_pid(const struct jg_process *p)
{
    return p ? p->pid : -EINVAL;
}

/* Reap if it has ended: true once reaped. */
static bool try_reap(struct jg_process *p)
{
    if (p->reaped)
        return true;
    int rc = jg__child_reap(p->pidfd, false, &p->si);
    if (rc == 0)
        return false;
    if (rc < 0)
        memset(&p->si, 0, sizeof(p->si)); /* reaped elsewhere: unknown */
    p->reaped = true;
    return true;
}

int jg_process_join(struct jg_process *p, int64_t timeout_ns)
{
    struct jg__pollfd pf;
    int64_t deadline;
    int rc;

    if (!p || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    pf = (struct jg__pollfd){ p->pidfd, JG_READ };
    deadline = jg__deadline_after(timeout_ns);
    /* The pidfd is readable once the child has exited: a thread with a
     * hub parks the caller, a plain one polls (jg__poll_any). */
    while (!try_reap(p)) {
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        rc = jg__poll_any(&pf, 1, deadline);
        if (rc == -ETIMEDOUT)
            return try_reap(p) ? 0 : rc;
        if (rc < 0)
            return rc;
    }
    return 0;
}

int jg_process_alive(struct jg_process *p)
{
    return p ? !try_reap(p) : -EINVAL;
}

int jg_process_exitcode(struct jg_process *p, int *code)
{
    if (!p || !code)
        return -EINVAL;
    if (!try_reap(p))
        return -EBUSY;
    if (p->si.si_code == CLD_EXITED)
        *code = p->si.si_status;
    else if (p->si.si_code == CLD_KILLED || p->si.si_code == CLD_DUMPED)
        *code = -p->si.si_status;
    else
        *code = 255;            /* reaped by someone else: unknown */
    return 0;
}

int jg_process_output(struct jg_process *p, const void **out, size_t *n)
{
    struct stat st;

    if (!p || !out || !n)
        return -EINVAL;
    if (!try_reap(p))
        return -EBUSY;
    if (p->si.si_code != CLD_EXITED || p->si.si_status != 0)
        return -ECHILD;
    if (!p->out_read) {
        if (fstat(p->outfd, &st) < 0)
            return -errno;
        size_t len = (size_t)st.st_size;
        char *buf = malloc(len ? len : 1);
        if (!buf)
            return -ENOMEM;
        size_t got = 0;
        while (got < len) {
            ssize_t r = jg__sys_pread(p->outfd, buf + got, len - got,
                                      (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                int e = r < 0 ? -errno : -EIO;
                free(buf);
                return e;
            }
            got += (size_t)r;
        }
        p->out = buf;
        p->out_len = len;
        p->out_read = true;
    }
    *out = p->out;
    *n = p->out_len;
    return 0;
}

int jg_process_signal(struct jg_process *p, int sig)
{
    if (!p || sig < 0 || sig >= NSIG)
        return -EINVAL;
    if (p->reaped)
        return -ESRCH;
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
        return -errno;
    return 0;
}

int jg_process_terminate(struct jg_process *p)
{
    return jg_process_signal(p, SIGTERM);
}

int jg_process_kill(struct jg_process *p)
{
    return jg_process_signal(p, SIGKILL);
}

int jg_process_destroy(struct jg_process *p)
{
    if (!p)
        return -EINVAL;
    if (!try_reap(p)) {
        syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
        jg__child_reap(p->pidfd, true, &p->si);
    }
    jg__sys_close(p->pidfd);
    jg__sys_close(p->outfd);
    free(p->out);
    free(p);
    return 0;
}
