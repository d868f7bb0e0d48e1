/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_cookie_filter.c: libFuzzer target for what keeps the module's own
 * cookies and the claim-header look-alikes from the application, on every
 * request (modules/cookie.c). The input: a first byte choosing the cookie
 * names (the defaults, sharing "sk-", or names sharing nothing), then a
 * Cookie header up to the first '\n', then header names one a line (for the
 * scrub), the last line also being a Cache-Control value. Checked:
 *   - the quick test never says "none of ours" when the filter would drop one;
 *   - the filter drops exactly the pairs sk_cookie_is_own names (checked
 *     against a reference), keeps every other pair in order with the value
 *     the reader sees, stays within sk_cookie_strip_size, and is idempotent;
 *   - sk_headers_scrub removes exactly the fields a reference prefix match
 *     names, keeps the rest in order, and leaves none behind;
 *   - sk_cache_control_private always keeps shared caches out and is
 *     idempotent. */
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_strings.h>

#include "sk_cookie.h"

#define MAX_PAIRS 2048

typedef struct {
    int n;
    struct { const char *name, *value; size_t nlen, vlen; } p[MAX_PAIRS];
} pairs;

static int collect(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    pairs *w = ctx;
    if (w->n < MAX_PAIRS) {
        w->p[w->n].name = name;
        w->p[w->n].nlen = nlen;
        w->p[w->n].value = value;
        w->p[w->n].vlen = vlen;
    }
    w->n++;
    return 0;
}

static apr_pool_t *pool;
static sk_cookie_names shared, apart;
static const char *const OWN[] = { "sk-access-token", "sk-id-token", "sk-refresh-token",
                                   "sk-session" };
static const char *const OWN2[] = { "at", "idt", "rt", "sess" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    static apr_pool_t *keep;
    apr_pool_create(&keep, NULL);
    sk_cookie_names_init(keep, &shared, OWN, 4, "sk-state-");
    sk_cookie_names_init(keep, &apart, OWN2, 4, "st-");
    return 0;
}

/* The reference: a name is ours when equal to one, or longer than the prefix. */
static int ref_own(const char *const *own, const char *prefix, const char *name, size_t n)
{
    for (int i = 0; i < 4; i++)
        if (strlen(own[i]) == n && !memcmp(own[i], name, n))
            return 1;
    size_t pl = strlen(prefix);
    return n > pl && !memcmp(name, prefix, pl);
}

static void check_filter(const sk_cookie_names *own, const char *const *names,
                         const char *prefix, const char *hdr)
{
    static pairs in, out;
    in.n = out.n = 0;
    sk_cookie_each(hdr, collect, &in);
    if (in.n > MAX_PAIRS)
        return;
    int ours = 0;
    for (int i = 0; i < in.n; i++) {
        int a = sk_cookie_is_own(own, in.p[i].name, in.p[i].nlen);
        if (a != ref_own(names, prefix, in.p[i].name, in.p[i].nlen))
            abort();
        ours += a;
    }
    size_t size = sk_cookie_strip_size(hdr);
    char *buf = apr_palloc(pool, size);
    int dropped = sk_cookie_strip_own(own, hdr, buf);
    if (dropped != ours)
        abort();
    if (!dropped)
        return;
    if (!sk_cookie_may_hold_own(own, hdr))      /* the quick test would have skipped it */
        abort();
    size_t len = strlen(buf);
    if (len >= size)
        abort();
    sk_cookie_each(buf, collect, &out);
    int k = 0;
    for (int i = 0; i < in.n; i++) {
        if (sk_cookie_is_own(own, in.p[i].name, in.p[i].nlen))
            continue;
        if (k >= out.n || out.p[k].nlen != in.p[i].nlen || out.p[k].vlen != in.p[i].vlen
            || memcmp(out.p[k].name, in.p[i].name, in.p[i].nlen)
            || memcmp(out.p[k].value, in.p[i].value, in.p[i].vlen))
            abort();
        k++;
    }
    if (k != out.n)
        abort();
    char *again = apr_palloc(pool, sk_cookie_strip_size(buf));
    if (sk_cookie_strip_own(own, buf, again) != 0)
        abort();
}

static int ref_prefix(const char *name, const char *prefix)
{
    for (; *prefix; name++, prefix++) {
        int a = tolower((unsigned char)*name), b = tolower((unsigned char)*prefix);
        if (a == '_')
            a = '-';
        if (b == '_')
            b = '-';
        if (!*name || a != b)
            return 0;
    }
    return 1;
}

static void check_scrub(char *lines, const char *extra)
{
    const char *prefixes[3] = { "X-Scalekit-", "Scalekit-", extra };
    int np = extra && *extra ? 3 : 2;
    apr_table_t *t = apr_table_make(pool, 8);
    const char *keys[64];
    int n = 0, match = 0;
    for (char *line = lines, *nl; line && n < 64; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        keys[n++] = line;
        apr_table_addn(t, line, "v");
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < np; j++)
            if (ref_prefix(keys[i], prefixes[j])) {
                match++;
                break;
            }
    if (sk_headers_scrub(t, prefixes, np) != match)
        abort();
    const apr_array_header_t *a = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)a->elts;
    if (a->nelts != n - match)
        abort();
    int k = 0;
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < np; j++)
            m |= ref_prefix(keys[i], prefixes[j]);
        if (m)
            continue;
        if (k >= a->nelts || strcmp(e[k].key, keys[i]))
            abort();
        k++;
    }
}

/* The directives of a Cache-Control value, as a cache splits them: at commas
 * outside quoted strings, blanks trimmed; 1 when one is named name. */
static int has_directive(const char *cc, const char *name)
{
    size_t n = strlen(name);
    const char *s = cc;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!strncasecmp(s, name, n) && (!s[n] || strchr("=, \t", s[n])))
            return 1;
        int quoted = 0;
        for (; *s && (quoted || *s != ','); s++) {
            if (quoted && *s == '\\' && s[1])
                s++;
            else if (*s == '"')
                quoted = !quoted;
        }
        if (*s)
            s++;
    }
    return 0;
}

static void check_cache_control(const char *value)
{
    const char *cc = sk_cache_control_private(pool, value);
    if (!cc || !*cc || has_directive(cc, "public"))
        abort();
    if (!has_directive(cc, "private") && !has_directive(cc, "no-store"))
        abort();
    if (has_directive(value, "no-store") != has_directive(cc, "no-store"))
        abort();
    if (strcmp(sk_cache_control_private(pool, cc), cc))
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] & 1;
    char *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';                  /* up to the first NUL, as httpd hands it over */
    char *rest = strchr(buf, '\n');
    if (rest)
        *rest++ = '\0';
    check_filter(which ? &apart : &shared, which ? OWN2 : OWN, which ? "st-" : "sk-state-", buf);
    if (rest) {
        char *last = strrchr(rest, '\n');
        const char *tail = last ? last + 1 : rest;
        char *lines = apr_pstrdup(pool, rest);
        check_cache_control(tail);
        check_scrub(lines, tail);
    }
    apr_pool_clear(pool);
    free(buf);
    return 0;
}
