/* SPDX-License-Identifier: MIT */
/*
 * tour_quick.c - runs `juggle-tour --quick --json FILE` (the program named
 * by $JG_TOUR) and checks what it found: every approach finished, the CPU
 * part's results match the sequential ones, green threads and the loop had
 * the downloads in flight at once, and on two or more cores threads and
 * processes ran CPU tasks at the same time. Concurrency is checked by
 * count ("peak": the most tasks in flight at once), never by speed-up,
 * which a loaded machine takes away. Also: bad options exit with status 2
 * and a message.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

struct res {
    char part[16], approach[32];
    bool ok, skipped, matches;
    double speedup;
    int peak;                   /* -1: not reported */
};

static struct res res[64];
static int nres;

/* Run the tour with args; its exit status (or 128 + signal). Output goes
 * to out_path when given. */
static int run_tour(const char *const *args, const char *out_path)
{
    const char *tour = getenv("JG_TOUR");
    const char *argv[16];
    int k = 0, status;

    T_ASSERT(tour != NULL);
    argv[k++] = tour;
    for (; *args; args++)
        argv[k++] = *args;
    argv[k] = NULL;
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0)
                _exit(126);
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(tour, (char **)argv);
        _exit(127);
    }
    T_ASSERT(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Copy the string value of "key": "..." in line, or "" if absent. */
static void str_field(const char *line, const char *key, char *out,
                      size_t size)
{
    char pat[40];
    snprintf(pat, sizeof(pat), "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    out[0] = 0;
    if (!p)
        return;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

static bool bool_field(const char *line, const char *key)
{
    char pat[40];
    snprintf(pat, sizeof(pat), "\"%s\": true", key);
    return strstr(line, pat) != NULL;
}

static double num_field(const char *line, const char *key)
{
    char pat[40];
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The tour writes one result object per line. */
static void load(const char *path)
{
    char line[2048];
    FILE *f = fopen(path, "r");
    bool results = false;

    T_ASSERT(f != NULL);
    nres = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "\"results\": ["))
            results = true;
        if (!strstr(line, "{\"part\": "))
            continue;
        T_ASSERT(nres < 64);
        struct res *r = &res[nres++];
        str_field(line, "part", r->part, sizeof(r->part));
        str_field(line, "approach", r->approach, sizeof(r->approach));
        r->ok = bool_field(line, "ok");
        r->skipped = bool_field(line, "skipped");
        r->matches = bool_field(line, "matches");
        r->speedup = num_field(line, "speedup");
        r->peak = (int)num_field(line, "peak");
        T_ASSERT(strstr(line, "\"wall_s\": ") && strstr(line, "\"cpu_s\": ")
                 && strstr(line, "\"maxrss_kb\": "));
    }
    fclose(f);
    T_ASSERT(results);
}

static struct res *get(const char *part, const char *approach)
{
    for (int i = 0; i < nres; i++)
        if (strcmp(res[i].part, part) == 0 &&
            strcmp(res[i].approach, approach) == 0)
            return &res[i];
    T_FAIL_("no result for %s/%s", part, approach);
}

static void test_quick(void)
{
    char json[] = "/tmp/jg-tour-XXXXXX";
    int fd = mkstemp(json);
    T_ASSERT(fd >= 0);
    close(fd);
    const char *args[] = { "--quick", "--json", json, NULL };
    int st = run_tour(args, NULL);
    load(json);
    unlink(json);

    /* Every approach of every part, and each one finished. */
    static const char *want[][2] = {
        { "io", "sequential" }, { "io", "threads" }, { "io", "pool" },
        { "io", "procpool" }, { "io", "green" }, { "io", "green-preload" },
        { "io", "loop" }, { "cpu", "sequential" }, { "cpu", "threads" },
        { "cpu", "procpool" }, { "cpu", "green" },
        { "conns", "green-sliced" }, { "conns", "green-dedicated" },
        { "conns", "loop" }, { "conns", "threads" }, { "bg", "none" },
        { "bg", "hub" }, { "bg", "threads" }, { "bg", "procpool" },
    };
    T_EQ(nres, (long)(sizeof(want) / sizeof(want[0])));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct res *r = get(want[i][0], want[i][1]);
        /* Only the patch row may be skipped: when no preload library was
         * built. */
        if (r->skipped) {
            T_ASSERT(strcmp(r->approach, "green-preload") == 0);
            continue;
        }
        if (!r->ok)
            T_FAIL_("%s/%s did not finish", r->part, r->approach);
    }
    T_EQ(st, 0);

    /* The CPU part computed the same numbers every way. */
    T_ASSERT(get("cpu", "sequential")->matches);
    T_ASSERT(get("cpu", "threads")->matches);
    T_ASSERT(get("cpu", "procpool")->matches);
    T_ASSERT(get("cpu", "green")->matches);

    /* 40 downloads of 20 ms each: sequential code has one in flight, the
     * concurrent approaches have them all in flight at once (green threads
     * all start before any reply can be taken in: woken readers queue
     * behind the unstarted ones). */
    T_EQ(get("io", "sequential")->peak, 1);
    T_ASSERT(get("io", "green")->peak > 4);
    T_ASSERT(get("io", "loop")->peak > 4);
    T_ASSERT(get("io", "threads")->peak > 1);
    /* No GIL: a thread pool runs CPU tasks at the same time, as a process
     * pool does; green threads of one hub never do. Counted from each
     * task's start and end, whatever the machine's load. */
    T_EQ(get("cpu", "sequential")->peak, 1);
    T_EQ(get("cpu", "green")->peak, 1);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        T_ASSERT(get("cpu", "threads")->peak >= 2);
        T_ASSERT(get("cpu", "procpool")->peak >= 2);
    }
}

/* Bad values: a clear message and exit status 2, nothing measured. */
static void test_bad_options(void)
{
    char out[] = "/tmp/jg-tour-out-XXXXXX";
    int fd = mkstemp(out);
    T_ASSERT(fd >= 0);
    close(fd);
    static const char *const bads[][3] = {
        { "--requests", "abc", NULL }, { "--requests", "0", NULL },
        { "--only", "gpu", NULL }, { "--conns", "-5", NULL },
        { "--cpu-seconds", "x", NULL }, { "--frobnicate", NULL, NULL },
        { "--json", NULL, NULL },
    };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        T_EQ(run_tour(bads[i], out), 2);
        char buf[512] = "";
        FILE *f = fopen(out, "r");
        T_ASSERT(f != NULL);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        T_ASSERT(strstr(buf, "juggle-tour: ") != NULL);
    }
    unlink(out);
}

int main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_bad_options),
        T_CASE(test_quick),
    };
    return t_run(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
