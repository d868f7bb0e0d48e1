/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the security properties of the httpd-free parts, one attack
 * each (issue 6). The integration suite (tests/integration/test_security.py)
 * proves the same through a real httpd; these pin the rules themselves. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* memmem */
#endif
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "sk_test.h"
#include "sk_b64.h"
#include "sk_cookie.h"
#include "sk_jwt.h"
#include "sk_oauth.h"
#include "sk_redirect.h"
#include "sk_state.h"

#define pool() sk_test_pool()

/* ---- open redirects: the value as it arrives in the query string ---- */

SK_TEST(security_return_to_decoded_from_query)
{
    /* What the login handler does: sk_query_get decodes once, then the check. */
    static const char *const refused[] = {
        "return_to=%2F%2Fevil.example", "return_to=%2F%5Cevil.example",
        "return_to=%2F%252F%252Fevil.example", "return_to=%2F%09%2Fevil.example",
        "return_to=%2F%0D%0ALocation%3A%20https%3A%2F%2Fevil.example",
        "return_to=https%3A%2F%2Fevil.example", "return_to=%2F%2F%2Fevil.example",
        "return_to=javascript%3Aalert(1)", "return_to=%20%2F%2Fevil.example",
        "return_to=%2F%E2%80%AE%2Fevil.example", "return_to=%2F%EF%BC%8F%EF%BC%8Fevil.example",
        "return_to=%2F%2525252F%2525252Fevil", "return_to=%2F+%2Fevil.example",
        NULL };
    for (int i = 0; refused[i]; i++) {
        const char *v = sk_query_get(pool(), refused[i], "return_to");
        if (v && sk_local_path_ok(v)) {
            *sk_failed_ = 1;
            fprintf(stderr, "  accepted: %s\n", refused[i]);
        }
    }
    /* NUL cannot be smuggled in to cut a value short ("/ok%00//evil"). */
    SK_CHECK(sk_query_get(pool(), "return_to=%2Fok%00%2F%2Fevil", "return_to") == NULL);
    /* The first return_to counts; a second one does not override it. */
    SK_CHECK_STR(sk_query_get(pool(), "return_to=%2Fa&return_to=%2F%2Fevil", "return_to"), "/a");
    SK_CHECK(sk_local_path_ok(sk_query_get(pool(), "return_to=%2Fdashboard%2F%3Fa%3D1",
                                           "return_to")));
}

SK_TEST(security_redirect_origin_lookalikes)
{
    apr_array_header_t *o = apr_array_make(pool(), 2, sizeof(char *));
    APR_ARRAY_PUSH(o, const char *) = "https://app.example.com";
    static const char *const refused[] = {
        "https://app.example.com.evil.example/", "https://app.example.comevil.example",
        "https://app.example.com:443@evil.example/", "https://app.example.com\\@evil.example",
        "https://app.example.com/\\evil.example", "https://app.example.com/%2f%2fevil.example",
        "https://app.example.com//evil.example", "https://app.example.com:8443/",
        "https://app.example.com\t/", "https://app.example.com/\r\nX: y",
        "https:app.example.com/", "//app.example.com/", "https://APP.example.com.evil/",
        "https://app.example.com\xef\xbc\x8f", NULL };
    for (int i = 0; refused[i]; i++) {
        if (sk_redirect_ok(pool(), refused[i], o)) {
            *sk_failed_ = 1;
            fprintf(stderr, "  accepted: %s\n", refused[i]);
        }
    }
    SK_CHECK(sk_redirect_ok(pool(), "HTTPS://APP.EXAMPLE.COM/x", o));   /* host case-insensitive */
}

/* ---- cookies: one reading of a duplicated name, bounded work ---- */

