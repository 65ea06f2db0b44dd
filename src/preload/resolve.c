/* SPDX-License-Identifier: MIT */
/*
 * resolve.c - name resolution from green threads: getaddrinfo, getnameinfo
 * and the gethostbyname family run libc's own code on the runtime's
 * blocking-offload pool, parking only the calling green thread, with libc's
 * return codes, h_errno and errno. The static result of gethostbyname
 * becomes green-local. Everything a pool thread reads or writes is on the
 * heap: a parked green thread's stack may be copied out at any moment.
 */
#include <ctype.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "preload/preload.h"

PL_SYM(getaddrinfo);
PL_SYM(getnameinfo);
PL_SYM(gethostbyname);
PL_SYM(gethostbyname2);
PL_SYM(gethostbyname_r);
PL_SYM(gethostbyname2_r);
PL_SYM(gethostbyaddr);
PL_SYM(gethostbyaddr_r);

/* The largest address gethostbyaddr takes (an IPv6 one). */
#define ADDR_MAX 16

/* ---- one lookup on the offload pool -------------------------------------- */

enum { OP_GAI, OP_GNI, OP_BYNAME, OP_BYADDR };

struct job {
    int op;
    int err;                    /* errno: the caller's in, libc's out */
    int herr;                   /* h_errno, likewise */
    int herr_r;                 /* the _r calls' *h_errnop out-param */
    int rc;
    union {
        struct {
            char *node, *service;
            struct addrinfo hints;
            bool has_hints;
            struct addrinfo *res;
        } gai;
        struct {
            struct sockaddr_storage sa;
            socklen_t salen;
            char *host, *serv;  /* after the job, in the same block */
            socklen_t hostlen, servlen;
            int flags;
        } gni;
        struct {
            char *name;
            int af;             /* AF_UNSPEC: gethostbyname_r */
            unsigned char addr[ADDR_MAX];
            socklen_t len;
            struct hostent he, *res;
            char *buf;
            size_t buflen;
        } hb;
    } u;
};

/* Runs on a pool thread (or, as a fallback, on the caller's own). */
static void *run_job(void *arg)
{
    struct job *j = arg;
    int herr = j->herr_r;

    /* The pool thread's errno and h_errno start as the caller's, so what
     * libc leaves in them (set, or untouched) is what it would have left
     * in the caller's. */
    errno = j->err;
    h_errno = j->herr;
    switch (j->op) {
    case OP_GAI:
        j->rc = REAL(getaddrinfo)(j->u.gai.node, j->u.gai.service,
                                  j->u.gai.has_hints ? &j->u.gai.hints
                                                     : NULL,
                                  &j->u.gai.res);
        break;
    case OP_GNI:
        j->rc = REAL(getnameinfo)((struct sockaddr *)&j->u.gni.sa,
                                  j->u.gni.salen, j->u.gni.host,
                                  j->u.gni.hostlen, j->u.gni.serv,
                                  j->u.gni.servlen, j->u.gni.flags);
        break;
    case OP_BYNAME:
        if (j->u.hb.af == AF_UNSPEC)
            j->rc = REAL(gethostbyname_r)(j->u.hb.name, &j->u.hb.he,
                                          j->u.hb.buf, j->u.hb.buflen,
                                          &j->u.hb.res, &herr);
        else
            j->rc = REAL(gethostbyname2_r)(j->u.hb.name, j->u.hb.af,
                                           &j->u.hb.he, j->u.hb.buf,
                                           j->u.hb.buflen, &j->u.hb.res,
                                           &herr);
        break;
    case OP_BYADDR:
        j->rc = REAL(gethostbyaddr_r)(j->u.hb.addr, j->u.hb.len,
                                      j->u.hb.af, &j->u.hb.he, j->u.hb.buf,
                                      j->u.hb.buflen, &j->u.hb.res, &herr);
        break;
    }
    j->err = errno;
    j->herr = h_errno;
    j->herr_r = herr;
    return NULL;
}

/*
 * Run j on the offload pool, parking the calling green thread: 0 when it
 * ran there; -ECANCELED (killed) or -ETIMEDOUT (a deadline scope ended)
 * when the caller must report a failure (any result j holds is the
 * caller's to free). When the pool cannot take it (no memory, no thread,
 * called from a loop callback) j runs right here, blocking, as libc would.
 */
