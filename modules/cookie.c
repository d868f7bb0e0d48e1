/* cookie.c: a small, bounded Cookie header reader (the fuzzers reach it). */
#include <string.h>
#include <apr_strings.h>
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
