/* SPDX-License-Identifier: Apache-2.0 */
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

/* 1 when host is loopback by name or address, never by prefix:
 * 127.evil.example is not. */
int sk_is_loopback_host(const char *host);

/* Why url is not an acceptable absolute URL for the identity provider or the
 * callback, or NULL: http(s) only, http only for loopback development, no
 * user info, query or fragment. The reason names url, and is made in p. */
const char *sk_url_problem(apr_pool_t *p, const char *url);

/* 1 when uri is a plain path for ScalekitRedirectURI ("/api/auth/callback"):
 * a local path without query, fragment, %-escapes or '//'. The callback URL
 * is then made from each sign-in's request (scheme, host, port). */
int sk_redirect_uri_path_ok(const char *uri);

#endif