static int offload(struct job *j)
{
    int rc;

    j->err = errno;
    j->herr = h_errno;
    rc = jg__pl_rt->run_in_thread(NULL, run_job, j, JG_FOREVER);
    if (rc == -ECANCELED || rc == -ETIMEDOUT)
        return rc;
    if (rc < 0)
        run_job(j);
    /* errno and h_errno are the OS thread's, shared by its green threads:
     * set them only now that this one runs again. */
    errno = j->err;
    h_errno = j->herr;
    return 0;
}

/* ---- getaddrinfo, getnameinfo -------------------------------------------- */

static char *dup_or_null(const char *s, bool *fail)
{
    char *d = NULL;

    if (s && !(d = strdup(s)))
        *fail = true;
    return d;
}

PL_EXPORT int getaddrinfo(const char *node, const char *service,
                          const struct addrinfo *hints,
                          struct addrinfo **res)
{
    bool fail = false;
    struct job *j;
    int rc;

    if (!jg__pl_green() || !res)
        return REAL(getaddrinfo)(node, service, hints, res);
    jg__pl_note(PL_getaddrinfo);
    j = calloc(1, sizeof(*j));
    if (!j)
        return EAI_MEMORY;
    j->op = OP_GAI;
    j->u.gai.node = dup_or_null(node, &fail);
    j->u.gai.service = dup_or_null(service, &fail);
    if (hints) {
        /* Only the fields getaddrinfo reads; the rest must be zero. */
        j->u.gai.hints.ai_flags = hints->ai_flags;
        j->u.gai.hints.ai_family = hints->ai_family;
        j->u.gai.hints.ai_socktype = hints->ai_socktype;
        j->u.gai.hints.ai_protocol = hints->ai_protocol;
        j->u.gai.has_hints = true;
    }
    if (fail) {
        rc = EAI_MEMORY;
    } else if ((rc = offload(j)) < 0) {
        /* Killed: a system error; a scope's deadline: a lookup that
         * timed out, which libc reports as a temporary failure. */
        errno = -rc;
        rc = rc == -ECANCELED ? EAI_SYSTEM : EAI_AGAIN;
    } else {
        rc = j->rc;
        *res = j->u.gai.res;
        j->u.gai.res = NULL;
    }
    if (j->u.gai.res)
        freeaddrinfo(j->u.gai.res);
    free(j->u.gai.node);
    free(j->u.gai.service);
    free(j);
    return rc;
}

PL_EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen,
                          char *host, socklen_t hostlen, char *serv,
                          socklen_t servlen, int flags)
{
    struct job *j;
    int rc;

    /* An address too long for any family fails at once in libc. */
    if (!jg__pl_green() || !sa || salen > sizeof(j->u.gni.sa))
        return REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen,
                                 flags);
    jg__pl_note(PL_getnameinfo);
    /* The answers land in the job's block, copied out after we resume. */
    j = calloc(1, sizeof(*j) + (host ? hostlen : 0) + (serv ? servlen : 0));
    if (!j)
        return EAI_MEMORY;
    j->op = OP_GNI;
    memcpy(&j->u.gni.sa, sa, salen);
    j->u.gni.salen = salen;
    j->u.gni.flags = flags;
    if (host) {
        j->u.gni.host = (char *)(j + 1);
        j->u.gni.hostlen = hostlen;
    }
    if (serv) {
        j->u.gni.serv = (char *)(j + 1) + (host ? hostlen : 0);
        j->u.gni.servlen = servlen;
    }
    if ((rc = offload(j)) < 0) {
        errno = -rc;
        rc = rc == -ECANCELED ? EAI_SYSTEM : EAI_AGAIN;
    } else {
        rc = j->rc;
        if (rc == 0 && host)
            memcpy(host, j->u.gni.host, hostlen);
        if (rc == 0 && serv)
            memcpy(serv, j->u.gni.serv, servlen);
    }
    free(j);
    return rc;
}

/* ---- the reentrant gethostbyname family ---------------------------------- */

/* p moved from the block at `from` to the same place in the one at `to`,
 * or p itself when it points elsewhere (libc's own memory). */
static void *moved(void *p, const char *from, char *to, size_t len)
{
    const char *c = p;

    if (c && c >= from && c < from + len)
        return to + (c - from);
    return p;
}

/* Copy a hostent built in buffer `from` into `to` (both len bytes), with
 * every pointer into the buffer shifted along. */
