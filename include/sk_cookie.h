/* sk_cookie.h: reading a Cookie request header. Links without httpd. */
#ifndef SK_COOKIE_H
#define SK_COOKIE_H

#include <stddef.h>
#include <apr_pools.h>

/* Called for each "name=value" pair; return non-zero to stop. */
typedef int (*sk_cookie_fn)(void *ctx, const char *name, size_t nlen,
                            const char *value, size_t vlen);

/* Walk the pairs of one Cookie header (RFC 6265 syntax, leniently: empty and
 * nameless pieces are skipped, quotes around a value are removed). Returns the
 * number of pairs seen, or -1 when fn stopped the walk. */
int sk_cookie_each(const char *header, sk_cookie_fn fn, void *ctx);

/* Several cookies in one walk: values[i] gets the value of the first cookie
 * called names[i] (copied into p; NULL when absent or empty: the first of a
 * name wins even when it is empty). Returns how many names were seen. */
int sk_cookie_get_many(apr_pool_t *p, const char *header, const char *const *names,
                       const char **values, int n);

/* The value of the first cookie called name, copied into p; NULL if absent. */
const char *sk_cookie_get(apr_pool_t *p, const char *header, const char *name);

#endif
