/* SPDX-License-Identifier: MIT */
/*
 * cpus.c - how many CPUs this process may use: what a runtime of one hub
 * per core starts by default. The CPUs of the affinity mask, lowered to
 * the cgroup CPU quota when one is set (cgroup v2 cpu.max, v1
 * cpu.cfs_quota_us / cpu.cfs_period_us; the tightest of the process's
 * cgroup and every ancestor up to the mount), rounded up. As Go 1.25 does
 * for GOMAXPROCS, a quota never lowers the count below 2: a fractional
 * quota is a throughput average, and one hub blocked in a long slice would
 * stall everything else. The files are read with libjuggle's own system
 * calls (sys.h), so the preload library never sees them.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

#define LINE_MAX_ 4096
#define PATH_MAX_ 1024          /* a longer path: taken as no quota */
#define DIR_MAX_ (3 * PATH_MAX_)

/*
 * Call fn(line, ctx) for each line of the file at path (without its
 * newline; lines longer than LINE_MAX_ are skipped) until fn returns
 * nonzero. Returns fn's value, 0 at the end, or -errno.
 */
static int each_line(const char *path, int (*fn)(char *line, void *ctx),
                     void *ctx)
{
    char buf[LINE_MAX_];
    size_t len = 0;
    bool skipping = false;
    int fd = jg__sys_open(path, O_RDONLY | O_CLOEXEC, 0), rc = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t r = jg__sys_read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        len += (size_t)r;
        char *start = buf, *nl;
        buf[len] = '\0';
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
            *nl = '\0';
            if (!skipping && (rc = fn(start, ctx)) != 0)
                goto out;
            skipping = false;
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (r == 0) {
            if (len && !skipping) {
                buf[len] = '\0';
                rc = fn(buf, ctx);
            }
            break;
        }
        if (len == sizeof(buf) - 1) {
            skipping = true;    /* a line too long for us: not ours */
            len = 0;
        }
    }
out:
    jg__sys_close(fd);
    return rc;
}

/* ---- which cgroup, and where it is mounted ------------------------------ */

struct where {
    bool v2;
    char path[PATH_MAX_];       /* the process's cgroup, from /proc */
    char mount[PATH_MAX_];      /* where that hierarchy is mounted */
    char mroot[PATH_MAX_];      /* the mount's root within the hierarchy */
};