static void he_move(struct hostent *dst, const struct hostent *src,
                    const char *from, char *to, size_t len)
{
    memcpy(to, from, len);
    dst->h_name = moved(src->h_name, from, to, len);
    dst->h_aliases = moved(src->h_aliases, from, to, len);
    dst->h_addrtype = src->h_addrtype;
    dst->h_length = src->h_length;
    dst->h_addr_list = moved(src->h_addr_list, from, to, len);
    /* The arrays were copied with the buffer; only those inside it
     * are ours to rewrite. */
    if ((char *)dst->h_aliases != (char *)src->h_aliases)
        for (char **p = dst->h_aliases; *p; p++)
            *p = moved(*p, from, to, len);
    if ((char *)dst->h_addr_list != (char *)src->h_addr_list)
        for (char **p = dst->h_addr_list; *p; p++)
            *p = moved(*p, from, to, len);
}

/* The _r failure of a wait that ended early, as libc reports a system
 * error (killed) or a lookup that timed out (a deadline scope). */
static int early_r(int rc, struct hostent **result, int *h_errnop)
{
    *result = NULL;
    if (rc == -ECANCELED) {
        *h_errnop = NETDB_INTERNAL;
        errno = ECANCELED;
        return ECANCELED;
    }
    *h_errnop = TRY_AGAIN;
    errno = EAGAIN;
    return EAGAIN;
}

/*
 * gethostbyname_r (af AF_UNSPEC), gethostbyname2_r and gethostbyaddr_r
 * (addr != NULL) into the caller's buffer. The pool thread fills a heap
 * copy laid out at the same alignment, moved in after we resume.
 */
static int byname_r(enum jg__pl_name what, const char *name,
                    const void *addr, socklen_t alen, int af,
                    struct hostent *ret, char *buf, size_t buflen,
                    struct hostent **result, int *h_errnop)
{
    size_t mis = (uintptr_t)buf % 16;
    struct job *j;
    int rc;

    jg__pl_note(what);
    j = calloc(1, sizeof(*j) + buflen + 16);
    if (!j || (name && !(j->u.hb.name = strdup(name)))) {
        free(j);
        *result = NULL;
        *h_errnop = NETDB_INTERNAL;
        errno = ENOMEM;
        return ENOMEM;
    }
    j->op = addr ? OP_BYADDR : OP_BYNAME;
    j->u.hb.af = af;
    if (addr) {
        memcpy(j->u.hb.addr, addr, alen);
        j->u.hb.len = alen;
    }
    /* glibc aligns what it puts in the buffer by the buffer's address:
     * the same address modulo 16 keeps the layout valid once moved. */
    j->u.hb.buf = (char *)(((uintptr_t)(j + 1) + 15) & ~(uintptr_t)15) + mis;
    j->u.hb.buflen = buflen;
    /* What libc does not set stays the caller's. */
    j->herr_r = *h_errnop;
    if ((rc = offload(j)) < 0) {
        rc = early_r(rc, result, h_errnop);
    } else {
        rc = j->rc;
        *h_errnop = j->herr_r;
        *result = NULL;
        if (j->u.hb.res == &j->u.hb.he) {
            he_move(ret, &j->u.hb.he, j->u.hb.buf, buf, buflen);
            *result = ret;
        }
    }
    free(j->u.hb.name);
    free(j);
    return rc;
}

PL_EXPORT int gethostbyname_r(const char *name, struct hostent *ret,
                              char *buf, size_t buflen,
                              struct hostent **result, int *h_errnop)
{
    if (!jg__pl_green() || !name || !ret || !buf || !result || !h_errnop)
        return REAL(gethostbyname_r)(name, ret, buf, buflen, result,
                                     h_errnop);
    return byname_r(PL_gethostbyname_r, name, NULL, 0, AF_UNSPEC, ret, buf,
                    buflen, result, h_errnop);
}

PL_EXPORT int gethostbyname2_r(const char *name, int af,
                               struct hostent *ret, char *buf,
                               size_t buflen, struct hostent **result,
                               int *h_errnop)
{
    /* AF_UNSPEC is gethostbyname_r's mark here, and libc refuses it. */
    if (!jg__pl_green() || !name || !ret || !buf || !result || !h_errnop ||
        af == AF_UNSPEC)
        return REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result,
                                      h_errnop);
    return byname_r(PL_gethostbyname2_r, name, NULL, 0, af, ret, buf,
                    buflen, result, h_errnop);
}