SK_TEST(security_cookie_duplicates_and_lookalike_names)
{
    const char *h = "sk-access-tokenX=a; Xsk-access-token=b; sk-access-token=first; "
                    "sk-access-token=second";
    SK_CHECK_STR(sk_cookie_get(pool(), h, "sk-access-token"), "first");
    SK_CHECK_STR(sk_cookie_get(pool(), "sk-access-token=; sk-access-token=x", "sk-access-token"),
                 "");            /* an empty first one is what the module sees (and ignores) */
    /* Quotes do not hide a ';': a value never swallows the next cookie. */
    SK_CHECK_STR(sk_cookie_get(pool(), "a=\"x; b=y\"", "a"), "\"x");
    /* A huge header is walked once, whatever it holds. */
    size_t n = 200000;
    char *big = apr_palloc(pool(), n + 32);
    memset(big, ';', n);
    strcpy(big + n, "sk-access-token=t");
    SK_CHECK_STR(sk_cookie_get(pool(), big, "sk-access-token"), "t");
}

/* ---- the state cookie: sealed, bound to the key, opaque ---- */

SK_TEST(security_state_cookie_is_opaque_and_bound_to_the_secret)
{
    sk_sealer *k = sk_sealer_create(pool(), "client-secret-1", "mod_scalekit state cookie v1");
    sk_sealer *k2 = sk_sealer_create(pool(), "client-secret-2", "mod_scalekit state cookie v1");
    SK_REQUIRE(k && k2);
    sk_login_state in = { "STATE-VALUE-1234", "NONCE-VALUE-5678", "VERIFIER-VALUE-90AB",
                          "/secret/return/path", 1700000000, 0, NULL, NULL, NULL }, out;
    char *sealed = sk_login_state_seal(pool(), k, &in);
    SK_REQUIRE(sealed);
    /* Nothing of the plain text shows, decoded or not (encrypted, not signed). */
    size_t raw_len;
    unsigned char *raw = sk_b64url_decode_alloc(sealed, strlen(sealed), &raw_len);
    SK_REQUIRE(raw);
    /* "\"v\":\"", not "\"v\"": 3 bytes turn up in 148 random ones once in 100,000 runs. */
    static const char *const hidden[] = { "VERIFIER-VALUE", "NONCE-VALUE", "/secret/return",
                                          "\"v\":\"", NULL };
    for (int i = 0; hidden[i]; i++) {
        SK_CHECK(!strstr(sealed, hidden[i]));
        SK_CHECK(!memmem(raw, raw_len, hidden[i], strlen(hidden[i])));
    }
    free(raw);
    /* Valid JSON sealed under another secret (a "re-signed" cookie) is refused. */
    char *other = sk_login_state_seal(pool(), k2, &in);
    SK_CHECK(sk_login_state_open(pool(), k, other, &out) != APR_SUCCESS);
    /* Oversized values are refused before any work. */
    char *huge = apr_palloc(pool(), 20001);
    memset(huge, 'A', 20000);
    huge[20000] = 0;
    SK_CHECK(sk_login_state_open(pool(), k, huge, &out) != APR_SUCCESS);
    /* Appending to a genuine value breaks it too. */
    SK_CHECK(sk_login_state_open(pool(), k, apr_pstrcat(pool(), sealed, "AAAA", NULL), &out) != APR_SUCCESS);
    SK_CHECK_INT(sk_login_state_open(pool(), k, sealed, &out), APR_SUCCESS);
}

/* ---- token endpoint answers: logged reasons carry no token ---- */

