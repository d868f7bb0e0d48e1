/* SPDX-License-Identifier: Apache-2.0 */
/* sk_http.h: the module's HTTP client (libcurl, loaded on first use) for the
 * token endpoint and the JWKS. Links without httpd. Each thread keeps one curl
 * handle so connections to the identity provider are reused. */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <stddef.h>
#include <apr_errno.h>

typedef struct sk_http_opts {
    long timeout_ms;          /* whole request; 0 means 5000 */
    long connect_timeout_ms;  /* 0 means min(timeout, 3000) */
    const char *ca_file;      /* NULL: the system's trust store */
    size_t max_body;          /* 0 means 1 MiB; larger answers fail */
    const char *bearer;       /* sent as "Authorization: Bearer ..." when set */
} sk_http_opts;

typedef struct sk_http_resp {
    long status;              /* 0 when no HTTP answer came */
    char *body;               /* malloc'd, NUL-terminated; free with sk_http_resp_free */
    size_t len;
    char err[256];            /* set when the call does not return APR_SUCCESS */
} sk_http_resp;

/* GET url, or POST form_body (application/x-www-form-urlencoded) when it is
 * not NULL. APR_SUCCESS when an HTTP answer of any status arrived in time;
 * else APR_TIMEUP (too slow), APR_ENOSPC (answer over max_body), APR_ENOMEM,
 * APR_ENOTIMPL (no libcurl) or APR_EGENERAL, with out->err saying why. */
apr_status_t sk_http_request(const sk_http_opts *o, const char *url, const char *form_body,
                             sk_http_resp *out);
void sk_http_resp_free(sk_http_resp *r);

#endif
