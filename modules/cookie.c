/* SPDX-License-Identifier: Apache-2.0 */
/* cookie.c: a small, bounded Cookie header reader, and what keeps the
 * module's cookies and claim-header look-alikes from the application (the
 * fuzzers reach all of it). */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include "sk_cookie.h"

static int sk_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim [*s, *e) of blanks, then of one pair of surrounding quotes. */
static void sk_trim(const char **s, const char **e, int unquote)
{
    while (*s < *e && sk_space(**s))
        (*s)++;
    while (*e > *s && sk_space((*e)[-1]))
        (*e)--;
    if (unquote && *e - *s >= 2 && **s == '"' && (*e)[-1] == '"') {
        (*s)++;
        (*e)--;
    }
}

int sk_cookie_each(const char *header, sk_cookie_fn fn, void *ctx)
{
    int n = 0;
    const char *p = header;
    while (p && *p) {
        const char *end = strchr(p, ';');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            const char *ns = p, *ne = eq, *vs = eq + 1, *ve = end;
            sk_trim(&ns, &ne, 0);
            sk_trim(&vs, &ve, 1);
            if (ne > ns) {
                n++;
                if (fn(ctx, ns, (size_t)(ne - ns), vs, (size_t)(ve - vs)))
                    return -1;
            }
        }
        p = *end ? end + 1 : NULL;
    }
    return n;
}

typedef struct {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
} sk_cookie_find;

static int sk_cookie_match(void *ctx, const char *name, size_t nlen,
                           const char *value, size_t vlen)
{
    sk_cookie_find *f = ctx;
    if (nlen != f->nlen || memcmp(name, f->name, nlen) != 0)
        return 0;
    f->value = value;
    f->vlen = vlen;
    return 1;
}

const char *sk_cookie_get(apr_pool_t *p, const char *header, const char *name)
{
    sk_cookie_find f = { name, strlen(name), NULL, 0 };
    if (!header || sk_cookie_each(header, sk_cookie_match, &f) != -1)
        return NULL;
    return apr_pstrmemdup(p, f.value, f.vlen);
}

#define SK_COOKIE_MANY_MAX 8

typedef struct {
    apr_pool_t *p;
    const char *const *names;
    const char **values;
    int n, seen;
    unsigned char got[SK_COOKIE_MANY_MAX];
} sk_cookie_many;

static int sk_cookie_many_match(void *ctx, const char *name, size_t nlen,
                                const char *value, size_t vlen)
{
    sk_cookie_many *m = ctx;
    for (int i = 0; i < m->n; i++) {
        if (m->got[i] || strncmp(name, m->names[i], nlen) || m->names[i][nlen])
            continue;
        m->got[i] = 1;                 /* the first of a name wins, empty or not */
        m->values[i] = vlen ? apr_pstrmemdup(m->p, value, vlen) : NULL;
        m->seen++;
        break;
    }
    return m->seen == m->n;
}

int sk_cookie_get_many(apr_pool_t *p, const char *header, const char *const *names,
                       const char **values, int n)
{
    sk_cookie_many m = { p, names, values, n > SK_COOKIE_MANY_MAX ? SK_COOKIE_MANY_MAX : n,
                         0, { 0 } };
    for (int i = 0; i < n; i++)
        values[i] = NULL;
    if (header)
        sk_cookie_each(header, sk_cookie_many_match, &m);
    return m.seen;
}

/* ---------------------------------------------- what the application sees */

void sk_cookie_names_init(apr_pool_t *p, sk_cookie_names *own, const char *const *exact,
                          int n, const char *prefix)
{
    const char *first = NULL;
    size_t common = 0;
    memset(own, 0, sizeof(*own));
    for (int i = 0; i < n && own->n_exact < SK_COOKIE_OWN_MAX; i++) {
        if (!exact[i] || !*exact[i])
            continue;
        own->exact[own->n_exact] = exact[i];
        own->exact_len[own->n_exact++] = strlen(exact[i]);
    }
    if (prefix && *prefix) {
        own->prefix = prefix;
        own->prefix_len = strlen(prefix);
    }
    /* The longest prefix all names share: one substring search then tells
     * most requests (a Cookie header without it) there is nothing to strip. */
    for (int i = 0; i <= own->n_exact; i++) {
        const char *name = i < own->n_exact ? own->exact[i] : own->prefix;
        if (!name)
            continue;
        if (!first) {
            first = name;
            common = strlen(name);
            continue;
        }
        size_t k = 0;
        while (k < common && first[k] == name[k])
            k++;
        common = k;
    }
    own->hint = first ? apr_pstrmemdup(p, first, common) : NULL;
}

