/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_return_to.c: libFuzzer target for the open-redirect defence:
 * sk_local_path_ok (return_to, post-logout path) and sk_redirect_ok with a
 * fixed list of allowed origins. The input is the value (up to its first
 * NUL: sk_query_get refuses %00, so no decoded value holds one).
 *
 * The property: whenever a value is accepted, it is resolved the way a
 * browser resolves a Location header against http://site/ (WHATWG URL:
 * leading and trailing C0 controls and spaces stripped, tab/CR/LF removed
 * anywhere, '\' read as '/' for http(s), "//host" and "http:/\host" forms
 * take an authority, userinfo before '@' dropped, the host percent-decoded),
 * and the program aborts unless it lands on a path of this site, or (for
 * sk_redirect_ok only) on exactly one of the allowed origins. Since the
 * module promises that a local path stays local "however often a browser or
 * a proxy percent-decodes it", every percent-decoded layer is resolved too.
 * Consistency: sk_redirect_ok with no origins is sk_local_path_ok, and
 * nothing longer than SK_RETURN_TO_MAX is accepted. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "sk_redirect.h"

#define BASE_SCHEME "http"

static apr_pool_t *pool;
static apr_array_header_t *origins, *no_origins;
static const char *const allowed[] = { "https://app.example.com", "http://localhost:8080" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    origins = apr_array_make(pool, 2, sizeof(const char *));
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        APR_ARRAY_PUSH(origins, const char *) = allowed[i];
    no_origins = apr_array_make(pool, 1, sizeof(const char *));
    return 0;
}

enum { SAME_SITE, OTHER_ORIGIN, FOREIGN };

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The authority after "scheme:" and any slashes: origin "scheme://host[:port]"
 * in *origin (malloc'd), as a browser would settle it. */
static int authority(const char *scheme, const char *s, char **origin)
{
    while (*s == '/')
        s++;                                   /* special authority ignore slashes */
    size_t n = strcspn(s, "/?#");
    char *auth = strndup(s, n);
    if (!auth)
        abort();
    char *host = strrchr(auth, '@');           /* userinfo is not the host */
    host = host ? host + 1 : auth;
    /* Percent-decode and lower-case the host part (browsers do both). */
    char *h = malloc(strlen(host) + 1), *o = h;
    if (!h)
        abort();
    for (const char *c = host; *c; c++) {
        int hi, lo;
        if (*c == '%' && (hi = hexval(c[1])) >= 0 && (lo = hexval(c[2])) >= 0) {
            *o++ = (char)tolower(hi * 16 + lo);
            c += 2;
        } else {
            *o++ = (char)tolower((unsigned char)*c);
        }
    }
    *o = '\0';
    /* Default ports are dropped; leading zeros of a port too. */
    char *colon = h[0] == '[' ? strstr(h, "]:") : strrchr(h, ':');
    if (colon && h[0] == '[')
        colon++;
    char port[32] = "";
    if (colon) {
        *colon = '\0';
        const char *p = colon + 1;
        while (*p == '0' && p[1])
            p++;
        snprintf(port, sizeof(port), "%s", p);
        if (!strcmp(port, !strcmp(scheme, "https") ? "443" : "80"))
            port[0] = '\0';
    }
    size_t len = strlen(scheme) + strlen(h) + strlen(port) + 8;
    *origin = malloc(len);
    if (!*origin)
        abort();
    snprintf(*origin, len, "%s://%s%s%s", scheme, h, port[0] ? ":" : "", port);
    free(h);
    free(auth);
    return OTHER_ORIGIN;
}

/* Where a browser goes for Location: v, with http://site/ as the base. */
static int browser_resolve(const char *v, char **origin)
{
    *origin = NULL;
    size_t n = strlen(v);
    const char *s = v, *e = v + n;
    while (s < e && (unsigned char)*s <= 0x20)
        s++;
    while (e > s && (unsigned char)e[-1] <= 0x20)
        e--;
    char *u = malloc((size_t)(e - s) + 1), *o = u;
    if (!u)
        abort();
    for (const char *c = s; c < e; c++) {
        if (*c == '\t' || *c == '\n' || *c == '\r')
            continue;
        *o++ = *c == '\\' ? '/' : *c;          /* the base is http: special */
    }
    *o = '\0';

    int rv = SAME_SITE;
    const char *rel = u;
    /* A scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if (isalpha((unsigned char)u[0])) {
        size_t k = 1;
        while (isalnum((unsigned char)u[k]) || u[k] == '+' || u[k] == '-' || u[k] == '.')
            k++;
        if (u[k] == ':') {
            char scheme[16] = "";
            if (k < sizeof(scheme))
                for (size_t i = 0; i < k; i++)
                    scheme[i] = (char)tolower((unsigned char)u[i]);
            if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
                free(u);
                return FOREIGN;                 /* javascript:, data:, ... */
            }
            rel = u + k + 1;
            if (strcmp(scheme, BASE_SCHEME) || (rel[0] == '/' && rel[1] == '/')) {
                rv = authority(scheme, rel, origin);
                free(u);
                return rv;
            }
            /* "http:x" or "http:/x" with an http base: relative to it */
        }
    }
    if (rel[0] == '/' && rel[1] == '/')
        rv = authority(BASE_SCHEME, rel, origin);   /* scheme-relative: another host */
    free(u);
    return rv;
}

static int is_allowed(const char *origin)
{
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (origin && !strcmp(origin, allowed[i]))
            return 1;
    return 0;
}

/* Decode %XX once (at most), to the first NUL. 0 when nothing changed. */
static int decode_layer(char *s)
{
    char *o = s;
    int changed = 0;
    for (char *c = s; *c; c++) {
        int hi, lo;
        if (*c == '%' && (hi = hexval(c[1])) >= 0 && (lo = hexval(c[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            c += 2;
            changed = 1;
        } else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return changed;
}

static void must_stay_local(const char *v)
{
    char *layer = strdup(v);
    if (!layer)
        abort();
    for (int round = 0; round < 4; round++) {
        char *origin;
        if (browser_resolve(layer, &origin) != SAME_SITE) {
            fprintf(stderr, "accepted as a local path, but layer %d '%s' leads to %s\n",
                    round, layer, origin ? origin : "another scheme");
            abort();
        }
        free(origin);
        if (!decode_layer(layer))
            break;
    }
    free(layer);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *v = malloc(size + 1);
    if (!v)
        return 0;
    memcpy(v, data, size);
    v[size] = '\0';
    size_t len = strlen(v);

    int local = sk_local_path_ok(v);
    int redirect = sk_redirect_ok(pool, v, origins);
    if (len > SK_RETURN_TO_MAX && (local || redirect))
        abort();
    if (sk_redirect_ok(pool, v, NULL) != local || sk_redirect_ok(pool, v, no_origins) != local)
        abort();
    if (local && !redirect)
        abort();                               /* origins only add to local paths */
    if (local)
        must_stay_local(v);
    if (redirect && !local) {
        char *origin;
        int where = browser_resolve(v, &origin);
        if (where == FOREIGN || (where == OTHER_ORIGIN && !is_allowed(origin))) {
            fprintf(stderr, "accepted '%s' leads to %s, not an allowed origin\n", v,
                    origin ? origin : "another scheme");
            abort();
        }
        free(origin);
    }
    free(v);
    return 0;
}
