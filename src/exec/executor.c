/* SPDX-License-Identifier: MIT */
/*
 * executor.c - the generic half of every executor: argument checks, the
 * dispatch to a backend's ops, map in chunks (through the built-in task
 * "jg.map", so map runs unchanged on any backend that runs tasks), and the
 * process-wide default thread pool.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"
#include "future.h"
#include "hub.h"
#include "sys.h"

/* The built-in chunk task: its input is this header, the item task's name
 * (NUL-terminated), then count items of in_size bytes. */
#define MAP_TASK "jg.map"

struct map_hdr {
    uint64_t in_size, out_size, count, first;
    uint32_t name_len;          /* with the NUL */
    uint32_t pad_;
};

int jg_executor_submit(struct jg_executor *ex, struct jg_future **out,
                       const char *name, const void *in, size_t n)
{
    struct jg_future *f;
    int rc;

    if (!ex || !ex->ops || !name || !*name || !out || (!in && n))
        return -EINVAL;
    f = jg__future_alloc();
    if (!f)
        return -ENOMEM;
    /* The backend takes its own reference; ours becomes the caller's. */
    rc = ex->ops->submit(ex, name, in, n, f);
    if (rc < 0) {
        jg_future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}

int jg_executor_call(struct jg_executor *ex, struct jg_future **out,
                     void *(*fn)(void *), void *arg)
{
    struct jg_future *f;
    int rc;

    if (!ex || !ex->ops || !fn || !out)
        return -EINVAL;
    if (!ex->ops->call)
        return -ENOTSUP;
    f = jg__future_alloc();
    if (!f)
        return -ENOMEM;
    rc = ex->ops->call(ex, fn, arg, f);
    if (rc < 0) {
        jg_future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}

int jg_executor_shutdown(struct jg_executor *ex, unsigned flags)
{
    if (!ex || !ex->ops ||
        (flags & ~(unsigned)(JG_SHUTDOWN_WAIT | JG_SHUTDOWN_CANCEL_PENDING)))
        return -EINVAL;
    return ex->ops->shutdown(ex, flags);
}

static struct jg_executor *default_pool;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

int jg_executor_destroy(struct jg_executor *ex)
{
    /* The default pool lives as long as the process. */
    if (!ex || !ex->ops || ex == default_pool)
        return -EINVAL;
    (void)ex->ops->shutdown(ex, JG_SHUTDOWN_WAIT);
    ex->ops->destroy(ex);
    return 0;
}

static void default_init(void)
{
    struct jg_executor *ex;

    if (jg_thread_pool_create(&ex, NULL) == 0)
        default_pool = ex;
}

struct jg_executor *jg_executor_default(void)
{
    pthread_once(&default_once, default_init);
    return default_pool;
}

/* ---- jobs ---------------------------------------------------------------- */

void jg__job_init_call(struct jg_future *f, void *(*fn)(void *), void *arg)
{
    struct jg__job *j = jg__job_of(f);

    j->call = fn;
    j->arg = arg;
    j->task = NULL;
    j->in = NULL;
    j->in_len = 0;
}

int jg__job_init_task(struct jg_future *f, jg_task_fn task, const void *in,
                      size_t n)
{
    struct jg__job *j = jg__job_of(f);

    jg__job_init_call(f, NULL, NULL);
    j->task = task;
    if (n <= sizeof(j->inl)) {
        j->in = j->inl;
    } else {
        j->in = malloc(n);
        if (!j->in)
            return -ENOMEM;
    }
    if (n)
        memcpy(j->in, in, n);
    j->in_len = n;
    return 0;
}

void jg__job_fini(struct jg_future *f)
{
    struct jg__job *j = jg__job_of(f);

    if (j->in != j->inl)
        free(j->in);
    j->in = NULL;
}

void jg__job_run(struct jg_future *f)
{
    struct jg__job *j = jg__job_of(f);
    struct jg_task_out o;
    int rc;

    /* A job whose future was cancelled while queued never runs. */
    if (jg_future_set_running(f) < 0) {
        jg__job_fini(f);
        return;
    }
    if (j->call) {
        (void)jg_future_set_value(f, j->call(j->arg));
        return;
    }
    jg__task_out_init(&o);
    rc = j->task(j->in, j->in_len, &o);
    jg__job_fini(f);
    if (rc < 0) {
        (void)jg_future_set_error(f, rc, o.msg);
    } else {
        (void)jg__future_set_owned(f, o.p, o.len);
        o.p = NULL;
    }
    jg__task_out_fini(&o);
}

/* ---- map ----------------------------------------------------------------- */

/* The chunk task: run the item task over each item, in order. */
static int map_chunk(const void *in, size_t n, struct jg_task_out *out)
{
    struct map_hdr h;
    struct jg_task_out item;
    const char *name, *items;
    jg_task_fn fn;
    int rc = 0;

    if (n < sizeof(h))
        return jg_task_fail(out, -EINVAL, "map: short chunk");
    memcpy(&h, in, sizeof(h));
    name = (const char *)in + sizeof(h);
    if (h.name_len == 0 || h.name_len > n - sizeof(h) ||
        name[h.name_len - 1] != '\0' ||
        (h.in_size && h.count > (n - sizeof(h) - h.name_len) / h.in_size))
        return jg_task_fail(out, -EINVAL, "map: malformed chunk");
    items = name + h.name_len;
    fn = jg_task_find(name);
    if (!fn)
        return jg_task_fail(out, -ENOENT, "unknown task '%s'", name);
    if (h.count && !jg_task_out_reserve(out, h.count * h.out_size))
        return -ENOMEM;
    jg__task_out_init(&item);
    for (uint64_t i = 0; i < h.count; i++) {
        item.len = 0;
        rc = fn(items + i * h.in_size, h.in_size, &item);
        if (rc < 0) {
            rc = jg_task_fail(out, rc, "item %llu: %s",
                              (unsigned long long)(h.first + i),
                              item.msg ? item.msg : jg_strerror(rc));
            break;
        }
        rc = 0;
        if (item.len != h.out_size) {
            rc = jg_task_fail(out, -EMSGSIZE,
                              "item %llu: result of %zu bytes, want %llu",
                              (unsigned long long)(h.first + i), item.len,
                              (unsigned long long)h.out_size);
            break;
        }
        if ((rc = jg_task_out_write(out, item.p, item.len)) < 0)
            break;
    }
    jg__task_out_fini(&item);
    return rc;
}
JG_TASK(MAP_TASK, map_chunk)

/* Sleep briefly: parks a green thread, blocks a plain OS thread. */
static int backoff(void)
{
    struct timespec ts = { 0, 1000000 };

    if (jg__wait_kind() > 0)
        return jg_sleep(JG_MS(1));
    jg__sys_nanosleep(&ts, NULL);
    return 0;
}

int jg_executor_map(struct jg_executor *ex, const char *name,
                    const void *items, size_t in_size, size_t n,
                    void *results, size_t out_size, size_t chunk,
                    int64_t timeout_ns)
{
    struct jg_future **fs;
    struct map_hdr h;
    size_t nchunks, sub = 0, got = 0, name_len, buf_len;
    int64_t deadline;
    char *buf;
    int rc = 0;

    if (!ex || !ex->ops || !name || !*name || (!items && n && in_size) ||
        (!results && n && out_size) || !jg__timeout_ok(timeout_ns))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (!jg_task_find(name))
        return -ENOENT;
    if (chunk == 0) {
        /* Python's rule: about four chunks per worker (CPU). */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t parts = 4 * (size_t)(cpus > 0 ? cpus : 1);
        chunk = (n + parts - 1) / parts;
    }
    if (chunk > n)
        chunk = n;
    if (in_size && chunk > (SIZE_MAX / 2) / in_size)
        return -EINVAL;
    nchunks = (n + chunk - 1) / chunk;
    deadline = jg__deadline_after(timeout_ns);
    name_len = strlen(name) + 1;
    buf_len = sizeof(h) + name_len + chunk * in_size;
    fs = calloc(nchunks, sizeof(*fs));
    buf = malloc(buf_len);
    if (!fs || !buf) {
        free(fs);
        free(buf);
        return -ENOMEM;
    }
    memset(&h, 0, sizeof(h));
    h.in_size = in_size;
    h.out_size = out_size;
    h.name_len = (uint32_t)name_len;
    memcpy(buf + sizeof(h), name, name_len);
    while (got < nchunks) {
        /* Submit as far as the executor takes; a full bounded queue
         * (-EAGAIN) is drained by collecting the oldest chunk first. */
        while (sub < nchunks) {
            size_t first = sub * chunk;
            size_t cnt = n - first < chunk ? n - first : chunk;

            h.first = first;
            h.count = cnt;
            memcpy(buf, &h, sizeof(h));
            if (in_size)
                memcpy(buf + sizeof(h) + name_len,
                       (const char *)items + first * in_size, cnt * in_size);
            rc = jg_executor_submit(ex, &fs[sub], MAP_TASK,
                                    buf,
                                    sizeof(h) + name_len + cnt * in_size);
            if (rc == -EAGAIN && sub > got)
                break;
            if (rc == -EAGAIN) {
                if (deadline != INT64_MAX && jg_now() >= deadline) {
                    rc = -ETIMEDOUT;
                    goto out;
                }
                if ((rc = backoff()) < 0)
                    goto out;
                continue;
            }
            if (rc < 0)
                goto out;
            sub++;
        }
        {
            size_t first = got * chunk;
            size_t cnt = n - first < chunk ? n - first : chunk;
            const void *p;
            size_t len;

            rc = jg_future_bytes(fs[got], &p, &len, jg__deadline_left(deadline));
            if (rc < 0)
                goto out;
            if (len != cnt * out_size) {
                rc = -EMSGSIZE;
                goto out;
            }
            if (len)
                memcpy((char *)results + first * out_size, p, len);
            got++;
        }
    }
    rc = 0;
out:
    /* Chunks not collected are cancelled if still queued; one that runs
     * writes only into its own future, which is dropped here. */
    for (size_t i = 0; i < sub; i++) {
        if (i >= got)
            (void)jg_future_cancel(fs[i]);
        jg_future_unref(fs[i]);
    }
    free(fs);
    free(buf);
    return rc;
}
