/* SPDX-License-Identifier: MIT */
/*
 * preload_fortify.c - a client built as Debian builds its packages (-O2
 * -D_FORTIFY_SOURCE=2), so its reads, recvs and polls compile to
 * __read_chk, __recv_chk, __recvfrom_chk and __poll_chk: the patch must
 * catch those entry points too, and count them cooperative.
 */
#include <juggle.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "t.h"

#if !defined(_FORTIFY_SOURCE) || _FORTIFY_SOURCE < 2 || !defined(__OPTIMIZE__)
#error "build with -O2 -D_FORTIFY_SOURCE=2 (src/preload/CMakeLists.txt)"
#endif

static int sv[2];
/* Sizes unknown at compile time: the fortified wrappers call the _chk
 * functions (with a constant the compiler checks and calls plain read). */
static volatile size_t want = 1;
static volatile nfds_t npoll = 1;

static void *late_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        T_OK(jg_sleep(JG_MS(20)));
        T_EQ(write(sv[1], &"abcd"[i], 1), 1);
    }
    return NULL;
}

static void test_fortified_calls_are_cooperative(void)
{
    struct jg_green *w;
    char buf[16];
    struct pollfd p[1];
    int64_t r0 = jg_patch_calls("__read_chk");
    int64_t r1 = jg_patch_calls("__recv_chk");
    int64_t r2 = jg_patch_calls("__recvfrom_chk");
    int64_t r3 = jg_patch_calls("__poll_chk");

    T_OK(r0);
#if defined(__clang__)
    /* clang (the TSan build) with glibc 2.36's headers calls plain read,
     * recv and poll here: there are no _chk entry points to check. */
    T_SKIP("clang does not call the glibc _chk entry points");
#endif
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    T_OK(jg_spawn(&w, late_writer, NULL, NULL));
    /* Each call waits for the writer, a green thread of the same hub:
     * without the patch these would block it forever. */
    T_EQ(read(sv[0], buf, want), 1);
    T_EQ(buf[0], 'a');
    T_EQ(recv(sv[0], buf, want, 0), 1);
    T_EQ(buf[0], 'b');
    T_EQ(recvfrom(sv[0], buf, want, 0, NULL, NULL), 1);
    T_EQ(buf[0], 'c');
    p[0] = (struct pollfd){ .fd = sv[0], .events = POLLIN };
    T_EQ(poll(p, npoll, 5000), 1);
    T_EQ(read(sv[0], buf, want), 1);
    T_EQ(buf[0], 'd');
    T_OK(jg_join(w, NULL, JG_FOREVER));
    T_EQ(jg_patch_calls("__read_chk") - r0, 2);
    T_EQ(jg_patch_calls("__recv_chk") - r1, 1);
    T_EQ(jg_patch_calls("__recvfrom_chk") - r2, 1);
    T_EQ(jg_patch_calls("__poll_chk") - r3, 1);
    close(sv[0]);
    close(sv[1]);
}

T_MAIN(T_CASE(test_fortified_calls_are_cooperative))
