/* SPDX-License-Identifier: MIT */
/*
 * pool_thread.c - the thread pool through the executor interface: tasks by
 * name and plain calls, unknown tasks, task errors with messages, map order
 * and chunking, shutdown with pending work (each future DONE or CANCELLED,
 * counted), the bounded queue, per-worker initializers and thread-locals,
 * the default pool, a green thread awaiting a pool future while its hub
 * keeps serving, and a burst of submissions where nothing is lost.
 */
#include <juggle.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "executor.h"
#include "t.h"

/* ---- tasks --------------------------------------------------------------- */

static int square(const void *in, size_t n, struct jg_task_out *out)
{
    int64_t x, y;

    if (n != sizeof(x))
        return jg_task_fail(out, -EINVAL, "want 8 bytes, got %zu", n);
    memcpy(&x, in, sizeof(x));
    if (x == 13)
        return jg_task_fail(out, -EDOM, "unlucky %d", (int)x);
    y = x * x;
    return jg_task_out_write(out, &y, sizeof(y));
}
JG_TASK("test.square", square)

/* Writes 8 bytes for odd inputs, 4 for even: map must notice. */
static int uneven(const void *in, size_t n, struct jg_task_out *out)
{
    int64_t x;
    char *p;

    (void)n;
    memcpy(&x, in, sizeof(x));
    p = jg_task_out_reserve(out, 8);
    if (!p)
        return -ENOMEM;
    memset(p, 0, 8);
    jg_task_out_commit(out, x % 2 ? 8 : 4);
    return 0;
}
JG_TASK("test.uneven", uneven)

static void *ret_arg(void *arg)
{
    return arg;
}

/* ---- basics -------------------------------------------------------------- */

static void test_submit_and_call(void)
{
    struct jg_executor *ex;
    struct jg_thread_pool_opts o = { .workers = 2 };
    struct jg_future *f;
    const void *p;
    int64_t x = 12, y;
    size_t n;
    void *v;

    T_OK(jg_thread_pool_create(&ex, &o));
    T_OK(jg_executor_submit(ex, &f, "test.square", &x, sizeof(x)));
    T_OK(jg_future_bytes(f, &p, &n, JG_FOREVER));
    T_EQ(n, sizeof(y));
    memcpy(&y, p, sizeof(y));
    T_EQ(y, 144);
    jg_future_unref(f);

    /* A task's error and its message. */
    x = 13;
    T_OK(jg_executor_submit(ex, &f, "test.square", &x, sizeof(x)));
    T_ERR(jg_future_result(f, NULL, JG_FOREVER), -EDOM);
    T_STREQ(jg_future_error_message(f), "unlucky 13");
    jg_future_unref(f);

    /* A large input is copied whole. */
    {
        char big[200] = { 0 };
        T_OK(jg_executor_submit(ex, &f, "test.square", big, sizeof(big)));
        T_ERR(jg_future_result(f, NULL, JG_FOREVER), -EINVAL);
        T_STREQ(jg_future_error_message(f), "want 8 bytes, got 200");
        jg_future_unref(f);
    }

    T_ERR(jg_executor_submit(ex, &f, "no.such.task", &x, sizeof(x)),
          -ENOENT);
    T_ERR(jg_executor_submit(ex, &f, "", &x, sizeof(x)), -EINVAL);
    T_ERR(jg_executor_submit(ex, &f, "test.square", NULL, 8), -EINVAL);
    T_ERR(jg_executor_submit(NULL, &f, "test.square", &x, 8), -EINVAL);
    T_ERR(jg_executor_call(ex, &f, NULL, NULL), -EINVAL);
    T_ERR(jg_executor_call(ex, NULL, ret_arg, NULL), -EINVAL);

    T_OK(jg_executor_call(ex, &f, ret_arg, &x));
    T_OK(jg_future_result(f, &v, JG_FOREVER));
    T_PEQ(v, &x);
    jg_future_unref(f);
    jg_executor_destroy(ex);

    T_ERR(jg_thread_pool_create(NULL, NULL), -EINVAL);
    o.workers = -1;
    T_ERR(jg_thread_pool_create(&ex, &o), -EINVAL);
    T_ERR(jg_executor_shutdown(NULL, JG_SHUTDOWN_WAIT), -EINVAL);
    T_OK(jg_thread_pool_create(&ex, NULL));
    T_ERR(jg_executor_shutdown(ex, 1u << 7), -EINVAL);
    T_OK(jg_executor_destroy(ex));
    T_ERR(jg_executor_destroy(NULL), -EINVAL);
    T_ERR(jg_executor_destroy(jg_executor_default()), -EINVAL);
}

