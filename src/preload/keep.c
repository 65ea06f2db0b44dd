/* SPDX-License-Identifier: MIT */
/*
 * keep.c - libjuggle_preload_keep.o, which the linker script installed as
 * libjuggle_preload.so puts before the real libjuggle_preload.so.0 on
 * every link that says -ljuggle_preload. Its one strong reference to the
 * library makes the link need it, so --as-needed (Debian's default) keeps
 * the library even when the program itself calls no interposed function.
 * Built without the project's flags: data only, no instrumentation.
 */
struct jg__patch_pl;
struct jg__patch_rt;
extern const struct jg__patch_pl *jg__preload_attach(
    const struct jg__patch_rt *rt);

__attribute__((used)) static const struct jg__patch_pl *(*const keep)(
    const struct jg__patch_rt *) = jg__preload_attach;
