/* SPDX-License-Identifier: Apache-2.0 */
/* redis_url.c: parsing the redis:// address of a session store. Parsed when
 * the directive is read, so "apache2 -t" names every fault; the password it
 * may hold never reaches a message. */
#include <stdlib.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "sk_redis_url.h"

#define SK_REDIS_PORT 6379

int sk_is_redis_url(const char *arg)
{
    return !strncasecmp(arg, "redis://", 8) || !strncasecmp(arg, "rediss://", 9);
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or %00. */
static char *sk_url_decode(apr_pool_t *p, const char *s, size_t n)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n || !apr_isxdigit(s[i + 1]) || !apr_isxdigit(s[i + 2]))
            return NULL;
        char hex[3] = { s[i + 1], s[i + 2], 0 };
        if (!(*o++ = (char)strtol(hex, NULL, 16)))
            return NULL;
        i += 2;
    }
    *o = '\0';
    return out;
}

/* A whole decimal number in [min, max] from s[0..n); -1 otherwise. */
static long sk_number(const char *s, size_t n, long min, long max)
{
    long v = 0;
    if (!n || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!apr_isdigit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= max ? v : -1;
}

static int sk_host_ok(const char *h)
{
    if (!*h)
        return 0;
    for (; *h; h++)
        if (!apr_isalnum(*h) && !strchr(".-_:", *h))
            return 0;
    return 1;
}

/* userinfo "user", "user:password" or ":password" (Redis' default user). */
static const char *sk_userinfo(apr_pool_t *p, const char *s, size_t n, sk_redis_url *out)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (ulen && !(out->user = sk_url_decode(p, s, ulen)))
        return "a bad %-escape in the user name";
    if (colon && !(out->password = sk_url_decode(p, colon + 1, n - ulen - 1)))
        return "a bad %-escape in the password";
    if (out->password && !*out->password)
        out->password = NULL;
    if (!out->user && !out->password)
        return "an empty user name before '@'";
    return NULL;
}

const char *sk_redis_url_parse(apr_pool_t *p, const char *url, sk_redis_url *out)
{
    memset(out, 0, sizeof(*out));
    out->port = SK_REDIS_PORT;
    if (!strncasecmp(url, "rediss://", 9))
        return "rediss:// (TLS) is not supported: reach Redis on a private network, or through "
               "a local TLS tunnel (stunnel, spiped) as redis://127.0.0.1:PORT";
    if (strncasecmp(url, "redis://", 8))
        return "expects redis://[user[:password]@]host[:port][/db]";
    const char *auth = url + 8;
    if (strpbrk(auth, "?# \t"))
        return "no query, fragment or spaces allowed: redis://[user[:password]@]host[:port][/db]";
    const char *slash = strchr(auth, '/');
    const char *end = slash ? slash : auth + strlen(auth);
    const char *at = NULL;
    for (const char *c = auth; c < end; c++)        /* the last '@': a password may hold one */
        if (*c == '@')
            at = c;
    const char *why = at ? sk_userinfo(p, auth, (size_t)(at - auth), out) : NULL;
    if (why)
        return why;
    const char *host = at ? at + 1 : auth, *port = NULL, *host_end = end;
    if (*host == '[') {                                /* [IPv6]:port */
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close)
            return "an IPv6 address without its closing ']'";
        port = close + 1 < end ? close + 1 : NULL;
        if (port && *port != ':')
            return "something after the IPv6 address that is not :port";
        out->host = apr_pstrmemdup(p, host + 1, (size_t)(close - host - 1));
    } else {
        port = memchr(host, ':', (size_t)(end - host));
        host_end = port ? port : end;
        out->host = apr_pstrmemdup(p, host, (size_t)(host_end - host));
        if (strchr(out->host, ':'))
            return "an IPv6 address needs brackets: redis://[::1]:6379";
    }
    if (!sk_host_ok(out->host))
        return "no host, or a host name with characters other than letters, digits, '.', '-'";
    if (port && (out->port = (int)sk_number(port + 1, (size_t)(end - port - 1), 1, 65535)) < 0)
        return "the port is not a number from 1 to 65535";
    if (slash && slash[1] && (out->db = (int)sk_number(slash + 1, strlen(slash + 1), 0,
                                                          1000000)) < 0)
        return "the database is not a number (redis://host:6379/0)";
    out->display = apr_psprintf(p, "redis://%s%s%s%s%s:%d/%d", out->user ? out->user : "",
                                out->user ? "@" : "", strchr(out->host, ':') ? "[" : "",
                                out->host, strchr(out->host, ':') ? "]" : "", out->port,
                                out->db);
    return NULL;
}