/* A backend without plain calls gives -ENOTSUP through the generic layer. */
static int fake_submit(struct jg_executor *ex, const char *name,
                       const void *in, size_t n, struct jg_future *f)
{
    (void)ex, (void)name, (void)in, (void)n, (void)f;
    return -ENOSYS;
}

static void test_call_notsup(void)
{
    static const struct jg__executor_ops ops = { .name = "fake",
                                                 .submit = fake_submit };
    struct jg_executor ex = { &ops };
    struct jg_future *f = NULL;

    T_ERR(jg_executor_call(&ex, &f, ret_arg, NULL), -ENOTSUP);
    T_ERR(jg_executor_submit(&ex, &f, "x", NULL, 0), -ENOSYS);
    T_PEQ(f, NULL);
}

/* ---- map ----------------------------------------------------------------- */

static void test_map_order(void)
{
    long n = t_scale(10000);
    struct jg_executor *ex;
    struct jg_thread_pool_opts o = { .workers = 3 };
    int64_t *in = malloc((size_t)n * sizeof(*in));
    int64_t *out = malloc((size_t)n * sizeof(*out));
    size_t chunks[] = { 0, 1, 7, 1000000 };

    T_ASSERT(in && out);
    for (long i = 0; i < n; i++)
        in[i] = i == 13 ? 14 : i;
    T_OK(jg_thread_pool_create(&ex, &o));
    for (size_t c = 0; c < JG_ARRAY_SIZE(chunks); c++) {
        memset(out, 0xff, (size_t)n * sizeof(*out));
        T_OK(jg_executor_map(ex, "test.square", in, sizeof(*in), (size_t)n,
                             out, sizeof(*out), chunks[c], JG_SEC(30)));
        for (long i = 0; i < n; i++)
            T_EQ(out[i], in[i] * in[i]);
    }
    /* The first failing item's error; a wrong result size. */
    if (n > 20) {
        in[13] = 13;
        T_ERR(jg_executor_map(ex, "test.square", in, sizeof(*in),
                              (size_t)n, out, sizeof(*out), 5, JG_FOREVER),
              -EDOM);
    }
    T_ERR(jg_executor_map(ex, "test.uneven", in, sizeof(*in), 4, out,
                          sizeof(*out), 1, JG_FOREVER), -EMSGSIZE);
    T_ERR(jg_executor_map(ex, "no.such", in, sizeof(*in), 4, out,
                          sizeof(*out), 1, JG_FOREVER), -ENOENT);
    T_OK(jg_executor_map(ex, "test.square", in, sizeof(*in), 0, out,
                         sizeof(*out), 1, JG_FOREVER));
    T_ERR(jg_executor_map(ex, "test.square", NULL, sizeof(*in), 4, out,
                          sizeof(*out), 1, JG_FOREVER), -EINVAL);
    T_ERR(jg_executor_map(ex, "test.square", in, sizeof(*in), 4, out,
                          sizeof(*out), 1, -3), -EINVAL);
    T_OK(jg_executor_shutdown(ex, JG_SHUTDOWN_WAIT));
    T_ERR(jg_executor_map(ex, "test.square", in, sizeof(*in), 4, out,
                          sizeof(*out), 1, JG_FOREVER), -ESHUTDOWN);
    jg_executor_destroy(ex);
    free(in);
    free(out);
}

/* ---- gates: block a worker until the test lets it go --------------------- */

static struct jg_future *gate;
static atomic_int started;

static void *gated(void *arg)
{
    atomic_fetch_add(&started, 1);
    T_OK(jg_future_result(gate, NULL, JG_FOREVER));
    return arg;
}

static void wait_started(int n)
{
    while (atomic_load(&started) < n)
        usleep(100);
}

