// SPDX-License-Identifier: MIT
// callcc.cpp - anchor: boost.context's switch round trip A -> B -> A through
// its public continuation API (callcc / resume), and through the lower
// fcontext layer (make_fcontext / jump_fcontext) that callcc is built on.
#include <boost/context/continuation.hpp>
#include <boost/context/detail/fcontext.hpp>

#include <cstdlib>
#include <utility>

#include "../bench.h"

namespace ctx = boost::context;

static const long N = 2000000L;
static const std::size_t STACK = 64 * 1024;

// callcc: main is A, the continuation is B; one resume there and back.
static double callcc_once(void *)
{
    bool stop = false;
    ctx::continuation b = ctx::callcc(
        [&stop](ctx::continuation &&a) {
            while (!stop)
                a = a.resume();
            return std::move(a);
        });
    int64_t t0 = bench_now();
    for (long i = 0; i < N; i++)
        b = b.resume();
    int64_t t1 = bench_now();
    stop = true;
    b = b.resume();                     // B returns; its stack is freed
    return bench_per(t0, t1, N);
}

// fcontext: the raw jump, B bouncing every transfer straight back.
static void fctx_b(ctx::detail::transfer_t t)
{
    for (;;)
        t = ctx::detail::jump_fcontext(t.fctx, nullptr);
}

static double fcontext_once(void *)
{
    void *stack = std::malloc(STACK);
    if (!stack)
        bench_die("malloc", 0);
    // make_fcontext takes the top of the stack (it grows down).
    ctx::detail::fcontext_t b =
        ctx::detail::make_fcontext(static_cast<char *>(stack) + STACK,
                                   STACK, fctx_b);
    b = ctx::detail::jump_fcontext(b, nullptr).fctx;     // start B
    int64_t t0 = bench_now();
    for (long i = 0; i < N; i++)
        b = ctx::detail::jump_fcontext(b, nullptr).fctx;
    int64_t t1 = bench_now();
    // B is left suspended forever; its stack can go, nothing resumes it.
    std::free(stack);
    return bench_per(t0, t1, N);
}

int main()
{
    bench_print("switch.roundtrip.callcc", bench_run(callcc_once, nullptr),
                "ns");
    bench_print("switch.roundtrip.fcontext",
                bench_run(fcontext_once, nullptr), "ns");
    return 0;
}
