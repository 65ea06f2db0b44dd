/* SPDX-License-Identifier: MIT */
/*
 * preload_curl_linked.c - preload_curl's cases with libjuggle_preload.so
 * linked at build time (-ljuggle_preload) instead of LD_PRELOAD: the
 * program's own copy of the runtime attaches to it, and unmodified libcurl
 * is made cooperative all the same.
 */
#define PRELOAD_CURL_LINKED 1
#include "preload_curl.c"