static void test_shutdown_cancel_pending(void)
{
    enum { N = 200 };
    struct jg_thread_pool_opts o = { .workers = 1 };
    struct jg_executor *ex;
    struct jg_future *f[N], *late;
    int done = 0, cancelled = 0;

    T_OK(jg_future_create(&gate));
    atomic_store(&started, 0);
    T_OK(jg_thread_pool_create(&ex, &o));
    for (int i = 0; i < N; i++)
        T_OK(jg_executor_call(ex, &f[i], gated, (void *)(intptr_t)i));
    wait_started(1);
    T_OK(jg_executor_shutdown(ex, JG_SHUTDOWN_CANCEL_PENDING));
    T_ERR(jg_executor_call(ex, &late, gated, NULL), -ESHUTDOWN);
    T_ERR(jg_executor_submit(ex, &late, "test.square", "12345678", 8),
          -ESHUTDOWN);
    T_OK(jg_future_set_value(gate, NULL));
    /* Idempotent. */
    T_OK(jg_executor_shutdown(ex, JG_SHUTDOWN_WAIT |
                                  JG_SHUTDOWN_CANCEL_PENDING));
    for (int i = 0; i < N; i++) {
        int s = jg_future_state(f[i]);
        void *v;

        T_ASSERT(s == JG_FUTURE_DONE || s == JG_FUTURE_CANCELLED);
        if (s == JG_FUTURE_DONE) {
            T_OK(jg_future_result(f[i], &v, 0));
            T_EQ((intptr_t)v, i);
            done++;
        } else {
            T_ERR(jg_future_result(f[i], &v, 0), -ECANCELED);
            cancelled++;
        }
        jg_future_unref(f[i]);
    }
    /* The running one finished; every queued one was cancelled. */
    T_EQ(done, 1);
    T_EQ(cancelled, N - 1);
    T_EQ(atomic_load(&started), 1);
    jg_executor_destroy(ex);
    jg_future_unref(gate);
}

static void test_shutdown_runs_pending(void)
{
    long n = t_scale(2000);
    struct jg_thread_pool_opts o = { .workers = 2 };
    struct jg_executor *ex;
    struct jg_future **f = malloc((size_t)n * sizeof(*f));

    T_OK(jg_future_create(&gate));
    atomic_store(&started, 0);
    T_OK(jg_thread_pool_create(&ex, &o));
    for (long i = 0; i < n; i++)
        T_OK(jg_executor_call(ex, &f[i], gated, (void *)(intptr_t)i));
    T_OK(jg_executor_shutdown(ex, 0));
    T_OK(jg_future_set_value(gate, NULL));
    /* destroy = shutdown(wait, run pending): every one ran. */
    jg_executor_destroy(ex);
    for (long i = 0; i < n; i++) {
        void *v;
        T_OK(jg_future_result(f[i], &v, 0));
        T_EQ((intptr_t)v, i);
        jg_future_unref(f[i]);
    }
    T_EQ(atomic_load(&started), n);
    free(f);
    jg_future_unref(gate);
}

/* A user cancel of a queued task: it never runs. */
static void test_cancel_queued(void)
{
    struct jg_thread_pool_opts o = { .workers = 1 };
    struct jg_executor *ex;
    struct jg_future *a, *b, *c;

    T_OK(jg_future_create(&gate));
    atomic_store(&started, 0);
    T_OK(jg_thread_pool_create(&ex, &o));
    T_OK(jg_executor_call(ex, &a, gated, NULL));
    T_OK(jg_executor_call(ex, &b, gated, NULL));
    T_OK(jg_executor_call(ex, &c, gated, NULL));
    wait_started(1);
    T_ERR(jg_future_cancel(a), -EBUSY);
    T_OK(jg_future_cancel(b));
    T_OK(jg_future_set_value(gate, NULL));
    T_OK(jg_future_result(c, NULL, JG_FOREVER));
    T_OK(jg_future_result(a, NULL, JG_FOREVER));
    T_ERR(jg_future_result(b, NULL, JG_FOREVER), -ECANCELED);
    T_EQ(atomic_load(&started), 2);
    jg_future_unref(a);
    jg_future_unref(b);
    jg_future_unref(c);
    jg_executor_destroy(ex);
    jg_future_unref(gate);
}

