/* SPDX-License-Identifier: MIT */
/*
 * juggle/patch.h - the monkey patching of C: with libjuggle_preload.so.0 in
 * LD_PRELOAD (or linked with -ljuggle_preload), plain blocking libc calls
 * made from a green thread (read, recv, connect, accept, poll, sleep, ...)
 * park only that green thread; from a plain OS thread or the hub they are
 * libc's own. These calls switch the patch and report on it (docs/preload.md).
 */
#ifndef JUGGLE_PATCH_H
#define JUGGLE_PATCH_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Turn the patch on or off for the whole process (it starts on, or off with
 * JG_PATCH=0 in the environment). Calls already parked finish as they
 * started. Returns 0 when a preload library serves this runtime, -ENOSYS
 * when none is loaded (the setting is kept and applies if one attaches).
 * Thread-safe; does not switch.
 */
JG_API int jg_patch_enable(bool on);
/* true when a preload library serves this runtime and the patch is on;
 * false when none is loaded (JG_PATCH_DEBUG=1 then says so on stderr). */
JG_API bool jg_patch_enabled(void);
/*
 * How many calls of the interposed function `name` ("read", "usleep",
 * "__read_chk", ...) took the cooperative path so far, process-wide: the
 * way to check that the patch applies to a library. -EINVAL (NULL name),
 * -ENOENT (not an interposed name), -ENOSYS (no preload library).
 * Thread-safe.
 */
JG_API int64_t jg_patch_calls(const char *name);

/*
 * Programs linked with libjuggle.a: referencing this symbol from every file
 * that includes the header links the hook (the object that introduces
 * this copy of the runtime to libjuggle_preload.so) into the program.
 */
JG_API extern const int jg_patch_hook;
#ifndef JG_BUILDING
static const int *const jg_patch_hook_ref_
    __attribute__((used, unused)) = &jg_patch_hook;
#endif

#ifdef __cplusplus
}
#endif
#endif