/* ---- gethostbyname and friends: a result per green thread ---------------- */

/*
 * libc keeps one static hostent per OS thread for each function; green
 * threads share their OS thread, so each green thread gets its own, kept
 * in green-local storage until it ends. The buffers are heap memory the
 * pool thread writes into directly.
 */
enum { SLOT_BYNAME, SLOT_BYNAME2, SLOT_BYADDR, NSLOTS };

struct he_slot {
    struct hostent he;
    char *buf;
    size_t cap;
};

struct he_store {
    struct he_slot slot[NSLOTS];
};

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static uint32_t store_key;      /* 0: none could be made */

static void store_free(void *p)
{
    struct he_store *s = p;

    for (int i = 0; i < NSLOTS; i++)
        free(s->slot[i].buf);
    free(s);
}

static void key_make(void)
{
    uint32_t k;

    if (jg__pl_rt->local_key_create(&k, store_free) == 0)
        store_key = k;
}

/* The calling green thread's slot, made on first use; NULL when the
 * caller is not a green thread, or the slot cannot be made (no memory, no
 * key left, a runtime without green-locals): the caller goes to libc. */
static struct he_slot *green_slot(int which)
{
    struct he_store *s;

    if (!jg__pl_green() || !jg__pl_rt->local_key_create)
        return NULL;
    pthread_once(&key_once, key_make);
    if (!store_key)
        return NULL;
    s = jg__pl_rt->local_get(store_key);
    if (!s) {
        if (!(s = calloc(1, sizeof(*s))))
            return NULL;
        if (jg__pl_rt->local_set(store_key, s) < 0) {
            free(s);
            return NULL;
        }
    }
    return &s->slot[which];
}

/*
 * The non-reentrant call: the _r call on the pool into the slot's buffer,
 * grown and retried on ERANGE as glibc does for its own static one.
 * Returns the slot's hostent, or NULL with h_errno set. As glibc's own
 * gethostbyname (nss/getXXbyYY.c): errno is what the last _r call left
 * there (each attempt starts from the previous one's), and h_errno takes
 * the _r call's *h_errnop only when that is not 0 (NETDB_SUCCESS).
 */
static struct hostent *byname_slot(struct he_slot *sl, enum jg__pl_name what,
                                   const char *name, const void *addr,
                                   socklen_t alen, int af)
{
    struct hostent *res = NULL;
    struct job *j;
    int rc;

    jg__pl_note(what);
    j = calloc(1, sizeof(*j));
    if (!j || (name && !(j->u.hb.name = strdup(name))))
        goto nomem;
    j->op = addr ? OP_BYADDR : OP_BYNAME;
    j->u.hb.af = af;
    if (addr) {
        memcpy(j->u.hb.addr, addr, alen);
        j->u.hb.len = alen;
    }
    for (;;) {
        if (!sl->buf) {
            if (!(sl->buf = malloc(1024)))
                goto nomem;
            sl->cap = 1024;
        }
        j->u.hb.buf = sl->buf;
        j->u.hb.buflen = sl->cap;
        if ((rc = offload(j)) < 0) {
            int herr;
            (void)early_r(rc, &res, &herr);
            h_errno = herr;
            goto out;
        }
        if (j->rc != ERANGE || j->herr_r != NETDB_INTERNAL)
            break;
        /* Too small: double it (the old contents are of no use). */
        char *b = malloc(sl->cap * 2);
        if (!b)
            goto nomem;
        free(sl->buf);
        sl->buf = b;
        sl->cap *= 2;
    }
    if (j->u.hb.res == &j->u.hb.he) {
        /* The buffer is the slot's own: only the hostent moves. */
        sl->he = j->u.hb.he;
        res = &sl->he;
    }
    if (j->herr_r != NETDB_SUCCESS)
        h_errno = j->herr_r;
    goto out;
nomem:
    h_errno = NETDB_INTERNAL;
    errno = ENOMEM;
out:
    if (j)
        free(j->u.hb.name);
    free(j);
    return res;
}

/*
 * A name glibc's gethostbyname answers itself, before any lookup
 * (nss/digits_dots.c): a digit first and only digits and dots, or a hex
 * digit first with a colon somewhere (or a colon first) and only hex
 * digits, colons and dots. Its non-reentrant call then sets errno and
 * h_errno differently from the _r call, so those names take libc's own
 * non-reentrant call, which never waits.
 */