static void test_bounded_queue(void)
{
    struct jg_thread_pool_opts o = { .workers = 1, .queue_max = 4 };
    struct jg_executor *ex;
    struct jg_future *f[6];

    T_OK(jg_future_create(&gate));
    atomic_store(&started, 0);
    T_OK(jg_thread_pool_create(&ex, &o));
    T_OK(jg_executor_call(ex, &f[0], gated, NULL));
    wait_started(1);            /* taken: no longer queued */
    for (int i = 1; i <= 4; i++)
        T_OK(jg_executor_call(ex, &f[i], gated, NULL));
    T_ERR(jg_executor_call(ex, &f[5], gated, NULL), -EAGAIN);
    T_OK(jg_future_set_value(gate, NULL));
    for (int i = 0; i <= 4; i++) {
        T_OK(jg_future_result(f[i], NULL, JG_FOREVER));
        jg_future_unref(f[i]);
    }
    /* Room again. */
    T_OK(jg_executor_call(ex, &f[5], gated, NULL));
    T_OK(jg_future_result(f[5], NULL, JG_FOREVER));
    jg_future_unref(f[5]);
    jg_executor_destroy(ex);
    jg_future_unref(gate);
}

/* ---- initializer and thread-locals --------------------------------------- */

static atomic_int inits;
static _Thread_local int tls_id;
static _Thread_local int tls_tasks;

static void init_worker(void *arg)
{
    T_PEQ(arg, &inits);
    tls_id = atomic_fetch_add(&inits, 1) + 1;
}

struct seen {
    int id;
    int *addr;
};

static void *who(void *arg)
{
    struct seen *s = arg;

    tls_tasks++;
    s->id = tls_id;
    s->addr = &tls_tasks;
    usleep(200);
    return NULL;
}

static void test_init_and_tls(void)
{
    enum { W = 3, N = 60 };
    struct jg_thread_pool_opts o = { .workers = W, .init = init_worker,
                                     .init_arg = &inits };
    struct jg_executor *ex;
    struct jg_future *f[N];
    struct seen s[N];
    int per_id[W + 1] = { 0 };

    atomic_store(&inits, 0);
    T_OK(jg_thread_pool_create(&ex, &o));
    for (int i = 0; i < N; i++)
        T_OK(jg_executor_call(ex, &f[i], who, &s[i]));
    for (int i = 0; i < N; i++) {
        T_OK(jg_future_result(f[i], NULL, JG_FOREVER));
        jg_future_unref(f[i]);
    }
    jg_executor_destroy(ex);
    /* Once per worker, before its first task. */
    T_EQ(atomic_load(&inits), W);
    for (int i = 0; i < N; i++) {
        T_ASSERT(s[i].id >= 1 && s[i].id <= W);
        per_id[s[i].id]++;
        /* The same worker id always means the same thread-local. */
        for (int j = 0; j < i; j++)
            T_EQ(s[j].id == s[i].id, s[j].addr == s[i].addr);
    }
    /* The main thread's thread-local was never touched. */
    T_EQ(tls_id, 0);
    T_EQ(tls_tasks, 0);
}

/* ---- default pool, green waiters ----------------------------------------- */