int sk_cookie_is_own(const sk_cookie_names *own, const char *name, size_t len)
{
    for (int i = 0; i < own->n_exact; i++)
        if (own->exact_len[i] == len && !memcmp(own->exact[i], name, len))
            return 1;
    return own->prefix && len > own->prefix_len && !memcmp(name, own->prefix, own->prefix_len);
}

int sk_cookie_may_hold_own(const sk_cookie_names *own, const char *header)
{
    if (!header || !own->hint)
        return 0;
    if (*own->hint)
        return strstr(header, own->hint) != NULL;
    for (int i = 0; i < own->n_exact; i++)
        if (strstr(header, own->exact[i]))
            return 1;
    return own->prefix && strstr(header, own->prefix);
}

size_t sk_cookie_strip_size(const char *header)
{
    /* A kept pair is never longer than it was; "; " may replace a bare ";". */
    return 2 * strlen(header) + 1;
}

typedef struct {
    const sk_cookie_names *own;
    char *out;                          /* the pairs kept, "; "-separated */
    size_t used;
    int dropped;
} sk_cookie_filter;

/* One pair of sk_cookie_each: dropped when ours, else copied as it came
 * (with its quotes, which the walk took off: the header is our source). The
 * walk takes quotes off only after the '=' and blanks, so a quote just before
 * the value is one it removed. */
static int sk_filter_cookie(void *ctx, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    sk_cookie_filter *f = ctx;
    if (sk_cookie_is_own(f->own, name, nlen)) {
        f->dropped++;
        return 0;
    }
    const char *end = value + vlen;
    if (value[-1] == '"' && *end == '"') {
        value--;
        end++;
    }
    if (f->used) {
        memcpy(f->out + f->used, "; ", 2);
        f->used += 2;
    }
    memcpy(f->out + f->used, name, nlen);
    f->out[f->used + nlen] = '=';
    memcpy(f->out + f->used + nlen + 1, value, (size_t)(end - value));
    f->used += nlen + 1 + (size_t)(end - value);
    return 0;
}

typedef struct {
    sk_cookie_filter filter;
    sk_cookie_many many;
} sk_cookie_take;

/* One pair of sk_cookie_take_own: its value kept when it is asked for, the
 * pair itself filtered. The walk goes on to the end (the strip needs it). */
static int sk_take_cookie(void *ctx, const char *name, size_t nlen, const char *value,
                          size_t vlen)
{
    sk_cookie_take *t = ctx;
    if (t->many.seen < t->many.n)
        sk_cookie_many_match(&t->many, name, nlen, value, vlen);
    return sk_filter_cookie(&t->filter, name, nlen, value, vlen);
}

int sk_cookie_take_own(const sk_cookie_names *own, const char *header, char *out,
                       apr_pool_t *p, const char *const *names, const char **values, int n)
{
    sk_cookie_take t = { { own, out, 0, 0 },
                         { p, names, values, n > SK_COOKIE_MANY_MAX ? SK_COOKIE_MANY_MAX : n,
                           0, { 0 } } };
    for (int i = 0; i < n; i++)
        values[i] = NULL;
    sk_cookie_each(header, sk_take_cookie, &t);
    if (t.filter.dropped)
        out[t.filter.used] = '\0';
    return t.filter.dropped;
}

int sk_cookie_strip_own(const sk_cookie_names *own, const char *header, char *out)
{
    return sk_cookie_take_own(own, header, out, NULL, NULL, NULL, 0);
}

int sk_header_has_prefix(const char *name, const char *prefix)
{
    for (; *prefix; name++, prefix++) {
        char a = apr_tolower(*name), b = apr_tolower(*prefix);
        if (!a || (a == '_' ? '-' : a) != (b == '_' ? '-' : b))
            return 0;
    }
    return 1;
}

