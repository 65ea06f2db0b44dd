// SPDX-License-Identifier: MIT
// api_cxx.cpp - juggle.h from C++17: a C++ program spawns a green thread,
// joins it and gets its result back, and a green thread's future carries
// it too. Built only where a C++ compiler is found.
#include <juggle.h>

#include <cstdio>
#include <cstdlib>

static void *twice(void *arg)
{
    if (jg_sleep(JG_MS(1)) < 0)
        return JG_ERR(-ECANCELED);
    return reinterpret_cast<void *>(reinterpret_cast<intptr_t>(arg) * 2);
}

#define CHECK(e) do { \
        if (!(e)) { \
            std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #e); \
            return 1; \
        } \
    } while (0)

int main()
{
    struct jg_green *g = nullptr;
    struct jg_future *f = nullptr;
    void *res = nullptr;

    CHECK(jg_spawn(&g, twice, reinterpret_cast<void *>(21), nullptr) == 0);
    CHECK(jg_green_future(g, &f) == 0);
    CHECK(jg_join(g, &res, JG_FOREVER) == 0);
    CHECK(reinterpret_cast<intptr_t>(res) == 42);
    CHECK(jg_future_result(f, &res, 0) == 0);
    CHECK(reinterpret_cast<intptr_t>(res) == 42);
    jg_future_unref(f);
    std::puts("api_cxx: ok");
    return 0;
}