static void test_default_pool(void)
{
    struct jg_executor *ex = jg_executor_default();
    struct jg_future *f;
    void *v;

    T_ASSERT(ex != NULL);
    T_PEQ(jg_executor_default(), ex);
    T_OK(jg_executor_call(ex, &f, ret_arg, (void *)42));
    T_OK(jg_future_result(f, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 42);
    jg_future_unref(f);
    /* It cannot be destroyed: it serves the whole process. */
    jg_executor_destroy(ex);
    T_OK(jg_executor_call(ex, &f, ret_arg, NULL));
    T_OK(jg_future_result(f, NULL, JG_FOREVER));
    jg_future_unref(f);
}

/* Ticks of a green thread, read by the pool's workers too. */
static _Atomic int ticks, stop_ticking;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticking)) {
        if (jg_sleep(JG_MS(2)) < 0)
            break;
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

/* On a worker: ends once the hub has ticked 5 times since it began (10 s
 * cap, then NULL): a wait that held the hub would see no tick. */
static void *slow_call(void *arg)
{
    int from = atomic_load(&ticks);

    for (int i = 0; i < 10000 && atomic_load(&ticks) - from < 5; i++)
        usleep(1000);
    return atomic_load(&ticks) - from >= 5 ? arg : NULL;
}

static void *await_pool(void *arg)
{
    struct jg_future *f;
    void *v = NULL;
    int rc;

    T_OK(jg_executor_call(arg, &f, slow_call, (void *)77));
    rc = jg_future_result(f, &v, JG_FOREVER);
    jg_future_unref(f);
    return rc < 0 ? JG_ERR(rc) : v;
}

static void test_green_awaits_pool_hub_serves(void)
{
    struct jg_spawn_opts sliced = { .stack_model = JG_STACK_SLICED };
    struct jg_thread_pool_opts o = { .workers = 2 };
    struct jg_executor *ex;
    struct jg_green *a, *b, *tk;
    void *v;

    atomic_store(&ticks, 0);
    atomic_store(&stop_ticking, 0);
    T_OK(jg_thread_pool_create(&ex, &o));
    T_OK(jg_spawn(&tk, ticker, NULL, NULL));
    T_OK(jg_spawn(&a, await_pool, ex, NULL));
    T_OK(jg_spawn(&b, await_pool, ex, &sliced));
    T_OK(jg_join(a, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 77);
    T_OK(jg_join(b, &v, JG_FOREVER));
    T_EQ((intptr_t)v, 77);
    /* The timer of another green thread kept firing meanwhile (each
     * call saw 5 ticks, or its result would be NULL). */
    T_ASSERT(atomic_load(&ticks) >= 5);
    atomic_store(&stop_ticking, 1);
    T_OK(jg_join(tk, NULL, JG_FOREVER));
    jg_executor_destroy(ex);
}

/* ---- a burst: nothing lost ----------------------------------------------- */

static atomic_long sum;

static void *add_one(void *arg)
{
    atomic_fetch_add_explicit(&sum, (long)(intptr_t)arg,
                              memory_order_relaxed);
    return arg;
}

static void test_burst(void)
{
    long n = t_scale(200000);
    struct jg_executor *ex;
    struct jg_future **f = malloc((size_t)n * sizeof(*f));
    long want = 0;

    atomic_store(&sum, 0);
    T_OK(jg_thread_pool_create(&ex, NULL));
    for (long i = 0; i < n; i++) {
        T_OK(jg_executor_call(ex, &f[i], add_one, (void *)(intptr_t)(i % 7)));
        want += i % 7;
    }
    for (long i = 0; i < n; i++) {
        void *v;
        T_OK(jg_future_result(f[i], &v, JG_FOREVER));
        T_EQ((intptr_t)v, i % 7);
        jg_future_unref(f[i]);
    }
    T_EQ(atomic_load(&sum), want);
    jg_executor_destroy(ex);
    free(f);
}

/* shutdown(wait) from one of the pool's own tasks would wait for itself. */
static struct jg_executor *self_ex;

static void *shutdown_self(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)jg_executor_shutdown(self_ex, JG_SHUTDOWN_WAIT);
}

static void test_shutdown_from_task(void)
{
    struct jg_future *f;
    void *v;

    T_OK(jg_thread_pool_create(&self_ex, NULL));
    T_OK(jg_executor_call(self_ex, &f, shutdown_self, NULL));
    T_OK(jg_future_result(f, &v, JG_FOREVER));
    T_EQ((intptr_t)v, -EDEADLK);
    jg_future_unref(f);
    jg_executor_destroy(self_ex);
}

T_MAIN(T_CASE(test_submit_and_call), T_CASE(test_call_notsup),
       T_CASE(test_map_order), T_CASE(test_shutdown_cancel_pending),
       T_CASE(test_shutdown_runs_pending), T_CASE(test_cancel_queued),
       T_CASE(test_bounded_queue), T_CASE(test_init_and_tls),
       T_CASE(test_default_pool),
       T_CASE(test_green_awaits_pool_hub_serves), T_CASE(test_burst),
       T_CASE(test_shutdown_from_task))
