/* SPDX-License-Identifier: Apache-2.0 */
/* redirect.c: open-redirect defence for return_to and the post-logout URL. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include <arpa/inet.h>
#include <strings.h>
#include "sk_redirect.h"

/* Decode %XX once into out (same size or shorter). 0 on a malformed escape
 * or on %00: the next layer's checks stop at a NUL and would not see the rest. */
static int sk_pct_decode(char *out, const char *in)
{
    while (*in) {
        if (*in == '%') {
            if (!apr_isxdigit(in[1]) || !apr_isxdigit(in[2]))
                return 0;
            char hex[3] = { in[1], in[2], 0 };
            char c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                return 0;
            *out++ = c;
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return 1;
}

/* One layer: a single leading '/', then no backslash or control byte (a
 * browser drops tabs and newlines, which could join "/" and "/" again). The
 * raw value must also be printable ASCII without spaces. */
static int sk_layer_local(const char *s, int raw)
{
    if (s[0] != '/' || s[1] == '/' || s[1] == '\\')
        return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x20 || *c == 0x7f || *c == '\\')
            return 0;
        if (raw && (*c == ' ' || *c >= 0x80))
            return 0;
    }
    return 1;
}

int sk_local_path_ok(const char *target)
{
    char buf[SK_RETURN_TO_MAX + 1];
    size_t len = target ? strlen(target) : 0;
    if (len == 0 || len > SK_RETURN_TO_MAX)
        return 0;
    memcpy(buf, target, len + 1);
    /* Every decoding a browser or proxy might apply must stay local. */
    for (int round = 0; round < 4; round++) {
        if (!sk_layer_local(buf, round == 0))
            return 0;
        if (!strchr(buf, '%'))
            return 1;
        if (!sk_pct_decode(buf, buf))
            return 0;
    }
    return 0;                         /* encoded four times over: not a real path */
}

int sk_redirect_ok(apr_pool_t *p, const char *target, const apr_array_header_t *origins)
{
    if (sk_local_path_ok(target))
        return 1;
    if (!target || !origins || strlen(target) > SK_RETURN_TO_MAX)
        return 0;
    for (const unsigned char *c = (const unsigned char *)target; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == '\\' || *c == '@')
            return 0;
    for (int i = 0; i < origins->nelts; i++) {
        const char *o = APR_ARRAY_IDX(origins, i, const char *);
        size_t n = strlen(o);
        if (strncasecmp(target, o, n) == 0 && (target[n] == '\0' || target[n] == '/')
            && sk_local_path_ok(target[n] ? target + n : "/"))
            return 1;
    }
    (void)p;
    return 0;
}

int sk_is_loopback_host(const char *host)
{
    struct in_addr a4;
    if (!host)
        return 0;
    if (!strcasecmp(host, "localhost") || !strcmp(host, "::1"))
        return 1;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

const char *sk_url_problem(apr_pool_t *p, const char *url)
{
    apr_uri_t u;
    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || !u.scheme || !u.hostname || !*u.hostname)
        return apr_psprintf(p, "'%s' is not an absolute URL", url);
    if (strcasecmp(u.scheme, "https") && strcasecmp(u.scheme, "http"))
        return apr_psprintf(p, "'%s' must be an https URL", url);
    if (u.query || u.fragment || u.user || u.password || strchr(url, '@'))
        return apr_psprintf(p, "'%s' must not carry a query, fragment or user info", url);
    if (!strcasecmp(u.scheme, "http") && !sk_is_loopback_host(u.hostname))
        return apr_psprintf(p, "'%s' uses http:// for a host that is not loopback; use https",
                            url);
    return NULL;
}

int sk_redirect_uri_path_ok(const char *uri)
{
    return uri[0] == '/' && sk_local_path_ok(uri) && !strpbrk(uri, "?#%");
}
