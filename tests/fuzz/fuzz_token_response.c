/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_token_response.c: libFuzzer target for sk_oauth_parse_token_response,
 * the reader of what the token endpoint answers (code exchange, refresh).
 * The first input byte picks the HTTP status (a table of the usual ones,
 * plus odd ones), the rest is the body, handed over with its exact length
 * and no NUL after it (curl gives one, but the parser must not need it).
 * Checks:
 *   - success (0) only for status 200 with a non-empty access_token, no
 *     "error" member, and expires_in in [0, 1e9);
 *   - on failure *why is set, one line of printable ASCII (it is logged), of
 *     bounded length, and never holds the access or refresh token of the
 *     body unless the identity provider itself put that text in "error" or
 *     "error_description" (the only parts quoted);
 *   - the token strings returned are copies (still readable after the body
 *     is freed) and NUL-free C strings of the body's values. */
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <cjson/cJSON.h>

#include "sk_oauth.h"

static apr_pool_t *pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    return 0;
}

static const long statuses[] = { 200, 200, 200, 200, 400, 401, 403, 429, 500, 502, 503,
                                  0, -1, 201, 204, 302, 999, 2147483647L, -2147483647L - 1 };

/* Long enough and of the JWT alphabet: no blank, ',' or ':' (so it cannot
 * straddle the fixed text of why) and no '?' (what unprintables become). */
static int token_like(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.");
    return n >= 16 && s[n] == '\0';
}

static void check_why(const char *why, const char *body, size_t len)
{
    if (!why)
        abort();
    size_t n = strlen(why);
    if (n == 0 || n > 400)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)why[i] < 0x20 || (unsigned char)why[i] >= 0x7f)
            abort();
    /* Tokens of the body appear in why only when the IdP quoted them itself. */
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j)
        return;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "error_description");
    static const char *const secret[] = { "access_token", "refresh_token", "id_token" };
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, secret[i]);
        if (!cJSON_IsString(t) || !token_like(t->valuestring) || !strstr(why, t->valuestring))
            continue;
        int quoted = (cJSON_IsString(e) && strstr(e->valuestring, t->valuestring))
                  || (cJSON_IsString(d) && strstr(d->valuestring, t->valuestring));
        if (!quoted)
            abort();
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);        /* exactly len bytes: no NUL to lean on */
    if (!body)
        return 0;
    memcpy(body, data + 1, len);

    apr_pool_t *p;
    apr_pool_create(&p, pool);
    sk_token_set ts;
    const char *why = NULL;
    apr_status_t rc = sk_oauth_parse_token_response(p, status, body, len, &ts, &why);
    /* The same body, NULL and empty, never crash either. */
    sk_token_set ts2;
    const char *why2 = NULL;
    if (sk_oauth_parse_token_response(p, status, NULL, 0, &ts2, &why2) == APR_SUCCESS)
        abort();
    check_why(why2, "", 0);

    if (rc == APR_SUCCESS) {
        if (status != 200 || !ts.access_token || !*ts.access_token)
            abort();
        if (ts.expires_in < 0 || ts.expires_in >= 1000000000L)
            abort();
        cJSON *j = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(j))
            abort();
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (cJSON_IsString(err) && err->valuestring[0])
            abort();                               /* an error answer is never a success */
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "access_token");
        if (!cJSON_IsString(a) || strcmp(a->valuestring, ts.access_token))
            abort();
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "refresh_token");
        if (ts.refresh_token && (!cJSON_IsString(r) || strcmp(r->valuestring, ts.refresh_token)))
            abort();
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "id_token");
        if (ts.id_token && (!cJSON_IsString(i) || strcmp(i->valuestring, ts.id_token)))
            abort();
        cJSON_Delete(j);
        memset(body, 'X', len);                    /* the results are copies */
        free(body);
        body = NULL;
        volatile size_t n = strlen(ts.access_token);   /* ASan: still readable */
        if (ts.refresh_token)
            n += strlen(ts.refresh_token);
        if (ts.id_token)
            n += strlen(ts.id_token);
        (void)n;
    } else {
        check_why(why, body, len);
    }
    free(body);
    apr_pool_destroy(p);
    return 0;
}
