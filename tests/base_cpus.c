/* SPDX-License-Identifier: MIT */
/*
 * base_cpus.c - how many CPUs the process may use (src/base/cpus.c): the
 * rule (affinity, lowered to a cgroup quota rounded up, never below 2),
 * the quota read from fake /proc and /sys trees for cgroup v2, v1 and a
 * namespaced mount, the tightest ancestor winning, and the real answer
 * lying within the affinity mask.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "t.h"

static char root[256];

/* Write text to root/rel, making the folders on the way. */
static void put(const char *rel, const char *text)
{
    char p[1024];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            T_FAIL_("mkdir %s: %s", p, strerror(errno));
        *s = '/';
    }
    f = fopen(p, "w");
    T_ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void fresh_root(void)
{
    char cmd[300];

    if (root[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        T_OK(system(cmd));
    }
    snprintf(root, sizeof(root), "/tmp/jg_cpus_XXXXXX");
    T_ASSERT(mkdtemp(root) != NULL);
}

static void test_rule(void)
{
    T_EQ(jg__cpus_pick(2, 0), 2);           /* no quota: the mask */
    T_EQ(jg__cpus_pick(16, 0), 16);
    T_EQ(jg__cpus_pick(8, 3.2), 4);         /* rounded up */
    T_EQ(jg__cpus_pick(8, 3.0), 3);
    T_EQ(jg__cpus_pick(8, 1.5), 2);
    T_EQ(jg__cpus_pick(8, 0.5), 2);         /* never below 2 ... */
    T_EQ(jg__cpus_pick(1, 0.5), 1);         /* ... nor above the mask */
    T_EQ(jg__cpus_pick(2, 3.0), 2);
    T_EQ(jg__cpus_pick(0, 0), 1);
}

static const char mnt_v2[] =
    "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw\n";

static void test_v2(void)
{
    fresh_root();
    put("proc/self/cgroup", "0::/a/b\n");
    put("proc/self/mountinfo", mnt_v2);
    /* No quota anywhere: none. */
    put("sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
    put("sys/fs/cgroup/a/cpu.max", "max 100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 0);
    /* The parent's quota binds the child. */
    put("sys/fs/cgroup/a/cpu.max", "150000 100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 1.5);
    /* The tightest of the two wins. */
    put("sys/fs/cgroup/a/b/cpu.max", "50000 100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 0.5);
    put("sys/fs/cgroup/a/b/cpu.max", "400000 100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 1.5);
}

static void test_v2_namespaced(void)
{
    /* Inside a cgroup namespace the mount's root is the cgroup itself. */
    fresh_root();
    put("proc/self/cgroup", "0::/ns/x\n");
    put("proc/self/mountinfo",
        "30 22 0:26 /ns /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put("sys/fs/cgroup/x/cpu.max", "250000 100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 2.5);
    /* A process at the namespace's root. */
    put("proc/self/cgroup", "0::/ns\n");
    put("sys/fs/cgroup/cpu.max", "300000 100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 3.0);
}

static void test_v1(void)
{
    fresh_root();
    put("proc/self/cgroup",
        "5:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n0::/\n");
    put("proc/self/mountinfo",
        "40 25 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "41 25 0:36 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup "
        "rw,cpu,cpuacct\n");
    put("sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "-1\n");
    put("sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us", "100000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 0);
    put("sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "250000\n");
    T_ASSERT(jg__cpu_quota_at(root) == 2.5);
}

static void test_missing(void)
{
    /* No cgroup files at all (a chroot without /proc): no quota. */
    fresh_root();
    T_ASSERT(jg__cpu_quota_at(root) == 0);
    put("proc/self/cgroup", "0::/a\n");
    T_ASSERT(jg__cpu_quota_at(root) == 0);
    put("proc/self/mountinfo", mnt_v2);
    T_ASSERT(jg__cpu_quota_at(root) == 0);
    put("sys/fs/cgroup/a/cpu.max", "garbage\n");
    T_ASSERT(jg__cpu_quota_at(root) == 0);
    /* A cgroup seen from outside its namespace: not ours to read. */
    put("sys/fs/cgroup/cpu.max", "100000 100000\n");
    put("proc/self/cgroup", "0::/../b\n");
    T_ASSERT(jg__cpu_quota_at(root) == 0);
}

static void test_real(void)
{
    cpu_set_t set;
    int n = jg__cpus_available();

    T_OK(sched_getaffinity(0, sizeof(set), &set));
    T_ASSERT(n >= 1);
    T_ASSERT(n <= CPU_COUNT(&set));
    fprintf(stderr, "CPUs available: %d (affinity %d, quota %.2f)\n", n,
            CPU_COUNT(&set), jg__cpu_quota_at(""));
}

static void cleanup(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    T_OK(system(cmd));
}

static void test_cleanup(void)
{
    cleanup();
}

T_MAIN(T_CASE(test_rule), T_CASE(test_v2), T_CASE(test_v2_namespaced),
       T_CASE(test_v1), T_CASE(test_missing), T_CASE(test_real),
       T_CASE(test_cleanup))