/* Whether the comma-separated list names the cpu controller. */
static bool names_cpu(const char *list)
{
    for (const char *p = list; p && *p; ) {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "cpu", 3) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* /proc/self/cgroup: "0::/path" (v2), "N:cpu,cpuacct:/path" (v1). A v1
 * cpu controller wins over the v2 line of a hybrid setup. */
static int cgroup_line(char *line, void *ctx)
{
    struct where *w = ctx;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

    if (!c2)
        return 0;
    *c1 = *c2 = '\0';
    const char *ctl = c1 + 1, *path = c2 + 1;
    bool v1cpu = names_cpu(ctl);

    if (strlen(path) >= sizeof(w->path))
        return 0;               /* too long for us: no quota known */
    if (v1cpu || (!*ctl && strcmp(line, "0") == 0 && !w->path[0])) {
        snprintf(w->path, sizeof(w->path), "%s", path);
        w->v2 = !v1cpu;
    }
    return v1cpu;               /* a v1 cpu line settles it */
}

/*
 * /proc/self/mountinfo: "id parent maj:min root mountpoint opts ... - fstype
 * source superopts". The mount of cgroup2, or of the v1 hierarchy whose
 * super options name the cpu controller.
 */
static int mount_line(char *line, void *ctx)
{
    struct where *w = ctx;
    char *f[6], *sep = strstr(line, " - "), *save = NULL;
    int n = 0;

    if (!sep)
        return 0;
    *sep = '\0';
    for (char *t = strtok_r(line, " ", &save); t && n < 6;
         t = strtok_r(NULL, " ", &save))
        f[n++] = t;
    if (n < 5)
        return 0;
    char *fstype = strtok_r(sep + 3, " ", &save);
    (void)strtok_r(NULL, " ", &save);           /* source */
    char *super = strtok_r(NULL, " ", &save);
    if (!fstype)
        return 0;
    if (w->v2 ? strcmp(fstype, "cgroup2") != 0
              : strcmp(fstype, "cgroup") != 0)
        return 0;
    if (!w->v2 && !names_cpu(super))
        return 0;
    if (strlen(f[3]) >= sizeof(w->mroot) || strlen(f[4]) >= sizeof(w->mount))
        return 0;
    snprintf(w->mroot, sizeof(w->mroot), "%s", f[3]);
    snprintf(w->mount, sizeof(w->mount), "%s", f[4]);
    return 1;
}

/* ---- the limit files ----------------------------------------------------- */

struct num2 {
    bool ok, none;
    double a, b;
};

/* "max 100000" or "150000 100000" (v2 cpu.max). */
static int cpumax_line(char *line, void *ctx)
{
    struct num2 *q = ctx;
    char *end;

    if (strncmp(line, "max", 3) == 0) {
        q->ok = q->none = true;
        return 1;
    }
    q->a = strtod(line, &end);
    if (end == line)
        return 1;
    q->b = strtod(end, NULL);
    q->ok = q->a > 0 && q->b > 0;
    return 1;
}

/* One number (v1 cfs quota or period). */
static int number_line(char *line, void *ctx)
{
    struct num2 *q = ctx;
    char *end;

    q->a = strtod(line, &end);
    q->ok = end != line;
    return 1;
}

/* The limit in CPUs set in dir, or 0 for none there. */
static double limit_in(const char *dir, bool v2)
{
    char p[DIR_MAX_ + 32];
    struct num2 q = { 0 }, per = { 0 };

    if (v2) {
        if ((size_t)snprintf(p, sizeof(p), "%s/cpu.max", dir) >= sizeof(p) ||
            each_line(p, cpumax_line, &q) < 0 || !q.ok || q.none)
            return 0;
        return q.a / q.b;
    }
    if ((size_t)snprintf(p, sizeof(p), "%s/cpu.cfs_quota_us", dir) >=
            sizeof(p) ||
        each_line(p, number_line, &q) < 0 || !q.ok || q.a <= 0)
        return 0;                               /* -1: no quota */
    if ((size_t)snprintf(p, sizeof(p), "%s/cpu.cfs_period_us", dir) >=
            sizeof(p) ||
        each_line(p, number_line, &per) < 0 || !per.ok || per.a <= 0)
        return 0;
    return q.a / per.a;
}

double jg__cpu_quota_at(const char *root)
{
    char p[PATH_MAX_ + 64], dir[DIR_MAX_];
    struct where w = { 0 };
    double best = 0;

    if ((size_t)snprintf(p, sizeof(p), "%s/proc/self/cgroup", root) >=
            sizeof(p) ||
        each_line(p, cgroup_line, &w) < 0 || !w.path[0])
        return 0;
    if ((size_t)snprintf(p, sizeof(p), "%s/proc/self/mountinfo", root) >=
            sizeof(p) ||
        each_line(p, mount_line, &w) <= 0)
        return 0;
    /* The cgroup's path below the mount: strip the mount's own root (a
     * bind mount of a subtree, a cgroup namespace). */
    const char *rel = w.path;
    size_t rl = strlen(w.mroot);
    if (strcmp(w.mroot, "/") != 0 && strncmp(rel, w.mroot, rl) == 0 &&
        (rel[rl] == '/' || rel[rl] == '\0'))
        rel += rl;
    /* A cgroup outside our namespace's view ("/../x") has no files we
     * may read as its own. */
    if (strstr(rel, "/.."))
        return 0;
    /* The cgroup and each ancestor up to the mount: the tightest wins. */
    if ((size_t)snprintf(dir, sizeof(dir), "%s%s%s", root, w.mount,
                         strcmp(rel, "/") == 0 ? "" : rel) >= sizeof(dir))
        return 0;
    size_t floor_len = strlen(root) + strlen(w.mount);
    for (;;) {
        double l = limit_in(dir, w.v2);
        if (l > 0 && (best == 0 || l < best))
            best = l;
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < floor_len)
            break;
        *slash = '\0';
    }
    return best;
}

int jg__cpus_pick(int affinity, double quota)
{
    int n = affinity > 0 ? affinity : 1;

    if (quota > 0) {
        /* Rounded up, at least 2 (Go 1.25's GOMAXPROCS rule). */
        int q = quota >= 1e6 ? 1000000 : (int)quota;
        if (q < quota)
            q++;
        if (q < 2)
            q = 2;
        if (q < n)
            n = q;
    }
    return n;
}

int jg__cpus_available(void)
{
    cpu_set_t set;
    int aff = 0;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        aff = CPU_COUNT(&set);
    if (aff <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        aff = n > 0 ? (int)n : 1;
    }
    return jg__cpus_pick(aff, jg__cpu_quota_at(""));
}