SK_TEST(security_token_response_reason_is_log_safe)
{
    sk_token_set ts;
    const char *why = NULL;
    const char *tok = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
    char *body = apr_psprintf(pool(), "{\"error\":\"server_error\",\"access_token\":\"%s\","
                              "\"refresh_token\":\"%s\"}", tok, tok);
    SK_CHECK(sk_oauth_parse_token_response(pool(), 200, body, strlen(body), &ts, &why) != APR_SUCCESS);
    SK_CHECK(ts.access_token == NULL);              /* an error answer is never used */
    SK_REQUIRE(why);
    SK_CHECK(!strstr(why, tok));
    body = apr_psprintf(pool(), "{\"access_token\":\"%s\",\"id_token\":\"%s\"}", tok, tok);
    SK_CHECK(sk_oauth_parse_token_response(pool(), 500, body, strlen(body), &ts, &why) != APR_SUCCESS);
    SK_CHECK(!strstr(why, tok));
    /* Control bytes, escapes and non-ASCII of the IdP's text never reach a log line raw. */
    const char *nasty = "{\"error\":\"bad\\r\\nFAKE LOG LINE\\u001b[31m\",\"error_description\":"
                        "\"\xc3\xa9\\u0000tail\"}";
    SK_CHECK(sk_oauth_parse_token_response(pool(), 400, nasty, strlen(nasty), &ts, &why) != APR_SUCCESS);
    for (const unsigned char *c = (const unsigned char *)why; *c; c++)
        SK_CHECK(*c >= 0x20 && *c < 0x7f);
    /* The excerpt is bounded whatever the IdP sends. */
    char *longerr = apr_palloc(pool(), 100100);
    strcpy(longerr, "{\"error\":\"");
    memset(longerr + 10, 'e', 100000);
    strcpy(longerr + 100010, "\"}");
    SK_CHECK(sk_oauth_parse_token_response(pool(), 400, longerr, strlen(longerr), &ts, &why) != APR_SUCCESS);
    SK_CHECK(strlen(why) < 400);
}

/* ---- outgoing messages: a value cannot add a parameter ---- */

SK_TEST(security_parameters_cannot_inject)
{
    sk_authorize_req q = { 0 };
    q.env_url = "https://acme.scalekit.dev";
    q.client_id = "skc_1";
    q.redirect_uri = "https://app.example.com/api/auth/callback";
    q.state = "st";
    q.login_hint = "a@b.c&redirect_uri=https://evil.example/&x=";
    q.organization_id = "org_1#frag";
    q.provider = "google\r\nSet-Cookie: x=1";
    char *url = sk_oauth_authorize_url(pool(), &q);
    SK_CHECK(!strstr(url, "evil.example/"));
    SK_CHECK(!strchr(url, '#') && !strchr(url, '\r') && !strchr(url, '\n'));
    SK_CHECK(!strstr(url, "&redirect_uri=https://"));
    /* Exactly one redirect_uri parameter, the configured one. */
    int n = 0;
    for (const char *c = url; (c = strstr(c, "redirect_uri=")); c++)
        n += c[-1] == '&' || c[-1] == '?';
    SK_CHECK_INT(n, 1);
    char *body = sk_oauth_code_body(pool(), "skc_1", "sec", "code&client_secret=x", "https://a/cb",
                                    "v&grant_type=refresh_token");
    SK_CHECK(strstr(body, "client_secret=x") == NULL);
    SK_CHECK(strstr(body, "grant_type=refresh_token") == NULL);
    char *logout = sk_oauth_logout_url(pool(), "https://e", "a.b.c&post_logout_redirect_uri=https://evil",
                                       "https://app/", NULL);
    SK_CHECK(strstr(logout, "post_logout_redirect_uri=https://evil") == NULL);
}

/* ---- log hygiene: the short hash ---- */

SK_TEST(security_token_hash_is_short_and_opaque)
{
    const char *tok = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2ln";
    char h[13], h2[13];
    sk_token_hash(tok, strlen(tok), h);
    SK_CHECK_INT(strlen(h), 12);
    SK_CHECK_INT(strspn(h, "0123456789abcdef"), 12);
    SK_CHECK(!strstr(tok, h));
    sk_token_hash(tok, strlen(tok) - 1, h2);
    SK_CHECK(strcmp(h, h2) != 0);
}

/* ---- PKCE and state: fresh, unguessable, URL-safe ---- */

SK_TEST(security_random_values_are_fresh)
{
    const char *seen[64];
    for (int i = 0; i < 64; i++) {
        seen[i] = sk_random_b64url(pool(), 32);
        SK_REQUIRE(seen[i]);
        SK_CHECK_INT(strlen(seen[i]), 43);
        SK_CHECK_INT(strspn(seen[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_"), 43);
        for (int j = 0; j < i; j++)
            SK_CHECK(strcmp(seen[i], seen[j]) != 0);
    }
    SK_CHECK(sk_random_b64url(pool(), 65) == NULL);        /* over the buffer: refused */
}