static int sk_header_matches(const char *name, const char *const *prefixes, int n)
{
    for (int i = 0; i < n; i++)
        if (prefixes[i] && sk_header_has_prefix(name, prefixes[i]))
            return 1;
    return 0;
}

/* In place, without allocating: apr_table_unset removes every field of a
 * name and keeps the order of the rest, so the scan goes on at the same
 * index; the name it was given stays valid (only the entries move). */
int sk_headers_scrub(apr_table_t *headers, const char *const *prefixes, int n)
{
    const apr_array_header_t *a = apr_table_elts(headers);
    int removed = 0;
    for (int i = 0; i < a->nelts;) {
        const char *key = ((const apr_table_entry_t *)a->elts)[i].key;
        if (key && sk_header_matches(key, prefixes, n)) {
            int before = a->nelts;
            apr_table_unset(headers, key);
            removed += before - a->nelts;
            continue;
        }
        i++;
    }
    return removed;
}

/* The end of the directive at s: the next ',' outside a quoted string. */
static const char *sk_directive_end(const char *s)
{
    int quoted = 0;
    for (; *s; s++) {
        if (quoted && *s == '\\' && s[1])
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (*s == ',' && !quoted)
            break;
    }
    return s;
}

static int sk_directive_is(const char *s, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len < n || strncasecmp(s, name, n))
        return 0;
    return len == n || s[n] == '=' || sk_space(s[n]);
}

const char *sk_cache_control_private(apr_pool_t *p, const char *value)
{
    if (!value)
        return "private";
    /* Each directive kept is no longer than it was, its separator ", " may
     * replace a bare ','. */
    char *out = apr_palloc(p, 2 * strlen(value) + 1);
    size_t used = 0;
    int no_store = 0;
    for (const char *s = value; *s;) {
        const char *e = sk_directive_end(s), *next = *e ? e + 1 : e;
        sk_trim(&s, &e, 0);
        size_t len = (size_t)(e - s);
        if (len && !sk_directive_is(s, len, "public") && !sk_directive_is(s, len, "private")) {
            no_store |= sk_directive_is(s, len, "no-store");
            if (used) {
                memcpy(out + used, ", ", 2);
                used += 2;
            }
            memcpy(out + used, s, len);
            used += len;
        }
        s = next;
    }
    out[used] = '\0';
    if (no_store)
        return out;
    return used ? apr_pstrcat(p, "private, ", out, NULL) : "private";
}

typedef struct {
    const char *name;
    size_t size;                        /* in the Cookie header */
} sk_state_cookie;

typedef struct {
    apr_pool_t *p;
    const char *prefix;
    apr_array_header_t *found;          /* of sk_state_cookie, oldest first */
} sk_state_walk;

static int sk_collect_state(void *ctx, const char *name, size_t nlen,
                            const char *value, size_t vlen)
{
    sk_state_walk *w = ctx;
    size_t plen = strlen(w->prefix);
    (void)value;
    if (nlen > plen && !strncmp(name, w->prefix, plen))
        APR_ARRAY_PUSH(w->found, sk_state_cookie) = (sk_state_cookie){
            apr_pstrmemdup(w->p, name, nlen), nlen + vlen + 3 };   /* "; " and "=" */
    return 0;
}

apr_array_header_t *sk_state_cookies_to_drop(apr_pool_t *p, const char *header,
                                             const char *prefix, int max, size_t new_size)
{
    sk_state_walk w = { p, prefix, apr_array_make(p, 8, sizeof(sk_state_cookie)) };
    apr_array_header_t *drop = apr_array_make(p, 4, sizeof(const char *));
    size_t total = new_size;
    if (header)
        sk_cookie_each(header, sk_collect_state, &w);
    const sk_state_cookie *sc = (const sk_state_cookie *)w.found->elts;
    for (int i = 0; i < w.found->nelts; i++)
        total += sc[i].size;
    for (int i = 0; i < w.found->nelts; i++) {
        if (i + max > w.found->nelts && total <= SK_STATE_BYTES)
            break;
        APR_ARRAY_PUSH(drop, const char *) = sc[i].name;
        total -= sc[i].size;
    }
    return drop;
}