static bool digits_dots(const char *name)
{
    const char *c;

    if (*name >= '0' && *name <= '9') {
        for (c = name; *c; c++)
            if (!((*c >= '0' && *c <= '9') || *c == '.'))
                break;
        if (!*c)
            return true;
    }
    if (!(isxdigit((unsigned char)*name) && strchr(name, ':')) &&
        *name != ':')
        return false;
    for (c = name; *c; c++)
        if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
            return false;
    return true;
}

/* Deep-copy h into the slot (its buffer grown to fit): 0, or -ENOMEM. */
static int slot_copy(struct he_slot *sl, const struct hostent *h)
{
    size_t na = 0, nl = 0, len = strlen(h->h_name) + 1;
    size_t alen = h->h_length > 0 ? (size_t)h->h_length : 0;

    for (char **p = h->h_aliases; p && *p; p++, na++)
        len += strlen(*p) + 1;
    for (char **p = h->h_addr_list; p && *p; p++, nl++)
        len += alen;
    len += (na + nl + 2) * sizeof(char *);
    if (sl->cap < len) {
        char *b = malloc(len);
        if (!b)
            return -ENOMEM;
        free(sl->buf);
        sl->buf = b;
        sl->cap = len;
    }
    /* The pointer arrays first (aligned: malloc's block), then bytes. */
    char **al = (char **)sl->buf, **ad = al + na + 1;
    char *o = (char *)(ad + nl + 1);
    for (size_t i = 0; i < nl; i++, o += alen)
        ad[i] = memcpy(o, h->h_addr_list[i], alen);
    ad[nl] = NULL;
    for (size_t i = 0; i < na; i++, o += strlen(o) + 1)
        al[i] = strcpy(o, h->h_aliases[i]);
    al[na] = NULL;
    sl->he = (struct hostent){
        .h_name = strcpy(o, h->h_name), .h_aliases = al,
        .h_addrtype = h->h_addrtype, .h_length = h->h_length,
        .h_addr_list = ad,
    };
    return 0;
}

/* libc's static hostent is one per process: hold it while we copy. */
static pthread_mutex_t static_lock = PTHREAD_MUTEX_INITIALIZER;

/* A digits_dots name: libc's own call, its answer copied into the slot.
 * It waits for nothing, so the lock is never held across a park. */
static struct hostent *numeric_slot(struct he_slot *sl,
                                    enum jg__pl_name what, const char *name,
                                    int af)
{
    struct hostent *h, *res = NULL;

    jg__pl_note(what);
    pthread_mutex_lock(&static_lock);
    h = af == AF_UNSPEC ? REAL(gethostbyname)(name)
                        : REAL(gethostbyname2)(name, af);
    if (h) {
        int e = errno;
        if (slot_copy(sl, h) == 0) {
            res = &sl->he;
            errno = e;
        } else {
            h_errno = NETDB_INTERNAL;
            errno = ENOMEM;
        }
    }
    pthread_mutex_unlock(&static_lock);
    return res;
}

PL_EXPORT struct hostent *gethostbyname(const char *name)
{
    struct he_slot *sl;

    if (!name || !(sl = green_slot(SLOT_BYNAME)))
        return REAL(gethostbyname)(name);
    if (digits_dots(name))
        return numeric_slot(sl, PL_gethostbyname, name, AF_UNSPEC);
    return byname_slot(sl, PL_gethostbyname, name, NULL, 0, AF_UNSPEC);
}

PL_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    struct he_slot *sl;

    if (!name || af == AF_UNSPEC || !(sl = green_slot(SLOT_BYNAME2)))
        return REAL(gethostbyname2)(name, af);
    if (digits_dots(name))
        return numeric_slot(sl, PL_gethostbyname2, name, af);
    return byname_slot(sl, PL_gethostbyname2, name, NULL, 0, af);
}

PL_EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len,
                                        int type)
{
    struct he_slot *sl;

    /* Longer than any address: libc fails it at once. */
    if (!addr || len > ADDR_MAX || !(sl = green_slot(SLOT_BYADDR)))
        return REAL(gethostbyaddr)(addr, len, type);
    return byname_slot(sl, PL_gethostbyaddr, NULL, addr, len, type);
}
