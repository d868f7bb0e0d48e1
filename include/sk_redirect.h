/* sk_redirect.h: where the module may send a browser after sign-in or
 * sign-out. Links without httpd. */
#ifndef SK_REDIRECT_H
#define SK_REDIRECT_H

#include <apr_pools.h>
#include <apr_tables.h>

#define SK_RETURN_TO_MAX 2048

/* 1 when target is a path on this site: it starts with one '/', is printable
 * ASCII without backslashes, and stays a local path however often a browser
 * or a proxy percent-decodes it (no layer may decode to a NUL). */
int sk_local_path_ok(const char *target);

/* 1 when target is a local path, or an absolute http(s) URL whose origin
 * (scheme://host[:port], compared exactly, lower-case) is in origins. */
int sk_redirect_ok(apr_pool_t *p, const char *target, const apr_array_header_t *origins);

#endif
