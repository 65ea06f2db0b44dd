/* SPDX-License-Identifier: MIT */
/*
 * preload_asneeded.c - linked as docs/preload.md says (`cc app.c -ljuggle
 * -ljuggle_preload`, with Debian's gcc, which passes --as-needed), the
 * patch is on even when the program itself calls no interposed function:
 * here a green thread sleeps through a pointer from dlsym, as a library
 * loaded later would. Without -ljuggle_preload the program says so under
 * JG_PATCH_DEBUG=1 and jg_patch_enabled() is false. Compiles with the
 * system `cc` against the build tree (JG_TEST_INCLUDE, JG_TEST_LIBDIRS).
 */
#include <juggle.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "t.h"

/* The program a user writes: four green threads sleep 50 ms each through
 * usleep found at run time; the peak of those inside at once shows
 * whether the sleeps overlapped (cooperative) or ran one by one. */
static const char app_c[] =
    "#include <juggle.h>\n"
    "#include <dlfcn.h>\n"
    "#include <stdio.h>\n"
    "static int (*nap)(unsigned);\n"
    "static int inside, peak;\n"
    "static void *sleeper(void *arg)\n"
    "{\n"
    "    (void)arg;\n"
    "    if (++inside > peak)\n"
    "        peak = inside;\n"
    "    nap(50000);\n"
    "    inside--;\n"
    "    return NULL;\n"
    "}\n"
    "int main(void)\n"
    "{\n"
    "    struct jg_green *g[4];\n"
    "    *(void **)&nap = dlsym(RTLD_DEFAULT, \"usleep\");\n"
    "    for (int i = 0; i < 4; i++)\n"
    "        if (jg_spawn(&g[i], sleeper, NULL, NULL) < 0)\n"
    "            return 2;\n"
    "    for (int i = 0; i < 4; i++)\n"
    "        if (jg_join(g[i], NULL, JG_FOREVER) < 0)\n"
    "            return 2;\n"
    "    printf(\"enabled=%d calls=%lld peak=%d\\n\", jg_patch_enabled(),\n"
    "           (long long)jg_patch_calls(\"usleep\"), peak);\n"
    "    return 0;\n"
    "}\n";

static char dir[64];

static void sh(const char *cmd)
{
    int st = system(cmd);

    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "command failed (%d): %s\n", st, cmd);
        T_ASSERT(0);
    }
}

/* Compile the program with extra libraries, run it with JG_PATCH_DEBUG=1,
 * and return what it printed (stdout and stderr). */
static const char *build_and_run(const char *name, const char *libs)
{
    static char out[4096];
    char cmd[4096], rpath[2048] = "";
    const char *inc = getenv("JG_TEST_INCLUDE");
    const char *dirs = getenv("JG_TEST_LIBDIRS");
    char ldirs[2048] = "";

    T_ASSERT(inc && dirs);
    /* -L and -rpath for each build directory (colon-separated). */
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", dirs);
    for (char *d = strtok(copy, ":"); d; d = strtok(NULL, ":")) {
        size_t n = strlen(ldirs);
        snprintf(ldirs + n, sizeof(ldirs) - n, " -L'%s'", d);
        n = strlen(rpath);
        snprintf(rpath + n, sizeof(rpath) - n, "%s%s", n ? ":" : "", d);
    }
    /* Exactly the documented command, plus where the build tree is. */
    snprintf(cmd, sizeof(cmd),
             "cd %s && cc -o %s app.c -I'%s'%s -Wl,-rpath,'%s' %s",
             dir, name, inc, ldirs, rpath, libs);
    fprintf(stderr, "   %s\n", cmd);
    sh(cmd);
    snprintf(cmd, sizeof(cmd),
             "cd %s && env -u LD_PRELOAD JG_PATCH_DEBUG=1 ./%s > %s.out 2>&1",
             dir, name, name);
    sh(cmd);
    snprintf(cmd, sizeof(cmd), "%s/%s.out", dir, name);
    FILE *f = fopen(cmd, "r");
    T_ASSERT(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = 0;
    fclose(f);
    fprintf(stderr, "%s", out);
    return out;
}

static void cleanup(void)
{
    char cmd[128];

    if (!dir[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "   could not remove %s\n", dir);
    dir[0] = 0;
}

static void setup(void)
{
    char path[128];
    static int registered;

    if (T_SANITIZED)
        T_SKIP("a sanitizer-built libjuggle needs its runtime in the "
               "program; the plain build checks the documented link");
    if (system("cc --version > /dev/null 2>&1") != 0)
        T_SKIP("no system cc");
    snprintf(dir, sizeof(dir), "/tmp/jg-asneeded-XXXXXX");
    T_ASSERT(mkdtemp(dir));
    /* Also when an assertion fails and exits. */
    if (!registered++)
        atexit(cleanup);
    snprintf(path, sizeof(path), "%s/app.c", dir);
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    T_EQ(fwrite(app_c, 1, sizeof(app_c) - 1, f), sizeof(app_c) - 1);
    fclose(f);
}


/* Before: enabled=0, the four sleeps one after another (peak 1), and no
 * "attached" line even with JG_PATCH_DEBUG=1. */
static void test_documented_link_keeps_patch_on(void)
{
    setup();
    const char *out = build_and_run("app", "-ljuggle -ljuggle_preload");
    T_ASSERT(strstr(out, "juggle-patch: attached\n"));
    T_ASSERT(strstr(out, "juggle-patch: usleep made cooperative\n"));
    T_ASSERT(strstr(out, "enabled=1 calls=4 peak=4\n"));
    cleanup();
}

/* Without the preload library: said plainly, and the API agrees. */
static void test_no_preload_is_visible(void)
{
    setup();
    const char *out = build_and_run("app_plain", "-ljuggle");
    T_ASSERT(strstr(out, "juggle-patch: no preload library in this "
                         "process"));
    char want[64];
    snprintf(want, sizeof(want), "enabled=0 calls=%d peak=1\n", -ENOSYS);
    T_ASSERT(strstr(out, want));
    cleanup();
}

T_MAIN(T_CASE(test_documented_link_keeps_patch_on),
       T_CASE(test_no_preload_is_visible))
