/* SPDX-License-Identifier: MIT */
/*
 * runtime.c - the runtime's side of the patch, compiled into libjuggle (not
 * into the preload library): jg_patch_enable and friends, and the one-time
 * introduction of this copy of the runtime to libjuggle_preload.so, so the
 * interposers park green threads on the very hubs the program's jg_* calls
 * use. The preload library never links a runtime of its own.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "iofd.h"
#include "sys.h"
#include "tp.h"
#include "abi.h"

/* Referenced from juggle/patch.h so that static links keep this object. */
const int jg_patch_hook = JG__PATCH_ABI;

static pthread_once_t attach_once = PTHREAD_ONCE_INIT;
/* Written once inside attach_once, read only after it. */
static const struct jg__patch_pl *pl;
/* -1: not set by jg_patch_enable yet (JG_PATCH decides at attach). */
static _Atomic int wanted = -1;

_Static_assert(offsetof(struct jg_hub, current) ==
               offsetof(struct jg__hub_head, current) &&
               offsetof(struct jg_hub, hub_g) ==
               offsetof(struct jg__hub_head, hub_g),
               "struct jg_hub must start with struct jg__hub_head");

static struct jg__hub_head *rt_hub(void)
{
    return (struct jg__hub_head *)(void *)jg__tls_hub;
}

static int rt_sleep_until(int64_t deadline)
{
    struct jg_green *g = jg__park_prepare();

    if (!g)
        return -ENOMEM;
    /* No wake source: only the deadline, a kill or a scope ends it. */
    return jg__park(deadline);
}

static const char *rt_name(void)
{
    return jg_name(NULL);
}

/* JG_PATCH_DEBUG=1, as the preload library reads it. */
static bool debug_on(void)
{
    const char *d = getenv("JG_PATCH_DEBUG");
    return d && *d && strcmp(d, "0") != 0;
}

/* One line on stderr, past the interposers (src/base/sys.h). */
static void say(const char *line)
{
    if (jg__sys_write(2, line, strlen(line)) < 0)
        return;
}

static void attach(void)
{
    static struct jg__patch_rt rt = {
        .abi = JG__PATCH_ABI,
        .head_size = sizeof(struct jg__hub_head),
        .tls_hub_off = JG__PATCH_NO_TP,
        .hub = rt_hub,
        .wait_fd = jg__wait_fd_until,
        .sleep_until = rt_sleep_until,
        .close = jg_close,
        .fd_closing = jg__fd_closing,
        .fd_fresh = jg__fd_fresh,
        .run_in_thread = jg_run_in_thread,
        .getaddrinfo = jg_getaddrinfo,
        .name = rt_name,
        .local_key_create = jg_local_key_create,
        .local_set = jg_local_set,
        .local_get = jg_local_get,
        .poll_wait = jg__poll_wait_until,
    };
    jg__patch_attach_fn fn;
    int w = atomic_load(&wanted);

    if (w < 0) {
        const char *env = getenv("JG_PATCH");
        w = !(env && strcmp(env, "0") == 0);
    }
    rt.enabled = w;
#if JG_ARCH_HAS_TP
    /* Initial-exec TLS sits at one offset from the thread pointer in every
     * thread: the interposers read our hub pointer without calling us. */
    rt.tls_hub_off = (long)((char *)&jg__tls_hub -
                            (char *)__builtin_thread_pointer());
#endif
    /* Not found: no preload library in this process; the patch is off. */
    *(void **)&fn = dlsym(RTLD_DEFAULT, JG__PATCH_ATTACH);
    if (fn)
        pl = fn(&rt);
    else if (debug_on())
        say("juggle-patch: no preload library in this process: the patch "
            "is off (LD_PRELOAD=libjuggle_preload.so.0, or link with "
            "-ljuggle_preload)\n");
}

/* Introduce ourselves before main, once the preload library (if any) is
 * relocated: constructors of preloaded and needed objects ran first. */
__attribute__((constructor)) static void patch_ctor(void)
{
    pthread_once(&attach_once, attach);
}

int jg_patch_enable(bool on)
{
    atomic_store(&wanted, on);
    pthread_once(&attach_once, attach);
    if (!pl)
        return -ENOSYS;
    pl->enable(on);
    return 0;
}

bool jg_patch_enabled(void)
{
    pthread_once(&attach_once, attach);
    return pl && pl->enabled();
}

int64_t jg_patch_calls(const char *name)
{
    if (!name)
        return -EINVAL;
    pthread_once(&attach_once, attach);
    if (!pl)
        return -ENOSYS;
    return pl->calls(name);
}
