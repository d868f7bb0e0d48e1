/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_cookie.c: libFuzzer target. The input is one Cookie request header
 * (up to its first NUL, as httpd hands it over) for sk_cookie_each and
 * sk_cookie_get. Besides the sanitizers, it checks what the rest of the
 * module relies on:
 *   - every pair lies inside the header, its name is non-empty and holds no
 *     ';', '=' or surrounding blank, its value holds no ';';
 *   - the return value counts the pairs seen (or is -1 when stopped);
 *   - sk_cookie_get finds the FIRST pair of a name, exactly as the walk saw
 *     it (a duplicated sk-access-token cannot be read two ways), and never
 *     a name that is only a prefix or suffix of another. */
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>

#include "sk_cookie.h"

#define MAX_PAIRS 4096

typedef struct {
    const char *hdr;
    size_t hlen;
    int n;
    struct { const char *name, *value; size_t nlen, vlen; } pairs[MAX_PAIRS];
    int stop_at;                 /* stop the walk after this many pairs (-1: never) */
} walk;

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

static int on_pair(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    walk *w = ctx;
    /* Inside the header, name before value. */
    if (name < w->hdr || name + nlen > w->hdr + w->hlen)
        abort();
    if (value < w->hdr || value + vlen > w->hdr + w->hlen || value < name + nlen)
        abort();
    if (nlen == 0 || memchr(name, ';', nlen) || memchr(name, '=', nlen))
        abort();
    if (blank(name[0]) || blank(name[nlen - 1]))
        abort();
    if (memchr(value, ';', vlen))
        abort();
    if (w->n < MAX_PAIRS) {
        w->pairs[w->n].name = name;
        w->pairs[w->n].nlen = nlen;
        w->pairs[w->n].value = value;
        w->pairs[w->n].vlen = vlen;
    }
    w->n++;
    return w->stop_at >= 0 && w->n >= w->stop_at;
}

static apr_pool_t *pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    return 0;
}

/* The first pair called name, as the walk saw it; NULL if none. */
static int first_of(const walk *w, const char *name, size_t nlen)
{
    for (int i = 0; i < w->n && i < MAX_PAIRS; i++)
        if (w->pairs[i].nlen == nlen && !memcmp(w->pairs[i].name, name, nlen))
            return i;
    return -1;
}

static void check_get(const walk *w, const char *hdr, const char *name, size_t nlen)
{
    char *cname = strndup(name, nlen);
    if (!cname)
        return;
    const char *got = sk_cookie_get(pool, hdr, cname);
    int i = first_of(w, name, nlen);
    if (w->n <= MAX_PAIRS) {
        if ((i < 0) != (got == NULL))
            abort();
        if (got && (strlen(got) != w->pairs[i].vlen
                    || memcmp(got, w->pairs[i].value, w->pairs[i].vlen)))
            abort();
    }
    free(cname);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static walk w;
    char *hdr = malloc(size + 1);
    if (!hdr)
        return 0;
    memcpy(hdr, data, size);
    hdr[size] = '\0';

    memset(&w, 0, sizeof(w));
    w.hdr = hdr;
    w.hlen = strlen(hdr);
    w.stop_at = -1;
    int n = sk_cookie_each(hdr, on_pair, &w);
    if (n != w.n)
        abort();

    /* The names the module reads, and every name seen (first one wins). */
    static const char *const names[] = { "sk-access-token", "sk-id-token",
        "sk-refresh-token", "sk-state-", "a", "" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        check_get(&w, hdr, names[i], strlen(names[i]));
    for (int i = 0; i < w.n && i < 16; i++)
        check_get(&w, hdr, w.pairs[i].name, w.pairs[i].nlen);

    /* The one-walk reader of the hot path agrees with sk_cookie_get on each
     * name (it reports an empty first value as absent). */
    const char *many[3];
    sk_cookie_get_many(pool, hdr, names, many, 3);
    for (int i = 0; i < 3; i++) {
        const char *one = sk_cookie_get(pool, hdr, names[i]);
        if ((one && *one) != (many[i] != NULL) || (many[i] && strcmp(one, many[i])))
            abort();
    }

    /* A walk stopped early reports -1 and saw exactly that many pairs. */
    if (n > 1) {
        int all = n;
        memset(&w, 0, sizeof(w));
        w.hdr = hdr;
        w.hlen = strlen(hdr);
        w.stop_at = all / 2;
        if (sk_cookie_each(hdr, on_pair, &w) != -1 || w.n != all / 2)
            abort();
    }
    apr_pool_clear(pool);
    free(hdr);
    return 0;
}
