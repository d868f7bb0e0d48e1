/* SPDX-License-Identifier: Apache-2.0 */
/* sk_cookie.h: reading a Cookie request header. Links without httpd. */
#ifndef SK_COOKIE_H
#define SK_COOKIE_H

#include <stddef.h>
#include <apr_pools.h>
#include <apr_tables.h>

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

/* ---- what the application must not see (the module strips it on every
 * request, before the handler) ---- */

/* The module's own cookies: whole names (tokens, session id) and the name
 * prefix of the state cookies. Built once at start-up. */
#define SK_COOKIE_OWN_MAX 5
typedef struct sk_cookie_names {
    const char *exact[SK_COOKIE_OWN_MAX];
    size_t exact_len[SK_COOKIE_OWN_MAX];
    int n_exact;
    const char *prefix;             /* a name longer than this starting with it is ours */
    size_t prefix_len;
    const char *hint;               /* what every name of ours begins with ("" if nothing) */
} sk_cookie_names;

/* exact: n names (NULL and empty ones are skipped, at most SK_COOKIE_OWN_MAX);
 * prefix: the state cookies' prefix (NULL or empty: none). */
void sk_cookie_names_init(apr_pool_t *p, sk_cookie_names *own, const char *const *exact,
                          int n, const char *prefix);

/* 1 when the cookie name [name, name + len) is one of ours. */
int sk_cookie_is_own(const sk_cookie_names *own, const char *name, size_t len);

/* 0 when header cannot hold a cookie of ours: the quick test that spares
 * most requests the walk (a substring search for own->hint). */
int sk_cookie_may_hold_own(const sk_cookie_names *own, const char *header);

/* The bytes sk_cookie_strip_own may write for header (NUL included). */
size_t sk_cookie_strip_size(const char *header);

/* Writes into out (sk_cookie_strip_size(header) bytes) the header without
 * our cookies: the other pairs as they came (quotes kept), "; "-joined.
 * Returns how many pairs were dropped; out is written only when that is
 * more than 0 (it is then "" when nothing is left). */
int sk_cookie_strip_own(const sk_cookie_names *own, const char *header, char *out);

/* sk_cookie_get_many and sk_cookie_strip_own in one walk of header (which
 * must not be NULL): values[i] as sk_cookie_get_many gives them, out as
 * sk_cookie_strip_own writes it; returns how many pairs were dropped. */
int sk_cookie_take_own(const sk_cookie_names *own, const char *header, char *out,
                       apr_pool_t *p, const char *const *names, const char **values, int n);

/* The Cache-Control of a response that sets one of our cookies, from what
 * it says already (value: its Cache-Control fields joined by ", ", or NULL):
 * "public" and any "private" go, "private" comes first unless "no-store" is
 * there; every other directive is kept as it came. */
const char *sk_cache_control_private(apr_pool_t *p, const char *value);

/* 1 when header name starts with prefix: any case, '-' and '_' alike (how
 * CGI and many backends read header names). */
int sk_header_has_prefix(const char *name, const char *prefix);

/* Removes from headers every field whose name starts (as sk_header_has_prefix
 * says) with one of the n prefixes; returns how many were removed. */
int sk_headers_scrub(apr_table_t *headers, const char *const *prefixes, int n);

/* Pending sign-ins' state cookies, together, stay under this many bytes: a
 * long return_to makes a 3 KB cookie, and a few of them (an attacker's page
 * can start sign-ins) would pass httpd's 8190-byte header limit, so every
 * request, sign-out included, got a 400 until the browser closed. */
#define SK_STATE_BYTES 4096

/* The state cookies (named prefix...) of a Cookie header (NULL: none) to
 * clear before one of new_size bytes (name=value) is set: the oldest first (a
 * browser sends the cookies of one path oldest first), until at most max - 1
 * are left and they and the new one take at most SK_STATE_BYTES. Their names,
 * as an array of const char * in p (empty when none need go). */
apr_array_header_t *sk_state_cookies_to_drop(apr_pool_t *p, const char *header,
                                             const char *prefix, int max, size_t new_size);

#endif
